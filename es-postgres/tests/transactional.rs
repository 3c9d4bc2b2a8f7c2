//! Transactional projections: the read model and the checkpoint commit together; retries,
//! parking, live mode and the lock work as in the projection runner.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]

mod common;

use std::time::Duration;

use common::{FreshSchema, fresh_schema, tenant};
use es_core::projection::{BatchFailure, DeadLetterStore, OnFailure, RunnerError, RunnerOptions};
use es_core::{
    AppendOptions, Event, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore,
    Payload, ProjectionError, RecordedEvent, StreamId, projection,
};
use es_postgres::transactional::{Through, TransactionalProjection, TransactionalRunner};
use sqlx::PgConnection;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(name = "account.deposited")]
struct Deposited {
    amount: i64,
}

/// Balances per account, written through the batch's transaction; refuses one amount (after
/// writing it, so a rollback must undo the write), or fails the first `flaky` attempts.
#[derive(Default)]
struct Balances {
    fail_on: Option<i64>,
    flaky: u32,
}

#[projection(name = "balances")]
impl Balances {
    async fn on_deposited(
        &mut self,
        tx: &mut PgConnection,
        event: &Deposited,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        add_deposit(tx, UPSERT_V1, event, meta).await?;
        if self.fail_on == Some(event.amount) {
            return Err(ProjectionError::new(format!("refusing amount {}", event.amount)));
        }
        if self.flaky > 0 {
            self.flaky -= 1;
            return Err(ProjectionError::new("the read model's database hiccupped"));
        }
        Ok(())
    }
}

const UPSERT_V1: &str = "INSERT INTO balances (account, cents, deposits) VALUES ($1, $2, 1) ON CONFLICT (account) DO UPDATE SET cents = balances.cents + EXCLUDED.cents, deposits = balances.deposits + 1";
const UPSERT_V2: &str = "INSERT INTO balances_v2 (account, cents, deposits) VALUES ($1, $2, 1) ON CONFLICT (account) DO UPDATE SET cents = balances_v2.cents + EXCLUDED.cents, deposits = balances_v2.deposits + 1";

/// Adds a deposit to an account's row, in the batch's transaction.
async fn add_deposit(
    tx: &mut PgConnection,
    upsert: &'static str,
    event: &Deposited,
    meta: &RecordedEvent,
) -> Result<(), ProjectionError> {
    sqlx::query(upsert)
        .bind(meta.stream_id.as_str())
        .bind(event.amount)
        .execute(tx)
        .await
        .map(drop)
        .map_err(|error| ProjectionError::with_source("upsert failed", error))
}

/// Fast retries, small batches.
fn options(batch: usize) -> RunnerOptions {
    RunnerOptions::default().batch_size(batch).retries(3, Duration::from_millis(1))
}

async fn setup() -> (FreshSchema, es_postgres::PgTenantStore) {
    let fresh = fresh_schema().await;
    sqlx::query("CREATE TABLE balances (account text PRIMARY KEY, cents bigint NOT NULL, deposits integer NOT NULL)")
        .execute(fresh.store.pool())
        .await
        .unwrap();
    let store = fresh.tenant(tenant("tx"));
    for n in 1..=12i64 {
        let stream = StreamId::new(format!("account-{}", n % 3)).unwrap();
        let deposited = EventData::new(
            EventType::new("account.deposited").unwrap(),
            Payload::from_value(&serde_json::json!({ "amount": n })).unwrap(),
        );
        let noted = EventData::new(
            EventType::new("account.noted").unwrap(),
            Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
        );
        store
            .append(&stream, ExpectedVersion::Any, vec![deposited, noted], AppendOptions::default())
            .await
            .unwrap();
    }
    (fresh, store)
}

async fn balances(fresh: &FreshSchema) -> (i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(sum(cents), 0)::bigint, coalesce(sum(deposits), 0)::bigint FROM balances",
    )
    .fetch_one(fresh.store.pool())
    .await
    .unwrap()
}

