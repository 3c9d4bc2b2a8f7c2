//! The command pipeline on both backends: domain errors, concurrency, idempotent retries, metadata,
//! snapshots that are used when valid and ignored when not, and snapshot + tail = full replay.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;

use es_core::repository::{CommandOptions, Repository, RepositoryError, RepositoryOptions};
use es_core::snapshot::{Snapshot, SnapshotRejection, SnapshotStore, SnapshotVerdict};
use es_core::{
    Aggregate, Apply, Event, EventStore, IdempotencyKey, MultiTenantStore, Payload,
    ReadStreamOptions, StreamId, TenantId, commands,
};
use futures_util::TryStreamExt;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "account.deposited")]
pub struct Deposited {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "account.withdrawn")]
pub struct Withdrawn {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Event)]
pub enum AccountEvent {
    Deposited(Deposited),
    Withdrawn(Withdrawn),
}

#[derive(Debug, PartialEq, Eq)]
pub enum AccountError {
    InsufficientFunds { balance: i64, asked: i64 },
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Aggregate)]
#[aggregate(name = "account", event = AccountEvent, error = AccountError, snapshot(every = 5, version = 1))]
pub struct Account {
    balance: i64,
    operations: u64,
}

#[derive(Clone, Debug, Hash)]
pub struct Deposit(pub i64);
#[derive(Clone, Debug, Hash)]
pub struct Withdraw(pub i64);
/// Deposits what the balance lacks to reach the amount; nothing when it is there already.
#[derive(Clone, Debug, Hash)]
pub struct TopUp(pub i64);

#[commands]
impl Account {
    /// Deposits.
    ///
    /// # Panics
    /// On a deposit of `i64::MIN`: a domain bug on demand, a decision that panics (commands
    /// decided together must not take the others down with it).
    pub fn deposit(&self, command: Deposit) -> Result<Deposited, AccountError> {
        assert!(command.0 != i64::MIN, "the domain panics on this deposit");
        Ok(Deposited { amount: command.0 })
    }

    pub fn withdraw(&self, command: Withdraw) -> Result<Withdrawn, AccountError> {
        if command.0 > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                asked: command.0,
            });
        }
        Ok(Withdrawn { amount: command.0 })
    }

    pub fn top_up(&self, command: TopUp) -> Result<Option<Deposited>, AccountError> {
        Ok((self.balance < command.0).then(|| Deposited { amount: command.0 - self.balance }))
    }
}

impl Apply<AccountEvent> for Account {
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited(deposited) => self.balance += deposited.amount,
            AccountEvent::Withdrawn(withdrawn) => self.balance -= withdrawn.amount,
        }
        self.operations += 1;
    }
}

fn account(id: &str) -> StreamId {
    StreamId::in_category(Account::NAME, id).unwrap()
}

/// The state from every event, no snapshot.
async fn full_replay<S: EventStore>(store: &S, stream: &StreamId) -> (Account, u64) {
    let events: Vec<_> =
        store.read_stream(stream, ReadStreamOptions::forward()).try_collect().await.unwrap();
    let mut state = Account::default();
    for recorded in &events {
        state.evolve(&AccountEvent::decode(recorded).unwrap());
    }
    (state, events.last().map_or(0, |event| event.stream_version))
}

