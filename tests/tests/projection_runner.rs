//! The projection runner on both backends: catch-up, resume from the checkpoint, crash and restart
//! converging to a rebuild, compare-and-set checkpoints, failing handlers, lag, live mode.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::projection::{
    CheckpointStore, DeadLetterStore, OnFailure, ProjectionLocks, ProjectionRunner, Rebuild,
    RunnerError, RunnerOptions, VolatileCheckpoints,
};
use es_core::{
    AppendOptions, Event, EventStore, ExpectedVersion, Position, ProjectionError, RecordedEvent,
    StreamId, TenantId, projection,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "account.deposited")]
pub struct Deposited {
    pub amount: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "account.noted")]
pub struct Noted {
    pub text: String,
}

/// A read model that survives the runner (like a table): amounts by event position, so a
/// redelivered event changes nothing.
#[derive(Clone, Default)]
pub struct Deposits {
    rows: Arc<Mutex<BTreeMap<u64, i64>>>,
    calls: Arc<Mutex<u64>>,
    fail_at: Option<i64>,
    panic_at: Option<i64>,
    slow: Option<Duration>,
}

impl Deposits {
    fn rows(&self) -> BTreeMap<u64, i64> {
        self.rows.lock().unwrap().clone()
    }
}

#[projection(name = "deposits")]
impl Deposits {
    async fn on_deposited(
        &mut self,
        event: &Deposited,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        *self.calls.lock().unwrap() += 1;
        if self.fail_at == Some(event.amount) {
            return Err(ProjectionError::new(format!("cannot store amount {}", event.amount)));
        }
        // The message holds a NUL: PostgreSQL's text columns cannot, so parking must clean it.
        assert!(
            self.panic_at != Some(event.amount),
            "amount {} overflows the model\0",
            event.amount
        );
        if let Some(pause) = self.slow {
            tokio::time::sleep(pause).await;
        }
        self.rows.lock().unwrap().insert(meta.position.value(), event.amount);
        Ok(())
    }
}

async fn deposit<S: EventStore>(store: &S, stream: &str, amounts: std::ops::Range<i64>) {
    let stream = StreamId::new(stream).unwrap();
    let mut events = Vec::new();
    for amount in amounts {
        events.push(es_core::Event::to_event_data(&Deposited { amount }).unwrap());
        events.push(
            es_core::Event::to_event_data(&Noted { text: format!("note {amount}") }).unwrap(),
        );
    }
    store.append(&stream, ExpectedVersion::Any, events, AppendOptions::default()).await.unwrap();
}

fn options() -> RunnerOptions {
    RunnerOptions::default().batch_size(7).retries(2, Duration::from_millis(1))
}

/// The read model a fresh runner builds from zero.
async fn rebuild<S: EventStore + CheckpointStore + DeadLetterStore>(
    store: &S,
) -> BTreeMap<u64, i64> {
    let fresh = Deposits::default();
    // A fresh runner whose checkpoints are its own: read everything, handle everything.
    let mut runner = ProjectionRunner::new(fresh.clone(), VolatileCheckpoints::new(store.clone()));
    runner.catch_up().await.unwrap();
    fresh.rows()
}

// ---------------------------------------------------------------- test bodies

async fn catches_up_and_follows<S: EventStore + CheckpointStore + DeadLetterStore>(store: S) {
    deposit(&store, "account-1", 1..11).await;
    let model = Deposits::default();
    let mut runner = ProjectionRunner::new(model.clone(), store.clone()).with_options(options());
    assert_eq!(
        (runner.options().batch_size, runner.options().handler_attempts),
        (7, 2),
        "the options given"
    );
    let first = runner.catch_up().await.unwrap();
    assert_eq!(first.handled, 10, "only the handled type is delivered");
    assert_eq!(model.rows().values().sum::<i64>(), 55);
    assert_eq!(
        first.checkpoint,
        store.head_position().await.unwrap(),
        "caught up: the checkpoint is at the head"
    );
    let status = runner.status().await.unwrap();
    assert_eq!(status.lag, 0);

    deposit(&store, "account-2", 11..14).await;
    assert!(runner.status().await.unwrap().lag > 0, "new events show as lag");
    let second = runner.catch_up().await.unwrap();
    assert_eq!(second.handled, 3);
    assert_eq!(*model.calls.lock().unwrap(), 13, "no event handled twice");
    assert_eq!(runner.status().await.unwrap().lag, 0);
}

async fn resumes_from_its_checkpoint<S: EventStore + CheckpointStore + DeadLetterStore>(store: S) {
    deposit(&store, "account-1", 1..6).await;
    let model = Deposits::default();
    ProjectionRunner::new(model.clone(), store.clone())
        .with_options(options())
        .catch_up()
        .await
        .unwrap();
    deposit(&store, "account-1", 6..9).await;
    // A new process: a new runner over the same read model resumes after the checkpoint.
    let restarted = Deposits { rows: model.rows.clone(), ..Deposits::default() };
    let done = ProjectionRunner::new(restarted.clone(), store.clone())
        .with_options(options())
        .catch_up()
        .await
        .unwrap();
    assert_eq!(done.handled, 3);
    assert_eq!(*restarted.calls.lock().unwrap(), 3);
    assert_eq!(model.rows(), rebuild(&store).await);
}

async fn killed_mid_run_converges_to_a_rebuild<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..41).await;
    let model = Deposits { slow: Some(Duration::from_millis(2)), ..Deposits::default() };
    let task = {
        let (model, store) = (model.clone(), store.clone());
        tokio::spawn(async move {
            ProjectionRunner::new(model, store).with_options(options()).catch_up().await
        })
    };
    // Kill it once it has demonstrably handled part of the log (a fixed sleep could kill it
    // before it started, or after it finished).
    wait_until("the runner handles its first events", || model.rows().len() >= 3).await;
    task.abort();
    let _ = task.await;
    let partial = model.rows().len();
    assert!(
        (3..40).contains(&partial),
        "the runner must have been stopped mid-run ({partial} handled)"
    );
    let restarted = Deposits { rows: model.rows.clone(), ..Deposits::default() };
    ProjectionRunner::new(restarted, store.clone())
        .with_options(options())
        .catch_up()
        .await
        .unwrap();
    assert_eq!(
        model.rows(),
        deposits_in_log(&store).await,
        "after a restart the read model holds every deposit of the log, once"
    );
}

/// The checkpoint as stored, read by [`CheckpointWatch`]'s handler.
type StoredCheckpoint =
    Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, Option<Position>> + Send + Sync>;

/// Records, for each deposit it handles, the checkpoint stored at that moment: where the runner's
/// batches ended.
#[derive(Clone)]
pub struct CheckpointWatch {
    stored: StoredCheckpoint,
    seen: Arc<Mutex<Vec<Option<Position>>>>,
}

