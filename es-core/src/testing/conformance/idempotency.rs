//! Idempotent appends (DESIGN.md, appendix B).

use std::sync::Arc;

use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::fixtures::{
    append, batch, expect_version_conflict, numbered, numbers, read_all, read_stream, scoped,
    stream,
};
use crate::{
    AppendOptions, EventData, EventId, EventStore, ExpectedVersion, IdempotencyKey,
    MultiTenantStore, StoreError,
};

fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey::new(name).expect("valid key")
}

fn with_key(name: &str) -> AppendOptions {
    AppendOptions::default().idempotency_key(key(name))
}

/// The same events rebuilt with fresh ids, as a retrying client would.
fn rebuilt(events: &[EventData]) -> Vec<EventData> {
    events.iter().map(|event| event.clone().with_event_id(EventId::new())).collect()
}

/// Retrying with the same key and events returns the first result and writes nothing.
pub async fn idempotent_retry_returns_first_result_and_writes_nothing<B: MultiTenantStore>(
    backend: B,
) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let events = batch(0..3);
    let first = store
        .append(&s, ExpectedVersion::NoStream, events.clone(), with_key("k1"))
        .await
        .expect("first append");
    let retry =
        store.append(&s, ExpectedVersion::NoStream, events, with_key("k1")).await.expect("retry");
    assert_eq!(retry, first, "a retry must return the first result");
    assert_eq!(numbers(&read_stream(&store, &s).await), [0, 1, 2], "a retry must write nothing");
}

/// A retry returns the first result even after the stream moved on, whatever the expected version says.
pub async fn idempotent_retry_ignores_expected_version_after_stream_moved<B: MultiTenantStore>(
    backend: B,
) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let events = batch(0..2);
    let first = store
        .append(&s, ExpectedVersion::NoStream, events.clone(), with_key("k1"))
        .await
        .expect("first");
    append(&store, &s, ExpectedVersion::Exact(2), batch(2..4)).await;
    let retry =
        store.append(&s, ExpectedVersion::NoStream, events, with_key("k1")).await.expect("retry");
    assert_eq!(retry, first);
    assert_eq!(numbers(&read_stream(&store, &s).await), [0, 1, 2, 3]);
}

/// Ids and metadata are not part of the request's identity: rebuilt events are the same request.
pub async fn idempotent_retry_with_rebuilt_event_ids_is_same_request<B: MultiTenantStore>(
    backend: B,
) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let events = batch(0..2);
    let first = store
        .append(&s, ExpectedVersion::Any, events.clone(), with_key("k1"))
        .await
        .expect("first");
    let retry = store
        .append(&s, ExpectedVersion::Any, rebuilt(&events), with_key("k1"))
        .await
        .expect("retry");
    assert_eq!(retry, first);
    assert_eq!(read_all(&store).await.len(), 2);
}

/// The same key with other events is an `IdempotencyConflict` that writes nothing.
pub async fn idempotency_key_with_other_events_conflicts<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    store.append(&s, ExpectedVersion::Any, batch(0..2), with_key("k1")).await.expect("first");
    let refused = store.append(&s, ExpectedVersion::Any, batch(5..7), with_key("k1")).await;
    assert!(
        matches!(&refused, Err(StoreError::IdempotencyConflict { key: k, original_stream_id, .. }) if *k == key("k1") && *original_stream_id == s),
        "expected IdempotencyConflict, got {refused:?}"
    );
    let shorter = store.append(&s, ExpectedVersion::Any, batch(0..1), with_key("k1")).await;
    assert!(matches!(shorter, Err(StoreError::IdempotencyConflict { .. })), "{shorter:?}");
    assert_eq!(numbers(&read_all(&store).await), [0, 1]);
}