/// Waits (up to 30 s: a loaded CI machine can be slow) for the background snapshot write of a
/// command.
async fn snapshot_at<S: SnapshotStore>(store: &S, stream: &StreamId, version: u64) -> Snapshot {
    for _ in 0..6_000 {
        if let Some(snapshot) = store.load_snapshot(stream).await.unwrap()
            && snapshot.version >= version
        {
            return snapshot;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("no snapshot at version {version} was written");
}

// ---------------------------------------------------------------- test bodies, for any backend

async fn domain_error_comes_back_and_appends_nothing<S: EventStore + SnapshotStore>(store: S) {
    let accounts = Repository::<Account, _>::new(store.clone());
    let id = account("a");
    accounts.execute(&id, Deposit(10), CommandOptions::default()).await.unwrap();
    let refused = accounts.execute(&id, Withdraw(11), CommandOptions::default()).await;
    assert!(
        matches!(
            refused,
            Err(RepositoryError::Domain(AccountError::InsufficientFunds {
                balance: 10,
                asked: 11
            }))
        ),
        "{refused:?}"
    );
    assert_eq!(store.stream_version(&id).await.unwrap(), 1, "a refused command appends nothing");
}

async fn concurrent_commands_apply_exactly_once<S: EventStore + SnapshotStore>(store: S) {
    // Racing (turns off: conflicts and retries), then taking turns (the default): 64 concurrent
    // commands on one aggregate with the default 8 attempts, none of them retried.
    for (take_turns, tasks, attempts) in [(false, 16_i64, 100), (true, 64, 8)] {
        let accounts = Repository::<Account, _>::new(store.clone())
            .with_snapshots(store.clone())
            .with_cache(16)
            .with_options(
                RepositoryOptions::default().max_attempts(attempts).take_turns(take_turns),
            );
        let id = account(&format!("busy-{take_turns}"));
        let mut running = tokio::task::JoinSet::new();
        for task in 1..=tasks {
            let (accounts, id) = (accounts.clone(), id.clone());
            running.spawn(async move {
                accounts.execute(&id, Deposit(task), CommandOptions::default()).await.unwrap()
            });
        }
        let mut versions = Vec::new();
        while let Some(outcome) = running.join_next().await {
            let outcome = outcome.unwrap();
            if take_turns {
                assert_eq!(outcome.attempts, 1, "commands taking turns never conflict");
            }
            versions.push(outcome.version);
        }
        versions.sort_unstable();
        assert_eq!(
            versions,
            (1..=tasks.unsigned_abs()).collect::<Vec<_>>(),
            "each command lands once, at its own version"
        );
        let loaded = accounts.load(&id).await.unwrap();
        assert_eq!(loaded.state.balance, (1..=tasks).sum::<i64>());
        assert_eq!(loaded.state, full_replay(&store, &id).await.0);
    }
}

/// Another process appends `event` to the stream at `version`, behind this process's cache.
async fn append_behind<S: EventStore>(store: &S, id: &StreamId, version: u64, event: AccountEvent) {
    let event = event.to_event_data().unwrap();
    let expected = es_core::ExpectedVersion::Exact(version);
    store.append(id, expected, vec![event], es_core::AppendOptions::default()).await.unwrap();
}

/// A cached state made stale by another writer costs one conflict and a reload, never a wrong
/// decision.
async fn stale_cache_entries_cost_a_reload_not_a_wrong_state<S: EventStore + SnapshotStore>(
    store: S,
) {
    let accounts = Repository::<Account, _>::new(store.clone()).with_cache(8);
    let id = account("cached");
    accounts.execute(&id, Deposit(10), CommandOptions::default()).await.unwrap();
    // Another process withdraws behind the cache's back.
    append_behind(&store, &id, 1, AccountEvent::Withdrawn(Withdrawn { amount: 10 })).await;
    // The cache still says balance 10 at version 1: the withdrawal conflicts, reloads, and is refused.
    let refused = accounts.execute(&id, Withdraw(5), CommandOptions::default()).await;
    assert!(
        matches!(
            refused,
            Err(RepositoryError::Domain(AccountError::InsufficientFunds { balance: 0, asked: 5 }))
        ),
        "{refused:?}"
    );
    let outcome = accounts.execute(&id, Deposit(3), CommandOptions::default()).await.unwrap();
    assert_eq!(
        (outcome.version, outcome.attempts),
        (3, 1),
        "the refused command left a fresh state in the cache"
    );
    assert_eq!(full_replay(&store, &id).await.0.balance, 3);
}

/// A cached state made stale by another writer never answers "nothing to do" for a command the
/// current state needs events for: a no-op appends nothing either, so the version is checked.
async fn stale_cache_entries_never_skip_a_needed_change<S: EventStore + SnapshotStore>(store: S) {
    let accounts = Repository::<Account, _>::new(store.clone()).with_cache(8);
    let id = account("stale-no-op");
    accounts.execute(&id, Deposit(100), CommandOptions::default()).await.unwrap();
    let nothing = accounts.execute(&id, TopUp(100), CommandOptions::default()).await.unwrap();
    assert_eq!((nothing.version, nothing.appended), (1, None), "already topped up");
    // Another process withdraws behind the cache's back; the cache says balance 100 at version 1.
    append_behind(&store, &id, 1, AccountEvent::Withdrawn(Withdrawn { amount: 70 })).await;
    let outcome = accounts.execute(&id, TopUp(100), CommandOptions::default()).await.unwrap();
    assert_eq!(outcome.version, 3, "decided on the current state: {outcome:?}");
    assert_eq!(full_replay(&store, &id).await.0.balance, 100);
}

/// A cached state made stale by another writer never refuses a command the current state allows:
/// a refusal appends nothing, so no version conflict would catch it; the stream's version is
/// checked instead.
async fn stale_cache_entries_never_refuse_wrongly<S: EventStore + SnapshotStore>(store: S) {
    let accounts = Repository::<Account, _>::new(store.clone()).with_cache(8);
    let id = account("stale-refusal");
    accounts.execute(&id, Deposit(10), CommandOptions::default()).await.unwrap();
    accounts.execute(&id, Withdraw(10), CommandOptions::default()).await.unwrap();
    // Another process deposits behind the cache's back; the cache says balance 0 at version 2.
    append_behind(&store, &id, 2, AccountEvent::Deposited(Deposited { amount: 50 })).await;
    let outcome = accounts.execute(&id, Withdraw(20), CommandOptions::default()).await;
    assert!(matches!(outcome, Ok(ref done) if done.version == 4), "{outcome:?}");
    assert_eq!(full_replay(&store, &id).await.0.balance, 30);
}

async fn retried_command_with_the_same_key_appends_nothing<S: EventStore + SnapshotStore>(
    store: S,
) {
    let accounts = Repository::<Account, _>::new(store.clone());
    let id = account("k");
    let key = IdempotencyKey::new("deposit-request-1").unwrap();
    let first = accounts
        .execute(&id, Deposit(7), CommandOptions::default().idempotency_key(key.clone()))
        .await
        .unwrap();
    assert!(!first.replayed);
    accounts.execute(&id, Deposit(1), CommandOptions::default()).await.unwrap();
    let retry = accounts
        .execute(&id, Deposit(7), CommandOptions::default().idempotency_key(key))
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.appended, first.appended);
    assert_eq!(store.stream_version(&id).await.unwrap(), 2, "the retry appends nothing");
    assert_eq!(accounts.load(&id).await.unwrap().state.balance, 8);
}

/// A command key first used on another stream is a conflict naming the store's tenant.
async fn a_key_used_on_another_stream_is_a_conflict<S: EventStore + SnapshotStore>(store: S) {
    let accounts = Repository::<Account, _>::new(store.clone());
    let key = IdempotencyKey::new("request-9").unwrap();
    accounts
        .execute(
            &account("one"),
            Deposit(1),
            CommandOptions::default().idempotency_key(key.clone()),
        )
        .await
        .unwrap();
    let refused = accounts
        .execute(&account("two"), Deposit(1), CommandOptions::default().idempotency_key(key))
        .await;
    match refused {
        Err(RepositoryError::Store(es_core::StoreError::IdempotencyConflict {
            tenant,
            original_stream_id,
            ..
        })) => {
            assert_eq!(&tenant, store.tenant());
            assert_eq!(original_stream_id, account("one"));
        }
        other => panic!("expected an idempotency conflict, got {other:?}"),
    }
    assert_eq!(store.stream_version(&account("two")).await.unwrap(), 0);
}

async fn correlation_and_causation_flow_into_events<S: EventStore + SnapshotStore>(store: S) {
    let accounts = Repository::<Account, _>::new(store.clone());
    let id = account("m");
    let (correlation, causation) = (Uuid::now_v7(), Uuid::now_v7());
    let options = CommandOptions::default()
        .correlation_id(correlation)
        .causation_id(causation)
        .actor("teller-3");
    accounts.execute(&id, Deposit(5), options).await.unwrap();
    let events: Vec<_> =
        store.read_stream(&id, ReadStreamOptions::forward()).try_collect().await.unwrap();
    assert_eq!(events[0].metadata.correlation_id, Some(correlation));
    assert_eq!(events[0].metadata.causation_id, Some(causation));
    assert_eq!(events[0].metadata.actor.as_deref(), Some("teller-3"));
}

async fn snapshots_are_written_and_used<S: EventStore + SnapshotStore>(store: S) {
    let accounts = Repository::<Account, _>::new(store.clone()).with_snapshots(store.clone());
    let id = account("s");
    for amount in 1..=12 {
        accounts.execute(&id, Deposit(amount), CommandOptions::default()).await.unwrap();
    }
    accounts.flush_snapshots().await;
    let snapshot = store.load_snapshot(&id).await.unwrap().expect("a snapshot after flushing");
    assert_eq!(snapshot.version, 10, "snapshots every 5 events: the last one at version 10");
    assert!(snapshot.is_intact());
    let loaded = accounts.load(&id).await.unwrap();
    assert_eq!(loaded.from_snapshot, Some(10));
    assert_eq!((loaded.state.clone(), loaded.version), full_replay(&store, &id).await);
}

/// Damaged snapshots (a flipped byte, another schema version, a state that no longer
/// deserializes, another aggregate's) are ignored: the load replays from events.
/// Each one is counted once by `es_snapshots_rejected_total`, under its reason.
async fn untrustworthy_snapshots_fall_back_to_replay<S: EventStore + SnapshotStore>(
    store: S,
    put: impl Fn(Snapshot) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    counters: Counters,
) {
    let accounts = Repository::<Account, _>::new(store.clone()).with_snapshots(store.clone());
    let id = account("c");
    for amount in 1..=6 {
        accounts.execute(&id, Deposit(amount), CommandOptions::default()).await.unwrap();
    }
    let good = snapshot_at(&store, &id, 5).await;
    let expected = full_replay(&store, &id).await;

    let damaged = damaged_snapshots(&good, &id);
    let trusted = accounts.verify_snapshot(&id).await.unwrap();
    assert_eq!(trusted, SnapshotVerdict::Trusted { version: good.version });
    for (what, reason, snapshot) in damaged {
        put(snapshot).await;
        assert!(
            matches!(
                accounts.verify_snapshot(&id).await.unwrap(),
                SnapshotVerdict::Rejected { reason: found, .. } if found == reason
            ),
            "{what}: verification must reject the snapshot because of {reason:?}"
        );
        let (before, all_before) = (counters.rejected(reason), counters.rejected_total());
        let loaded = accounts.load(&id).await.unwrap();
        assert_eq!(
            (counters.rejected(reason), counters.rejected_total()),
            (before + 1, all_before + 1),
            "{what}: one rejection counted, under {reason:?}"
        );
        assert_eq!(loaded.from_snapshot, None, "{what}: the snapshot must be ignored");
        assert_eq!(
            (loaded.state, loaded.version),
            expected,
            "{what}: the state must come from the events"
        );
    }
}

/// Snapshots that must not be used in place of `good` (of stream `id`), each with what is wrong
/// and the reason it must be rejected for.
fn damaged_snapshots(
    good: &Snapshot,
    id: &StreamId,
) -> Vec<(&'static str, SnapshotRejection, Snapshot)> {
    let mut flipped = good.state.as_bytes().to_vec();
    flipped[3] ^= 0x01;
    let wrong_state = Payload::from_value(&serde_json::json!({ "balance": "lots" })).unwrap();
    vec![
        (
            "flipped byte",
            SnapshotRejection::Checksum,
            Snapshot { state: Payload::from_stored(flipped), ..good.clone() },
        ),
        (
            "old schema version",
            SnapshotRejection::SchemaVersion,
            Snapshot::new(
                Account::NAME,
                id.clone(),
                good.version,
                good.event_id,
                99,
                good.state.clone(),
            ),
        ),
        (
            "state no longer deserializes",
            SnapshotRejection::Deserialize,
            Snapshot::new(Account::NAME, id.clone(), good.version, good.event_id, 1, wrong_state),
        ),
        (
            "another aggregate",
            SnapshotRejection::Aggregate,
            Snapshot::new("ledger", id.clone(), good.version, good.event_id, 1, good.state.clone()),
        ),
        // Valid checksums, but not of this stream's history (a snapshots table restored from
        // another point in time than the events):
        (
            "beyond the stream's head",
            SnapshotRejection::StreamMismatch,
            Snapshot::new(Account::NAME, id.clone(), 100, good.event_id, 1, good.state.clone()),
        ),
        (
            "labelled one version later than the state it holds",
            SnapshotRejection::StreamMismatch,
            Snapshot::new(
                Account::NAME,
                id.clone(),
                good.version + 1,
                good.event_id,
                1,
                good.state.clone(),
            ),
        ),
        (
            "taken at another event of that version",
            SnapshotRejection::StreamMismatch,
            Snapshot::new(
                Account::NAME,
                id.clone(),
                good.version,
                es_core::EventId::new(),
                1,
                good.state.clone(),
            ),
        ),
        (
            "lying state",
            SnapshotRejection::Checksum,
            Snapshot {
                state: Payload::from_value(&Account { balance: 1_000_000, operations: 5 }).unwrap(),
                ..good.clone()
            },
        ),
    ]
}

// ---------------------------------------------------------------- commands decided together

/// A store whose appends wait while its gate is shut; it counts the appends that reached it and
/// those waiting, and can refuse the next ones with a version conflict (as if another process
/// had appended first).
#[derive(Clone)]
struct Gated<S> {
    inner: S,
    open: Arc<tokio::sync::watch::Sender<bool>>,
    waiting: Arc<AtomicUsize>,
    appends: Arc<AtomicUsize>,
    conflicts: Arc<AtomicUsize>,
    /// Events another process appends to the stream right after the next append succeeds.
    behind: Arc<std::sync::Mutex<Vec<es_core::EventData>>>,
    /// Calls of `replay_stream` (loads) and of `stream_version`.
    replays: Arc<AtomicUsize>,
    versions: Arc<AtomicUsize>,
}

impl<S: EventStore> Gated<S> {
    fn shut(inner: S) -> Self {
        Self {
            inner,
            open: Arc::new(tokio::sync::watch::Sender::new(false)),
            waiting: Arc::default(),
            appends: Arc::default(),
            conflicts: Arc::default(),
            behind: Arc::default(),
            replays: Arc::default(),
            versions: Arc::default(),
        }
    }

    fn opened(inner: S) -> Self {
        let gated = Self::shut(inner);
        gated.open();
        gated
    }

    fn open(&self) {
        self.open.send_replace(true);
    }
}

impl<S: EventStore> EventStore for Gated<S> {
    fn tenant(&self) -> &TenantId {
        self.inner.tenant()
    }

    async fn append(
        &self,
        stream_id: &StreamId,
        expected: es_core::ExpectedVersion,
        events: Vec<es_core::EventData>,
        options: es_core::AppendOptions,
    ) -> Result<es_core::AppendResult, es_core::StoreError> {
        self.waiting.fetch_add(1, SeqCst);
        let mut open = self.open.subscribe();
        open.wait_for(|open| *open).await.expect("the gate outlives its store");
        self.waiting.fetch_sub(1, SeqCst);
        self.appends.fetch_add(1, SeqCst);
        let conflict = self.conflicts.fetch_update(SeqCst, SeqCst, |left| left.checked_sub(1));
        if conflict.is_ok() {
            return Err(es_core::StoreError::VersionConflict {
                tenant: self.tenant().clone(),
                stream_id: stream_id.clone(),
                expected,
                actual: self.inner.stream_version(stream_id).await?,
            });
        }
        let appended = self.inner.append(stream_id, expected, events, options).await?;
        let behind = std::mem::take(&mut *self.behind.lock().unwrap());
        if !behind.is_empty() {
            let any = es_core::ExpectedVersion::Any;
            self.inner.append(stream_id, any, behind, es_core::AppendOptions::default()).await?;
        }
        Ok(appended)
    }

    fn read_stream(
        &self,
        stream_id: &StreamId,
        options: ReadStreamOptions,
    ) -> es_core::EventStream {
        self.inner.read_stream(stream_id, options)
    }

    fn replay_stream(&self, stream_id: &StreamId, from_version: u64) -> es_core::ReplayStream {
        self.replays.fetch_add(1, SeqCst);
        self.inner.replay_stream(stream_id, from_version)
    }

    fn read_all(&self, options: es_core::ReadAllOptions) -> es_core::EventStream {
        self.inner.read_all(options)
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, es_core::StoreError> {
        self.versions.fetch_add(1, SeqCst);
        self.inner.stream_version(stream_id).await
    }

    async fn head_position(&self) -> Result<es_core::Position, es_core::StoreError> {
        self.inner.head_position().await
    }

    async fn wait_for_events(
        &self,
        after: es_core::Position,
        timeout: std::time::Duration,
    ) -> Result<es_core::Position, es_core::StoreError> {
        self.inner.wait_for_events(after, timeout).await
    }

    async fn idempotency_record(
        &self,
        key: &IdempotencyKey,
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

/// Waits (up to 30 s) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

type Running = tokio::task::JoinHandle<
    Result<es_core::repository::CommandOutcome, RepositoryError<AccountError>>,
>;

/// Starts a deposit of `first` whose append waits at the shut gate, then queues `commands` one
/// at a time behind it (each queued before the next starts, so their order is known).
async fn queue_behind_a_held_command<S: EventStore>(
    accounts: &Repository<Account, Gated<S>>,
    id: &StreamId,
    first: i64,
    commands: Vec<AccountCommand>,
) -> (Running, Vec<Running>) {
    let gated = accounts.store().clone();
    let held = {
        let (accounts, id) = (accounts.clone(), id.clone());
        tokio::spawn(async move {
            accounts.execute(&id, Deposit(first), CommandOptions::default()).await
        })
    };
    until("the first command waits at the gate", || gated.waiting.load(SeqCst) == 1).await;
    let mut queued = Vec::new();
    for (index, command) in commands.into_iter().enumerate() {
        let (runner, stream) = (accounts.clone(), id.clone());
        queued.push(tokio::spawn(async move {
            runner.execute(&stream, command, CommandOptions::default()).await
        }));
        until("the command is queued", || accounts.queued_commands(id) == index + 1).await;
    }
    (held, queued)
}

/// Commands queued behind a running one are decided together, one after the other on one load,
/// and appended as one batch: each caller gets its own versions and its own domain error (a
/// refusal in the middle changes nothing for the others), the state is what they would have
/// made one by one.
async fn queued_commands_are_decided_together_each_with_its_own_outcome<
    S: EventStore + SnapshotStore,
>(
    store: S,
) {
    let gated = Gated::shut(store.clone());
    let accounts = Repository::<Account, _>::new(gated.clone()).with_cache(16);
    let id = account("together");
    let commands = vec![
        AccountCommand::from(Deposit(1)),
        AccountCommand::from(Withdraw(1_000)),
        AccountCommand::from(Deposit(2)),
        AccountCommand::from(Withdraw(50)),
    ];
    let (held, queued) = queue_behind_a_held_command(&accounts, &id, 100, commands).await;
    gated.open();
    let held = held.await.unwrap().unwrap();
    assert_eq!(held.version, 1);
    let mut outcomes = Vec::new();
    for running in queued {
        outcomes.push(running.await.unwrap());
    }
    let appended = |outcome: &Result<es_core::repository::CommandOutcome, _>| {
        let outcome = outcome.as_ref().expect("appended");
        let appended = outcome.appended.expect("events");
        assert_eq!(outcome.attempts, 1);
        assert_eq!(appended.last_version, outcome.version);
        (appended.first_version, appended.last_version, appended.last_position)
    };
    let (deposit_1, deposit_2, withdraw_50) =
        (appended(&outcomes[0]), appended(&outcomes[2]), appended(&outcomes[3]));
    assert_eq!((deposit_1.0, deposit_1.1), (2, 2));
    assert!(
        matches!(
            outcomes[1],
            Err(RepositoryError::Domain(AccountError::InsufficientFunds {
                balance: 101,
                asked: 1_000
            }))
        ),
        "refused on the state the deposit before it left: {:?}",
        outcomes[1]
    );
    assert_eq!((deposit_2.0, deposit_2.1), (3, 3));
    assert_eq!((withdraw_50.0, withdraw_50.1), (4, 4));
    assert_eq!((deposit_1.2, deposit_2.2), (withdraw_50.2, withdraw_50.2), "one shared append");
    assert_eq!(gated.appends.load(SeqCst), 2, "the held command's append and the group's");
    let loaded = accounts.load(&id).await.unwrap();
    assert_eq!((loaded.state.balance, loaded.version), (53, 4));
    assert_eq!((loaded.state, loaded.version), full_replay(&store, &id).await);
}

/// A caller that stops waiting before its queued command is decided is left out: nothing of its
/// command is appended, and the others are decided as if it had never queued.
async fn a_queued_command_whose_caller_went_away_is_left_out<S: EventStore + SnapshotStore>(
    store: S,
) {
    let gated = Gated::shut(store.clone());
    let accounts = Repository::<Account, _>::new(gated.clone());
    let id = account("gone");
    let commands = vec![
        AccountCommand::from(Deposit(1)),
        AccountCommand::from(Deposit(1_000)),
        AccountCommand::from(Deposit(2)),
    ];
    let (held, mut queued) = queue_behind_a_held_command(&accounts, &id, 100, commands).await;
    let gone = queued.remove(1);
    gone.abort();
    assert!(gone.await.unwrap_err().is_cancelled());
    gated.open();
    held.await.unwrap().unwrap();
    let versions: Vec<u64> = futures_util::future::join_all(queued)
        .await
        .into_iter()
        .map(|outcome| outcome.unwrap().unwrap().version)
        .collect();
    assert_eq!(versions, [2, 3]);
    let (state, version) = full_replay(&store, &id).await;
    assert_eq!((state.balance, version), (103, 3), "the deposit of 1,000 was never appended");
}

/// What each command costs in reads: with a cache, a command on a stream this process just wrote
/// loads nothing; without one, it loads the stream once, and a refusal decided on that fresh
/// load asks for no version check.
async fn a_command_reads_only_what_it_needs<S: EventStore + SnapshotStore>(store: S) {
    let gated = Gated::opened(store.clone());
    let cached = Repository::<Account, _>::new(gated.clone()).with_cache(8);
    let id = account("reads");
    cached.execute(&id, Deposit(10), CommandOptions::default()).await.unwrap();
    let loads = gated.replays.load(SeqCst);
    cached.execute(&id, Deposit(10), CommandOptions::default()).await.unwrap();
    assert_eq!(gated.replays.load(SeqCst), loads, "the cached state is used: no load");

    let uncached = Repository::<Account, _>::new(gated.clone());
    let (loads, versions) = (gated.replays.load(SeqCst), gated.versions.load(SeqCst));
    let refused = uncached.execute(&id, Withdraw(1_000), CommandOptions::default()).await;
    assert!(matches!(refused, Err(RepositoryError::Domain(_))), "{refused:?}");
    assert_eq!(gated.replays.load(SeqCst), loads + 1, "one load");
    assert_eq!(gated.versions.load(SeqCst), versions, "a fresh load needs no version check");
}

/// `max_attempts` bounds the attempts of a command that keeps meeting conflicts, and the backoff
/// between them is the one configured (two waits of at least 50 and 100 ms here).
async fn attempts_and_backoff_are_the_configured_ones<S: EventStore + SnapshotStore>(store: S) {
    let gated = Gated::opened(store.clone());
    let options = RepositoryOptions::default()
        .max_attempts(3)
        .backoff(std::time::Duration::from_millis(100), std::time::Duration::from_secs(1));
    let accounts = Repository::<Account, _>::new(gated.clone()).with_options(options);
    let id = account("attempts");
    gated.conflicts.store(usize::MAX, SeqCst);
    let started = std::time::Instant::now();
    let outcome = accounts.execute(&id, Deposit(1), CommandOptions::default()).await;
    assert!(matches!(outcome, Err(RepositoryError::Contention { attempts: 3, .. })), "{outcome:?}");
    assert_eq!(gated.appends.load(SeqCst), 3, "one append per attempt");
    assert!(started.elapsed() >= std::time::Duration::from_millis(150), "{:?}", started.elapsed());
    // Two conflicts, then the third attempt lands, after a wait after each conflict.
    gated.conflicts.store(2, SeqCst);
    let started = std::time::Instant::now();
    let outcome = accounts.execute(&id, Deposit(1), CommandOptions::default()).await.unwrap();
    assert_eq!((outcome.attempts, outcome.version), (3, 1));
    assert!(started.elapsed() >= std::time::Duration::from_millis(150), "{:?}", started.elapsed());
}

/// With `take_turns(false)`, a process's commands for one stream do not queue: they race, and
/// the version check and retries sort them out.
async fn commands_race_when_turns_are_off<S: EventStore + SnapshotStore>(store: S) {
    let gated = Gated::shut(store.clone());
    let options = RepositoryOptions::default().take_turns(false);
    let accounts = Repository::<Account, _>::new(gated.clone()).with_options(options);
    let id = account("racing");
    let mut running = Vec::new();
    for amount in [1, 2] {
        let (accounts, id) = (accounts.clone(), id.clone());
        running.push(tokio::spawn(async move {
            accounts.execute(&id, Deposit(amount), CommandOptions::default()).await
        }));
    }
    until("both commands wait at the gate at once", || gated.waiting.load(SeqCst) == 2).await;
    assert_eq!(accounts.queued_commands(&id), 0);
    gated.open();
    let mut attempts = Vec::new();
    for running in running {
        attempts.push(running.await.unwrap().unwrap().attempts);
    }
    attempts.sort_unstable();
    assert_eq!(attempts, [1, 2], "the loser of the race decided again");
    assert_eq!(full_replay(&store, &id).await.0.balance, 3);
}

/// A group that appends nothing (no-ops, refusals) on a cached state another process made
/// stale is decided again on the current state: no version check would catch it otherwise.
async fn a_group_on_a_stale_cached_state_is_decided_again<S: EventStore + SnapshotStore>(store: S) {
    let gated = Gated::shut(store.clone());
    let accounts = Repository::<Account, _>::new(gated.clone()).with_cache(8);
    let id = account("stale-group");
    // Right after the held deposit lands (balance 105 at version 1, cached), another process
    // withdraws 70.
    let behind = AccountEvent::Withdrawn(Withdrawn { amount: 70 }).to_event_data().unwrap();
    gated.behind.lock().unwrap().push(behind);
    let commands = vec![AccountCommand::from(TopUp(100)), AccountCommand::from(TopUp(100))];
    let (held, queued) = queue_behind_a_held_command(&accounts, &id, 105, commands).await;
    gated.open();
    assert_eq!(held.await.unwrap().unwrap().version, 1);
    let mut outcomes = Vec::new();
    for running in queued {
        outcomes.push(running.await.unwrap().unwrap());
    }
    let topped = outcomes[0].appended.expect("the first top-up deposits what the withdrawal took");
    assert_eq!((topped.first_version, outcomes[0].version), (3, 3));
    assert_eq!((outcomes[1].version, outcomes[1].appended), (3, None), "then nothing is missing");
    assert_eq!(full_replay(&store, &id).await.0.balance, 100);
}

/// `decide_together(1)` turns grouping off: commands behind a running one take their turns one
/// by one, one append each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_together_1_appends_each_command_alone() {
    let store = memory();
    let gated = Gated::shut(store.clone());
    let options = RepositoryOptions::default().decide_together(1);
    let accounts = Repository::<Account, _>::new(gated.clone()).with_options(options);
    let id = account("alone");
    let mut running = Vec::new();
    for amount in [1, 2, 3] {
        let (accounts, id) = (accounts.clone(), id.clone());
        running.push(tokio::spawn(async move {
            accounts.execute(&id, Deposit(amount), CommandOptions::default()).await
        }));
        if amount == 1 {
            until("the first command waits at the gate", || gated.waiting.load(SeqCst) == 1).await;
        }
    }
    // Time for the others to queue, were they grouped (they are not: nothing to wait for).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(accounts.queued_commands(&id), 0, "nothing queued for a group");
    gated.open();
    for running in running {
        running.await.unwrap().unwrap();
    }
    assert_eq!(gated.appends.load(SeqCst), 3, "one append per command");
    assert_eq!(full_replay(&store, &id).await, (Account { balance: 6, operations: 3 }, 3));
}

/// A decision that panics in a group ends its worker before anything is appended: the others
/// are decided again alone and land, and the panic reaches the caller whose command it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_that_panics_in_a_group_fails_only_its_own_caller() {
    let store = memory();
    let gated = Gated::shut(store.clone());
    let accounts = Repository::<Account, _>::new(gated.clone());
    let id = account("panics");
    let commands = vec![
        AccountCommand::from(Deposit(1)),
        AccountCommand::from(Deposit(i64::MIN)),
        AccountCommand::from(Deposit(2)),
    ];
    let (held, mut queued) = queue_behind_a_held_command(&accounts, &id, 100, commands).await;
    gated.open();
    assert_eq!(held.await.unwrap().unwrap().version, 1);
    let panicking = queued.remove(1);
    assert!(panicking.await.unwrap_err().is_panic(), "the panic is its caller's");
    let mut versions = Vec::new();
    for running in queued {
        versions.push(running.await.unwrap().unwrap().version);
    }
    versions.sort_unstable();
    assert_eq!(versions, [2, 3]);
    let (state, version) = full_replay(&store, &id).await;
    assert_eq!((state.balance, version), (103, 3));
    // The stream is not left with a dead worker that would queue its next commands forever.
    let next = accounts.execute(&id, Deposit(5), CommandOptions::default());
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), next).await;
    assert_eq!(next.expect("the next command is answered").unwrap().version, 4);
}

