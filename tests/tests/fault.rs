//! Fault tests against a PostgreSQL server of the test's own ([`PrivateCluster`]), crashed and
//! restarted while work is under way (issue 11): appends, a projection mid-batch. Everything
//! converges; nothing is half-written, lost or duplicated; nothing needs a restart of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::projection::{CheckpointStore, ProjectionRunner, RunnerOptions, VolatileCheckpoints};
use es_core::{
    AppendOptions, Event, EventStore, ExpectedVersion, IdempotencyKey, MultiTenantStore, Position,
    ProjectionError, ReadAllOptions, ReadStreamOptions, RecordedEvent, StreamId, TenantId,
    projection,
};
use es_postgres::PgTenantStore;
use es_postgres::testing::PrivateCluster;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "fault.written")]
pub struct Written {
    pub writer: u64,
    pub batch: u64,
    pub index: u64,
}

/// When the server process started: changes with every crash and restart.
async fn started_at(cluster: &PrivateCluster) -> String {
    let (started, _) = until_ok("pg_postmaster_start_time", || async {
        let pool = sqlx::PgPool::connect(&cluster.url()).await?;
        let started: String =
            sqlx::query_scalar("SELECT pg_postmaster_start_time()::text").fetch_one(&pool).await?;
        pool.close().await;
        Ok::<_, sqlx::Error>(started)
    })
    .await;
    started
}

async fn store_on(cluster: &PrivateCluster) -> PgTenantStore {
    cluster.store("es").await.tenant(TenantId::new("fault").unwrap())
}

/// Crashes and restarts the server `times` times, `every` apart (on a blocking thread: `pg_ctl`
/// waits). Returns the faults injected.
fn inject_restarts(
    cluster: Arc<PrivateCluster>,
    times: u32,
    every: Duration,
) -> tokio::task::JoinHandle<u32> {
    tokio::task::spawn_blocking(move || {
        for _ in 0..times {
            std::thread::sleep(every);
            cluster.restart();
        }
        times
    })
}

