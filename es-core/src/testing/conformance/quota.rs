//! Per-tenant quotas ([`TenantQuotas`]): an append past a limit is refused with the limit named
//! and nothing written, other tenants go on, limits change live, usage is reported, and
//! concurrent writers pass a limit by at most what is in flight.

use serde_json::json;

use super::fixtures::{event_type, read_stream, stream, tenant};
use crate::quota::{Limits, Quota, QuotaExceeded, TenantQuotas};
use crate::{
    AppendOptions, EventData, EventStore, ExpectedVersion, IdempotencyKey, MultiTenantStore,
    Payload, StoreError,
};

fn small(n: u64) -> EventData {
    EventData::new(
        event_type("test.quota"),
        Payload::from_value(&json!({ "n": n })).expect("payload"),
    )
}

fn exceeded(result: Result<crate::AppendResult, StoreError>) -> QuotaExceeded {
    match result {
        Err(StoreError::QuotaExceeded(exceeded)) => *exceeded,
        other => panic!("expected a quota error, got {other:?}"),
    }
}

async fn append<S: EventStore>(
    store: &S,
    name: &str,
    count: u64,
) -> Result<crate::AppendResult, StoreError> {
    let events = (0..count).map(small).collect();
    store.append(&stream(name), ExpectedVersion::Any, events, AppendOptions::default()).await
}

/// Each limit refuses the append that would pass it, says which limit and by how much, and
/// writes nothing (not even the idempotency record); appends within the limit, and other
/// tenants, go on.
pub async fn an_append_past_a_limit_is_refused_and_writes_nothing<
    B: MultiTenantStore + TenantQuotas,
