//! Group commit: the whole conformance suite with it on, and what only grouping can break: each
//! append's own outcome inside a shared statement, the fallback when the database refuses a
//! batch as a whole, callers that stop waiting.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{FreshSchema, fresh_schema_with, raw_append, tenant};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore,
    ReadAllOptions, ReadStreamOptions, StoreError, StreamId, TenantId,
};
use es_postgres::{GroupCommitStats, PgTenantStore};
use futures_util::TryStreamExt;

/// A store whose appends are grouped; `batches` in flight at the most.
async fn grouped(batches: u32) -> FreshSchema {
    fresh_schema_with(|options| options.group_commit(true).group_commit_batches(batches)).await
}

async fn group_commit_schema() -> FreshSchema {
    grouped(4).await
}

es_core::conformance_tests!(group_commit_schema);
es_core::quota_tests!(group_commit_schema);

fn event(n: u64) -> EventData {
    EventData::json(EventType::new("test.grouped").unwrap(), &serde_json::json!({ "n": n }))
        .unwrap()
}

fn stream(name: &str) -> StreamId {
    StreamId::new(name).unwrap()
}

fn stats(fresh: &FreshSchema) -> GroupCommitStats {
    fresh.store.group_commit_stats().expect("group commit is on")
}

/// Waits until `condition` holds, failing the test after 10 s.
async fn until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether a session of this database waits for a lock in an insert into `events` now.
async fn someone_waits_for_a_lock(fresh: &FreshSchema) -> bool {
    waiting_sessions(fresh).await > 0
}

async fn append(
    store: &PgTenantStore,
    name: &str,
    expected: ExpectedVersion,
    events: Vec<EventData>,
) -> Result<es_core::AppendResult, StoreError> {
    store.append(&stream(name), expected, events, AppendOptions::default()).await
}

/// Holds the store's only batch slot: an append to `blocker` that waits for the uncommitted
/// version 1 that `holder` wrote. Returns once it waits.
async fn hold_the_slot(
    fresh: &FreshSchema,
    holder: &mut sqlx::PgConnection,
) -> tokio::task::JoinHandle<Result<es_core::AppendResult, StoreError>> {
    raw_append(holder, TenantId::default().as_str(), "blocker", 0).await;
    let store = fresh.default_tenant();
    let blocked = tokio::spawn(async move {
        append(&store, "blocker", ExpectedVersion::NoStream, vec![event(0)]).await
    });
    until("the blocker waits for its lock", async || someone_waits_for_a_lock(fresh).await).await;
    blocked
}

#[tokio::test]
async fn concurrent_appends_share_statements_and_keep_every_stream_in_order() {
    let fresh = grouped(2).await;
    let store = fresh.default_tenant();
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..48u64 {
        let store = store.clone();
        writers.spawn(async move {
            let name = format!("w-{writer}");
            let mut version = 0;
            for step in 0..10u64 {
                // 1 to 3 events, and once one append larger than a batch holds.
                let count = if writer == 0 && step == 5 { 1_200 } else { 1 + (writer + step) % 3 };
                let events = (0..count).map(|n| event(step * 10_000 + n)).collect();
                let written =
                    append(&store, &name, ExpectedVersion::Exact(version), events).await.unwrap();
                assert_eq!(written.first_version, version + 1);
                assert_eq!(written.last_version, version + count);
                // Positions rise with versions; another statement's may fall between them.
                assert!(
                    written.last_position.value() - written.first_position.value() + 1 >= count
                );
                version += count;
            }
            (name, version)
        });
    }
    let mut expected = BTreeMap::new();
    while let Some(done) = writers.join_next().await {
        let (name, version) = done.unwrap();
        expected.insert(name, version);
    }
    let seen = stats(&fresh);
    assert_eq!(seen.appends, 480);
    assert!(seen.batches < seen.appends, "no statement carried two appends: {seen:?}");
    assert_eq!(seen.queued, 0);

    // Every stream whole and in order, by version and by position; the log holds each event once.
    let all: Vec<_> = store.read_all(ReadAllOptions::default()).try_collect().await.unwrap();
    let mut last: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for recorded in &all {
        let entry = last.entry(recorded.stream_id.to_string()).or_insert((0, 0));
        assert_eq!(
            recorded.stream_version,
            entry.0 + 1,
            "a gap or a repeat in {}",
            recorded.stream_id
        );
        assert!(recorded.position.value() > entry.1);
        *entry = (recorded.stream_version, recorded.position.value());
    }
    let heads: BTreeMap<String, u64> =
        last.into_iter().map(|(name, (version, _))| (name, version)).collect();
    assert_eq!(heads, expected);
    assert_eq!(all.len() as u64, expected.values().sum::<u64>());
}

