//! Many writers at once: one winner per version, nothing lost, nothing duplicated, nothing skipped.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::fixtures::{
    append, assert_strictly_increasing_positions, collect, event_type, read_all, read_stream,
    scoped, stream, versions,
};
use crate::{
    AppendOptions, AppendResult, EventData, EventStore, ExpectedVersion, MultiTenantStore, Payload,
    Position, ReadAllOptions, RecordedEvent, StoreError,
};

const TASKS: u64 = 16;
const TASK_COUNT: usize = 16;

/// An event that records which task wrote it and its sequence number in that task.
fn tagged(task: u64, seq: u64) -> EventData {
    EventData::new(
        event_type("test.tagged"),
        Payload::from_value(&json!({ "task": task, "seq": seq })).expect("valid payload"),
    )
}

fn tag(event: &RecordedEvent) -> (u64, u64) {
    let value = event.payload.to_value().expect("payload is JSON");
    (value["task"].as_u64().expect("task"), value["seq"].as_u64().expect("seq"))
}

async fn join_all<T: Send + 'static>(mut tasks: JoinSet<T>) -> Vec<T> {
    let mut results = Vec::new();
    while let Some(result) = tasks.join_next().await {
        results.push(result.expect("a writer task panicked"));
    }
    results
}

/// 16 tasks released together, each appending with `Exact(0)`: exactly one succeeds.
pub async fn concurrent_exact_appends_to_new_stream_have_one_winner<B: MultiTenantStore>(
    backend: B,
) {
    let store = scoped(&backend, "a");
    let s = stream("contended-1");
    let barrier = Arc::new(Barrier::new(TASK_COUNT));
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            store
                .append(
                    &s,
                    ExpectedVersion::Exact(0),
                    vec![tagged(task, 0)],
                    AppendOptions::default(),
                )
                .await
        });
    }
    let results = join_all(tasks).await;
    let winners = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(winners, 1, "exactly one Exact(0) append may win, got {winners}: {results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(
                matches!(error, StoreError::VersionConflict { actual: 1, .. }),
                "losers must get VersionConflict at version 1, got {error:?}"
            );
        }
    }
    assert_eq!(read_stream(&store, &s).await.len(), 1);
}

/// 16 tasks each append 5 events one at a time with `Exact(current)`, retrying on conflict:
/// each version has exactly one winner and every event is stored exactly once.
pub async fn concurrent_exact_appends_one_winner_per_version<B: MultiTenantStore>(backend: B) {
    const PER_TASK: u64 = 5;
    let store = scoped(&backend, "a");
    let s = stream("contended-1");
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let (store, s) = (store.clone(), s.clone());
        tasks.spawn(async move {
            let mut won = Vec::new();
            let mut conflicts = 0u64;
            for seq in 0..PER_TASK {
                loop {
                    let current = store.stream_version(&s).await.expect("stream_version");
                    match store
                        .append(
                            &s,
                            ExpectedVersion::Exact(current),
                            vec![tagged(task, seq)],
                            AppendOptions::default(),
                        )
                        .await
                    {
                        Ok(result) => {
                            assert_eq!(result.first_version, current + 1);
                            won.push(result.first_version);
                            break;
                        }
                        Err(StoreError::VersionConflict { actual, .. }) => {
                            assert!(
                                actual > current,
                                "a conflict must report a newer version than the one read"
                            );
                            conflicts += 1;
                            assert!(conflicts < 10_000, "task {task} made no progress");
                            tokio::task::yield_now().await;
                        }
                        Err(error) => panic!("unexpected append error: {error}"),
                    }
                }
            }
            won
        });
    }
    let mut won: Vec<u64> = join_all(tasks).await.into_iter().flatten().collect();
    won.sort_unstable();
    let total = TASKS * PER_TASK;
    assert_eq!(won, (1..=total).collect::<Vec<_>>(), "each version must have exactly one winner");
    let events = read_stream(&store, &s).await;
    assert_eq!(versions(&events), (1..=total).collect::<Vec<_>>());
    let tags: HashSet<(u64, u64)> = events.iter().map(tag).collect();
    assert_eq!(tags.len() as u64, total, "every event must be stored exactly once");
}

/// 16 tasks append batches with `Any` to one stream: nothing lost, versions contiguous, each
/// task's events in its own order, positions increasing in `read_all`.
pub async fn concurrent_any_appends_lose_nothing<B: MultiTenantStore>(backend: B) {
    const APPENDS: u64 = 10;
    let store = scoped(&backend, "a");
    let s = stream("busy-1");
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let (store, s) = (store.clone(), s.clone());
        tasks.spawn(async move {
            let mut seq = 0;
            for append_no in 0..APPENDS {
                let size = 1 + (task + append_no) % 3;
                let events = (0..size).map(|i| tagged(task, seq + i)).collect();
                seq += size;
                let result = store
                    .append(&s, ExpectedVersion::Any, events, AppendOptions::default())
                    .await
                    .expect("append Any");
                assert_eq!(result.last_version - result.first_version + 1, size);
            }
            seq
        });
    }
    let total: u64 = join_all(tasks).await.into_iter().sum();
    let events = read_stream(&store, &s).await;
    assert_eq!(versions(&events), (1..=total).collect::<Vec<_>>());
    let mut next_seq = BTreeMap::new();
    for event in &events {
        let (task, seq) = tag(event);
        let expected = next_seq.entry(task).or_insert(0);
        assert_eq!(seq, *expected, "task {task}'s events must be stored once each, in order");
        *expected += 1;
    }
    let all = read_all(&store).await;
    assert_eq!(all.len() as u64, total);
    assert_strictly_increasing_positions(&all);
}

