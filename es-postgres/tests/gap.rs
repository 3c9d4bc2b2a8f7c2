//! Global order under concurrency: a reader never misses an event that commits after a later one.
//!
//! PostgreSQL hands out positions when appends run and makes events visible when they commit, in
//! any order. These tests hold transactions open, roll them back and interleave many of them, and
//! check that readers of `read_all` see every committed event exactly once, in position order.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{FreshSchema, fresh_schema, fresh_schema_with, raw_append, tenant};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, Payload,
    Position, ReadAllOptions, RecordedEvent, StreamId,
};
use futures_util::TryStreamExt;
use rand::Rng;

async fn read_all<S: EventStore>(store: &S, after: Position) -> Vec<RecordedEvent> {
    store.read_all(ReadAllOptions::after(after)).try_collect().await.expect("read_all")
}

fn number(event: &RecordedEvent) -> u64 {
    event.payload.to_value().expect("JSON")["n"].as_u64().expect("n")
}

/// Appends one numbered event to `stream` through the store.
async fn append_one<S: EventStore>(store: &S, stream: &str, n: u64) -> es_core::AppendResult {
    let stream = StreamId::new(stream).unwrap();
    store
        .append(&stream, ExpectedVersion::Any, vec![numbered(n)], AppendOptions::default())
        .await
        .unwrap()
}

fn numbered(n: u64) -> EventData {
    EventData::new(
        EventType::new("test.numbered").unwrap(),
        Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
    )
}

/// An append holds position p open; a later append takes p+1 and commits. The reader must not
/// return p+1 while p may still commit; once p commits, it returns both, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_waits_for_a_held_transaction_then_sees_it() {
    let fresh = fresh_schema_with(|options| options.horizon_wait(Duration::from_millis(50))).await;
    let store = fresh.tenant(tenant("gap"));

    let mut held = fresh.store.pool().begin().await.unwrap();
    let held_position = raw_append(&mut held, "gap", "held-1", 1).await;
    let later = append_one(&store, "later-1", 2).await;
    assert!(later.first_position.value() > u64::try_from(held_position).unwrap());

    // While the first transaction is open, the later event must stay invisible to read_all.
    for _ in 0..3 {
        let seen = read_all(&store, Position::BEGINNING).await;
        assert!(
            seen.is_empty(),
            "read_all returned {:?} past an open transaction",
            seen.iter().map(|e| e.position).collect::<Vec<_>>()
        );
        assert_eq!(store.head_position().await.unwrap(), Position::BEGINNING);
    }
    let status = fresh.store.horizon_status().await.unwrap();
    assert_eq!(status.open_appends.len(), 1, "the open append must be named: {status:?}");

    // A tailing reader waits; the commit wakes it and it sees both events in position order.
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            store.wait_for_events(Position::BEGINNING, Duration::from_secs(20)).await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "the waiter must wait while the horizon is held");
    held.commit().await.unwrap();
    let woken_at = waiter.await.unwrap();
    assert_eq!(woken_at, later.last_position);
    let seen = read_all(&store, Position::BEGINNING).await;
    assert_eq!(seen.iter().map(number).collect::<Vec<_>>(), [1, 2]);
    assert!(seen[0].position < seen[1].position);
}

/// The numbers of `events`, in the order read.
fn numbers(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(number).collect()
}

/// Appends event 1 and reads it (so a horizon past it is published), then holds an append of
/// event 2 open in the returned transaction and appends event 3 after it.
async fn hold_the_middle_of_three(
    fresh: &FreshSchema,
    store: &impl EventStore,
    tenant: &str,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    append_one(store, "before-1", 1).await;
    assert_eq!(numbers(&read_all(store, Position::BEGINNING).await), [1]);
    let mut held = fresh.store.pool().begin().await.unwrap();
    raw_append(&mut held, tenant, "held-1", 2).await;
    append_one(store, "after-1", 3).await;
    held
}