/// The same key on another stream is a conflict.
pub async fn idempotency_key_on_other_stream_conflicts<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let events = batch(0..1);
    store
        .append(&stream("order-1"), ExpectedVersion::Any, events.clone(), with_key("k1"))
        .await
        .expect("first");
    let refused = store
        .append(&stream("order-2"), ExpectedVersion::Any, rebuilt(&events), with_key("k1"))
        .await;
    assert!(matches!(refused, Err(StoreError::IdempotencyConflict { .. })), "{refused:?}");
    assert!(read_stream(&store, &stream("order-2")).await.is_empty());
}

/// 8 tasks at once use one key for appends to 8 different streams (`NoStream`, the keyed command's
/// expectation), in 20 rounds of a key each: in each round one is written and every other is an
/// `IdempotencyConflict` naming the winner's stream; no loser's stream holds an event. A backend
/// that checks the key before writing the events but records it without a unique check could
/// write two streams under one key.
pub async fn concurrent_appends_of_one_key_to_other_streams_write_one<B: MultiTenantStore>(
    backend: B,
) {
    const TASKS: usize = 8;
    const ROUNDS: usize = 20;
    let store = scoped(&backend, "a");
    let mut written = 0;
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut tasks = JoinSet::new();
        for task in 0..TASKS {
            let (store, barrier) = (store.clone(), barrier.clone());
            tasks.spawn(async move {
                let s = stream(&format!("order-{round}-{task}"));
                barrier.wait().await;
                let options = with_key(&format!("shared-{round}"));
                (s.clone(), store.append(&s, ExpectedVersion::NoStream, batch(0..2), options).await)
            });
        }
        let mut winners = Vec::new();
        let mut refused = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined.expect("task panicked") {
                (s, Ok(_)) => winners.push(s),
                (_, Err(StoreError::IdempotencyConflict { original_stream_id, .. })) => {
                    refused.push(original_stream_id);
                }
                (s, Err(error)) => panic!("an append to {s} must win or conflict: {error}"),
            }
        }
        assert_eq!(winners.len(), 1, "one stream is written under a key: {winners:?}");
        assert!(refused.iter().all(|s| *s == winners[0]), "refusals name the winner: {refused:?}");
        written += 2;
        assert_eq!(read_all(&store).await.len(), written, "only the winners' events are stored");
    }
}

/// The same key and events with another expected version is a different request.
pub async fn idempotency_key_with_other_expected_version_conflicts<B: MultiTenantStore>(
    backend: B,
) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let events = batch(0..1);
    store
        .append(&s, ExpectedVersion::NoStream, events.clone(), with_key("k1"))
        .await
        .expect("first");
    let refused =
        store.append(&s, ExpectedVersion::Exact(1), rebuilt(&events), with_key("k1")).await;
    assert!(matches!(refused, Err(StoreError::IdempotencyConflict { .. })), "{refused:?}");
    assert_eq!(read_all(&store).await.len(), 1);
}

/// Keys are scoped to the tenant: another tenant's key of the same name is unrelated.
pub async fn idempotency_keys_are_scoped_to_tenant<B: MultiTenantStore>(backend: B) {
    let a = scoped(&backend, "a");
    let b = scoped(&backend, "b");
    let s = stream("order-1");
    a.append(&s, ExpectedVersion::Any, batch(0..1), with_key("k1")).await.expect("tenant a");
    let in_b = b
        .append(&s, ExpectedVersion::Any, batch(7..9), with_key("k1"))
        .await
        .expect("tenant b's own key");
    assert_eq!((in_b.first_version, in_b.last_version), (1, 2));
    assert!(
        b.idempotency_record(&key("k1"))
            .await
            .expect("lookup")
            .is_some_and(|record| record.result == in_b)
    );
}

/// 16 concurrent retries of one idempotent append write it once and all return the same result.
pub async fn concurrent_idempotent_retries_write_once<B: MultiTenantStore>(backend: B) {
    const TASKS: usize = 16;
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let events = batch(0..3);
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let (store, s, events, barrier) =
            (store.clone(), s.clone(), rebuilt(&events), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            store.append(&s, ExpectedVersion::Any, events, with_key("k1")).await
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.expect("task panicked").expect("every retry must succeed"));
    }
    assert!(
        results.iter().all(|result| *result == results[0]),
        "all retries must return one result: {results:?}"
    );
    assert_eq!(
        numbers(&read_stream(&store, &s).await),
        [0, 1, 2],
        "the events must be written once"
    );
}

