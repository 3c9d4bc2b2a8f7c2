//! Versions, expected versions and atomic batches.

use super::fixtures::{
    append, batch, expect_version_conflict, numbered, numbers, read_all, read_stream, scoped,
    stream, versions,
};
use crate::{
    AppendOptions, EventId, EventStore, ExpectedVersion, IdempotencyKey, InvalidAppend,
    MultiTenantStore, Position, StoreError,
};

/// The first event of a stream has version 1.
pub async fn append_to_new_stream_starts_at_version_one<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let result = append(&store, &s, ExpectedVersion::NoStream, vec![numbered(1)]).await;
    assert_eq!((result.first_version, result.last_version), (1, 1));
    assert!(result.first_position > Position::BEGINNING);
    assert_eq!(result.first_position, result.last_position);
    assert_eq!(store.stream_version(&s).await.expect("stream_version"), 1);
    let events = read_stream(&store, &s).await;
    assert_eq!(versions(&events), [1]);
    assert_eq!(events[0].position, result.first_position);
}

/// Successive appends continue the stream's versions without gaps.
pub async fn versions_are_contiguous_across_appends<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let first = append(&store, &s, ExpectedVersion::Any, batch(0..2)).await;
    let second = append(&store, &s, ExpectedVersion::Any, batch(2..3)).await;
    let third = append(&store, &s, ExpectedVersion::Any, batch(3..6)).await;
    assert_eq!((first.first_version, first.last_version), (1, 2));
    assert_eq!((second.first_version, second.last_version), (3, 3));
    assert_eq!((third.first_version, third.last_version), (4, 6));
    assert!(
        first.last_position < second.first_position && second.last_position < third.first_position
    );
    let events = read_stream(&store, &s).await;
    assert_eq!(versions(&events), [1, 2, 3, 4, 5, 6]);
    assert_eq!(numbers(&events), [0, 1, 2, 3, 4, 5]);
    assert_eq!(store.stream_version(&s).await.expect("stream_version"), 6);
}

/// A batch lands contiguous in its stream, in order, with increasing positions and one timestamp.
pub async fn batch_is_contiguous_and_shares_one_timestamp<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let result = append(&store, &s, ExpectedVersion::NoStream, batch(0..5)).await;
    assert_eq!((result.first_version, result.last_version), (1, 5));
    let events = read_stream(&store, &s).await;
    assert_eq!(versions(&events), [1, 2, 3, 4, 5]);
    assert_eq!(numbers(&events), [0, 1, 2, 3, 4]);
    assert_eq!(events[0].position, result.first_position);
    assert_eq!(events[4].position, result.last_position);
    assert!(events.windows(2).all(|pair| pair[0].position < pair[1].position));
    assert!(events.iter().all(|event| event.recorded_at == events[0].recorded_at));
}

/// `NoStream` on a stream with events is a conflict that writes nothing.
pub async fn no_stream_on_existing_stream_conflicts<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    append(&store, &s, ExpectedVersion::NoStream, batch(0..1)).await;
    let head = store.head_position().await.expect("head");
    let refused =
        store.append(&s, ExpectedVersion::NoStream, batch(1..2), AppendOptions::default()).await;
    expect_version_conflict(refused, ExpectedVersion::NoStream, 1);
    assert_eq!(numbers(&read_stream(&store, &s).await), [0]);
    assert_eq!(store.head_position().await.expect("head"), head);
}

/// `StreamExists` on an empty stream is a conflict that writes nothing.
pub async fn stream_exists_on_empty_stream_conflicts<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let refused = store
        .append(&s, ExpectedVersion::StreamExists, batch(0..2), AppendOptions::default())
        .await;
    expect_version_conflict(refused, ExpectedVersion::StreamExists, 0);
    assert!(read_stream(&store, &s).await.is_empty());
    assert_eq!(store.stream_version(&s).await.expect("stream_version"), 0);
    assert_eq!(store.head_position().await.expect("head"), Position::BEGINNING);
}

/// `StreamExists` on a stream with events appends.
pub async fn stream_exists_on_existing_stream_appends<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    append(&store, &s, ExpectedVersion::NoStream, batch(0..1)).await;
    let result = append(&store, &s, ExpectedVersion::StreamExists, batch(1..3)).await;
    assert_eq!((result.first_version, result.last_version), (2, 3));
}