#[projection(name = "checkpoint-watch")]
impl CheckpointWatch {
    async fn on_deposited(&mut self, _event: &Deposited) -> Result<(), ProjectionError> {
        let stored = (self.stored)().await;
        self.seen.lock().unwrap().push(stored);
        Ok(())
    }
}

/// [`CheckpointWatch`] with a handler that takes the envelope, so the runner reads envelopes
/// (`read_all`) rather than payloads only.
#[derive(Clone)]
pub struct EnvelopeWatch(CheckpointWatch);

#[projection(name = "checkpoint-watch-envelope")]
impl EnvelopeWatch {
    async fn on_deposited(
        &mut self,
        event: &Deposited,
        _meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.0.on_deposited(event).await
    }
}

/// A pass is cut into batches of exactly `batch_size` handled events, and the checkpoint is
/// saved after each: the first three deposits see none, the next three the third's position, and
/// so on (the notes between deposits are not the projection's, so they never count). Both reads:
/// payloads only, and whole envelopes.
async fn saves_its_checkpoint_after_each_batch_of_batch_size<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..11).await;
    let deposits: Vec<Position> =
        deposits_in_log(&store).await.keys().copied().map(Position::new).collect();
    let expected: Vec<Option<Position>> =
        (0..10).map(|i| (i >= 3).then(|| deposits[i / 3 * 3 - 1])).collect();
    for envelope in [false, true] {
        let name = if envelope { "checkpoint-watch-envelope" } else { "checkpoint-watch" };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let watched = store.clone();
        let stored: StoredCheckpoint = Arc::new(move || {
            let store = watched.clone();
            Box::pin(async move {
                let name = es_core::ProjectionName::new(name).unwrap();
                store.load_checkpoint(&name).await.unwrap()
            })
        });
        let watch = CheckpointWatch { stored, seen: seen.clone() };
        let options = RunnerOptions::default().batch_size(3);
        let done = if envelope {
            let mut runner =
                ProjectionRunner::new(EnvelopeWatch(watch), store.clone()).with_options(options);
            runner.catch_up().await.unwrap()
        } else {
            let mut runner = ProjectionRunner::new(watch, store.clone()).with_options(options);
            runner.catch_up().await.unwrap()
        };
        assert_eq!(done.handled, 10, "{name}");
        assert_eq!(*seen.lock().unwrap(), expected, "{name}");
    }
}

/// The oracle, independent of the runner: every deposit in the log, by position, read directly.
async fn deposits_in_log<S: EventStore>(store: &S) -> BTreeMap<u64, i64> {
    use futures_util::TryStreamExt;
    let events: Vec<RecordedEvent> =
        store.read_all(es_core::ReadAllOptions::from_beginning()).try_collect().await.unwrap();
    events
        .iter()
        .filter(|event| event.event_type.as_str() == "account.deposited")
        .map(|event| (event.position.value(), Deposited::decode(event).unwrap().amount))
        .collect()
}

async fn a_stale_worker_cannot_move_the_checkpoint<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..4).await;
    let mut a = ProjectionRunner::new(Deposits::default(), store.clone()).with_options(options());
    let b_model = Deposits::default();
    let mut b = ProjectionRunner::new(b_model.clone(), store.clone()).with_options(options());
    a.catch_up().await.unwrap();
    // b read "no checkpoint" before a saved; its save must fail.
    let stale = store
        .save_checkpoint(&es_core::ProjectionName::new("deposits").unwrap(), None, Position::new(1))
        .await;
    assert!(matches!(stale, Err(es_core::projection::CheckpointError::Conflict(_))), "{stale:?}");
    // b catches up too and now believes in a's checkpoint.
    b.catch_up().await.unwrap();
    deposit(&store, "account-1", 4..6).await;
    a.catch_up().await.unwrap();
    let moved_by_a =
        store.load_checkpoint(&es_core::ProjectionName::new("deposits").unwrap()).await.unwrap();
    deposit(&store, "account-1", 6..7).await;
    // b, holding the checkpoint it read before a moved it, handles the new events but loses the
    // compare-and-set itself: the runner reports the conflict and the checkpoint stays a's.
    let lost = b.catch_up().await;
    assert!(
        matches!(
            lost,
            Err(RunnerError::Checkpoint(es_core::projection::CheckpointError::Conflict(_)))
        ),
        "a stale runner must lose the compare-and-set: {lost:?}"
    );
    assert_eq!(
        store.load_checkpoint(&es_core::ProjectionName::new("deposits").unwrap()).await.unwrap(),
        moved_by_a,
        "b moved nothing"
    );
    // Reloading the checkpoint, b carries on from where a is.
    let resumed = b.catch_up().await.unwrap();
    assert!(resumed.checkpoint > moved_by_a.unwrap(), "b resumes after a's checkpoint");
    assert_eq!(
        b_model.rows().values().copied().collect::<Vec<_>>(),
        [4, 5, 6],
        "b started at a's checkpoint and handled each later deposit (the redelivered one once)"
    );
}

async fn a_failing_handler_stops_before_the_event<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..6).await;
    let model = Deposits { fail_at: Some(4), ..Deposits::default() };
    let mut runner = ProjectionRunner::new(model.clone(), store.clone()).with_options(options());
    let failed = runner.catch_up().await;
    assert!(matches!(failed, Err(RunnerError::Handler { attempts: 2, .. })), "{failed:?}");
    assert_eq!(model.rows().values().copied().collect::<Vec<_>>(), [1, 2, 3]);
    let status = runner.status().await.unwrap();
    assert!(status.last_error.is_some_and(|error| error.contains("amount 4")));
    let checkpoint = store
        .load_checkpoint(&es_core::ProjectionName::new("deposits").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        checkpoint,
        Position::new(*model.rows().keys().last().unwrap()),
        "the checkpoint stays before the failing event"
    );
}