async fn checkpoint(fresh: &FreshSchema) -> Option<i64> {
    sqlx::query_scalar("SELECT position FROM checkpoints WHERE projection = 'balances'")
        .fetch_optional(fresh.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn catches_up_with_the_read_model_and_checkpoint_in_step() {
    let (fresh, store) = setup().await;
    let done = TransactionalRunner::new(Balances::default(), store.clone())
        .with_options(options(5))
        .catch_up()
        .await
        .unwrap();
    assert_eq!(done.handled, 12);
    assert_eq!(balances(&fresh).await, ((1..=12).sum(), 12));
    assert_eq!(
        checkpoint(&fresh).await.map(|p| u64::try_from(p).unwrap()),
        Some(store.head_position().await.unwrap().value())
    );
    // A pass that finds nothing new writes nothing, not even the same checkpoint again (an idle
    // runner in live mode would otherwise commit a write on every pass).
    let written = checkpoint_version(&fresh).await;
    let again = TransactionalRunner::new(Balances::default(), store.clone())
        .with_options(options(5))
        .catch_up()
        .await
        .unwrap();
    assert_eq!(again.handled, 0);
    assert_eq!(checkpoint_version(&fresh).await, written, "the checkpoint row was written again");
}

/// The transaction that last wrote the checkpoint's row (`xmin`).
async fn checkpoint_version(fresh: &FreshSchema) -> String {
    sqlx::query_scalar("SELECT xmin::text FROM checkpoints WHERE projection = 'balances'")
        .fetch_one(fresh.store.pool())
        .await
        .unwrap()
}

/// A handler that keeps failing in the second batch rolls that batch back (its own write
/// included), then the events before the failing one commit on their own: the checkpoint stops
/// right before it, as in the projection runner, and the read model matches the checkpoint. The
/// next run applies every event exactly once. (Before the runners were unified, the whole second
/// batch stayed unapplied; committing its prefix is what lets parking skip exactly one event.)
#[tokio::test]
async fn a_failing_batch_leaves_nothing_half_applied() {
    let (fresh, store) = setup().await;
    let failed = TransactionalRunner::new(Balances { fail_on: Some(8), flaky: 0 }, store.clone())
        .with_options(options(5))
        .catch_up()
        .await;
    assert!(
        matches!(failed, Err(RunnerError::Handler { attempts: 3, .. })),
        "three attempts, then stop: {failed:?}"
    );
    assert_eq!(balances(&fresh).await, ((1..=7).sum(), 7), "everything before 8, nothing after");
    assert_eq!(checkpoint(&fresh).await, Some(deposit_position(&store, 7).await));

    TransactionalRunner::new(Balances::default(), store.clone())
        .with_options(options(5))
        .catch_up()
        .await
        .unwrap();
    assert_eq!(balances(&fresh).await, ((1..=12).sum(), 12), "every event applied exactly once");
}

/// The position of the `n`th deposit (1-based).
async fn deposit_position(store: &es_postgres::PgTenantStore, n: usize) -> i64 {
    let deposits: Vec<RecordedEvent> = futures_util::TryStreamExt::try_collect(
        store.read_all(
            es_core::ReadAllOptions::from_beginning()
                .event_types([EventType::new("account.deposited").unwrap()]),
        ),
    )
    .await
    .unwrap();
    i64::try_from(deposits[n - 1].position.value()).unwrap()
}

/// A handler that fails twice and then succeeds costs two rolled-back attempts, not a stop; each
/// deposit is applied once.
#[tokio::test]
async fn a_transient_failure_is_retried_and_applied_once() {
    let (fresh, store) = setup().await;
    let done = TransactionalRunner::new(Balances { fail_on: None, flaky: 2 }, store.clone())
        .with_options(options(5))
        .catch_up()
        .await
        .unwrap();
    assert_eq!(done.handled, 12);
    assert_eq!(balances(&fresh).await, ((1..=12).sum(), 12));
}

/// Under `OnFailure::Park` the event that keeps failing is parked (with its error), the checkpoint
/// moves past it, every other event is applied once, and the lag reaches 0.
#[tokio::test]
async fn a_poison_event_is_parked_and_the_rest_applied() {
    let (fresh, store) = setup().await;
    let mut runner =
        TransactionalRunner::new(Balances { fail_on: Some(8), flaky: 0 }, store.clone())
            .with_options(options(5).on_failure(OnFailure::Park));
    let done = runner.catch_up().await.unwrap();
    assert_eq!(done.handled, 12, "11 applied and 1 parked");
    assert_eq!(balances(&fresh).await, ((1..=12).sum::<i64>() - 8, 11));
    let parked = store.parked(&es_core::ProjectionName::new("balances").unwrap()).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        i64::try_from(parked[0].position.value()).unwrap(),
        deposit_position(&store, 8).await
    );
    assert!(parked[0].error.contains("refusing amount 8"), "{}", parked[0].error);
    let status = runner.status().await.unwrap();
    assert_eq!(status.lag, 0, "{status:?}");
}

/// `follow` pauses for the runner's own `retry_delay` after a failing pass: a minute here, so no
/// second pass within a second (the default 50 ms, doubling, would make several).
#[tokio::test]
async fn follow_pauses_for_its_retry_delay_after_a_failing_pass() {
    let (_fresh, store) = setup().await;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let (report, mut passes) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(async move {
        TransactionalRunner::new(Balances { fail_on: Some(1), flaky: 0 }, store)
            .with_options(options(5).retries(1, Duration::from_mins(1)))
            .follow(
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
                move |pass| {
                    let _ = report.send(pass.is_ok());
                },
            )
            .await;
    });
    let first = tokio::time::timeout(Duration::from_secs(30), passes.recv()).await;
    assert_eq!(first, Ok(Some(false)), "the first pass fails on amount 1");
    let next = tokio::time::timeout(Duration::from_secs(1), passes.recv()).await;
    assert!(next.is_err(), "a second pass within a second of the first: {next:?}");
    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(30), follower).await.unwrap().unwrap();
}

