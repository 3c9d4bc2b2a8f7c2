//! The command pipeline: load (snapshot + tail), decide, append with the loaded version, and on a
//! version conflict reload and decide again, a bounded number of times with jittered backoff.
//!
//! ```
//! # use es_core::{Aggregate, Apply, Event, commands};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Serialize, Deserialize, Event, Hash)] #[event(name = "counter.incremented")]
//! # pub struct Incremented { by: i64 }
//! # #[derive(Debug, Event)] pub enum CounterEvent { Incremented(Incremented) }
//! # #[derive(Debug)] pub enum CounterError { TooBig }
//! # #[derive(Default, Serialize, Deserialize, Aggregate)]
//! # #[aggregate(name = "counter", event = CounterEvent, error = CounterError)]
//! # pub struct Counter { value: i64 }
//! # #[derive(Clone, Hash)] pub struct Increment { by: i64 }
//! # #[commands] impl Counter {
//! #     pub fn increment(&self, c: Increment) -> Result<Incremented, CounterError> {
//! #         if self.value + c.by > 100 { Err(CounterError::TooBig) } else { Ok(Incremented { by: c.by }) }
//! #     }
//! # }
//! # impl Apply<CounterEvent> for Counter {
//! #     fn apply(&mut self, e: &CounterEvent) { match e { CounterEvent::Incremented(i) => self.value += i.by } }
//! # }
//! use es_core::repository::{CommandOptions, Repository, RepositoryError};
//! use es_core::StreamId;
//!
//! async fn demo<S: es_core::EventStore>(store: S) -> Result<(), RepositoryError<CounterError>> {
//!     let counters = Repository::<Counter, _>::new(store);
//!     let id = StreamId::in_category(Counter::NAME, "7").expect("valid id");
//!     let outcome = counters.execute(&id, Increment { by: 5 }, CommandOptions::default()).await?;
//!     assert_eq!(outcome.version, 1);
//!     let refused = counters.execute(&id, Increment { by: 500 }, CommandOptions::default()).await;
//!     assert!(matches!(refused, Err(RepositoryError::Domain(CounterError::TooBig))));
//!     Ok(())
//! }
//! ```

mod fingerprint;

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::TryStreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use uuid::Uuid;

use crate::snapshot::{NoSnapshots, Snapshot, SnapshotRejection, SnapshotStore, SnapshotVerdict};
use crate::{
    Aggregate, AppendOptions, AppendResult, DecodeError, EncodeError, Event, EventMetadata,
    EventStore, ExpectedVersion, IdempotencyKey, IdempotencyRecord, Payload, StoreError, StreamId,
};

/// How the repository retries after version conflicts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepositoryOptions {
    /// Attempts per command (load, decide, append), at least 1. Default 8.
    pub max_attempts: u32,
    /// The backoff before the second attempt; doubled each time, with jitter. Default 2 ms.
    pub base_delay: Duration,
    /// The longest backoff. Default 200 ms.
    pub max_delay: Duration,
}

impl Default for RepositoryOptions {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(200),
        }
    }
}

impl RepositoryOptions {
    /// Sets the attempts per command (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the backoff range.
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max.max(base);
        self
    }
}

/// Per-command options: the idempotency key and the metadata its events carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandOptions {
    /// Makes the command safe to retry: if an append with this key already happened, its result is
    /// returned and nothing is decided or written again.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Metadata for every event the command appends (correlation, causation, actor, custom).
    pub metadata: EventMetadata,
}

impl CommandOptions {
    /// Sets the idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Sets the correlation id of the events.
    #[must_use]
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.metadata.correlation_id = Some(id);
        self
    }

    /// Sets the causation id of the events (the id of the message that caused the command).
    #[must_use]
    pub fn causation_id(mut self, id: Uuid) -> Self {
        self.metadata.causation_id = Some(id);
        self
    }

    /// Sets the actor.
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.metadata.actor = Some(actor.into());
        self
    }
}