/// A handler that panics is a failing handler, not a dead runner: under `Stop` the pass ends with a
/// typed error (the runner stays usable and reports it), under `Park` the event is parked with
/// the panic's message and the projection goes on; with partitions too.
async fn a_panicking_handler_is_a_failure_not_a_dead_runner<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..6).await;
    let model = Deposits { panic_at: Some(4), ..Deposits::default() };
    let mut runner = ProjectionRunner::new(model.clone(), store.clone()).with_options(options());
    let failed = runner.catch_up().await;
    match &failed {
        Err(RunnerError::Handler {
            source: ProjectionError::Panicked { message },
            attempts: 2,
            ..
        }) => {
            assert!(message.contains("amount 4 overflows"), "{message}");
        }
        other => panic!("a panic must come back as a handler failure, got {other:?}"),
    }
    assert_eq!(model.rows().values().copied().collect::<Vec<_>>(), [1, 2, 3]);
    let status = runner.status().await.unwrap();
    assert!(
        status.last_error.is_some_and(|error| error.contains("panicked")),
        "the status shows it"
    );
    assert!(status.lag > 0, "the lag shows the events not handled");
    // The same runner carries on once the cause is gone: it was never dead.
    runner.projection_mut().panic_at = None;
    runner.catch_up().await.unwrap();
    assert_eq!(model.rows(), rebuild(&store).await);

    // Park: the panicking event is parked with its message, the others are handled.
    let parking = Deposits { panic_at: Some(2), ..Deposits::default() };
    let mut runner = ProjectionRunner::new(parking.clone(), store.clone())
        .with_name(es_core::ProjectionName::new("deposits-parking").unwrap())
        .with_options(options().on_failure(OnFailure::Park))
        .with_concurrency(4);
    runner.catch_up().await.unwrap();
    assert_eq!(parking.rows().values().copied().collect::<Vec<_>>(), [1, 3, 4, 5]);
    let parked =
        store.parked(&es_core::ProjectionName::new("deposits-parking").unwrap()).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert!(parked[0].error.contains("panicked"), "{}", parked[0].error);
    assert!(
        parked[0].error.contains('\u{fffd}') && !parked[0].error.contains('\0'),
        "{:?}",
        parked[0].error
    );
}

/// With `OnFailure::Park`, a failing event is parked with its error and the projection goes on;
/// once the handler works again, replaying the parked events completes the read model.
async fn failing_events_are_parked_and_replayed<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..7).await;
    let model = Deposits { fail_at: Some(4), ..Deposits::default() };
    let mut runner = ProjectionRunner::new(model.clone(), store.clone())
        .with_options(options().on_failure(OnFailure::Park));
    runner.catch_up().await.unwrap();
    assert_eq!(
        model.rows().values().copied().collect::<Vec<_>>(),
        [1, 2, 3, 5, 6],
        "the projection goes on"
    );
    assert_eq!(runner.status().await.unwrap().lag, 0);
    let parked = store.parked(&es_core::ProjectionName::new("deposits").unwrap()).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert!(parked[0].error.contains("amount 4"), "{}", parked[0].error);
    assert_eq!(parked[0].event_type.as_str(), "account.deposited");

    // Still failing: it stays parked.
    assert_eq!(runner.replay_parked().await.unwrap(), (0, 1));
    // Fixed (a new deployment): the replay completes the read model and empties the list.
    let fixed = Deposits { rows: model.rows.clone(), ..Deposits::default() };
    let mut fixed_runner = ProjectionRunner::new(fixed, store.clone()).with_options(options());
    assert_eq!(fixed_runner.replay_parked().await.unwrap(), (1, 0));
    assert!(
        store.parked(&es_core::ProjectionName::new("deposits").unwrap()).await.unwrap().is_empty()
    );
    assert_eq!(model.rows(), rebuild(&store).await);
}

/// `replay_parked_at(Some(position))` replays the event parked there and no other.
async fn one_parked_event_is_replayed_alone<S: EventStore + CheckpointStore + DeadLetterStore>(
    store: S,
) {
    let name = es_core::ProjectionName::new("deposits").unwrap();
    deposit(&store, "account-1", 1..4).await;
    let model = Deposits { fail_at: Some(2), ..Deposits::default() };
    let parking = options().on_failure(OnFailure::Park);
    ProjectionRunner::new(model.clone(), store.clone())
        .with_options(parking.clone())
        .catch_up()
        .await
        .unwrap();
    deposit(&store, "account-1", 4..7).await;
    let later = Deposits { fail_at: Some(5), rows: model.rows.clone(), ..Deposits::default() };
    ProjectionRunner::new(later, store.clone()).with_options(parking).catch_up().await.unwrap();
    let parked: Vec<Position> =
        store.parked(&name).await.unwrap().iter().map(|parked| parked.position).collect();
    let deposits = deposits_in_log(&store).await;
    let at = |amount: i64| Position::new(*deposits.iter().find(|(_, a)| **a == amount).unwrap().0);
    assert_eq!(parked, [at(2), at(5)]);

    let fixed = Deposits { rows: model.rows.clone(), ..Deposits::default() };
    let mut runner = ProjectionRunner::new(fixed, store.clone()).with_options(options());
    assert_eq!(runner.replay_parked_at(Some(at(5))).await.unwrap(), (1, 0));
    let left: Vec<Position> =
        store.parked(&name).await.unwrap().iter().map(|parked| parked.position).collect();
    assert_eq!(left, [at(2)], "the other parked event stays parked");
    assert_eq!(model.rows().values().copied().collect::<Vec<_>>(), [1, 3, 4, 5, 6]);
    assert_eq!(runner.replay_parked_at(Some(Position::new(1_000_000))).await.unwrap(), (0, 0));
    assert_eq!(runner.replay_parked().await.unwrap(), (1, 0));
    assert_eq!(model.rows(), rebuild(&store).await);
}