/// `Any` never conflicts, even beside writers that expect versions: on one stream, 8 tasks append
/// with `Any` while 8 others read the stream's version and append `Exact` at it (deciding again on
/// a conflict, as the command pipeline does), half of them with an idempotency key. A backend
/// whose `Any` appends lose to the `Exact` ones a few times in a row and give up with a
/// `VersionConflict` fails this; every event must land once, versions contiguous.
pub async fn any_appends_beside_exact_writers_never_conflict<B: MultiTenantStore>(backend: B) {
    const APPENDS: u64 = 20;
    const HALF: u64 = TASKS / 2;
    let store = scoped(&backend, "a");
    let s = stream("mixed-1");
    let barrier = Arc::new(Barrier::new(TASK_COUNT));
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            for seq in 0..APPENDS {
                let events = vec![tagged(task, seq)];
                if task < HALF {
                    let result = store
                        .append(&s, ExpectedVersion::Any, events, AppendOptions::default())
                        .await;
                    if let Err(error) = result {
                        panic!("an Any append must never conflict: {error}");
                    }
                    continue;
                }
                let options = || match task % 2 {
                    0 => AppendOptions::default(),
                    _ => AppendOptions::default().idempotency_key(
                        crate::IdempotencyKey::new(format!("mixed-{task}-{seq}")).expect("key"),
                    ),
                };
                loop {
                    let version = store.stream_version(&s).await.expect("version");
                    match store
                        .append(&s, ExpectedVersion::Exact(version), events.clone(), options())
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::VersionConflict { .. }) => {}
                        Err(error) => panic!("an Exact append failed: {error}"),
                    }
                }
            }
        });
    }
    join_all(tasks).await;
    let events = read_stream(&store, &s).await;
    let total = TASKS * APPENDS;
    assert_eq!(versions(&events), (1..=total).collect::<Vec<_>>());
    let tags: HashSet<(u64, u64)> = events.iter().map(tag).collect();
    assert_eq!(tags.len() as u64, total, "every event must be stored exactly once");
}

/// 16 tasks each append to their own stream: `read_all` returns every event exactly once, at the
/// positions the appends reported.
pub async fn concurrent_appends_to_many_streams_are_all_read_once<B: MultiTenantStore>(backend: B) {
    const APPENDS: u64 = 10;
    let store = scoped(&backend, "a");
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            let s = stream(&format!("account-{task}"));
            let mut results = Vec::new();
            for seq in 0..APPENDS {
                let expected =
                    if seq == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(seq) };
                results.push(append(&store, &s, expected, vec![tagged(task, seq)]).await);
            }
            results
        });
    }
    let results: Vec<AppendResult> = join_all(tasks).await.into_iter().flatten().collect();
    let all = read_all(&store).await;
    assert_eq!(all.len() as u64, TASKS * APPENDS);
    assert_strictly_increasing_positions(&all);
    let read_positions: HashSet<Position> = all.iter().map(|event| event.position).collect();
    for result in results {
        assert!(
            read_positions.contains(&result.first_position),
            "position {} reported by append is not in read_all",
            result.first_position
        );
    }
    let tags: HashSet<(u64, u64)> = all.iter().map(tag).collect();
    assert_eq!(tags.len() as u64, TASKS * APPENDS);
}

/// A reader that follows `read_all` (reading after its last position, waiting for new events in
/// between) while 8 writers append must see every event exactly once, in increasing position order.
pub async fn tailing_reader_sees_every_event_once_in_order<B: MultiTenantStore>(backend: B) {
    const WRITERS: u64 = 8;
    const APPENDS: u64 = 25;
    let store = scoped(&backend, "a");
    let total = WRITERS * APPENDS * 2;

    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut checkpoint = Position::BEGINNING;
            let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
            while (seen.len() as u64) < total {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "reader saw {} of {total} events in 60 s",
                    seen.len()
                );
                let page =
                    collect(store.read_all(ReadAllOptions::after(checkpoint).page_size(7))).await;
                for event in page {
                    assert!(
                        event.position > checkpoint,
                        "read_all after {checkpoint} returned {}",
                        event.position
                    );
                    checkpoint = event.position;
                    seen.push(event);
                }
                store
                    .wait_for_events(checkpoint, Duration::from_millis(200))
                    .await
                    .expect("wait_for_events");
            }
            seen
        })
    };

    let mut writers = JoinSet::new();
    for task in 0..WRITERS {
        let store = store.clone();
        writers.spawn(async move {
            for seq in 0..APPENDS {
                let s = stream(&format!("account-{}", (task + seq) % 5));
                let events = vec![tagged(task, seq * 2), tagged(task, seq * 2 + 1)];
                store
                    .append(&s, ExpectedVersion::Any, events, AppendOptions::default())
                    .await
                    .expect("append");
                if seq % 4 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    join_all(writers).await;
    let seen = reader.await.expect("reader panicked");
    assert_eq!(seen.len() as u64, total, "the reader must see every event exactly once");
    assert_strictly_increasing_positions(&seen);
    let tags: HashSet<(u64, u64)> = seen.iter().map(tag).collect();
    assert_eq!(tags.len() as u64, total, "no event may be seen twice");
    assert_eq!(seen, read_all(&store).await, "the tailing reader must see what a full read sees");
}