/// When the shared append fails other than by a conflict (here a quota), the group's commands
/// run again one by one, each getting the outcome it would have had alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_refused_by_a_quota_runs_its_commands_one_by_one() {
    use es_core::quota::{Limits, TenantQuotas};
    let backend = es_memory::MemoryStore::new();
    backend.set_limits(&bank(), Limits::none().events(3)).await.unwrap();
    let store = backend.tenant(bank());
    let gated = Gated::shut(store.clone());
    let accounts = Repository::<Account, _>::new(gated.clone());
    let id = account("quota");
    let commands = (2..=5).map(|amount| AccountCommand::from(Deposit(amount))).collect();
    let (held, queued) = queue_behind_a_held_command(&accounts, &id, 1, commands).await;
    gated.open();
    assert_eq!(held.await.unwrap().unwrap().version, 1);
    let mut outcomes = Vec::new();
    for running in queued {
        outcomes.push(running.await.unwrap());
    }
    assert_eq!(outcomes[0].as_ref().unwrap().version, 2);
    assert_eq!(outcomes[1].as_ref().unwrap().version, 3);
    for refused in &outcomes[2..] {
        assert!(
            matches!(refused, Err(RepositoryError::Store(es_core::StoreError::QuotaExceeded(_)))),
            "past the limit, alone: {refused:?}"
        );
    }
    // The held command's, the group's (refused whole), then one per command.
    assert_eq!(gated.appends.load(SeqCst), 6);
    assert_eq!(full_replay(&store, &id).await.0.balance, 1 + 2 + 3);
}