/// An aggregate as loaded: its state and the version it includes.
#[derive(Debug)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The stream version the state includes (0: no event yet).
    pub version: u64,
    /// The version of the snapshot the load started from, if one was used.
    pub from_snapshot: Option<u64>,
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The stream's version after the command.
    pub version: u64,
    /// What was appended (`None`: the command decided no event).
    pub appended: Option<AppendResult>,
    /// Attempts it took (1 without conflicts).
    pub attempts: u32,
    /// Whether the result came from the idempotency record of an earlier run of this command.
    pub replayed: bool,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError<E: Debug> {
    /// The aggregate refused the command; nothing was appended.
    #[error("the command was refused: {0:?}")]
    Domain(E),
    /// Other writers kept changing the stream; nothing was appended.
    #[error(
        "gave up on stream {stream_id} after {attempts} attempts: other writers kept changing it"
    )]
    Contention {
        /// The stream.
        stream_id: StreamId,
        /// The attempts made.
        attempts: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be read as the aggregate's event type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A decided event could not be serialized.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Loads aggregates of type `A` from an event store, runs commands on them, appends their events.
/// Clones share the cache (if any).
pub struct Repository<A, S, N = NoSnapshots> {
    store: S,
    snapshots: N,
    options: RepositoryOptions,
    cache: Option<Arc<Cache<A>>>,
    /// Snapshot writes in flight (shared by clones), so they can be awaited.
    writes: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl<A, S: Clone, N: Clone> Clone for Repository<A, S, N> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            snapshots: self.snapshots.clone(),
            options: self.options.clone(),
            cache: self.cache.clone(),
            writes: self.writes.clone(),
        }
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S, NoSnapshots> {
    /// A repository without snapshots or cache.
    pub fn new(store: S) -> Self {
        Self {
            store,
            snapshots: NoSnapshots,
            options: RepositoryOptions::default(),
            cache: None,
            writes: Arc::default(),
        }
    }
}

/// Recently used aggregates, by stream: their state and the version it includes.
///
/// A command *takes* its stream's entry and puts the new state back after a successful append,
/// so two commands never share an entry, and an entry made stale by another process only costs a
/// version conflict and a reload (or, for a refusal or a no-op, which append nothing, a check of
/// the stream's version and a reload). Bounded: beyond `capacity` streams, an arbitrary entry goes.
struct Cache<A> {
    entries: Mutex<HashMap<StreamId, (u64, A)>>,
    capacity: usize,
}

impl<A> Cache<A> {
    fn take(&self, stream_id: &StreamId) -> Option<(u64, A)> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(stream_id)
    }

    fn put(&self, stream_id: &StreamId, version: u64, state: A) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(stream_id) {
            let evicted = entries.keys().next().cloned();
            if let Some(evicted) = evicted {
                entries.remove(&evicted);
            }
        }
        // Commands on one stream can finish out of order (one appended, another was refused on
        // the state it loaded earlier): a newer entry is never replaced by an older one.
        if entries.get(stream_id).is_some_and(|(held, _)| *held > version) {
            return;
        }
        entries.insert(stream_id.clone(), (version, state));
    }
}