/// A probe of the horizon that fails (here: `horizon_probe()` renamed away for one read) fails
/// that read, and the next read probes again: one failed probe does not freeze the horizon where
/// it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_horizon_probe_does_not_freeze_the_horizon() {
    let fresh = fresh_schema().await;
    let store = fresh.tenant(tenant("probe"));
    append_one(&store, "before-1", 1).await;
    assert_eq!(numbers(&read_all(&store, Position::BEGINNING).await), [1]);
    let rename = |from: &str, to: &str| {
        format!("ALTER FUNCTION \"{}\".{from}() RENAME TO {to}", fresh.schema())
    };
    let pool = fresh.store.pool();
    sqlx::query(sqlx::AssertSqlSafe(rename("horizon_probe", "horizon_probe_away")))
        .execute(pool)
        .await
        .unwrap();
    append_one(&store, "after-1", 2).await;
    let failed: Result<Vec<RecordedEvent>, _> =
        store.read_all(ReadAllOptions::after(Position::BEGINNING)).try_collect().await;
    sqlx::query(sqlx::AssertSqlSafe(rename("horizon_probe_away", "horizon_probe")))
        .execute(pool)
        .await
        .unwrap();
    assert!(failed.is_err(), "a read whose probe failed is an error: {failed:?}");
    assert_eq!(
        numbers(&read_all(&store, Position::BEGINNING).await),
        [1, 2],
        "the next read probes again and sees the event appended since"
    );
}

/// While an append is held open, readers still get every event below it: the horizon stays where
/// the last probe left it (a probe that times out falls back to it, never to nothing), and moves
/// on once the append ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_transaction_keeps_earlier_events_readable() {
    let fresh = fresh_schema_with(|options| options.horizon_wait(Duration::from_millis(50))).await;
    let store = fresh.tenant(tenant("held"));
    let held = hold_the_middle_of_three(&fresh, &store, "held").await;
    for _ in 0..3 {
        let seen = numbers(&read_all(&store, Position::BEGINNING).await);
        assert_eq!(seen, [1], "while position 2 is held: the event below it, nothing past it");
    }
    held.commit().await.unwrap();
    assert_eq!(numbers(&read_all(&store, Position::BEGINNING).await), [1, 2, 3]);
}

/// A reader waits up to `horizon_wait` for an append in flight to end, then returns its events
/// with the rest: it does not settle at once for the horizon it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_waits_within_horizon_wait_for_an_append_in_flight() {
    let fresh = fresh_schema_with(|options| options.horizon_wait(Duration::from_secs(20))).await;
    let store = fresh.tenant(tenant("waits"));
    let held = hold_the_middle_of_three(&fresh, &store, "waits").await;
    let committer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.commit().await.unwrap();
    });
    // Started before the commit: it gets all three only by waiting for the held append.
    let seen = numbers(&read_all(&store, Position::BEGINNING).await);
    committer.await.unwrap();
    assert_eq!(seen, [1, 2, 3], "the read must wait for the append in flight");
}

/// A rolled-back append leaves a hole in the positions; the reader must go past it, not stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_passes_a_rolled_back_transaction() {
    let fresh = fresh_schema_with(|options| options.horizon_wait(Duration::from_millis(50))).await;
    let store = fresh.tenant(tenant("gap"));

    let mut doomed = fresh.store.pool().begin().await.unwrap();
    raw_append(&mut doomed, "gap", "doomed-1", 1).await;
    let later = append_one(&store, "later-1", 2).await;
    assert!(read_all(&store, Position::BEGINNING).await.is_empty());

    doomed.rollback().await.unwrap();
    let started = std::time::Instant::now();
    let head = store.wait_for_events(Position::BEGINNING, Duration::from_secs(20)).await.unwrap();
    assert_eq!(head, later.last_position);
    assert!(started.elapsed() < Duration::from_secs(5), "the reader stalled on a dead position");
    assert_eq!(
        read_all(&store, Position::BEGINNING).await.iter().map(number).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(store.stream_version(&StreamId::new("doomed-1").unwrap()).await.unwrap(), 0);
}

/// A long-open transaction that does not append does not hold readers back: only append
/// transactions count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrelated_open_transactions_do_not_hold_readers_back() {
    let fresh = fresh_schema().await;
    let store = fresh.tenant(tenant("gap"));
    let mut unrelated = fresh.store.pool().begin().await.unwrap();
    sqlx::query("CREATE TEMP TABLE scratch (x int)").execute(&mut *unrelated).await.unwrap();
    sqlx::query("INSERT INTO scratch VALUES (1)").execute(&mut *unrelated).await.unwrap();
    let written = append_one(&store, "s-1", 1).await;
    assert_eq!(store.head_position().await.unwrap(), written.last_position);
    assert_eq!(read_all(&store, Position::BEGINNING).await.len(), 1);
    unrelated.rollback().await.unwrap();
}