async fn live_mode_wakes_on_appends<S: EventStore + CheckpointStore + DeadLetterStore>(store: S) {
    let model = Deposits::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let (model, store) = (model.clone(), store.clone());
        tokio::spawn(async move {
            ProjectionRunner::new(model, store)
                .with_options(options())
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    deposit(&store, "account-1", 1..4).await;
    for _ in 0..200 {
        if model.rows().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(model.rows().len(), 3, "live mode must pick up new events without a restart");
    stop.send(()).unwrap();
    runner.await.unwrap().unwrap();
}

/// `run_until` ends with the first failing pass's error: only `follow` keeps going through
/// failures.
async fn run_until_ends_with_the_first_failure<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..6).await;
    let model = Deposits { fail_at: Some(4), ..Deposits::default() };
    let mut runner = ProjectionRunner::new(model.clone(), store.clone()).with_options(options());
    let ended =
        tokio::time::timeout(Duration::from_secs(10), runner.run_until(std::future::pending()))
            .await
            .expect("run_until must end on the failure, not try again");
    assert!(matches!(ended, Err(RunnerError::Handler { attempts: 2, .. })), "{ended:?}");
    assert_eq!(model.rows().values().copied().collect::<Vec<_>>(), [1, 2, 3]);
}

/// Following the log, the runner asks the store to wait for new events as long as its options
/// say (`idle_wait`), never the default.
async fn live_mode_waits_as_long_as_its_options_say<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    let counted = CountedReads::new(store.clone());
    let idle = Duration::from_millis(123);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let reads = VolatileCheckpoints::new(counted.clone());
        tokio::spawn(async move {
            ProjectionRunner::new(Deposits::default(), reads)
                .with_options(options().idle_wait(idle))
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    wait_until("the runner waits for events", || counted.waits.lock().unwrap().len() >= 2).await;
    stop.send(()).unwrap();
    runner.await.unwrap().unwrap();
    let waits = counted.waits.lock().unwrap().clone();
    assert!(waits.iter().all(|wait| *wait == idle), "{waits:?}");
}

/// Waits for a condition, up to 30 s: generous, because a loaded CI machine stretches every
/// backoff and poll, and a passing test returns as soon as the condition holds.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Two runners on one projection: one owner at a time; when the owner dies, the other takes over
/// from the owner's checkpoint.
async fn one_owner_at_a_time_and_takeover<
    S: EventStore + CheckpointStore + DeadLetterStore + ProjectionLocks,
>(
    store: S,
) {
    let spawn = |model: Deposits, store: S| {
        tokio::spawn(async move {
            let locks = store.clone();
            ProjectionRunner::new(model, store)
                .with_options(options().idle_wait(Duration::from_millis(50)))
                .run_exclusive(&locks, std::future::pending())
                .await
        })
    };
    deposit(&store, "account-1", 1..4).await;
    let (first, second) = (Deposits::default(), Deposits::default());
    let owner = spawn(first.clone(), store.clone());
    wait_until("the first runner handled the backlog", || first.rows().len() == 3).await;
    let standby = spawn(second.clone(), store.clone());
    deposit(&store, "account-1", 4..6).await;
    wait_until("the owner handled new events", || first.rows().len() == 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(second.rows().is_empty(), "the standby must not run while the owner holds the lock");

    owner.abort();
    let _ = owner.await;
    deposit(&store, "account-1", 6..8).await;
    wait_until("the standby took over", || second.rows().len() == 2).await;
    assert_eq!(
        second.rows().values().copied().collect::<Vec<_>>(),
        [6, 7],
        "it resumes from the owner's checkpoint"
    );
    standby.abort();
}

/// A runner that gets the projection's lock starts from the stored checkpoint, not from the one
/// it knew before it asked: another owner may have moved it meanwhile.
async fn a_runner_that_gets_the_lock_starts_from_the_stored_checkpoint<
    S: EventStore + CheckpointStore + DeadLetterStore + ProjectionLocks,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..4).await;
    let late = Deposits::default();
    let mut runner = ProjectionRunner::new(late.clone(), store.clone()).with_options(options());
    runner.catch_up().await.unwrap();
    // Another owner of the projection moves its checkpoint past three more deposits.
    deposit(&store, "account-1", 4..7).await;
    ProjectionRunner::new(Deposits::default(), store.clone())
        .with_options(options())
        .catch_up()
        .await
        .unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let exclusive = {
        let locks = store.clone();
        tokio::spawn(async move {
            runner
                .run_exclusive(&locks, async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    deposit(&store, "account-1", 7..8).await;
    wait_until("the runner handled the new deposit", || late.rows().len() == 4).await;
    stop.send(()).unwrap();
    exclusive.await.unwrap().unwrap();
    assert_eq!(
        late.rows().values().copied().collect::<Vec<_>>(),
        [1, 2, 3, 7],
        "it went on from the other owner's checkpoint"
    );
}

/// Locks whose first `failures` requests fail (the database away), then those of `inner`.
#[derive(Clone)]
struct FailingLocks<L> {
    inner: L,
    failures: Arc<std::sync::atomic::AtomicU32>,
}

impl<L: ProjectionLocks> ProjectionLocks for FailingLocks<L> {
    type Lock = L::Lock;

    async fn try_lock(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<Option<Self::Lock>, es_core::StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.failures.fetch_update(SeqCst, SeqCst, |left| left.checked_sub(1)).is_ok() {
            return Err(es_core::StoreError::backend("try_lock", true, "the database is away"));
        }
        self.inner.try_lock(projection).await
    }
}

/// A request for the lock that fails ends `run_exclusive` with the error; `follow_exclusive`
/// asks again until it gets the lock, then runs.
async fn a_failed_lock_request_ends_run_exclusive_and_follow_exclusive_asks_again<
    S: EventStore + CheckpointStore + DeadLetterStore + ProjectionLocks,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..4).await;
    let quick = options().idle_wait(Duration::from_millis(10));
    let failing = |failures| FailingLocks { inner: store.clone(), failures: Arc::new(failures) };

    let locks = failing(std::sync::atomic::AtomicU32::new(1));
    let mut runner =
        ProjectionRunner::new(Deposits::default(), store.clone()).with_options(quick.clone());
    let ended = tokio::time::timeout(
        Duration::from_secs(10),
        runner.run_exclusive(&locks, std::future::pending()),
    )
    .await
    .expect("run_exclusive must end on the failed request, not ask again");
    assert!(matches!(ended, Err(RunnerError::Store(_))), "{ended:?}");

    let locks = failing(std::sync::atomic::AtomicU32::new(3));
    let model = Deposits::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let (model, store, locks) = (model.clone(), store.clone(), locks.clone());
        tokio::spawn(async move {
            ProjectionRunner::new(model, store)
                .with_options(quick)
                .follow_exclusive(
                    &locks,
                    async {
                        let _ = stopped.await;
                    },
                    |_| {},
                )
                .await;
        })
    };
    wait_until("the follower got the lock and caught up", || model.rows().len() == 3).await;
    stop.send(()).unwrap();
    follower.await.unwrap();
    assert_eq!(locks.failures.load(std::sync::atomic::Ordering::SeqCst), 0, "asked again");
}

/// Version 2 of a read model builds beside version 1 while events keep coming; at the switch it
/// equals the live model and a fresh rebuild, and it goes on from the live checkpoint.
async fn a_rebuild_beside_the_live_model_takes_over<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..30).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let live = Deposits::default();
    let live_task = {
        let (live, store) = (live.clone(), store.clone());
        tokio::spawn(async move {
            let mut runner = ProjectionRunner::new(live, store)
                .with_options(options().idle_wait(Duration::from_millis(20)));
            runner
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
                .map(|()| runner)
        })
    };
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..5 {
                deposit(&store, "account-2", round * 10..round * 10 + 10).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut next = Rebuild::start(Deposits::default(), store.clone(), options()).await.unwrap();
    let mut passes = 0;
    let last = next.build(|_| passes += 1).await.unwrap();
    assert_eq!(last.handled, 0, "building ends on a pass that finds nothing more");
    assert!(passes >= 2, "at least the pass that handled the log and the one that found no more");
    assert!(
        store.load_checkpoint(&Rebuild::<Deposits, S>::staging_name()).await.unwrap().is_some(),
        "the rebuild checkpoints under its staging name"
    );
    writer.await.unwrap();
    stop.send(()).unwrap();
    let mut live_runner = live_task.await.unwrap().unwrap();
    live_runner.catch_up().await.unwrap();
    let promoted = next.promote().await.unwrap();
    assert_eq!(promoted.name().as_str(), "deposits");
    assert_eq!(promoted.projection().rows(), live.rows(), "the rebuilt model equals the live one");
    assert_eq!(promoted.projection().rows(), rebuild(&store).await);
    assert_eq!(
        store
            .load_checkpoint(&es_core::ProjectionName::new("deposits.rebuild").unwrap())
            .await
            .unwrap(),
        None
    );
    // The new model goes on from the live checkpoint: only what comes next is handled.
    deposit(&store, "account-3", 0..4).await;
    let mut promoted = promoted;
    assert_eq!(promoted.catch_up().await.unwrap().handled, 4);
    assert_eq!(promoted.projection().rows(), rebuild(&store).await);
}

/// A live model stopped behind the head: the promoted model's last pass handles the rest, and the
/// live checkpoint is moved to the new model's, so nothing is handled twice after the switch.
async fn a_promotion_moves_a_live_checkpoint_that_is_behind<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..9).await;
    let mut live =
        ProjectionRunner::new(Deposits::default(), store.clone()).with_options(options());
    live.catch_up().await.unwrap();
    deposit(&store, "account-2", 0..5).await; // the live model stops before these
    let mut next = Rebuild::start(Deposits::default(), store.clone(), options()).await.unwrap();
    next.build(|_| ()).await.unwrap();
    deposit(&store, "account-3", 0..3).await; // the promotion's last pass handles these
    let mut promoted = next.promote().await.unwrap();
    let head = store.head_position().await.unwrap();
    assert_eq!(
        store.load_checkpoint(promoted.name()).await.unwrap(),
        Some(head),
        "the live checkpoint is the new model's"
    );
    assert_eq!(promoted.projection().rows(), rebuild(&store).await);
    assert_eq!(promoted.catch_up().await.unwrap().handled, 0, "nothing handled twice");
}