/// Retries an operation through an outage: with an idempotency key every retry is safe.
async fn until_ok<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> (T, u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut failures = 0;
    loop {
        match attempt().await {
            Ok(value) => return (value, failures),
            Err(error) => {
                failures += 1;
                assert!(tokio::time::Instant::now() < deadline, "{what}: still failing: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// 8 writers append keyed batches of 3 while the server crashes 3 times (they keep writing until
/// the last crash is over, so every crash lands mid-workload): every batch lands once, whole, in
/// order; the global log holds each event once in increasing positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_crashes_during_keyed_appends_lose_and_duplicate_nothing() {
    const WRITERS: u64 = 8;
    let cluster = Arc::new(PrivateCluster::start());
    let store = store_on(&cluster).await;
    let first_start = started_at(&cluster).await;
    let faults = inject_restarts(cluster.clone(), 3, Duration::from_millis(400));
    let crashing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let (store, crashing) = (store.clone(), crashing.clone());
        writers.spawn(async move {
            let stream = StreamId::new(format!("writer-{writer}")).unwrap();
            let mut failures = 0;
            let mut batch = 0;
            while crashing.load(std::sync::atomic::Ordering::Acquire) || batch < 10 {
                let key = IdempotencyKey::new(format!("w{writer}-b{batch}")).unwrap();
                let events: Vec<_> = (0..3)
                    .map(|index| Written { writer, batch, index }.to_event_data().unwrap())
                    .collect();
                let (result, failed) = until_ok("append", || {
                    store.append(
                        &stream,
                        ExpectedVersion::Exact(batch * 3),
                        events.clone(),
                        AppendOptions::default().idempotency_key(key.clone()),
                    )
                })
                .await;
                failures += failed;
                assert_eq!(
                    (result.first_version, result.last_version),
                    (batch * 3 + 1, batch * 3 + 3)
                );
                batch += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (writer, batch, failures)
        });
    }
    let faults = faults.await.unwrap();
    crashing.store(false, std::sync::atomic::Ordering::Release);
    let mut failed_calls = 0;
    let mut batches = BTreeMap::new();
    while let Some(done) = writers.join_next().await {
        let (writer, written, failed) = done.unwrap();
        failed_calls += failed;
        batches.insert(writer, written);
    }
    let total: u64 = batches.values().sum();
    eprintln!(
        "fault: {faults} server crashes during {total} keyed appends; {failed_calls} append calls failed and were retried by the caller (the rest rode out the outage in the store's own retries)"
    );
    // The writers ran from before the first crash until after the last one.
    assert_ne!(started_at(&cluster).await, first_start, "the server must really have restarted");

    for (writer, written) in batches {
        let stream = StreamId::new(format!("writer-{writer}")).unwrap();
        let (events, _) = until_ok("read", || {
            store.read_stream(&stream, ReadStreamOptions::forward()).try_collect::<Vec<_>>()
        })
        .await;
        let seen: Vec<(u64, u64, u64)> = events
            .iter()
            .map(|event| {
                let written = Written::decode(event).unwrap();
                (event.stream_version, written.batch, written.index)
            })
            .collect();
        let expected: Vec<(u64, u64, u64)> =
            (0..written * 3).map(|n| (n + 1, n / 3, n % 3)).collect();
        assert_eq!(seen, expected, "writer {writer}: every batch once, whole and in order");
    }
    let (all, _) = until_ok("read_all", || {
        store.read_all(ReadAllOptions::from_beginning()).try_collect::<Vec<_>>()
    })
    .await;
    assert_eq!(all.len() as u64, total * 3);
    assert!(all.windows(2).all(|pair| pair[0].position < pair[1].position));
    let ids: HashSet<_> = all.iter().map(|event| event.event_id).collect();
    assert_eq!(ids.len(), all.len(), "no event twice");
}

/// A read model keyed by position (a redelivered event changes nothing).
/// What a row holds: writer, batch, index.
type Row = (u64, u64, u64);

#[derive(Clone, Default)]
pub struct Rows {
    rows: Arc<Mutex<BTreeMap<u64, Row>>>,
}

#[projection(name = "rows")]
impl Rows {
    async fn on_written(
        &mut self,
        event: &Written,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        // Slow enough (3,000 events: seconds) that both crashes land mid-catch-up.
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.rows
            .lock()
            .unwrap()
            .insert(meta.position.value(), (event.writer, event.batch, event.index));
        Ok(())
    }
}

/// A projection followed live while the server crashes twice mid-batch: its runner keeps going
/// (no restart of its own), its stored checkpoint reaches the head, and its model equals a
/// rebuild from zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_converges_after_crashes_mid_batch() {
    let cluster = Arc::new(PrivateCluster::start());
    let store = store_on(&cluster).await;
    for batch in 0..20 {
        let events: Vec<_> = (0..150)
            .map(|index| Written { writer: 0, batch, index }.to_event_data().unwrap())
            .collect();
        store
            .append(
                &StreamId::new("source").unwrap(),
                ExpectedVersion::Any,
                events,
                AppendOptions::default(),
            )
            .await
            .unwrap();
    }
    let first_start = started_at(&cluster).await;
    let model = Rows::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let passes = Arc::new(Mutex::new((0u32, 0u32)));
    let follower = {
        let (store, model, passes) = (store.clone(), model.clone(), passes.clone());
        tokio::spawn(async move {
            let options =
                RunnerOptions::default().batch_size(100).retries(3, Duration::from_millis(20));
            let mut runner = ProjectionRunner::new(model, store).with_options(options);
            runner
                .follow(
                    async {
                        let _ = stopped.await;
                    },
                    |pass| {
                        let mut passes = passes.lock().unwrap();
                        if pass.is_ok() { passes.0 += 1 } else { passes.1 += 1 }
                    },
                )
                .await;
        })
    };
    let faults = inject_restarts(cluster.clone(), 2, Duration::from_millis(300)).await.unwrap();
    // The server may still be starting after the last crash: ask until it answers (reading
    // `None` of a failed query would compare two failures, not two positions).
    let name = es_core::ProjectionName::new("rows").unwrap();
    let (mid_way, _) = until_ok("load_checkpoint", || store.load_checkpoint(&name)).await;
    let (head, _) = until_ok("head_position", || store.head_position()).await;
    assert!(
        mid_way < Some(head),
        "the crashes must land before the projection caught up ({mid_way:?} of {head:?})"
    );
    // Converged: the stored checkpoint reaches the head (the runner resumed by itself).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let head = store.head_position().await.ok();
        let checkpoint = store.load_checkpoint(&name).await.ok().flatten();
        if head.is_some() && checkpoint == head && checkpoint > Some(Position::BEGINNING) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the projection did not converge");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    follower.await.unwrap();
    let (ok, failed) = *passes.lock().unwrap();
    eprintln!(
        "fault: {faults} server crashes during a projection; {ok} passes, {failed} failed and resumed"
    );
    assert_ne!(started_at(&cluster).await, first_start, "the server must really have restarted");

    let fresh = Rows::default();
    let mut rebuild = ProjectionRunner::new(fresh.clone(), VolatileCheckpoints::new(store.clone()));
    rebuild.catch_up().await.unwrap();
    let live = model.rows.lock().unwrap().clone();
    let from_zero = fresh.rows.lock().unwrap().clone();
    assert_eq!(live.len(), 3_000);
    assert_eq!(live, from_zero, "the live model equals a rebuild from zero");
}
