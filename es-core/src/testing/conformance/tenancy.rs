//! Tenant isolation: no read or write crosses tenants.

use super::fixtures::{
    append, batch, expect_version_conflict, numbers, read_all, read_stream, scoped, stream,
};
use crate::{
    AppendOptions, EventStore, ExpectedVersion, MultiTenantStore, Position, ReadStreamOptions,
};

/// Tenant B reads nothing of tenant A's stream of the same name.
pub async fn tenants_cannot_read_each_others_streams<B: MultiTenantStore>(backend: B) {
    let a = scoped(&backend, "a");
    let b = scoped(&backend, "b");
    let s = stream("account-1");
    append(&a, &s, ExpectedVersion::NoStream, batch(0..3)).await;
    assert!(read_stream(&b, &s).await.is_empty());
    assert!(
        super::fixtures::collect(b.read_stream(&s, ReadStreamOptions::backward())).await.is_empty()
    );
    assert_eq!(b.stream_version(&s).await.expect("stream_version"), 0);
    assert!(read_all(&b).await.is_empty());
}

/// The same stream id in two tenants is two streams, with their own versions.
pub async fn tenants_have_independent_stream_versions<B: MultiTenantStore>(backend: B) {
    let a = scoped(&backend, "a");
    let b = scoped(&backend, "b");
    let s = stream("account-1");
    append(&a, &s, ExpectedVersion::NoStream, batch(0..3)).await;
    let refused =
        b.append(&s, ExpectedVersion::Exact(3), batch(10..11), AppendOptions::default()).await;
    expect_version_conflict(refused, ExpectedVersion::Exact(3), 0);
    let in_b = append(&b, &s, ExpectedVersion::NoStream, batch(10..12)).await;
    assert_eq!((in_b.first_version, in_b.last_version), (1, 2));
    assert_eq!(numbers(&read_stream(&a, &s).await), [0, 1, 2]);
    assert_eq!(numbers(&read_stream(&b, &s).await), [10, 11]);
    assert!(read_all(&a).await.iter().all(|event| event.tenant == *a.tenant()));
}

/// `read_all`, the head and waiting see only the handle's tenant.
pub async fn read_all_and_head_are_scoped_to_tenant<B: MultiTenantStore>(backend: B) {
    let a = scoped(&backend, "a");
    let b = scoped(&backend, "b");
    append(&a, &stream("account-1"), ExpectedVersion::Any, batch(0..2)).await;
    let in_b = append(&b, &stream("account-2"), ExpectedVersion::Any, batch(5..6)).await;
    append(&a, &stream("account-3"), ExpectedVersion::Any, batch(2..3)).await;
    assert_eq!(numbers(&read_all(&a).await), [0, 1, 2]);
    assert_eq!(numbers(&read_all(&b).await), [5]);
    assert_eq!(b.head_position().await.expect("head"), in_b.last_position);
    let waited = b
        .wait_for_events(in_b.last_position, std::time::Duration::from_millis(50))
        .await
        .expect("wait");
    assert_eq!(
        waited, in_b.last_position,
        "another tenant's appends must not move this tenant's head"
    );
    let empty = scoped(&backend, "c");
    assert_eq!(empty.head_position().await.expect("head"), Position::BEGINNING);
}

/// A handle knows its tenant, and recorded events carry it.
pub async fn handle_reports_its_tenant<B: MultiTenantStore>(backend: B) {
    let tenant = super::fixtures::tenant("named");
    let store = backend.tenant(tenant.clone());
    assert_eq!(store.tenant(), &tenant);
    append(&store, &stream("account-1"), ExpectedVersion::Any, batch(0..1)).await;
    assert_eq!(read_all(&store).await[0].tenant, tenant);
}