/// Records the order events arrive in, per stream, and how many handlers ran at once.
#[derive(Clone, Default)]
pub struct Ordered {
    seen: Arc<Mutex<Vec<(String, u64)>>>,
    running: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
    fail_at: Option<i64>,
}

#[projection(name = "ordered")]
impl Ordered {
    async fn on_deposited(
        &mut self,
        event: &Deposited,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.fail_at == Some(event.amount) {
            return Err(ProjectionError::new(format!("cannot take amount {}", event.amount)));
        }
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.seen.lock().unwrap().push((meta.stream_id.to_string(), meta.position.value()));
        self.running.fetch_sub(1, SeqCst);
        Ok(())
    }
}

async fn deposits_on_six_streams<S: EventStore>(store: &S) {
    for round in 0..5 {
        for stream in 0..6 {
            let first = round * 100 + stream * 10;
            deposit(store, &format!("account-{stream}"), first..first + 2).await;
        }
    }
}

/// With concurrency, streams are handled side by side, each in log order, each event once.
async fn concurrent_partitions_keep_each_stream_in_order<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposits_on_six_streams(&store).await;
    let model = Ordered::default();
    // Options set after the concurrency must not turn the runner sequential (they once did:
    // the partition count lived in the options).
    let mut runner = ProjectionRunner::new(model.clone(), store.clone())
        .with_concurrency(4)
        .with_options(RunnerOptions::default().batch_size(25));
    let done = runner.catch_up().await.unwrap();
    assert_eq!(done.handled, 60);
    assert_eq!(done.checkpoint, store.head_position().await.unwrap());
    let seen = model.seen.lock().unwrap().clone();
    let mut positions: Vec<u64> = seen.iter().map(|(_, position)| *position).collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), 60, "each event once");
    for stream in 0..6 {
        let name = format!("account-{stream}");
        let order: Vec<u64> =
            seen.iter().filter(|(s, _)| *s == name).map(|(_, position)| *position).collect();
        assert_eq!(order.len(), 10, "{name}: each of its 10 deposits handled once: {order:?}");
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{name} out of order: {order:?}");
    }
    let most = model.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=4).contains(&most), "ran {most} handlers at once");
}

/// One partition is the sequential runner: every event in log order, across streams too (a
/// partition per stream, run one after another, would handle one stream's events before the
/// next stream's).
async fn one_partition_handles_the_log_in_order<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposits_on_six_streams(&store).await;
    for partitions in [1, 0] {
        let model = Ordered::default();
        let done = ProjectionRunner::new(model.clone(), VolatileCheckpoints::new(store.clone()))
            .with_options(RunnerOptions::default().batch_size(25))
            .with_concurrency(partitions)
            .catch_up()
            .await
            .unwrap();
        assert_eq!(done.handled, 60);
        let positions: Vec<u64> =
            model.seen.lock().unwrap().iter().map(|(_, position)| *position).collect();
        assert_eq!(positions.len(), 60, "{partitions}: each event once");
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "{partitions}: not in log order: {positions:?}"
        );
    }
}

/// A partition that fails stops the runner with the checkpoint before its event; a restart
/// handles everything from there (other partitions' later events come again: at least once).
async fn a_failing_partition_stops_before_its_event<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposits_on_six_streams(&store).await;
    let failing = Ordered { fail_at: Some(221), ..Ordered::default() };
    let options = RunnerOptions::default().batch_size(25).retries(2, Duration::from_millis(1));
    let mut runner = ProjectionRunner::new(failing.clone(), store.clone())
        .with_options(options.clone())
        .with_concurrency(3);
    let stopped = runner.catch_up().await;
    let Err(RunnerError::Handler { position, .. }) = stopped else {
        panic!("expected the handler's failure: {stopped:?}")
    };
    let checkpoint = store
        .load_checkpoint(&es_core::ProjectionName::new("ordered").unwrap())
        .await
        .unwrap()
        .unwrap_or_default();
    // Every partition but the failing one ran to its end, and the failing one up to its event:
    // everything the projection reads before that event was handled, so the checkpoint is the
    // last of those.
    let types = <Ordered as es_core::projection::Projection>::event_types();
    let read = es_core::ReadAllOptions::from_beginning().event_types(types);
    let log: Vec<es_core::RecordedEvent> =
        futures_util::TryStreamExt::try_collect(store.read_all(read)).await.unwrap();
    let before = log.iter().map(|event| event.position).filter(|p| *p < position).max();
    assert_eq!(Some(checkpoint), before, "the checkpoint is the last position before {position}");
    let fixed = Ordered::default();
    ProjectionRunner::new(fixed.clone(), store.clone())
        .with_options(options)
        .with_concurrency(3)
        .catch_up()
        .await
        .unwrap();
    let mut all: Vec<u64> = failing.seen.lock().unwrap().iter().map(|(_, p)| *p).collect();
    all.extend(fixed.seen.lock().unwrap().iter().map(|(_, p)| *p));
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 60, "every event handled at least once across the two runs");
    assert!(fixed.seen.lock().unwrap().iter().all(|(_, p)| *p > checkpoint.value()));
}

/// Fails while `broken` is set.
#[derive(Clone, Default)]
pub struct Flaky {
    broken: Arc<std::sync::atomic::AtomicBool>,
    handled: Arc<Mutex<u64>>,
}