// ---------------------------------------------------------------- backends

/// A named tenant (not the default one), so a wrong tenant in an error shows.
fn bank() -> TenantId {
    TenantId::new("bank").unwrap()
}

fn memory() -> es_memory::MemoryTenantStore {
    es_memory::MemoryStore::new().tenant(bank())
}

tests::on_both_backends!(
    tenant: bank();
    domain_error_comes_back_and_appends_nothing,
    concurrent_commands_apply_exactly_once,
    retried_command_with_the_same_key_appends_nothing,
    correlation_and_causation_flow_into_events,
    snapshots_are_written_and_used,
    stale_cache_entries_cost_a_reload_not_a_wrong_state,
    stale_cache_entries_never_refuse_wrongly,
    stale_cache_entries_never_skip_a_needed_change,
    a_key_used_on_another_stream_is_a_conflict,
    queued_commands_are_decided_together_each_with_its_own_outcome,
    a_queued_command_whose_caller_went_away_is_left_out,
    attempts_and_backoff_are_the_configured_ones,
    a_command_reads_only_what_it_needs,
    commands_race_when_turns_are_off,
    a_group_on_a_stale_cached_state_is_decided_again,
);

// ---------------------------------------------------------------- counters of one test's thread

/// The counters of one test's thread (`tests::metrics::Recorded::run_local`, the test on a
/// current-thread runtime), so tests running beside it cannot move its counts.
#[derive(Clone, Default)]
struct Counters(tests::metrics::Recorded);

