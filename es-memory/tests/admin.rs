//! es-memory's admin view across tenants.
#![allow(clippy::unwrap_used, missing_docs)]

use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, Payload,
    StreamId, TenantId,
};

/// `tenants()` lists the tenants that hold events, sorted, and not those only looked at.
#[tokio::test]
async fn tenants_lists_those_holding_events_in_order() {
    let store = es_memory::MemoryStore::new();
    assert!(store.tenants().is_empty());
    let event =
        || EventData::new(EventType::new("t.e").unwrap(), Payload::from_json(&b"{}"[..]).unwrap());
    for name in ["zeta", "alpha"] {
        store
            .tenant(TenantId::new(name).unwrap())
            .append(
                &StreamId::new("s").unwrap(),
                ExpectedVersion::Any,
                vec![event()],
                AppendOptions::default(),
            )
            .await
            .unwrap();
    }
    // A handle that only read creates nothing worth listing.
    let idle = store.tenant(TenantId::new("idle").unwrap());
    assert_eq!(idle.stream_version(&StreamId::new("s").unwrap()).await.unwrap(), 0);
    assert_eq!(store.tenants(), [TenantId::new("alpha").unwrap(), TenantId::new("zeta").unwrap()]);
}