/// 8 writers append, half in explicit transactions with random delays inside them (1 in 8 rolled
/// back), half through the store's single-statement path, while a reader tails `read_all`: it must see every committed event exactly once, in position
/// order, and nothing that rolled back. Rounds: `ES_GAP_STRESS_ROUNDS` (default 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_eight_writers_with_delays_and_a_tailing_reader() {
    let rounds: u64 = match std::env::var("ES_GAP_STRESS_ROUNDS") {
        Err(_) => 3,
        Ok(text) => text.parse().ok().filter(|rounds| *rounds > 0).unwrap_or_else(|| {
            panic!("ES_GAP_STRESS_ROUNDS must be a number of rounds of at least 1, not {text:?}")
        }),
    };
    let fresh = fresh_schema_with(|options| {
        options.max_connections(16).poll_interval(Duration::from_millis(20))
    })
    .await;
    for round in 0..rounds {
        let tenant_name = format!("stress-{round}");
        let store = fresh.tenant(tenant(&tenant_name));
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);

        let reader = tokio::spawn(tail(store.clone(), done_rx));

        let mut writers = tokio::task::JoinSet::new();
        for writer in 0..WRITERS {
            let (pool, tenant_name, store) =
                (fresh.store.pool().clone(), tenant_name.clone(), store.clone());
            writers.spawn(write(pool, tenant_name, store, writer));
        }
        let mut committed = BTreeSet::new();
        while let Some(result) = writers.join_next().await {
            committed.extend(result.unwrap());
        }
        done_tx.send(true).unwrap();
        let seen = reader.await.unwrap();

        let numbers: Vec<u64> = seen.iter().map(number).collect();
        let unique: BTreeSet<u64> = numbers.iter().copied().collect();
        assert_eq!(unique.len(), numbers.len(), "round {round}: an event was seen twice");
        assert_eq!(
            unique, committed,
            "round {round}: the reader must see exactly the committed events"
        );
        assert!(
            seen.windows(2).all(|pair| pair[0].position < pair[1].position),
            "round {round}: positions out of order"
        );
        assert_eq!(
            seen,
            read_all(&store, Position::BEGINNING).await,
            "round {round}: tailing and full reads differ"
        );
    }
}

const WRITERS: u64 = 8;
const APPENDS: u64 = 30;

/// Follows `read_all` from the beginning until told the writers are done, then checks nothing is left.
async fn tail(
    store: es_postgres::PgTenantStore,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> Vec<RecordedEvent> {
    let mut seen: Vec<RecordedEvent> = Vec::new();
    let mut checkpoint = Position::BEGINNING;
    loop {
        let finished = *done.borrow_and_update();
        let page: Vec<RecordedEvent> = store
            .read_all(ReadAllOptions::after(checkpoint).page_size(17))
            .try_collect()
            .await
            .unwrap();
        for event in page {
            assert!(
                event.position > checkpoint,
                "position {} after checkpoint {checkpoint}",
                event.position
            );
            checkpoint = event.position;
            seen.push(event);
        }
        if finished {
            // One last read after every writer finished must find nothing more.
            let rest: Vec<RecordedEvent> =
                store.read_all(ReadAllOptions::after(checkpoint)).try_collect().await.unwrap();
            assert!(rest.is_empty(), "the tailing reader missed {} events", rest.len());
            return seen;
        }
        let _ = tokio::time::timeout(Duration::from_millis(30), done.changed()).await;
        store.wait_for_events(checkpoint, Duration::from_millis(30)).await.unwrap();
    }
}

/// One writer of the stress test; returns the numbers of the events it committed.
async fn write(
    pool: sqlx::PgPool,
    tenant_name: String,
    store: es_postgres::PgTenantStore,
    writer: u64,
) -> Vec<u64> {
    let mut committed = Vec::new();
    let mut fast_version = 0;
    for i in 0..APPENDS {
        let n = writer * 1_000 + i;
        let (delay, roll_back) = {
            let mut rng = rand::rng();
            (Duration::from_millis(rng.random_range(0..15)), rng.random_ratio(1, 8))
        };
        if writer.is_multiple_of(2) {
            // Even writers: the function path, in a transaction held open a while.
            let mut tx = pool.begin().await.unwrap();
            raw_append(&mut tx, &tenant_name, &format!("account-{}", n % 5), n).await;
            tokio::time::sleep(delay).await;
            if roll_back {
                tx.rollback().await.unwrap();
            } else {
                tx.commit().await.unwrap();
                committed.push(n);
            }
        } else {
            // Odd writers: the store's single-statement fast path on their own streams.
            let stream = StreamId::new(format!("fast-{writer}")).unwrap();
            store
                .append(
                    &stream,
                    ExpectedVersion::Exact(fast_version),
                    vec![numbered(n)],
                    AppendOptions::default(),
                )
                .await
                .unwrap();
            fast_version += 1;
            committed.push(n);
            tokio::time::sleep(delay).await;
        }
    }
    committed
}