#[tokio::test]
async fn a_stale_expectation_fails_alone_inside_a_batch() {
    let fresh = grouped(1).await;
    let store = fresh.default_tenant();
    for name in ["s", "t", "u"] {
        append(&store, name, ExpectedVersion::NoStream, vec![event(1), event(2)]).await.unwrap();
    }
    let before = stats(&fresh);
    let mut holder = fresh.store.pool().begin().await.unwrap();
    let blocked = hold_the_slot(&fresh, &mut holder).await;

    let queue = |name: &'static str, expected: ExpectedVersion, count: u64| {
        let store = store.clone();
        tokio::spawn(async move {
            append(&store, name, expected, (0..count).map(event).collect()).await
        })
    };
    let fresh_stream = queue("fresh", ExpectedVersion::NoStream, 1);
    let stale = queue("s", ExpectedVersion::Exact(1), 1);
    let after_two = queue("t", ExpectedVersion::Exact(2), 2);
    let ahead = queue("u", ExpectedVersion::Exact(5), 1);
    until("four appends queue", async || stats(&fresh).queued == 4).await;
    holder.rollback().await.unwrap();
    blocked.await.unwrap().unwrap();

    let written = fresh_stream.await.unwrap().unwrap();
    assert_eq!((written.first_version, written.last_version), (1, 1));
    let written = after_two.await.unwrap().unwrap();
    assert_eq!((written.first_version, written.last_version), (3, 4));
    for (refused, expected) in [
        (stale.await.unwrap(), ExpectedVersion::Exact(1)),
        (ahead.await.unwrap(), ExpectedVersion::Exact(5)),
    ] {
        match refused {
            Err(StoreError::VersionConflict { actual: 2, expected: seen, .. }) => {
                assert_eq!(seen, expected);
            }
            other => panic!("expected a version conflict at 2, got {other:?}"),
        }
    }
    // The blocker alone, then the four in one statement.
    let after = stats(&fresh);
    assert_eq!((after.batches - before.batches, after.appends - before.appends), (2, 5));
    assert_eq!(after.refused_batches, 0);
    for (name, version) in [("s", 2), ("t", 4), ("u", 2), ("fresh", 1)] {
        let events: Vec<_> = store
            .read_stream(&stream(name), ReadStreamOptions::default())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(events.len() as u64, version, "stream {name}");
    }
}

#[tokio::test]
async fn a_batch_refused_as_a_whole_is_appended_one_by_one() {
    let fresh = grouped(1).await;
    let store = fresh.default_tenant();
    append(&store, "raced", ExpectedVersion::NoStream, vec![event(1), event(2)]).await.unwrap();
    let mut holder = fresh.store.pool().begin().await.unwrap();
    let blocked = hold_the_slot(&fresh, &mut holder).await;

    let queue = |name: &'static str, expected: ExpectedVersion| {
        let store = store.clone();
        tokio::spawn(async move { append(&store, name, expected, vec![event(9)]).await })
    };
    let innocent = queue("innocent", ExpectedVersion::NoStream);
    let raced = queue("raced", ExpectedVersion::Exact(2));
    until("two appends queue", async || stats(&fresh).queued == 2).await;

    // Another writer takes version 3 of `raced` and has not committed when the batch begins:
    // the batch's insert of version 3 waits for it, and fails the unique key once it commits.
    let mut other_writer = fresh.store.pool().begin().await.unwrap();
    raw_append(&mut other_writer, TenantId::default().as_str(), "raced", 3).await;
    holder.rollback().await.unwrap();
    blocked.await.unwrap().unwrap();
    until("the batch waits for the racer", async || someone_waits_for_a_lock(&fresh).await).await;
    other_writer.commit().await.unwrap();

    let written = innocent.await.unwrap().unwrap();
    assert_eq!(written.first_version, 1);
    match raced.await.unwrap() {
        Err(StoreError::VersionConflict { actual: 3, .. }) => {}
        other => panic!("expected a version conflict at 3, got {other:?}"),
    }
    assert_eq!(stats(&fresh).refused_batches, 1);
}