impl<A, S, N> Repository<A, S, N>
where
    A: Aggregate + Serialize + DeserializeOwned,
    S: EventStore,
    N: SnapshotStore,
{
    /// Uses `snapshots` (usually the same store handle) to load from and write snapshots, by the
    /// aggregate's [`SnapshotPolicy`](crate::SnapshotPolicy).
    pub fn with_snapshots<M: SnapshotStore>(self, snapshots: M) -> Repository<A, S, M> {
        Repository {
            store: self.store,
            snapshots,
            options: self.options,
            cache: self.cache,
            writes: self.writes,
        }
    }

    /// Keeps the state of up to `capacity` recently used aggregates in memory, so a hot stream is
    /// not replayed for every command (see the type's docs for why a stale entry is harmless).
    #[must_use]
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0)
            .then(|| Arc::new(Cache { entries: Mutex::new(HashMap::new()), capacity }));
        self
    }

    /// Sets the retry options.
    #[must_use]
    pub fn with_options(mut self, options: RepositoryOptions) -> Self {
        self.options = options;
        self
    }

    /// Waits until every snapshot write started so far (by this repository or its clones) has
    /// finished: for tests, benchmarks, and a tidy shutdown.
    pub async fn flush_snapshots(&self) {
        let writes =
            std::mem::take(&mut *self.writes.lock().unwrap_or_else(PoisonError::into_inner));
        for write in writes {
            // A write that panicked has nothing left to wait for; the next load replays instead.
            let _ = write.await;
        }
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Loads an aggregate: the latest valid snapshot, then the events after it.
    ///
    /// The tail is read from the snapshot's own version, so its first event proves the snapshot was
    /// taken of this stream's history (same version, same event id); a snapshot that cannot prove
    /// it is ignored like a damaged one, and the state is rebuilt from the first event.
    pub async fn load(&self, stream_id: &StreamId) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let span = tracing::debug_span!(
            "es.load",
            aggregate = A::NAME,
            stream = %stream_id,
            version = tracing::field::Empty,
            from_snapshot = tracing::field::Empty,
        );
        let loaded = self.load_traced(stream_id).instrument(span.clone()).await?;
        span.record("version", loaded.version);
        if let Some(version) = loaded.from_snapshot {
            span.record("from_snapshot", version);
        }
        Ok(loaded)
    }

    async fn load_traced(
        &self,
        stream_id: &StreamId,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let snapshot = match self.snapshots.load_snapshot(stream_id).await {
            Ok(Some(snapshot)) => match accept::<A>(&snapshot) {
                Ok(state) => Some((state, snapshot)),
                Err(reason) => {
                    reject::<A>(stream_id, snapshot.version, reason);
                    None
                }
            },
            Ok(None) => None,
            Err(error) => {
                // A snapshot store that fails costs a full replay, never the command.
                tracing::warn!(%error, aggregate = A::NAME, stream = %stream_id, "es.snapshot: load failed; replaying from events");
                metrics::counter!("es_snapshot_load_failures_total", "aggregate" => A::NAME)
                    .increment(1);
                None
            }
        };
        if let Some((state, snapshot)) = snapshot {
            let mut pages = self.store.replay_stream(stream_id, snapshot.version);
            let first = pages.try_next().await?;
            if anchored(&snapshot, first.as_deref()) {
                let mut loaded = Loaded {
                    state,
                    version: snapshot.version,
                    from_snapshot: Some(snapshot.version),
                };
                if let Some(page) = first {
                    fold_page(&mut loaded, &page[1..])?;
                }
                while let Some(page) = pages.try_next().await? {
                    fold_page(&mut loaded, &page)?;
                }
                return Ok(loaded);
            }
            reject::<A>(stream_id, snapshot.version, SnapshotRejection::StreamMismatch);
        }
        let mut loaded = Loaded { state: A::default(), version: 0, from_snapshot: None };
        let mut pages = self.store.replay_stream(stream_id, 1);
        while let Some(page) = pages.try_next().await? {
            fold_page(&mut loaded, &page)?;
        }
        Ok(loaded)
    }

    /// Judges the stream's stored snapshot as [`load`](Self::load) would, without loading the
    /// aggregate (for operators: `snapshots verify`).
    pub async fn verify_snapshot(
        &self,
        stream_id: &StreamId,
    ) -> Result<SnapshotVerdict, StoreError> {
        let Some(snapshot) = self.snapshots.load_snapshot(stream_id).await? else {
            return Ok(SnapshotVerdict::Missing);
        };
        let version = snapshot.version;
        if let Err(reason) = accept::<A>(&snapshot) {
            return Ok(SnapshotVerdict::Rejected { version, reason });
        }
        let mut pages = self.store.replay_stream(stream_id, version);
        let first = pages.try_next().await?;
        Ok(if anchored(&snapshot, first.as_deref()) {
            SnapshotVerdict::Trusted { version }
        } else {
            SnapshotVerdict::Rejected { version, reason: SnapshotRejection::StreamMismatch }
        })
    }

    /// Runs a command: load, decide, append with `Exact(version)`; on a version conflict, reload
    /// and decide again (up to [`RepositoryOptions::max_attempts`], with jittered exponential
    /// backoff). A domain error comes back unchanged and appends nothing. With an idempotency key,
    /// a command that already ran returns its recorded result without deciding again.
    pub async fn execute(
        &self,
        stream_id: &StreamId,
        command: impl Into<A::Command>,
        options: CommandOptions,
    ) -> Result<CommandOutcome, RepositoryError<A::Error>>
    where
        A::Command: Clone + Hash,
    {
        let span = tracing::info_span!(
            "es.command",
            aggregate = A::NAME,
            stream = %stream_id,
            version = tracing::field::Empty,
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let command = command.into();
        async move {
            let result = self.run(stream_id, &command, &options).await;
            let span = tracing::Span::current();
            let outcome = match &result {
                Ok(outcome) => {
                    span.record("version", outcome.version);
                    span.record("attempts", outcome.attempts);
                    if outcome.replayed { "replayed" } else { "ok" }
                }
                Err(RepositoryError::Domain(_)) => "refused",
                Err(RepositoryError::Contention { .. }) => "contention",
                Err(_) => "failed",
            };
            span.record("outcome", outcome);
            metrics::counter!("es_commands_total", "aggregate" => A::NAME, "outcome" => outcome)
                .increment(1);
            result
        }
        .instrument(span)
        .await
    }

    /// The state to decide on: the cached entry unless `fresh` (or none is cached), else a load.
    /// Tells whether it came from the cache.
    async fn current(
        &self,
        stream_id: &StreamId,
        fresh: bool,
    ) -> Result<(Loaded<A>, bool), RepositoryError<A::Error>> {
        let cached =
            if fresh { None } else { self.cache.as_ref().and_then(|cache| cache.take(stream_id)) };
        Ok(match cached {
            Some((version, state)) => (Loaded { state, version, from_snapshot: None }, true),
            None => (self.load(stream_id).await?, false),
        })
    }

    async fn run(
        &self,
        stream_id: &StreamId,
        command: &A::Command,
        options: &CommandOptions,
    ) -> Result<CommandOutcome, RepositoryError<A::Error>>
    where
        A::Command: Clone + Hash,
    {
        let mut append_options = AppendOptions::default();
        let mut command_print = None;
        if let Some(key) = &options.idempotency_key {
            let print = fingerprint::command_fingerprint(A::NAME, stream_id, command);
            if let Some(record) = self.store.idempotency_record(key).await? {
                return replayed(self.store.tenant(), stream_id, key, &print, record);
            }
            append_options = append_options.idempotency_key(key.clone()).fingerprint(print);
            command_print = Some(print);
        }
        let mut fresh = false;
        for attempt in 1..=self.options.max_attempts {
            let (loaded, from_cache) = self.current(stream_id, fresh).await?;
            let decided = loaded.state.handle(command.clone());
            // A refusal or a no-op appends nothing, so no version check would catch a cached state
            // that another writer made stale: check the stream's version before answering.
            let appends = decided.as_ref().is_ok_and(|events| !events.is_empty());
            if from_cache
                && !appends
                && self.store.stream_version(stream_id).await? != loaded.version
            {
                fresh = true;
                continue;
            }
            let events = match decided {
                Ok(events) => events,
                Err(error) => {
                    // Still the state at that version: keep it for the next command.
                    self.cache_put(stream_id, loaded);
                    return Err(RepositoryError::Domain(error));
                }
            };
            if events.is_empty() {
                let version = loaded.version;
                self.cache_put(stream_id, loaded);
                return Ok(CommandOutcome {
                    version,
                    appended: None,
                    attempts: attempt,
                    replayed: false,
                });
            }
            let data = events
                .iter()
                .map(|event| {
                    event.to_event_data().map(|data| data.with_metadata(options.metadata.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // The event the snapshot (if one is due) will be anchored to: the batch's last.
            let last_event_id = data.last().map(|event| event.event_id);
            let started = std::time::Instant::now();
            let appended = self
                .store
                .append(
                    stream_id,
                    ExpectedVersion::Exact(loaded.version),
                    data,
                    append_options.clone(),
                )
                .await;
            metrics::histogram!("es_append_seconds", "aggregate" => A::NAME)
                .record(started.elapsed().as_secs_f64());
            match appended {
                Ok(appended) => {
                    let last_version = appended.last_version;
                    self.after_append(stream_id, loaded, &events, last_version, last_event_id);
                    return Ok(CommandOutcome {
                        version: appended.last_version,
                        appended: Some(appended),
                        attempts: attempt,
                        replayed: false,
                    });
                }
                Err(StoreError::VersionConflict { actual, .. }) => {
                    tracing::debug!(
                        attempt,
                        loaded = loaded.version,
                        actual,
                        "es.command: version conflict, deciding again"
                    );
                    metrics::counter!("es_command_conflicts_total", "aggregate" => A::NAME)
                        .increment(1);
                    if attempt < self.options.max_attempts {
                        tokio::time::sleep(self.backoff(attempt)).await;
                    }
                }
                // A concurrent run of the same command (same key) won: answer from its record.
                Err(StoreError::IdempotencyConflict { .. })
                    if options.idempotency_key.is_some() =>
                {
                    if let (Some(key), Some(print)) = (&options.idempotency_key, &command_print)
                        && let Some(record) = self.store.idempotency_record(key).await?
                    {
                        return replayed(self.store.tenant(), stream_id, key, print, record);
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(RepositoryError::Contention {
            stream_id: stream_id.clone(),
            attempts: self.options.max_attempts,
        })
    }

    fn cache_put(&self, stream_id: &StreamId, loaded: Loaded<A>) {
        if let Some(cache) = &self.cache {
            cache.put(stream_id, loaded.version, loaded.state);
        }
    }

    /// After a successful append: the state with the new events goes to the cache, and to a
    /// snapshot written in the background when the append crossed a multiple of the policy's
    /// interval (after the append, so it never fails or slows the command).
    fn after_append(
        &self,
        stream_id: &StreamId,
        mut loaded: Loaded<A>,
        events: &[A::Event],
        new_version: u64,
        last_event_id: Option<crate::EventId>,
    ) {
        let snapshot_due = A::SNAPSHOT.every.is_some_and(|every| {
            self.snapshots.enabled() && loaded.version / every != new_version / every
        });
        if !snapshot_due && self.cache.is_none() {
            return;
        }
        for event in events {
            loaded.state.evolve(event);
        }
        loaded.version = new_version;
        if snapshot_due && let Some(event_id) = last_event_id {
            self.snapshot(stream_id, &loaded.state, new_version, event_id);
        }
        self.cache_put(stream_id, loaded);
    }

    fn snapshot(
        &self,
        stream_id: &StreamId,
        state: &A,
        new_version: u64,
        event_id: crate::EventId,
    ) {
        let state = match Payload::from_value(state) {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(%error, aggregate = A::NAME, stream = %stream_id, "es.snapshot: state does not serialize; not snapshotted");
                return;
            }
        };
        let snapshot = Snapshot::new(
            A::NAME,
            stream_id.clone(),
            new_version,
            event_id,
            A::SNAPSHOT.version,
            state,
        );
        let snapshots = self.snapshots.clone();
        let span = tracing::debug_span!(
            "es.snapshot.save",
            aggregate = A::NAME,
            stream = %stream_id,
            version = new_version,
        );
        let write = async move {
            if let Err(error) = snapshots.save_snapshot(snapshot).await {
                tracing::warn!(%error, "es.snapshot: save failed; the next load replays a little more");
            }
        }
        .instrument(span);
        // In the background, so it never slows or fails the command; owned by the repository, so
        // `flush_snapshots` can wait for it. Outside a tokio runtime there is nowhere to run it:
        // the snapshot is skipped (it is only a cache), never a panic.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(aggregate = A::NAME, stream = %stream_id, "es.snapshot: no tokio runtime to write it on; skipped");
            return;
        };
        let mut writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        writes.retain(|write| !write.is_finished());
        writes.push(runtime.spawn(write));
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.options.base_delay.saturating_mul(1 << (attempt - 1).min(16));
        let capped = exponential.min(self.options.max_delay);
        // "Equal jitter": half fixed, half random, so retrying writers spread out.
        capped / 2 + capped.mul_f64(fastrand::f64() / 2.0)
    }
}

/// The outcome of a command that already ran, from its idempotency record; a key first used on
/// another stream, or with another command, is a conflict.
fn replayed<E: Debug>(
    tenant: &crate::TenantId,
    stream_id: &StreamId,
    key: &IdempotencyKey,
    command_print: &crate::Fingerprint,
    record: IdempotencyRecord,
) -> Result<CommandOutcome, RepositoryError<E>> {
    if record.stream_id != *stream_id || record.fingerprint != *command_print {
        return Err(RepositoryError::Store(StoreError::IdempotencyConflict {
            tenant: tenant.clone(),
            key: key.clone(),
            original_stream_id: record.stream_id,
        }));
    }
    Ok(CommandOutcome {
        version: record.result.last_version,
        appended: Some(record.result),
        attempts: 0,
        replayed: true,
    })
}

/// Whether the tail read from a snapshot's version starts with the event the snapshot was taken
/// at (same version, same id): the proof that the snapshot is of this stream's history.
fn anchored(snapshot: &Snapshot, first_page: Option<&[crate::ReplayedEvent]>) -> bool {
    first_page.and_then(<[_]>::first).is_some_and(|event| {
        event.stream_version == snapshot.version && event.event_id == snapshot.event_id
    })
}

/// Folds a page of stored events into a loaded state.
fn fold_page<A: Aggregate>(
    loaded: &mut Loaded<A>,
    page: &[crate::ReplayedEvent],
) -> Result<(), DecodeError> {
    for event in page {
        loaded.state.evolve(&A::Event::from_stored(
            event.event_type.as_str(),
            event.schema_version,
            &event.payload,
        )?);
        loaded.version = event.stream_version;
    }
    Ok(())
}

/// Checks what a snapshot says about itself (aggregate, schema version, checksum, readable
/// state); whether its stream holds the event it was taken at is checked by the read that follows.
fn accept<A: Aggregate + DeserializeOwned>(snapshot: &Snapshot) -> Result<A, SnapshotRejection> {
    if snapshot.aggregate != A::NAME {
        Err(SnapshotRejection::Aggregate)
    } else if snapshot.schema_version != A::SNAPSHOT.version {
        Err(SnapshotRejection::SchemaVersion)
    } else if !snapshot.is_intact() {
        Err(SnapshotRejection::Checksum)
    } else {
        snapshot.state.deserialize::<A>().map_err(|_| SnapshotRejection::Deserialize)
    }
}

/// Reports a snapshot that will not be used: a warning and a counter.
fn reject<A: Aggregate>(stream_id: &StreamId, version: u64, reason: SnapshotRejection) {
    tracing::warn!(
        aggregate = A::NAME,
        stream = %stream_id,
        version,
        reason = reason.as_str(),
        "es.snapshot: ignored ({reason}); rebuilding from events"
    );
    metrics::counter!("es_snapshots_rejected_total", "aggregate" => A::NAME, "reason" => reason.as_str())
        .increment(1);
}