/// `Exact(n)` at version n appends.
pub async fn exact_version_matching_appends<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    append(&store, &s, ExpectedVersion::NoStream, batch(0..3)).await;
    let result = append(&store, &s, ExpectedVersion::Exact(3), batch(3..4)).await;
    assert_eq!((result.first_version, result.last_version), (4, 4));
    let result = append(&store, &s, ExpectedVersion::Exact(4), batch(4..6)).await;
    assert_eq!((result.first_version, result.last_version), (5, 6));
}

/// `Exact(n)` below or above the stream's version is a conflict reporting the actual version.
pub async fn exact_version_mismatch_conflicts_and_reports_actual<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    append(&store, &s, ExpectedVersion::NoStream, batch(0..3)).await;
    // Single events and batches, with and without an idempotency key: each takes its own path in
    // a backend (PostgreSQL has a scalar insert, a batch insert and a keyed function), and each
    // must refuse a stream that is behind the expectation instead of writing after a gap.
    let mut attempt = 0;
    for size in [1, 3] {
        for keyed in [false, true] {
            for expected in [
                ExpectedVersion::Exact(2),
                ExpectedVersion::Exact(4),
                ExpectedVersion::Exact(1_000),
            ] {
                attempt += 1;
                let options = if keyed {
                    let key = crate::IdempotencyKey::new(format!("mismatch-{attempt}"))
                        .expect("valid key");
                    AppendOptions::default().idempotency_key(key)
                } else {
                    AppendOptions::default()
                };
                let refused = store.append(&s, expected, batch(10..10 + size), options).await;
                expect_version_conflict(refused, expected, 3);
            }
        }
    }
    assert_eq!(numbers(&read_stream(&store, &s).await), [0, 1, 2]);
}

/// `Exact(0)` means the stream is empty, like `NoStream`.
pub async fn exact_zero_means_empty_stream<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let result = append(&store, &s, ExpectedVersion::Exact(0), batch(0..1)).await;
    assert_eq!(result.last_version, 1);
    let refused =
        store.append(&s, ExpectedVersion::Exact(0), batch(1..2), AppendOptions::default()).await;
    expect_version_conflict(refused, ExpectedVersion::Exact(0), 1);
}

/// `Any` appends to new and existing streams alike.
pub async fn any_appends_to_new_and_existing_streams<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    assert_eq!(append(&store, &s, ExpectedVersion::Any, batch(0..1)).await.last_version, 1);
    assert_eq!(append(&store, &s, ExpectedVersion::Any, batch(1..2)).await.last_version, 2);
}

/// A refused batch writes none of its events, and its event ids stay free.
pub async fn conflicting_batch_writes_nothing<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let other = stream("order-2");
    append(&store, &s, ExpectedVersion::NoStream, batch(0..2)).await;
    append(&store, &other, ExpectedVersion::NoStream, batch(100..101)).await;
    let before = read_all(&store).await;
    let head = store.head_position().await.expect("head");

    let refused_batch = batch(2..12);
    let refused = store
        .append(&s, ExpectedVersion::Exact(1), refused_batch.clone(), AppendOptions::default())
        .await;
    expect_version_conflict(refused, ExpectedVersion::Exact(1), 2);
    assert_eq!(read_all(&store).await, before, "a refused batch must not change the log");
    assert_eq!(store.head_position().await.expect("head"), head);
    assert_eq!(store.stream_version(&s).await.expect("stream_version"), 2);

    let retried = append(&store, &s, ExpectedVersion::Exact(2), refused_batch).await;
    assert_eq!((retried.first_version, retried.last_version), (3, 12));
}