#[tokio::test]
async fn a_stream_in_flight_waits_for_its_batch_to_land() {
    let fresh = grouped(4).await;
    let store = fresh.default_tenant();
    let mut holder = fresh.store.pool().begin().await.unwrap();
    let blocked = hold_the_slot(&fresh, &mut holder).await;
    // Batch A: 32 appends (enough to start a batch beside the blocker), among them the first
    // append to `contested` and one to `held`, whose version 1 another transaction holds.
    let mut other_writer = fresh.store.pool().begin().await.unwrap();
    raw_append(&mut other_writer, TenantId::default().as_str(), "held", 0).await;
    let spawn = |name: String, expected: ExpectedVersion| {
        let store = store.clone();
        tokio::spawn(async move { append(&store, &name, expected, vec![event(1)]).await })
    };
    let mut batch_a = vec![
        spawn("contested".to_owned(), ExpectedVersion::NoStream),
        spawn("held".to_owned(), ExpectedVersion::NoStream),
    ];
    batch_a.extend((0..30).map(|n| spawn(format!("a-{n}"), ExpectedVersion::NoStream)));
    until("batch A waits for the held version", async || {
        stats(&fresh).queued == 0 && waiting_sessions(&fresh).await == 2
    })
    .await;
    // Batch B: 32 more, among them a second first append to `contested`. It must not race batch
    // A for the stream: it waits in the queue until A lands.
    let contested = spawn("contested".to_owned(), ExpectedVersion::NoStream);
    let batch_b: Vec<_> =
        (0..31).map(|n| spawn(format!("b-{n}"), ExpectedVersion::NoStream)).collect();
    let landed = async {
        for written in batch_b {
            written.await.unwrap().unwrap();
        }
    };
    let landed = tokio::time::timeout(Duration::from_secs(10), landed).await;
    let queued = stats(&fresh).queued;
    // Let go of the held versions first, so that a failure below fails rather than hangs.
    other_writer.rollback().await.unwrap();
    holder.rollback().await.unwrap();
    assert!(landed.is_ok(), "batch B must not wait for batch A: it writes no stream of A's");
    assert_eq!(queued, 1, "the contested append waits for batch A");
    blocked.await.unwrap().unwrap();
    for written in batch_a {
        written.await.unwrap().unwrap();
    }
    match contested.await.unwrap() {
        Err(StoreError::VersionConflict { actual: 1, .. }) => {}
        other => panic!("expected a version conflict at 1, got {other:?}"),
    }
    assert_eq!(stats(&fresh).refused_batches, 0);
}

/// How many sessions of this database wait for a lock in an insert into `events` now.
async fn waiting_sessions(fresh: &FreshSchema) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
         AND query LIKE '%INSERT INTO events%' AND datname = current_database()",
    )
    .fetch_one(fresh.store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn an_append_dropped_before_its_batch_is_not_written() {
    let fresh = grouped(1).await;
    let store = fresh.default_tenant();
    let mut holder = fresh.store.pool().begin().await.unwrap();
    let blocked = hold_the_slot(&fresh, &mut holder).await;

    let waiting = {
        let store = store.clone();
        tokio::spawn(async move {
            append(&store, "abandoned", ExpectedVersion::NoStream, vec![event(1)]).await
        })
    };
    until("the append queues", async || stats(&fresh).queued == 1).await;
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    holder.rollback().await.unwrap();
    blocked.await.unwrap().unwrap();

    // The next append starts a batch of its own: the abandoned one was dropped, not written.
    append(&store, "later", ExpectedVersion::NoStream, vec![event(2)]).await.unwrap();
    let events: Vec<_> = store
        .read_stream(&stream("abandoned"), ReadStreamOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert!(events.is_empty());
    assert_eq!(stats(&fresh).queued, 0);
}

#[tokio::test]
async fn tenants_share_a_batch_and_keep_their_own_streams() {
    let fresh = grouped(1).await;
    let (acme, globex) = (fresh.store.tenant(tenant("acme")), fresh.store.tenant(tenant("globex")));
    let mut holder = fresh.store.pool().begin().await.unwrap();
    let blocked = hold_the_slot(&fresh, &mut holder).await;
    let queue = |store: &PgTenantStore, n: u64| {
        let store = store.clone();
        tokio::spawn(async move {
            append(&store, "same-id", ExpectedVersion::NoStream, vec![event(n)]).await
        })
    };
    let (first, second) = (queue(&acme, 1), queue(&globex, 2));
    until("both appends queue", async || stats(&fresh).queued == 2).await;
    holder.rollback().await.unwrap();
    blocked.await.unwrap().unwrap();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    for (store, n) in [(&acme, 1), (&globex, 2)] {
        let events: Vec<_> = store
            .read_stream(&stream("same-id"), ReadStreamOptions::default())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].deserialize_payload::<serde_json::Value>().unwrap()["n"], n);
    }
}

#[tokio::test]
async fn without_group_commit_there_are_no_stats() {
    let fresh = common::fresh_schema().await;
    assert_eq!(fresh.store.group_commit_stats(), None);
}
