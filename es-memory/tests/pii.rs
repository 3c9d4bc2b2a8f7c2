//! The personal-data conformance cases against the in-memory backend.

use std::sync::Arc;

use es_core::pii::KeyProvider;
use es_core::testing::conformance::PiiBackend;
use es_core::{MultiTenantStore, TenantId};
use es_memory::{MemoryStore, MemoryTenantStore};

/// The store, with the inspection the cases need.
#[derive(Clone)]
struct Memory(MemoryStore);

impl MultiTenantStore for Memory {
    type Store = MemoryTenantStore;

    fn tenant(&self, tenant: TenantId) -> MemoryTenantStore {
        self.0.tenant(tenant)
    }
}

impl PiiBackend for Memory {
    fn reopen_with(&self, provider: Arc<dyn KeyProvider>) -> Self {
        Self(self.0.reopen_with(provider))
    }

    async fn stored_text(&self, tenant: &TenantId) -> String {
        self.0.stored_text(tenant)
    }

    async fn stored_payloads(&self, tenant: &TenantId) -> Vec<String> {
        self.0.stored_payloads(tenant)
    }
}

async fn fresh_backend() -> Memory {
    Memory(MemoryStore::new())
}

es_core::pii_tests!(fresh_backend);

/// What the store keeps for one tenant holds that tenant's key rows and audit trail only.
#[tokio::test]
async fn a_tenants_stored_text_holds_no_other_tenants_keys() {
    use es_core::pii::{PersonalData, SubjectDigest};
    use es_core::{
        AppendOptions, EventData, EventStore, ExpectedVersion, Payload, PiiField, PiiSubject,
        StreamId,
    };
    const FIELDS: &[PiiField] = &[PiiField { field: "email", subject: PiiSubject::Stream }];
    let backend = MemoryStore::new();
    let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
    for tenant in [&a, &b] {
        let payload =
            Payload::from_value(&serde_json::json!({ "email": "x@example.com" })).unwrap();
        let event = EventData::new("test.registered".parse().unwrap(), payload).with_pii(FIELDS);
        let store = backend.tenant(tenant.clone());
        store
            .append(
                &StreamId::new("member-1").unwrap(),
                ExpectedVersion::Any,
                vec![event],
                AppendOptions::default(),
            )
            .await
            .unwrap();
    }
    let text = backend.stored_text(&a);
    assert!(text.contains(&SubjectDigest::of(&a, "member-1").to_string()), "{text}");
    assert!(!text.contains(&SubjectDigest::of(&b, "member-1").to_string()), "{text}");
    backend.tenant(b.clone()).forget("member-1", "ticket", "op").await.unwrap();
    assert!(!backend.stored_text(&a).contains("ticket"), "another tenant's audit trail");
}