/// An append that fails leaves no record: the key stays free for a corrected request.
pub async fn failed_append_leaves_no_idempotency_record<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    append(&store, &s, ExpectedVersion::NoStream, batch(0..1)).await;
    let refused = store.append(&s, ExpectedVersion::NoStream, batch(1..2), with_key("k1")).await;
    expect_version_conflict(refused, ExpectedVersion::NoStream, 1);
    assert!(store.idempotency_record(&key("k1")).await.expect("lookup").is_none());
    let corrected = store
        .append(&s, ExpectedVersion::Exact(1), batch(1..2), with_key("k1"))
        .await
        .expect("corrected");
    assert_eq!(corrected.last_version, 2);
}

/// The record of an idempotent append can be looked up by key.
pub async fn idempotency_record_is_queryable<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    assert!(store.idempotency_record(&key("k1")).await.expect("lookup").is_none());
    let result = store
        .append(&s, ExpectedVersion::Any, vec![numbered(0)], with_key("k1"))
        .await
        .expect("append");
    let record = store.idempotency_record(&key("k1")).await.expect("lookup").expect("a record");
    assert_eq!(record.key, key("k1"));
    assert_eq!(record.stream_id, s);
    assert_eq!(record.result, result);
    let events = read_stream(&store, &s).await;
    assert_eq!(record.recorded_at, events[0].recorded_at);
    // Without personal data the record's fingerprint is the request's own.
    let request =
        crate::AppendRequest::new(&s, ExpectedVersion::Any, vec![numbered(0)], with_key("k1"))
            .expect("request");
    let fingerprint = request.idempotency.expect("keyed").1;
    assert_eq!(record.fingerprint, fingerprint);
    assert!(store.fingerprint_matches(&record, &fingerprint).await.expect("compared"));
    let other = crate::Fingerprint([1; 32]);
    assert!(!store.fingerprint_matches(&record, &other).await.expect("compared"));
}

/// 8 tasks retrying one keyed append at once, expecting `NoStream`, `Exact(0)` or `Exact(n)`:
/// every one gets the first result (none a `VersionConflict`), and the events are written once.
/// A backend that checks the key before it serialises appends to the stream fails this.
pub async fn concurrent_keyed_retries_with_exact_versions_all_replay<B: MultiTenantStore>(
    backend: B,
) {
    const TASKS: usize = 8;
    let store = scoped(&backend, "a");
    let cases = [
        ("order-no-stream", ExpectedVersion::NoStream, 0),
        ("order-exact-zero", ExpectedVersion::Exact(0), 0),
        ("order-exact-three", ExpectedVersion::Exact(3), 3),
    ];
    for (name, expected, before) in cases {
        let s = stream(name);
        if before > 0 {
            append(&store, &s, ExpectedVersion::NoStream, batch(100..100 + before)).await;
        }
        let events = batch(0..2);
        let key_name = format!("k-{name}");
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut tasks = JoinSet::new();
        for _ in 0..TASKS {
            let (store, s, events, barrier, key_name) =
                (store.clone(), s.clone(), rebuilt(&events), barrier.clone(), key_name.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                store.append(&s, expected, events, with_key(&key_name)).await
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            results.push(joined.expect("task panicked").unwrap_or_else(|error| {
                panic!("every retry with {expected} must replay the first result, got {error}")
            }));
        }
        assert!(
            results.iter().all(|result| *result == results[0]),
            "all retries with {expected} must return one result: {results:?}"
        );
        assert_eq!((results[0].first_version, results[0].last_version), (before + 1, before + 2));
        let written = read_stream(&store, &s).await;
        assert_eq!(written.len() as u64, before + 2, "the keyed batch must be written once");
    }
}