#[projection(name = "flaky")]
impl Flaky {
    async fn on_deposited(&mut self, _: &Deposited) -> Result<(), ProjectionError> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ProjectionError::new("the read model's database is down"));
        }
        *self.handled.lock().unwrap() += 1;
        Ok(())
    }
}

/// `follow` outlives a failing pass: it reports it, waits, and catches up once the cause is gone.
async fn follow_keeps_going_after_a_failing_pass<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..6).await;
    let model = Flaky::default();
    model.broken.store(true, std::sync::atomic::Ordering::SeqCst);
    let passes = Arc::new(Mutex::new(Vec::<Result<Position, String>>::new()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let (model, store, passes) = (model.clone(), store.clone(), passes.clone());
        tokio::spawn(async move {
            let mut runner = ProjectionRunner::new(model, store).with_options(
                options().retries(1, Duration::from_millis(5)).idle_wait(Duration::from_millis(20)),
            );
            runner
                .follow(
                    async {
                        let _ = stopped.await;
                    },
                    |pass| {
                        let seen =
                            pass.as_ref().map(|done| done.checkpoint).map_err(ToString::to_string);
                        passes.lock().unwrap().push(seen);
                    },
                )
                .await;
        })
    };
    wait_until("a failing pass is reported", || passes.lock().unwrap().iter().any(Result::is_err))
        .await;
    model.broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let head = store.head_position().await.unwrap();
    wait_until("the runner catches up after the failure", || {
        passes.lock().unwrap().last().is_some_and(|last| last.as_ref().is_ok_and(|p| *p == head))
    })
    .await;
    assert_eq!(*model.handled.lock().unwrap(), 5);
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// `follow_exclusive` keeps the lock through failing passes (a standby never runs meanwhile),
/// catches up once the cause is gone, and hands over when it dies.
async fn follow_exclusive_keeps_the_lock_through_failures<
    S: EventStore + CheckpointStore + DeadLetterStore + ProjectionLocks,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..6).await;
    let owner_model = Flaky::default();
    owner_model.broken.store(true, std::sync::atomic::Ordering::SeqCst);
    let failures = Arc::new(Mutex::new(0_u32));
    let owner = {
        let (model, store, failures) = (owner_model.clone(), store.clone(), failures.clone());
        tokio::spawn(async move {
            let locks = store.clone();
            ProjectionRunner::new(model, store)
                .with_options(
                    options()
                        .retries(1, Duration::from_millis(5))
                        .idle_wait(Duration::from_millis(20)),
                )
                .follow_exclusive(&locks, std::future::pending(), |pass| {
                    if pass.is_err() {
                        *failures.lock().unwrap() += 1;
                    }
                })
                .await;
        })
    };
    wait_until("two failing passes are reported", || *failures.lock().unwrap() >= 2).await;
    let standby_model = Flaky::default();
    let standby = {
        let (model, store) = (standby_model.clone(), store.clone());
        tokio::spawn(async move {
            let locks = store.clone();
            ProjectionRunner::new(model, store)
                .with_options(options().idle_wait(Duration::from_millis(20)))
                .run_exclusive(&locks, std::future::pending())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*standby_model.handled.lock().unwrap(), 0, "the failing owner keeps its lock");
    owner_model.broken.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_until("the owner catches up after the failures", || {
        *owner_model.handled.lock().unwrap() == 5
    })
    .await;
    // Handled is not yet saved: wait for the checkpoint, or the standby would rightly get the
    // owner's last batch again (at least once) and count it twice.
    let head = store.head_position().await.unwrap();
    let flaky = es_core::ProjectionName::new("flaky").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.load_checkpoint(&flaky).await.unwrap() != Some(head) {
        assert!(tokio::time::Instant::now() < deadline, "the owner never saved its checkpoint");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    owner.abort();
    let _ = owner.await;
    deposit(&store, "account-2", 6..8).await;
    wait_until("the standby took over from the owner's checkpoint", || {
        *standby_model.handled.lock().unwrap() == 2
    })
    .await;
    assert_eq!(*owner_model.handled.lock().unwrap(), 5, "the dead owner handled nothing more");
    standby.abort();
}

/// `VolatileCheckpoints` is the store it wraps for everything but checkpoints: tenant, appends,
/// reads, versions, head, waiting, idempotency records, fingerprints and dead letters answer as the
/// store does.
async fn volatile_checkpoints_answer_as_the_store_they_wrap<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    use futures_util::TryStreamExt;
    let volatile = VolatileCheckpoints::new(store.clone());
    assert_eq!(volatile.tenant(), store.tenant());
    let stream = StreamId::new("account-9").unwrap();
    let key = es_core::IdempotencyKey::new("deposit-9").unwrap();
    let events = (0..3).map(|_| Deposited { amount: 9 }.to_event_data().unwrap()).collect();
    let appended = volatile
        .append(
            &stream,
            ExpectedVersion::NoStream,
            events,
            AppendOptions::default().idempotency_key(key.clone()),
        )
        .await
        .unwrap();
    assert_eq!((appended.first_version, appended.last_version), (1, 3));
    assert_eq!(volatile.stream_version(&stream).await.unwrap(), 3);
    assert_eq!(store.stream_version(&stream).await.unwrap(), 3, "written to the wrapped store");
    let head = store.head_position().await.unwrap();
    assert_eq!(volatile.head_position().await.unwrap(), head);
    assert_eq!(head, appended.last_position);
    assert_eq!(
        volatile.wait_for_events(Position::BEGINNING, Duration::from_secs(5)).await.unwrap(),
        head
    );
    let record = volatile.idempotency_record(&key).await.unwrap().expect("the key's record");
    assert_eq!(record.result, appended);
    let mine = store.idempotency_record(&key).await.unwrap().expect("the key's record");
    assert_eq!(record.fingerprint, mine.fingerprint);
    assert!(volatile.fingerprint_matches(&record, &mine.fingerprint).await.unwrap());
    let other = es_core::Fingerprint([7; 32]);
    assert!(
        !volatile.fingerprint_matches(&record, &other).await.unwrap(),
        "another request's fingerprint does not match"
    );
    let read: Vec<RecordedEvent> = volatile
        .read_stream(&stream, es_core::ReadStreamOptions::forward())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.len(), 3);
    let replayed = volatile.replay_stream(&stream, 2).try_concat().await.unwrap();
    assert_eq!(replayed.iter().map(|event| event.stream_version).collect::<Vec<_>>(), [2, 3]);
    let all: Vec<RecordedEvent> =
        volatile.read_all(es_core::ReadAllOptions::from_beginning()).try_collect().await.unwrap();
    let log =
        volatile.replay_all(es_core::ReadAllOptions::from_beginning()).try_concat().await.unwrap();
    assert_eq!(
        all.iter().map(|event| event.position).collect::<Vec<_>>(),
        log.iter().map(|event| event.position).collect::<Vec<_>>()
    );
    assert_eq!(all.len(), 3);
    // Dead letters are the wrapped store's: parked, listed and unparked there.
    let projection = es_core::ProjectionName::new("volatile-dead-letters").unwrap();
    let parked = es_core::projection::ParkedEvent {
        projection: projection.clone(),
        position: all[0].position,
        event_type: all[0].event_type.clone(),
        error: "handler failed".into(),
        attempts: 3,
        parked_at: all[0].recorded_at,
    };
    volatile.park(parked.clone()).await.unwrap();
    assert_eq!(store.parked(&projection).await.unwrap(), vec![parked.clone()], "in the store");
    assert_eq!(volatile.parked(&projection).await.unwrap(), vec![parked]);
    volatile.unpark(&projection, all[0].position).await.unwrap();
    assert!(store.parked(&projection).await.unwrap().is_empty(), "unparked in the store");
    // Checkpoints are its own: a reset removes one and says where it was.
    volatile.save_checkpoint(&projection, None, head).await.unwrap();
    assert_eq!(volatile.reset_checkpoint(&projection).await.unwrap(), Some(head));
    assert_eq!(volatile.load_checkpoint(&projection).await.unwrap(), None);
    assert_eq!(volatile.reset_checkpoint(&projection).await.unwrap(), None, "nothing to reset");
    assert_eq!(store.load_checkpoint(&projection).await.unwrap(), None, "never in the store");
}