/// Malformed input (no events, a schema version outside 1..=2³¹−1, one id twice) is refused before anything is written.
pub async fn invalid_batches_are_rejected_and_write_nothing<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let empty = store.append(&s, ExpectedVersion::Any, vec![], AppendOptions::default()).await;
    assert!(
        matches!(empty, Err(StoreError::InvalidAppend { reason: InvalidAppend::EmptyBatch, .. })),
        "{empty:?}"
    );

    for version in [0, 1 << 31, u32::MAX] {
        let batch = vec![numbered(0), numbered(1).with_schema_version(version)];
        let refused = store.append(&s, ExpectedVersion::Any, batch, AppendOptions::default()).await;
        assert!(
            matches!(
                refused,
                Err(StoreError::InvalidAppend {
                    reason: InvalidAppend::SchemaVersionOutOfRange { index: 1, schema_version },
                    ..
                }) if schema_version == version
            ),
            "{refused:?}"
        );
    }
    // The highest valid version is stored by every backend.
    let highest = numbered(2).with_schema_version(i32::MAX.unsigned_abs());
    append(&store, &stream("order-highest"), ExpectedVersion::NoStream, vec![highest]).await;
    let stored = read_all(&store).await;
    assert_eq!(stored.len(), 1, "only the valid append may be written");
    assert_eq!(stored[0].schema_version, i32::MAX.unsigned_abs());

    let id = EventId::new();
    let twice = vec![numbered(0).with_event_id(id), numbered(1).with_event_id(id)];
    let twice = store.append(&s, ExpectedVersion::Any, twice, AppendOptions::default()).await;
    assert!(
        matches!(twice, Err(StoreError::InvalidAppend { reason: InvalidAppend::DuplicateEventId { event_id }, .. }) if event_id == id),
        "{twice:?}"
    );
    assert_eq!(read_all(&store).await.len(), 1, "no invalid append may write anything");
    assert_eq!(store.stream_version(&s).await.expect("stream_version"), 0);
}

/// An event id already stored in the tenant is refused, and the whole batch with it.
pub async fn duplicate_event_id_is_rejected_and_writes_nothing<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let stored = numbered(0);
    let id = stored.event_id;
    append(&store, &stream("order-1"), ExpectedVersion::NoStream, vec![stored]).await;

    let s = stream("order-2");
    let batch = vec![numbered(1), numbered(2).with_event_id(id)];
    let refused = store.append(&s, ExpectedVersion::Any, batch, AppendOptions::default()).await;
    assert!(
        matches!(&refused, Err(StoreError::DuplicateEventId { event_id, .. }) if *event_id == id),
        "expected DuplicateEventId, got {refused:?}"
    );
    assert!(read_stream(&store, &s).await.is_empty());
    assert_eq!(read_all(&store).await.len(), 1);

    // Every append path refuses it the same way: each expectation, one event or several, with an
    // idempotency key or without (a backend may write each combination with a statement of its
    // own).
    let existing = stream("order-3");
    append(&store, &existing, ExpectedVersion::NoStream, vec![numbered(3)]).await;
    let paths = [
        (stream("order-4"), ExpectedVersion::NoStream),
        (existing.clone(), ExpectedVersion::Exact(1)),
        (existing.clone(), ExpectedVersion::StreamExists),
        (stream("order-5"), ExpectedVersion::Any),
    ];
    let mut tried = 0;
    for (target, expected) in &paths {
        for size in [1, 3] {
            for keyed in [false, true] {
                let mut batch: Vec<_> = (10..10 + size - 1).map(numbered).collect();
                batch.push(numbered(9).with_event_id(id));
                let options = if keyed {
                    // ASCII letters, a dash and digits: a valid key by construction.
                    let key = IdempotencyKey::new(format!("duplicate-{tried}")).expect("valid key");
                    AppendOptions::default().idempotency_key(key)
                } else {
                    AppendOptions::default()
                };
                tried += 1;
                let refused = store.append(target, *expected, batch, options).await;
                assert!(
                    matches!(&refused, Err(StoreError::DuplicateEventId { event_id, .. }) if *event_id == id),
                    "{expected:?}, {size} event(s), keyed: {keyed}: expected DuplicateEventId, got {refused:?}"
                );
            }
        }
    }
    assert_eq!(
        read_all(&store).await.len(),
        2,
        "none of the {tried} refused appends wrote anything"
    );
}

/// Event ids are unique per tenant: another tenant may hold the same id.
pub async fn event_ids_are_scoped_to_tenant<B: MultiTenantStore>(backend: B) {
    let a = scoped(&backend, "a");
    let b = scoped(&backend, "b");
    let event = numbered(0);
    append(&a, &stream("order-1"), ExpectedVersion::NoStream, vec![event.clone()]).await;
    append(&b, &stream("order-1"), ExpectedVersion::NoStream, vec![event.clone()]).await;
    assert_eq!(read_all(&a).await[0].event_id, event.event_id);
    assert_eq!(read_all(&b).await[0].event_id, event.event_id);
}
