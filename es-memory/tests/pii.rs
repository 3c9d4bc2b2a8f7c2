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