/// `VolatileCheckpoints` reports the tenant of the store it wraps (one other than the default,
/// which the cases on both backends use).
#[tokio::test]
async fn volatile_checkpoints_report_the_wrapped_tenant() {
    let acme = TenantId::new("acme").unwrap();
    let store = es_core::MultiTenantStore::tenant(&es_memory::MemoryStore::new(), acme.clone());
    assert_eq!(VolatileCheckpoints::new(store).tenant(), &acme);
}

// ---------------------------------------------------------------- payloads only

/// A read model whose handler takes only the event (no envelope): `#[projection]` declares
/// `Reads::Payload`, so the runner reads payloads only (`replay_all`). Amounts in the order
/// handled.
#[derive(Clone, Default)]
pub struct Amounts {
    seen: Arc<Mutex<Vec<i64>>>,
    fail_at: Option<i64>,
}

impl Amounts {
    fn seen(&self) -> Vec<i64> {
        self.seen.lock().unwrap().clone()
    }
}

#[projection(name = "amounts")]
impl Amounts {
    async fn on_deposited(&mut self, event: &Deposited) -> Result<(), ProjectionError> {
        if self.fail_at == Some(event.amount) {
            return Err(ProjectionError::new(format!("cannot store amount {}", event.amount)));
        }
        self.seen.lock().unwrap().push(event.amount);
        Ok(())
    }
}

/// A hand-written projection that declares `Reads::Payload` but leaves `handle_payload` to its
/// default.
pub struct Undelivered;

impl es_core::Projection for Undelivered {
    const NAME: &'static str = "undelivered";
    const EVENT_TYPES: &'static [&'static es_core::EventTypeInfo] =
        &[&<Deposited as es_core::EventVariant>::INFO];
    const READS: es_core::projection::Reads = es_core::projection::Reads::Payload;

    async fn handle(&mut self, _: &RecordedEvent) -> Result<(), ProjectionError> {
        Ok(())
    }
}

/// A store that counts which read of the global log a runner asks for, and may hand out
/// `replay_all`'s events in pages of its own size (the page size is a hint: a backend's pages
/// need not line up with the runner's batches).
#[derive(Clone)]
pub struct CountedReads<S> {
    inner: S,
    envelopes: Arc<std::sync::atomic::AtomicU64>,
    payloads: Arc<std::sync::atomic::AtomicU64>,
    page: Option<usize>,
    /// The timeout of every `wait_for_events` call, in order.
    waits: Arc<Mutex<Vec<Duration>>>,
}

impl<S> CountedReads<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            envelopes: Arc::default(),
            payloads: Arc::default(),
            page: None,
            waits: Arc::default(),
        }
    }

    /// `replay_all` in pages of `size` events.
    fn paged(inner: S, size: usize) -> Self {
        Self { page: Some(size), ..Self::new(inner) }
    }

    /// (`read_all` calls, `replay_all` calls) so far.
    fn reads(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.envelopes.load(SeqCst), self.payloads.load(SeqCst))
    }
}

impl<S: EventStore> EventStore for CountedReads<S> {
    fn tenant(&self) -> &TenantId {
        self.inner.tenant()
    }

    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<es_core::EventData>,
        options: AppendOptions,
    ) -> Result<es_core::AppendResult, es_core::StoreError> {
        self.inner.append(stream_id, expected, events, options).await
    }

    fn read_stream(
        &self,
        stream_id: &StreamId,
        options: es_core::ReadStreamOptions,
    ) -> es_core::EventStream {
        self.inner.read_stream(stream_id, options)
    }

    fn read_all(&self, options: es_core::ReadAllOptions) -> es_core::EventStream {
        self.envelopes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.read_all(options)
    }

    fn replay_all(&self, options: es_core::ReadAllOptions) -> es_core::LogEventStream {
        use futures_util::{StreamExt, TryStreamExt};
        self.payloads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pages = self.inner.replay_all(options);
        match self.page {
            None => pages,
            Some(size) => Box::pin(
                pages
                    .map_ok(|page| futures_util::stream::iter(page.into_iter().map(Ok)))
                    .try_flatten()
                    .chunks(size)
                    .map(|page| page.into_iter().collect()),
            ),
        }
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, es_core::StoreError> {
        self.inner.stream_version(stream_id).await
    }

    async fn head_position(&self) -> Result<Position, es_core::StoreError> {
        self.inner.head_position().await
    }

    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<Position, es_core::StoreError> {
        self.waits.lock().unwrap().push(timeout);
        self.inner.wait_for_events(after, timeout).await
    }

    async fn idempotency_record(
        &self,
        key: &es_core::IdempotencyKey,
    ) -> Result<Option<es_core::IdempotencyRecord>, es_core::StoreError> {
        self.inner.idempotency_record(key).await
    }

    async fn fingerprint_matches(
        &self,
        record: &es_core::IdempotencyRecord,
        fingerprint: &es_core::Fingerprint,
    ) -> Result<bool, es_core::StoreError> {
        self.inner.fingerprint_matches(record, fingerprint).await
    }
}

impl<S: DeadLetterStore> DeadLetterStore for CountedReads<S> {
    async fn park(
        &self,
        parked: es_core::projection::ParkedEvent,
    ) -> Result<(), es_core::StoreError> {
        self.inner.park(parked).await
    }

