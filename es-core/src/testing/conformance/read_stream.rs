//! Reading one stream: forwards, backwards, from the middle, past the end, with limits.

use super::fixtures::{append, batch, collect, numbers, read_stream, scoped, stream, versions};
use crate::{
    EventStore, ExpectedVersion, MultiTenantStore, ReadStreamOptions, ReplayedEvent, StreamId,
};

async fn ten_events<B: MultiTenantStore>(backend: &B) -> (B::Store, StreamId) {
    let store = scoped(backend, "a");
    let s = stream("order-1");
    append(&store, &s, ExpectedVersion::NoStream, batch(1..5)).await;
    append(&store, &s, ExpectedVersion::Exact(4), batch(5..11)).await;
    (store, s)
}

async fn read<S: EventStore>(store: &S, s: &StreamId, options: ReadStreamOptions) -> Vec<u64> {
    versions(&collect(store.read_stream(s, options)).await)
}

/// Forwards from version 4 returns versions 4 to 10.
pub async fn read_stream_forward_from_middle<B: MultiTenantStore>(backend: B) {
    let (store, s) = ten_events(&backend).await;
    assert_eq!(
        read(&store, &s, ReadStreamOptions::forward().from_version(4)).await,
        [4, 5, 6, 7, 8, 9, 10]
    );
    assert_eq!(
        read(&store, &s, ReadStreamOptions::forward().from_version(0)).await,
        (1..=10).collect::<Vec<_>>()
    );
}

/// Backwards from the end returns every version, newest first.
pub async fn read_stream_backward_from_end<B: MultiTenantStore>(backend: B) {
    let (store, s) = ten_events(&backend).await;
    let events = collect(store.read_stream(&s, ReadStreamOptions::backward())).await;
    assert_eq!(versions(&events), (1..=10).rev().collect::<Vec<_>>());
    assert_eq!(numbers(&events), (1..=10).rev().collect::<Vec<_>>());
}

/// Backwards from version 4 returns versions 4 to 1.
pub async fn read_stream_backward_from_middle<B: MultiTenantStore>(backend: B) {
    let (store, s) = ten_events(&backend).await;
    assert_eq!(read(&store, &s, ReadStreamOptions::backward().from_version(4)).await, [4, 3, 2, 1]);
    assert!(read(&store, &s, ReadStreamOptions::backward().from_version(0)).await.is_empty());
}

/// Forwards past the end reads nothing; backwards from past the end reads everything.
pub async fn read_stream_past_end<B: MultiTenantStore>(backend: B) {
    let (store, s) = ten_events(&backend).await;
    assert!(read(&store, &s, ReadStreamOptions::forward().from_version(11)).await.is_empty());
    assert!(read(&store, &s, ReadStreamOptions::forward().from_version(u64::MAX)).await.is_empty());
    assert_eq!(read(&store, &s, ReadStreamOptions::backward().from_version(1_000)).await.len(), 10);
}

/// Limits cap the count in both directions; a limit of 0 reads nothing.
pub async fn read_stream_with_limit<B: MultiTenantStore>(backend: B) {
    let (store, s) = ten_events(&backend).await;
    assert_eq!(read(&store, &s, ReadStreamOptions::forward().limit(3)).await, [1, 2, 3]);
    assert_eq!(
        read(&store, &s, ReadStreamOptions::forward().from_version(9).limit(5)).await,
        [9, 10]
    );
    assert_eq!(read(&store, &s, ReadStreamOptions::backward().limit(2)).await, [10, 9]);
    assert_eq!(
        read(&store, &s, ReadStreamOptions::backward().from_version(5).limit(2)).await,
        [5, 4]
    );
    assert!(read(&store, &s, ReadStreamOptions::forward().limit(0)).await.is_empty());
}