impl Counters {
    /// The count of `es_snapshots_rejected_total` for accounts rejected for `reason`.
    fn rejected(&self, reason: SnapshotRejection) -> u64 {
        self.0.counter(&format!(
            "es_snapshots_rejected_total{{aggregate=account,reason={}}}",
            reason.as_str()
        ))
    }

    /// Every count of `es_snapshots_rejected_total`.
    fn rejected_total(&self) -> u64 {
        self.0.counter_total("es_snapshots_rejected_total")
    }

    /// Runs `test` on a current-thread runtime with this recorder.
    fn run<F: std::future::Future>(&self, test: F) -> F::Output {
        self.0.run_local(test)
    }
}

#[test]
fn memory_untrustworthy_snapshots_fall_back_to_replay() {
    let counters = Counters::default();
    counters.run(async {
        let store = memory();
        let target = store.clone();
        let put = move |snapshot| {
            let target = target.clone();
            Box::pin(async move { target.put_snapshot_unchecked(snapshot) }) as _
        };
        untrustworthy_snapshots_fall_back_to_replay(store, put, counters.clone()).await;
    });
}

#[test]
fn postgres_untrustworthy_snapshots_fall_back_to_replay() {
    let counters = Counters::default();
    counters.run(postgres_untrustworthy_snapshots(counters.clone()));
}