/// Live mode under the lock: a runner following the log applies what is appended later, and a
/// second runner waiting for the lock applies nothing meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_log_under_the_lock() {
    let (fresh, store) = setup().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let spawn = |store: es_postgres::PgTenantStore,
                 mut stopped: tokio::sync::watch::Receiver<bool>| {
        tokio::spawn(async move {
            let locks = store.clone();
            TransactionalRunner::new(Balances::default(), store)
                .with_options(options(5).idle_wait(Duration::from_millis(20)))
                .run_exclusive(&locks, async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        })
    };
    let owner = spawn(store.clone(), stopped.clone());
    let standby = spawn(store.clone(), stopped);
    let stream = StreamId::new("account-9").unwrap();
    let late = EventData::new(
        EventType::new("account.deposited").unwrap(),
        Payload::from_value(&serde_json::json!({ "amount": 100 })).unwrap(),
    );
    store
        .append(&stream, ExpectedVersion::Any, vec![late], AppendOptions::default())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while balances(&fresh).await != ((1..=12).sum::<i64>() + 100, 13) {
        assert!(
            std::time::Instant::now() < deadline,
            "the live runner never applied the late deposit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(balances(&fresh).await.1, 13, "with the lock, one runner applies each event once");
    stop.send_replace(true);
    owner.await.unwrap().unwrap();
    standby.await.unwrap().unwrap();
}

/// A batch handler written by hand that names an event outside its batch (index 99) whenever it
/// gets more than one event, and applies a batch of one.
struct OutOfRange;

impl<C: Send + Through<PgConnection>> TransactionalProjection<C> for OutOfRange {
    const NAME: &'static str = "balances";
    const EVENT_TYPES: &'static [&'static es_core::EventTypeInfo] =
        <Balances as TransactionalProjection<PgConnection>>::EVENT_TYPES;

    async fn handle(&mut self, tx: &mut C, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let deposited: Deposited = event.deserialize_payload().unwrap();
        add_deposit(Through::<PgConnection>::through(tx), UPSERT_V1, &deposited, event).await
    }

    async fn handle_batch(
        &mut self,
        tx: &mut C,
        events: &[RecordedEvent],
    ) -> Result<(), BatchFailure> {
        if events.len() > 1 {
            return Err(BatchFailure { index: 99, source: ProjectionError::new("miscounted") });
        }
        for event in events {
            self.handle(tx, event).await.map_err(|source| BatchFailure { index: 0, source })?;
        }
        Ok(())
    }
}

/// A failure that names an index past its batch is charged to the batch's last event, never a
/// panic of the runner. Batches of five: the events before the last, failing again when committed
/// on their own, are redone one per transaction, where this handler applies them; the last batch
/// (11 and 12) commits 11 alone and stops at 12.
#[tokio::test]
async fn a_failure_named_past_the_batch_is_charged_to_its_last_event() {
    let (fresh, store) = setup().await;
    let stopped = TransactionalRunner::new(OutOfRange, store.clone())
        .with_options(options(5).retries(1, Duration::from_millis(1)))
        .catch_up()
        .await;
    let Err(RunnerError::Handler { position, .. }) = stopped else {
        panic!("the runner stops with the handler's failure: {stopped:?}")
    };
    assert_eq!(i64::try_from(position.value()).unwrap(), deposit_position(&store, 12).await);
    assert_eq!(balances(&fresh).await, ((1..=11).sum(), 11));
    assert_eq!(checkpoint(&fresh).await, Some(deposit_position(&store, 11).await));
}

/// The balances projection, slowed down, telling which connection runs its batch.
struct Slow {
    inner: Balances,
    running: std::sync::Arc<std::sync::Mutex<Option<(i32, i64)>>>,
}

/// Written by hand for every connection that is a `PgConnection` (as `#[projection]` does).
impl<C: Send + Through<PgConnection>> TransactionalProjection<C> for Slow {
    const NAME: &'static str = "balances";
    const EVENT_TYPES: &'static [&'static es_core::EventTypeInfo] =
        <Balances as TransactionalProjection<PgConnection>>::EVENT_TYPES;

    async fn handle(&mut self, tx: &mut C, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let tx = Through::<PgConnection>::through(tx);
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .map_err(|error| ProjectionError::with_source("pid", error))?;
        let position = i64::try_from(event.position.value()).unwrap();
        *self.running.lock().unwrap() = Some((pid, position));
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        self.inner.handle(tx, event).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_batch_rolls_back_and_the_rerun_applies_each_event_once() {
    let (fresh, store) = setup().await;
    let running = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slow = Slow { inner: Balances::default(), running: running.clone() };
    let task = {
        let store = store.clone();
        tokio::spawn(
            // One attempt: the batch the kill hits is not retried, so the run stops there.
            async move {
                TransactionalRunner::new(slow, store)
                    .with_options(options(4).retries(1, Duration::from_millis(1)))
                    .catch_up()
                    .await
            },
        )
    };
    // Wait until a batch has committed and the next one is half-way, then kill its connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    let pid = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never reached a batch past its first committed checkpoint"
        );
        let committed = checkpoint(&fresh).await.unwrap_or(0);
        let current = *running.lock().unwrap();
        if let Some((pid, position)) = current
            && committed > 0
            && position > committed
        {
            break pid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(fresh.store.pool())
        .await
        .unwrap();
    assert!(killed);
    let outcome = task.await.unwrap();
    assert!(outcome.is_err(), "the runner saw its connection die: {outcome:?}");
    // The batch in flight was rolled back; what came before the event it died on is committed
    // with a checkpoint that says so: the read model and the checkpoint are in step.
    let (_, partial) = balances(&fresh).await;
    assert!(partial > 0 && partial < 12, "stopped part-way: {partial}");
    let committed = checkpoint(&fresh).await.unwrap();
    assert_eq!(committed, deposit_position(&store, usize::try_from(partial).unwrap()).await);

    let done = TransactionalRunner::new(Balances::default(), store.clone())
        .with_options(options(4))
        .catch_up()
        .await
        .unwrap();
    assert_eq!(done.handled, 12 - u64::try_from(partial).unwrap());
    assert_eq!(balances(&fresh).await, ((1..=12).sum(), 12), "each deposit applied exactly once");
}

/// The next version of `Balances`: same projection, its own table.
#[derive(Default)]
struct BalancesV2;

#[projection(name = "balances")]
impl BalancesV2 {
    async fn on_deposited(
        &mut self,
        tx: &mut PgConnection,
        event: &Deposited,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        add_deposit(tx, UPSERT_V2, event, meta).await
    }
}

async fn sums(fresh: &FreshSchema, table: &'static str) -> (i64, i64) {
    let sql = match table {
        "balances" => {
            "SELECT coalesce(sum(cents), 0)::bigint, coalesce(sum(deposits), 0)::bigint FROM balances"
        }
        _ => {
            "SELECT coalesce(sum(cents), 0)::bigint, coalesce(sum(deposits), 0)::bigint FROM balances_v2"
        }
    };
    sqlx::query_as(sql).fetch_one(fresh.store.pool()).await.unwrap()
}

async fn checkpoint_of(fresh: &FreshSchema, name: &str) -> Option<u64> {
    sqlx::query_scalar::<_, i64>("SELECT position FROM checkpoints WHERE projection = $1")
        .bind(name)
        .fetch_optional(fresh.store.pool())
        .await
        .unwrap()
        .map(|position| u64::try_from(position).unwrap())
}

async fn deposit(store: &es_postgres::PgTenantStore, amount: i64) {
    let event = EventData::new(
        EventType::new("account.deposited").unwrap(),
        Payload::from_value(&serde_json::json!({ "amount": amount })).unwrap(),
    );
    store
        .append(
            &StreamId::new("account-late").unwrap(),
            ExpectedVersion::Any,
            vec![event],
            AppendOptions::default(),
        )
        .await
        .unwrap();
}

/// A side-by-side rebuild of a transactional projection: the new version builds its own table
/// under the staging checkpoint (committed with each batch) while the live version keeps
/// serving and moving its own; promotion hands the live checkpoint to the new version, whose
/// runner then goes on under the live name, and the old table is left as it was.
#[tokio::test]
async fn a_transactional_rebuild_builds_beside_the_live_model_and_takes_over() {
    use es_core::projection::Rebuild;
    let (fresh, store) = setup().await;
    sqlx::query("CREATE TABLE balances_v2 (account text PRIMARY KEY, cents bigint NOT NULL, deposits integer NOT NULL)")
        .execute(fresh.store.pool())
        .await
        .unwrap();
    let mut live =
        TransactionalRunner::new(Balances::default(), store.clone()).with_options(options(5));
    live.catch_up().await.unwrap();

    let mut next =
        Rebuild::start_transactional(BalancesV2, store.clone(), options(5)).await.unwrap();
    let mut passes = 0;
    let built = next.build(|_| passes += 1).await.unwrap();
    assert!(passes >= 2, "a pass that handled the log, then one that found it caught up");
    let head = store.head_position().await.unwrap().value();
    assert_eq!(built.checkpoint.value(), head);
    assert_eq!(sums(&fresh, "balances_v2").await, ((1..=12).sum(), 12));
    assert_eq!(
        checkpoint_of(&fresh, "balances.rebuild").await,
        Some(head),
        "the staging checkpoint is committed with the new model's batches"
    );

    // Meanwhile the live version serves and follows new events; the new one has not seen them.
    deposit(&store, 100).await;
    live.catch_up().await.unwrap();
    assert_eq!(sums(&fresh, "balances").await, ((1..=12).sum::<i64>() + 100, 13));
    assert_eq!(sums(&fresh, "balances_v2").await, ((1..=12).sum(), 12));
    drop(live);

    let mut promoted = next.promote().await.unwrap();
    assert_eq!(promoted.name().as_str(), "balances");
    let head = store.head_position().await.unwrap().value();
    assert_eq!(sums(&fresh, "balances_v2").await, ((1..=12).sum::<i64>() + 100, 13));
    assert_eq!(checkpoint_of(&fresh, "balances").await, Some(head));
    assert_eq!(checkpoint_of(&fresh, "balances.rebuild").await, None, "staging removed");

    // From here the new version is the live one; the old table no longer moves.
    deposit(&store, 1000).await;
    assert_eq!(promoted.catch_up().await.unwrap().handled, 1);
    assert_eq!(sums(&fresh, "balances_v2").await, ((1..=12).sum::<i64>() + 1100, 14));
    assert_eq!(sums(&fresh, "balances").await, ((1..=12).sum::<i64>() + 100, 13));
    assert_eq!(
        checkpoint_of(&fresh, "balances").await,
        Some(store.head_position().await.unwrap().value())
    );
}

/// Publishes a message for each deposit in the batch's transaction.
struct Notifier {
    store: es_postgres::PgTenantStore,
    refuse: Option<i64>,
}

#[projection(name = "notifier")]
impl Notifier {
    async fn on_deposited(
        &mut self,
        tx: &mut PgConnection,
        event: &Deposited,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let subject = es_core::Subject::new("bank.deposit.noticed").unwrap();
        let body = format!("{{\"amount\":{}}}", event.amount);
        self.store
            .enqueue_in(
                tx,
                "notifier",
                meta,
                &subject,
                body.as_bytes(),
                &es_core::outbox::Headers::new(),
            )
            .await
            .map_err(|error| ProjectionError::with_source("enqueue failed", error))?;
        if self.refuse == Some(event.amount) {
            return Err(ProjectionError::new("refused after enqueueing"));
        }
        Ok(())
    }
}

/// A transactional projection enqueues messages with its batch: a rolled-back batch leaves none,
/// handling the events again (a reset checkpoint) enqueues none twice.
#[tokio::test]
async fn a_transactional_projection_enqueues_messages_once_with_its_batch() {
    use es_core::outbox::OutboxStore;
    use es_core::projection::CheckpointStore;
    let (_fresh, store) = setup().await;
    let refusing = Notifier { store: store.clone(), refuse: Some(8) };
    let stopped =
        TransactionalRunner::new(refusing, store.clone()).with_options(options(5)).catch_up().await;
    assert!(stopped.is_err(), "stops at amount 8");
    assert_eq!(
        store.outbox_stats().await.unwrap().pending,
        7,
        "the deposits before 8 enqueued theirs; 8's was rolled back with its batch"
    );
    let notifier = Notifier { store: store.clone(), refuse: None };
    let mut runner = TransactionalRunner::new(notifier, store.clone()).with_options(options(5));
    assert_eq!(runner.catch_up().await.unwrap().handled, 5);
    assert_eq!(store.outbox_stats().await.unwrap().pending, 12);
    store.reset_checkpoint(runner.name()).await.unwrap();
    assert_eq!(runner.catch_up().await.unwrap().handled, 12, "handled again from the start");
    let pending = store.pending(&(0..16).collect::<Vec<_>>(), 100).await.unwrap();
    assert_eq!(pending.len(), 12, "nothing enqueued twice");
    let deposits: Vec<RecordedEvent> = futures_util::TryStreamExt::try_collect(
        store.read_all(
            es_core::ReadAllOptions::from_beginning()
                .event_types([EventType::new("account.deposited").unwrap()]),
        ),
    )
    .await
    .unwrap();
    for message in &pending {
        let source = deposits
            .iter()
            .find(|e| {
                e.stream_id == message.stream_id && e.stream_version == message.stream_version
            })
            .unwrap();
        assert_eq!(message.event_id, es_core::EventId::derived(source.event_id, "notifier"));
    }
}