/// A stream longer than any backend's page (2,500 events; PostgreSQL reads pages of 1,000) reads
/// whole and in order, forwards and backwards, from a version and with limits that end inside a
/// later page: a read that stopped after a full page, or lost its place between pages, fails.
pub async fn read_stream_longer_than_a_page<B: MultiTenantStore>(backend: B) {
    const LONG: u64 = 2_500;
    let store = scoped(&backend, "a");
    let s = stream("long-1");
    append(&store, &s, ExpectedVersion::NoStream, batch(1..LONG + 1)).await;
    let forward = collect(store.read_stream(&s, ReadStreamOptions::forward())).await;
    assert_eq!(versions(&forward), (1..=LONG).collect::<Vec<_>>());
    assert_eq!(numbers(&forward), (1..=LONG).collect::<Vec<_>>(), "each version its own event");
    assert_eq!(
        read(&store, &s, ReadStreamOptions::backward()).await,
        (1..=LONG).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        read(&store, &s, ReadStreamOptions::forward().from_version(900).limit(1_200)).await,
        (900..2_100).collect::<Vec<_>>()
    );
    assert_eq!(
        read(&store, &s, ReadStreamOptions::backward().from_version(2_100).limit(1_500)).await,
        (601..=2_100).rev().collect::<Vec<_>>()
    );
}

/// A stream that was never written reads as empty, at version 0.
pub async fn missing_stream_reads_empty_at_version_zero<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("nobody-1");
    assert!(read_stream(&store, &s).await.is_empty());
    assert!(collect(store.read_stream(&s, ReadStreamOptions::backward())).await.is_empty());
    assert_eq!(store.stream_version(&s).await.expect("stream_version"), 0);
}

/// Interleaved appends to two streams: each stream reads back only its own events.
pub async fn read_stream_returns_only_that_stream<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let (one, two) = (stream("order-1"), stream("order-2"));
    for n in 0..4 {
        append(&store, &one, ExpectedVersion::Any, batch(n * 10..n * 10 + 1)).await;
        append(&store, &two, ExpectedVersion::Any, batch(n * 10 + 5..n * 10 + 6)).await;
    }
    let first = read_stream(&store, &one).await;
    assert_eq!(numbers(&first), [0, 10, 20, 30]);
    assert_eq!(versions(&first), [1, 2, 3, 4]);
    assert!(first.iter().all(|event| event.stream_id == one));
    assert_eq!(numbers(&read_stream(&store, &two).await), [5, 15, 25, 35]);
}

/// `replay_stream` returns the same events as a forward `read_stream`, from any version, in pages.
pub async fn replay_stream_matches_read_stream<B: MultiTenantStore>(backend: B) {
    let (store, s) = ten_events(&backend).await;
    append(&store, &stream("order-2"), ExpectedVersion::NoStream, batch(0..3)).await;
    for from in [0, 1, 4, 10, 11] {
        let replayed = replay(&store, &s, from).await;
        let read: Vec<ReplayedEvent> =
            collect(store.read_stream(&s, ReadStreamOptions::forward().from_version(from)))
                .await
                .into_iter()
                .map(ReplayedEvent::from)
                .collect();
        assert_eq!(replayed.len(), read.len(), "from version {from}");
        for (replayed, read) in replayed.iter().zip(&read) {
            assert_eq!(
                (replayed.stream_version, &replayed.event_type, replayed.schema_version),
                (read.stream_version, &read.event_type, read.schema_version)
            );
            assert_eq!(
                replayed.payload.to_value().expect("JSON"),
                read.payload.to_value().expect("JSON")
            );
        }
    }
    let long = stream("long-1");
    append(&store, &long, ExpectedVersion::NoStream, batch(0..2_500)).await;
    let replayed = replay(&store, &long, 1).await;
    assert_eq!(
        replayed.iter().map(|event| event.stream_version).collect::<Vec<_>>(),
        (1..=2_500).collect::<Vec<_>>()
    );
}

async fn replay<S: EventStore>(store: &S, s: &StreamId, from: u64) -> Vec<ReplayedEvent> {
    let pages: Vec<Vec<ReplayedEvent>> =
        futures_util::TryStreamExt::try_collect(store.replay_stream(s, from))
            .await
            .expect("replay_stream");
    assert!(pages.iter().all(|page| !page.is_empty()), "replay pages are never empty");
    pages.into_iter().flatten().collect()
}
