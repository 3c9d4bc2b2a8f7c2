//! Helpers shared by the cases.

use futures_util::TryStreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::{
    AppendOptions, AppendResult, EventData, EventStore, EventStream, EventType, ExpectedVersion,
    MultiTenantStore, Payload, RecordedEvent, StoreError, StreamId, TenantId,
};

/// A tenant id no other case uses, so cases stay isolated even on a shared database.
pub(super) fn tenant(label: &str) -> TenantId {
    let unique = Uuid::now_v7().simple().to_string();
    TenantId::new(format!("{label}-{}", &unique[unique.len() - 12..])).expect("valid tenant id")
}

/// A handle on a fresh tenant.
pub(super) fn scoped<B: MultiTenantStore>(backend: &B, label: &str) -> B::Store {
    backend.tenant(tenant(label))
}

pub(super) fn stream(name: &str) -> StreamId {
    StreamId::new(name).expect("valid stream id")
}

pub(super) fn event_type(name: &str) -> EventType {
    EventType::new(name).expect("valid event type")
}

/// An event of type `test.numbered` whose payload is `{"n": n}`.
pub(super) fn numbered(n: u64) -> EventData {
    typed("test.numbered", n)
}

/// An event of type `ty` whose payload is `{"n": n}`.
pub(super) fn typed(ty: &str, n: u64) -> EventData {
    EventData::new(event_type(ty), Payload::from_value(&json!({ "n": n })).expect("valid payload"))
}

/// Events numbered `range`.
pub(super) fn batch(range: std::ops::Range<u64>) -> Vec<EventData> {
    range.map(numbered).collect()
}

/// The `n` of an event made by [`numbered`] or [`typed`].
pub(super) fn number(event: &RecordedEvent) -> u64 {
    let value = event.payload.to_value().expect("payload is JSON");
    value["n"].as_u64().unwrap_or_else(|| panic!("payload {value} has no number n"))
}

pub(super) fn numbers(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(number).collect()
}

pub(super) fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|event| event.stream_version).collect()
}

pub(super) async fn append<S: EventStore>(
    store: &S,
    stream_id: &StreamId,
    expected: ExpectedVersion,
    events: Vec<EventData>,
) -> AppendResult {
    store.append(stream_id, expected, events, AppendOptions::default()).await.unwrap_or_else(
        |error| panic!("append to {stream_id} with {expected} must succeed: {error}"),
    )
}

pub(super) async fn try_collect(stream: EventStream) -> Result<Vec<RecordedEvent>, StoreError> {
    stream.try_collect().await
}

pub(super) async fn collect(stream: EventStream) -> Vec<RecordedEvent> {
    try_collect(stream).await.unwrap_or_else(|error| panic!("read must succeed: {error}"))
}

pub(super) async fn read_stream<S: EventStore>(
    store: &S,
    stream_id: &StreamId,
) -> Vec<RecordedEvent> {
    collect(store.read_stream(stream_id, crate::ReadStreamOptions::forward())).await
}

pub(super) async fn read_all<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    collect(store.read_all(crate::ReadAllOptions::from_beginning())).await
}

pub(super) fn assert_strictly_increasing_positions(events: &[RecordedEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "read_all must return positions in increasing order, got {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

pub(super) fn expect_version_conflict(
    result: Result<AppendResult, StoreError>,
    expected: ExpectedVersion,
    actual: u64,
) {
    match result {
        Err(StoreError::VersionConflict { expected: e, actual: a, .. }) => {
            assert_eq!(
                (e, a),
                (expected, actual),
                "VersionConflict must report expected and actual versions"
            );
        }
        other => panic!(
            "expected VersionConflict {{ expected: {expected:?}, actual: {actual} }}, got {other:?}"
        ),
    }
}