    async fn parked(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<Vec<es_core::projection::ParkedEvent>, es_core::StoreError> {
        self.inner.parked(projection).await
    }

    async fn unpark(
        &self,
        projection: &es_core::ProjectionName,
        position: Position,
    ) -> Result<(), es_core::StoreError> {
        self.inner.unpark(projection, position).await
    }
}

/// A projection whose handlers take only the event is fed payloads (`replay_all`, never
/// `read_all`), in log order, and fails like any other: under `Stop` the checkpoint stays right
/// before the failing event; under `Park` the event is parked (its position and type) and the rest
/// handled. Envelope projections, and payload projections partitioned by stream (which needs the
/// stream id), read envelopes. A hand-written projection that declares payloads without
/// `handle_payload` fails with an error that says so, never skipping an event.
async fn projections_of_payloads_read_payloads_only<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
) {
    deposit(&store, "account-1", 1..4).await;
    deposit(&store, "account-2", 4..7).await;
    let deposits: Vec<(u64, i64)> = deposits_in_log(&store).await.into_iter().collect();
    let counted = CountedReads::new(store.clone());
    let reads = VolatileCheckpoints::new(counted.clone());

    let stopping = Amounts { fail_at: Some(4), ..Amounts::default() };
    let mut runner = ProjectionRunner::new(stopping.clone(), reads.clone()).with_options(options());
    let failed = runner.catch_up().await;
    let at_four = Position::new(deposits[3].0);
    assert!(
        matches!(&failed, Err(RunnerError::Handler { attempts: 2, position, .. }) if *position == at_four),
        "{failed:?}"
    );
    assert_eq!(stopping.seen(), [1, 2, 3]);
    let name = es_core::ProjectionName::new("amounts").unwrap();
    assert_eq!(
        reads.load_checkpoint(&name).await.unwrap(),
        Some(Position::new(deposits[2].0)),
        "the checkpoint stays right before the failing event"
    );
    assert_eq!(counted.reads(), (0, 1), "payloads only, one read for the pass");

    let parking = Amounts { fail_at: Some(4), ..Amounts::default() };
    let renamed = es_core::ProjectionName::new("amounts-parking").unwrap();
    let done = ProjectionRunner::new(parking.clone(), reads.clone())
        .with_name(renamed.clone())
        .with_options(options().on_failure(OnFailure::Park))
        .catch_up()
        .await
        .unwrap();
    assert_eq!((done.handled, parking.seen()), (6, vec![1, 2, 3, 5, 6]));
    let parked = reads.parked(&renamed).await.unwrap();
    assert_eq!(
        parked.iter().map(|p| (p.position, p.event_type.as_str())).collect::<Vec<_>>(),
        [(at_four, "account.deposited")]
    );
    assert_eq!(counted.reads(), (0, 2));

    // Batches cut across pages (a page holds four batches): every event once, in order.
    let small = Amounts::default();
    let done = ProjectionRunner::new(small.clone(), VolatileCheckpoints::new(counted.clone()))
        .with_options(RunnerOptions::default().batch_size(1))
        .catch_up()
        .await
        .unwrap();
    assert_eq!((done.handled, small.seen()), (6, vec![1, 2, 3, 4, 5, 6]));
    assert_eq!(counted.reads(), (0, 3));

    // Pages that do not line up with batches (pages of 3, batches of 2): still batches of
    // exactly 2, so the checkpoint is saved after every second deposit.
    let repaged = VolatileCheckpoints::new(CountedReads::paged(store.clone(), 3));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watched = repaged.clone();
    let stored: StoredCheckpoint = Arc::new(move || {
        let store = watched.clone();
        Box::pin(async move {
            let name = es_core::ProjectionName::new("checkpoint-watch").unwrap();
            store.load_checkpoint(&name).await.unwrap()
        })
    });
    let watch = CheckpointWatch { stored, seen: seen.clone() };
    ProjectionRunner::new(watch, repaged)
        .with_options(RunnerOptions::default().batch_size(2))
        .catch_up()
        .await
        .unwrap();
    let at = |i: usize| Some(Position::new(deposits[i].0));
    assert_eq!(*seen.lock().unwrap(), [None, None, at(1), at(1), at(3), at(3)]);

    // One partition is log order: payloads.
    let one = Amounts::default();
    ProjectionRunner::new(one.clone(), VolatileCheckpoints::new(counted.clone()))
        .with_concurrency(1)
        .catch_up()
        .await
        .unwrap();
    assert_eq!(one.seen(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(counted.reads(), (0, 4));

    // The whole envelope where one is needed: a handler that takes it, or partitions by stream.
    ProjectionRunner::new(Deposits::default(), reads.clone()).catch_up().await.unwrap();
    assert_eq!(counted.reads(), (1, 4));
    let partitioned = Amounts::default();
    ProjectionRunner::new(partitioned.clone(), VolatileCheckpoints::new(counted.clone()))
        .with_concurrency(2)
        .catch_up()
        .await
        .unwrap();
    assert_eq!(counted.reads(), (2, 4));
    let mut seen = partitioned.seen();
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);

    let failed =
        ProjectionRunner::new(Undelivered, reads.clone()).with_options(options()).catch_up().await;
    assert!(
        matches!(&failed, Err(RunnerError::Handler { source, .. }) if source.to_string().contains("handle_payload")),
        "{failed:?}"
    );
}

// ---------------------------------------------------------------- backends

/// A store on a fresh schema (dropped when the fixture goes, even on panic), polling every 100 ms.
async fn postgres() -> es_postgres::testing::FreshSchema {
    es_postgres::testing::FreshSchema::with(|options| {
        options.poll_interval(Duration::from_millis(100))
    })
    .await
}

tests::on_both_backends!(
    tenant: TenantId::default(), postgres: super::postgres;
    catches_up_and_follows,
    resumes_from_its_checkpoint,
    saves_its_checkpoint_after_each_batch_of_batch_size,
    killed_mid_run_converges_to_a_rebuild,
    a_stale_worker_cannot_move_the_checkpoint,
    a_failing_handler_stops_before_the_event,
    a_panicking_handler_is_a_failure_not_a_dead_runner,
    live_mode_wakes_on_appends,
    live_mode_waits_as_long_as_its_options_say,
    run_until_ends_with_the_first_failure,
    one_owner_at_a_time_and_takeover,
    a_runner_that_gets_the_lock_starts_from_the_stored_checkpoint,
    a_failed_lock_request_ends_run_exclusive_and_follow_exclusive_asks_again,
    failing_events_are_parked_and_replayed,
    one_parked_event_is_replayed_alone,
    volatile_checkpoints_answer_as_the_store_they_wrap,
    a_rebuild_beside_the_live_model_takes_over,
    a_promotion_moves_a_live_checkpoint_that_is_behind,
    concurrent_partitions_keep_each_stream_in_order,
    one_partition_handles_the_log_in_order,
    a_failing_partition_stops_before_its_event,
    follow_keeps_going_after_a_failing_pass,
    follow_exclusive_keeps_the_lock_through_failures,
    projections_of_payloads_read_payloads_only,
);