>(
    backend: B,
) {
    let id = tenant("quota-events");
    let store = backend.tenant(id.clone());
    backend.set_limits(&id, Limits::none().events(5)).await.expect("limits");
    append(&store, "s-1", 3).await.expect("within the limit");
    let key = IdempotencyKey::new("k-1").expect("key");
    let keyed = store
        .append(
            &stream("s-1"),
            ExpectedVersion::Any,
            (0..3).map(small).collect(),
            AppendOptions::default().idempotency_key(key.clone()),
        )
        .await;
    let refused = exceeded(keyed);
    assert_eq!(
        (refused.quota, refused.limit, refused.used, refused.requested),
        (Quota::Events, 5, 3, 3)
    );
    assert!(refused.to_string().contains("1 over"), "{refused}");
    assert_eq!(read_stream(&store, &stream("s-1")).await.len(), 3, "nothing written");
    assert!(store.idempotency_record(&key).await.expect("record").is_none());
    append(&store, "s-1", 2).await.expect("exactly at the limit");
    exceeded(append(&store, "s-2", 1).await);
    let other = backend.tenant(tenant("quota-other"));
    append(&other, "s-1", 10).await.expect("another tenant goes on");

    let id = tenant("quota-streams");
    let store = backend.tenant(id.clone());
    backend.set_limits(&id, Limits::none().streams(2)).await.expect("limits");
    append(&store, "a", 1).await.expect("first stream");
    append(&store, "b", 1).await.expect("second stream");
    let refused = exceeded(append(&store, "c", 1).await);
    assert_eq!(
        (refused.quota, refused.limit, refused.used, refused.requested),
        (Quota::Streams, 2, 2, 1)
    );
    assert_eq!(store.stream_version(&stream("c")).await.expect("version"), 0);
    append(&store, "a", 4).await.expect("existing streams grow");
    // A limit lowered below the usage refuses new streams only.
    backend.set_limits(&id, Limits::none().streams(1)).await.expect("lower");
    append(&store, "b", 1).await.expect("existing streams still grow");
    exceeded(append(&store, "d", 1).await);

    let id = tenant("quota-bytes");
    let store = backend.tenant(id.clone());
    let blob = |n: u64| {
        EventData::new(
            event_type("test.blob"),
            Payload::from_value(&json!({ "n": n, "blob": "x".repeat(100) })).expect("payload"),
        )
    };
    backend.set_limits(&id, Limits::none().bytes(300)).await.expect("limits");
    store
        .append(
            &stream("s"),
            ExpectedVersion::Any,
            vec![blob(1), blob(2)],
            AppendOptions::default(),
        )
        .await
        .expect("about 230 bytes");
    let refused = exceeded(
        store
            .append(&stream("s"), ExpectedVersion::Any, vec![blob(3)], AppendOptions::default())
            .await,
    );
    assert_eq!(refused.quota, Quota::Bytes);
    assert!(refused.used > 200 && refused.used < 300 && refused.requested > 100, "{refused}");
    assert_eq!(read_stream(&store, &stream("s")).await.len(), 2);

    let id = tenant("quota-rate");
    let store = backend.tenant(id.clone());
    backend.set_limits(&id, Limits::none().events_per_second(3)).await.expect("limits");
    let refused = exceeded(append(&store, "s", 4).await);
    assert_eq!((refused.quota, refused.limit, refused.requested), (Quota::AppendRate, 3, 4));
    // Three then one more within the same second: refused (tried again if the second turned).
    let mut refused_in_window = false;
    for attempt in 0..5 {
        append(&store, &format!("w{attempt}"), 3)
            .await
            .expect("three in a fresh window, or the rest of one");
        if let Err(StoreError::QuotaExceeded(exceeded)) =
            append(&store, &format!("w{attempt}"), 1).await
        {
            assert_eq!(exceeded.quota, Quota::AppendRate);
            refused_in_window = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    }
    assert!(refused_in_window, "a fourth event within one second is refused");
    // The next second is a new window.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    append(&store, "next", 3).await.expect("a new second, a new window");
}

/// Retries of an idempotent append that replay it write nothing, so they count nothing: after
/// three replays the tenant can still append up to its limits (events and streams), and its
/// usage is what was written.
pub async fn replays_of_an_idempotent_append_count_once<B: MultiTenantStore + TenantQuotas>(
    backend: B,
) {
    let id = tenant("quota-replays");
    let store = backend.tenant(id.clone());
    backend.set_limits(&id, Limits::none().events(10).streams(2)).await.expect("limits");
    let key = IdempotencyKey::new("k-replayed").expect("key");
    let replayed = stream("s-1");
    let keyed = || {
        store.append(
            &replayed,
            ExpectedVersion::NoStream,
            (0..4).map(small).collect(),
            AppendOptions::default().idempotency_key(key.clone()),
        )
    };
    let first = keyed().await.expect("written");
    for _ in 0..3 {
        assert_eq!(keyed().await.expect("replayed"), first);
    }
    append(&store, "s-2", 6).await.expect("up to the limits: the replays wrote nothing");
    let refused = exceeded(append(&store, "s-2", 1).await);
    assert_eq!((refused.quota, refused.used), (Quota::Events, 10));
    let usage = backend.tenant_usage(&id).await.expect("usage");
    assert_eq!((usage.usage.events, usage.usage.streams), (10, 2));
}

/// Operators read usage and change limits live: a raised limit lets the next append through, a
/// removed one lifts it.
pub async fn limits_change_live_and_usage_is_reported<B: MultiTenantStore + TenantQuotas>(
    backend: B,
) {
    let id = tenant("quota-live");
    let store = backend.tenant(id.clone());
    append(&store, "s-1", 4).await.expect("append");
    append(&store, "s-2", 1).await.expect("append");
    let usage = backend.tenant_usage(&id).await.expect("usage");
    assert_eq!((usage.usage.events, usage.usage.streams), (5, 2));
    assert!(usage.usage.bytes >= 5 * 7, "{usage:?}");
    assert!(usage.limits.is_none());

    backend.set_limits(&id, Limits::none().events(5).streams(10)).await.expect("limits");
    assert_eq!(
        backend.tenant_usage(&id).await.expect("usage").limits,
        Limits::none().events(5).streams(10)
    );
    exceeded(append(&store, "s-1", 1).await);
    backend.set_limits(&id, Limits::none().events(6)).await.expect("raise");
    append(&store, "s-1", 1).await.expect("the raised limit holds at once");
    exceeded(append(&store, "s-1", 1).await);
    backend.set_limits(&id, Limits::none()).await.expect("remove");
    append(&store, "s-1", 10).await.expect("no limit");

    let all = backend.tenants_usage().await.expect("tenants");
    let listed = all.iter().find(|t| t.tenant == id).expect("the tenant is listed");
    assert_eq!(listed.usage.events, 16);
    let limited_only = tenant("quota-empty");
    backend.set_limits(&limited_only, Limits::none().events(1)).await.expect("limits");
    let all = backend.tenants_usage().await.expect("tenants");
    assert!(
        all.iter().any(|t| t.tenant == limited_only && t.usage.events == 0),
        "a tenant with limits and no events is listed"
    );
}

/// Writers racing for the last places pass the limit by at most what is in flight at once (one
/// event per writer here): never more than `limit + writers - 1` events are stored.
pub async fn concurrent_writers_overshoot_a_limit_by_at_most_what_is_in_flight<
    B: MultiTenantStore + TenantQuotas,
>(
    backend: B,
) {
    const LIMIT: u64 = 40;
    const WRITERS: u64 = 8;
    let id = tenant("quota-race");
    backend.set_limits(&id, Limits::none().events(LIMIT)).await.expect("limits");
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let store = backend.tenant(id.clone());
        tasks.spawn(async move {
            let mut written = 0u64;
            loop {
                match append(&store, &format!("w-{writer}"), 1).await {
                    Ok(_) => written += 1,
                    Err(StoreError::QuotaExceeded(_)) => return written,
                    Err(other) => panic!("{other}"),
                }
            }
        });
    }
    let mut written = 0;
    while let Some(done) = tasks.join_next().await {
        written += done.expect("writer");
    }
    let stored = backend.tenant_usage(&id).await.expect("usage").usage.events;
    assert_eq!(stored, written, "usage counts exactly what was written");
    assert!(written >= LIMIT, "the limit is reachable: {written}");
    assert!(
        written < LIMIT + WRITERS,
        "overshoot past the in-flight bound: {written} events for a limit of {LIMIT}"
    );
}