async fn postgres_untrustworthy_snapshots(counters: Counters) {
    let fresh = es_postgres::testing::FreshSchema::new().await;
    let pool = Arc::new(fresh.store.pool().clone());
    let table = format!("{}.snapshots", fresh.schema());
    untrustworthy_snapshots_fall_back_to_replay(es_core::MultiTenantStore::tenant(&fresh, bank()), move |snapshot| {
        let (pool, table) = (pool.clone(), table.clone());
        Box::pin(async move {
            let sql = format!(
                "UPDATE {table} SET aggregate = $1, version = $2, schema_version = $3, state = $4, checksum = $5, event_id = $7 WHERE stream_id = $6"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&snapshot.aggregate)
                .bind(i64::try_from(snapshot.version).unwrap())
                .bind(i32::try_from(snapshot.schema_version).unwrap())
                .bind(snapshot.state.as_bytes())
                .bind(&snapshot.checksum[..])
                .bind(snapshot.stream_id.as_str())
                .bind(snapshot.event_id.as_uuid())
                .execute(&*pool)
                .await
                .unwrap();
        })
    }, counters)
    .await;
}

// ---------------------------------------------------------------- properties (es-memory)

#[derive(Clone, Debug)]
enum Step {
    Deposit(i64),
    Withdraw(i64),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![(1..100i64).prop_map(Step::Deposit), (1..150i64).prop_map(Step::Withdraw)],
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// For any command sequence: each command is decided as an independent model of the account
    /// says (deposits always, withdrawals only within the balance); the load starts from the
    /// snapshot the policy wrote (every 5 events) and snapshot + tail equals both a full replay
    /// and the model.
    #[test]
    fn snapshot_plus_tail_equals_full_replay(steps in steps()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store = memory();
            let accounts = Repository::<Account, _>::new(store.clone()).with_snapshots(store.clone());
            let id = account("p");
            let mut model = Account::default();
            for step in steps {
                match step {
                    Step::Deposit(amount) => {
                        accounts.execute(&id, Deposit(amount), CommandOptions::default()).await.unwrap();
                        model.balance += amount;
                        model.operations += 1;
                    }
                    Step::Withdraw(amount) => {
                        let outcome = accounts.execute(&id, Withdraw(amount), CommandOptions::default()).await;
                        if amount <= model.balance {
                            prop_assert!(outcome.is_ok(), "a withdrawal within the balance must pass: {outcome:?}");
                            model.balance -= amount;
                            model.operations += 1;
                        } else {
                            let refused = matches!(outcome, Err(RepositoryError::Domain(AccountError::InsufficientFunds { .. })));
                            prop_assert!(refused, "a withdrawal beyond the balance must be refused: {outcome:?}");
                        }
                    }
                }
            }
            let version = model.operations;
            let snapshotted = version / 5 * 5;
            // The writes run in the background: wait for them, don't guess.
            accounts.flush_snapshots().await;
            let snapshot = store.load_snapshot(&id).await.unwrap();
            prop_assert_eq!(snapshot.map(|snapshot| snapshot.version), (snapshotted > 0).then_some(snapshotted));
            let loaded = accounts.load(&id).await.unwrap();
            prop_assert_eq!(loaded.from_snapshot, (snapshotted > 0).then_some(snapshotted), "the load starts from the snapshot");
            prop_assert_eq!((loaded.state.clone(), loaded.version), (model.clone(), version), "snapshot + tail = the model");
            prop_assert_eq!(full_replay(&store, &id).await, (model, version), "a full replay = the model");
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------- outside a tokio runtime

/// The smallest executor: polls a future on this thread until it is ready (no tokio runtime).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// A repository driven by another executor than tokio still runs commands; the snapshot it
/// cannot write in the background is skipped (it is only a cache), never a panic.
#[test]
fn commands_run_outside_a_tokio_runtime_and_skip_their_snapshot() {
    let store = memory();
    let accounts = Repository::<Account, _>::new(store.clone()).with_snapshots(store.clone());
    let id = account("no-runtime");
    block_on(async {
        for amount in 1..=6 {
            accounts.execute(&id, Deposit(amount), CommandOptions::default()).await.unwrap();
        }
        accounts.flush_snapshots().await;
        assert_eq!(store.load_snapshot(&id).await.unwrap(), None, "no runtime: no snapshot");
        assert_eq!(accounts.load(&id).await.unwrap().state.balance, 21);
    });
}
