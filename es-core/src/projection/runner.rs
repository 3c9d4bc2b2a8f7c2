//! The projection runner: reads the log from the projection's checkpoint, only the types it
//! handles, applies the handlers, saves the checkpoint (compare-and-set); then waits for new events.
//!
//! Delivery is at least once (a crash between handling and saving replays the batch), so handlers
//! must be idempotent; events at or below the checkpoint are never delivered again by one runner.

use std::time::Duration;

use futures_util::TryStreamExt;
use tracing::Instrument;

use super::{
    CheckpointError, CheckpointStore, DeadLetterStore, ParkedEvent, Projection, ProjectionError,
    ProjectionLock, ProjectionLocks,
};
use crate::{EventStore, Position, ReadAllOptions, StoreError};

/// How a runner reads and retries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunnerOptions {
    /// Events per batch; the checkpoint is saved after each batch (one read and one save per
    /// batch, so larger batches rebuild faster and replay more after a crash). Default 5,000.
    pub batch_size: usize,
    /// Attempts per event before the runner stops with the handler's error. Default 3.
    pub handler_attempts: u32,
    /// The pause before a handler's second attempt; doubled each time. Default 50 ms.
    pub retry_delay: Duration,
    /// How long live mode waits for new events before looking again. Default 1 s.
    pub idle_wait: Duration,
    /// What happens to an event whose handler still fails after `handler_attempts`. Default
    /// [`OnFailure::Stop`].
    pub on_failure: OnFailure,
}

/// What a runner does with an event its handler keeps failing on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop, with the checkpoint before the event (nothing is skipped).
    #[default]
    Stop,
    /// Park the event with its error in the dead-letter store and go on; operators list and
    /// replay parked events ([`ProjectionRunner::replay_parked`]).
    Park,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            batch_size: 5_000,
            handler_attempts: 3,
            retry_delay: Duration::from_millis(50),
            idle_wait: Duration::from_secs(1),
            on_failure: OnFailure::Stop,
        }
    }
}

impl RunnerOptions {
    /// Sets the batch size (at least 1).
    #[must_use]
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// Sets what happens to an event whose handler keeps failing.
    #[must_use]
    pub fn on_failure(mut self, policy: OnFailure) -> Self {
        self.on_failure = policy;
        self
    }

    /// Sets how long live mode (and a runner waiting for its lock) waits before looking again.
    #[must_use]
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }

    /// Sets the handler attempts (at least 1) and the first retry delay.
    #[must_use]
    pub fn retries(mut self, attempts: u32, delay: Duration) -> Self {
        self.handler_attempts = attempts.max(1);
        self.retry_delay = delay;
        self
    }
}

/// Why a runner stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// A handler kept failing on one event; the checkpoint stays before it.
    #[error(
        "projection {projection} failed on the event at position {position} ({event_type}) after {attempts} attempts: {source}"
    )]
    Handler {
        /// The projection's checkpoint name.
        projection: String,
        /// The event's position.
        position: Position,
        /// The event's type.
        event_type: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        source: ProjectionError,
    },
    /// The checkpoint could not be saved (another worker moved it, or the store failed).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Reading failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one catch-up pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatchUp {
    /// Events handled.
    pub handled: u64,
    /// The checkpoint after the pass.
    pub checkpoint: Position,
}

/// A projection's progress, for operators and the lag metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectionStatus {
    /// The name its checkpoint is stored under ([`Projection::NAME`] unless the runner was
    /// renamed, as a rebuild's staging runner is).
    pub name: String,
    /// Its checkpoint (`Position::BEGINNING` before the first save).
    pub checkpoint: Position,
    /// The tenant's head position.
    pub head: Position,
    /// `head - checkpoint`, in positions (an upper bound on the events still to handle: positions
    /// are not contiguous).
    pub lag: u64,
    /// The last error that stopped the runner, if any.
    pub last_error: Option<String>,
}

/// Drives one projection over one tenant's store.
pub struct ProjectionRunner<P, S> {
    projection: P,
    store: S,
    name: String,
    options: RunnerOptions,
    /// Partitions by stream (set by `with_concurrency`): how many run at once, and how the
    /// projection is cloned for each. Kept apart from the options, so replacing the options never
    /// turns a concurrent runner sequential.
    partitions: Option<Partitioning<P>>,
    checkpoint: Known,
    last_error: Option<String>,
}

/// How many partitions run at once, and how the projection is cloned for each.
type Partitioning<P> = (usize, fn(&P) -> P);

/// What the runner knows of its stored checkpoint.
#[derive(Clone, Copy, Debug)]
enum Known {
    /// Not read yet, or forgotten after a failed save: read it from the store.
    Unknown,
    /// As last read or saved (`None`: the projection has no checkpoint yet).
    Stored(Option<Position>),
}

impl<P: Projection, S: EventStore + CheckpointStore + DeadLetterStore> ProjectionRunner<P, S> {
    /// A runner with default options.
    pub fn new(projection: P, store: S) -> Self {
        Self {
            projection,
            store,
            name: P::NAME.to_owned(),
            options: RunnerOptions::default(),
            partitions: None,
            checkpoint: Known::Unknown,
            last_error: None,
        }
    }

    /// Sets the options.
    #[must_use]
    pub fn with_options(mut self, options: RunnerOptions) -> Self {
        self.options = options;
        self
    }

    /// The projection (its read model).
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection, to hand out or swap its read model.
    pub fn projection_mut(&mut self) -> &mut P {
        &mut self.projection
    }

    /// Gives the projection back (to serve its read model after the runner stops).
    pub fn into_projection(self) -> P {
        self.projection
    }

    /// The store the runner reads.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The name the checkpoint, dead letters, lock and metrics go under: [`Projection::NAME`]
    /// unless renamed.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the projection under another checkpoint name (a rebuild's staging name, or one
    /// read model per process for volatile in-memory models). The name must not be empty.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self.checkpoint = Known::Unknown;
        self
    }

    /// The options.
    pub fn options(&self) -> &RunnerOptions {
        &self.options
    }

    /// Reads and handles events until the projection has caught up with the head, saving the
    /// checkpoint after every batch.
    pub async fn catch_up(&mut self) -> Result<CatchUp, RunnerError> {
        let result = self.catch_up_inner().await;
        self.last_error = result.as_ref().err().map(ToString::to_string);
        result
    }

    async fn catch_up_inner(&mut self) -> Result<CatchUp, RunnerError> {
        let mut saved = match self.checkpoint {
            Known::Stored(checkpoint) => checkpoint,
            Known::Unknown => self.store.load_checkpoint(&self.name).await?,
        };
        self.checkpoint = Known::Stored(saved);
        let mut handled = 0;
        // Read once per pass, before any batch (see `checkpoint_after_batch`): one round trip,
        // not one per batch.
        let head = self.store.head_position().await?;
        self.report_lag(head, saved.unwrap_or(Position::BEGINNING));
        loop {
            let after = saved.unwrap_or(Position::BEGINNING);
            let read_span = tracing::debug_span!(
                "es.projection.read",
                projection = %self.name,
                after = after.value(),
                events = tracing::field::Empty,
            );
            let batch: Vec<_> = self
                .store
                .read_all(
                    ReadAllOptions::after(after)
                        .event_types(P::event_types())
                        .page_size(self.options.batch_size)
                        .limit(self.options.batch_size as u64),
                )
                .try_collect()
                .instrument(read_span.clone())
                .await?;
            read_span.record("events", batch.len());
            let full = batch.len() >= self.options.batch_size;
            let mut last = after;
            let concurrent = self.partitions.filter(|(count, _)| *count > 1);
            // With concurrency the partitions handle the batch; otherwise the loop below does.
            let sequential: &[crate::RecordedEvent] =
                if concurrent.is_some() { &[] } else { &batch };
            if let Some((count, fork)) = concurrent {
                let partitions = partition(&self.projection, fork, &batch, after);
                let failure =
                    run_partitions(partitions, count, &self.store, &self.name, &self.options)
                        .await?;
                // The batch is in log order: everything before the earliest failure was handled.
                let stop = failure.as_ref().map_or(Position::new(u64::MAX), failure_position);
                for event in
                    batch.iter().filter(|event| event.position > after && event.position < stop)
                {
                    last = event.position;
                    handled += 1;
                }
                if let Some(failure) = failure {
                    if last > after {
                        self.save(&mut saved, last).await?;
                    }
                    self.report_lag(head, saved.unwrap_or(Position::BEGINNING));
                    return Err(failure);
                }
            }
            for event in sequential {
                if event.position <= last {
                    continue; // delivered twice: handled already
                }
                if let Err(failure) = self.handle(event).await {
                    if self.options.on_failure == OnFailure::Stop {
                        if last > after {
                            self.save(&mut saved, last).await?;
                        }
                        self.report_lag(head, saved.unwrap_or(Position::BEGINNING));
                        return Err(failure);
                    }
                    self.park(event, &failure).await?;
                }
                last = event.position;
                handled += 1;
            }
            let next = super::checkpoint_after_batch(full, last, head);
            if next > after {
                self.save(&mut saved, next).await?;
            }
            let checkpoint = saved.unwrap_or(Position::BEGINNING);
            self.report_lag(head, checkpoint);
            if !full {
                return Ok(CatchUp { handled, checkpoint });
            }
        }
    }

    /// Sets the `es_projection_lag` gauge: at the start of each pass (so it shows what arrived
    /// since the last one) and after each batch (so it falls as a long catch-up proceeds).
    fn report_lag(&self, head: Position, checkpoint: Position) {
        let lag = head.value().saturating_sub(checkpoint.value());
        // A gauge is an f64; lags beyond 2^52 positions would lose precision, which is moot.
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("es_projection_lag", "projection" => self.name.clone()).set(lag as f64);
    }

    async fn handle(&mut self, event: &crate::RecordedEvent) -> Result<(), RunnerError> {
        handle_with_retries(&mut self.projection, event, &self.options, &self.name).await
    }

    async fn park(
        &self,
        event: &crate::RecordedEvent,
        failure: &RunnerError,
    ) -> Result<(), RunnerError> {
        park(&self.store, &self.name, self.options.handler_attempts, event, failure).await
    }

    /// Hands every parked event of this projection to its handler again (with the usual
    /// retries); those that now succeed are unparked, the others stay parked with the new error.
    /// Returns how many were replayed successfully and how many remain parked.
    pub async fn replay_parked(&mut self) -> Result<(u64, u64), RunnerError> {
        let (mut replayed, mut remaining) = (0, 0);
        for parked in self.store.parked(&self.name).await? {
            let before = Position::new(parked.position.value().saturating_sub(1));
            let found: Vec<_> = self
                .store
                .read_all(
                    ReadAllOptions::after(before).event_types([parked.event_type.clone()]).limit(1),
                )
                .try_collect()
                .await?;
            let Some(event) = found.into_iter().find(|event| event.position == parked.position)
            else {
                return Err(StoreError::corrupt(format!(
                    "parked event at position {} is not in the log",
                    parked.position
                ))
                .into());
            };
            match self.handle(&event).await {
                Ok(()) => {
                    self.store.unpark(&self.name, parked.position).await?;
                    replayed += 1;
                }
                Err(failure) => {
                    self.park(&event, &failure).await?;
                    remaining += 1;
                }
            }
        }
        Ok((replayed, remaining))
    }

    async fn save(
        &mut self,
        saved: &mut Option<Position>,
        next: Position,
    ) -> Result<(), RunnerError> {
        if let Err(error) = self.store.save_checkpoint(&self.name, *saved, next).await {
            // Forget what we believed: the next pass reloads the stored checkpoint.
            self.checkpoint = Known::Unknown;
            return Err(error.into());
        }
        *saved = Some(next);
        self.checkpoint = Known::Stored(*saved);
        Ok(())
    }

    /// Catches up, then follows the log, woken by the store when events commit, until `shutdown`
    /// completes (it is checked between passes, so a pass always finishes and saves).
    pub async fn run_until(
        &mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RunnerError> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let caught_up = self.catch_up().await?;
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                waited = self.store.wait_for_events(caught_up.checkpoint, self.options.idle_wait) => { waited?; }
            }
        }
    }

    /// Like [`ProjectionRunner::run_until`], but a failing pass does not end it: `on_pass` sees
    /// every pass's outcome (to publish progress or a health state), and after a failure the
    /// runner waits (from `retry_delay`, doubling, at most 30 s) and tries again. For services
    /// that must keep a read model live through transient store or handler failures.
    pub async fn follow(
        &mut self,
        shutdown: impl std::future::Future<Output = ()>,
        mut on_pass: impl FnMut(&Result<CatchUp, RunnerError>),
    ) {
        const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut backoff = self.options.retry_delay;
        loop {
            let pass = self.catch_up().await;
            on_pass(&pass);
            let pause = match pass {
                Ok(caught_up) => {
                    backoff = self.options.retry_delay;
                    let waited = tokio::select! {
                        () = &mut shutdown => return,
                        waited = self.store.wait_for_events(caught_up.checkpoint, self.options.idle_wait) => waited,
                    };
                    match waited {
                        Ok(_) => continue,
                        Err(error) => {
                            tracing::warn!(projection = %self.name, %error, "es.projection: waiting for events failed");
                            backoff
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(projection = %self.name, %error, "es.projection: pass failed; retrying");
                    backoff
                }
            };
            backoff =
                backoff.saturating_mul(2).clamp(std::time::Duration::from_millis(1), MAX_BACKOFF);
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Like [`ProjectionRunner::run_until`], but only while holding the projection's lock: waits
    /// (polling every `idle_wait`) until it gets the lock, runs, checks after every pass that it
    /// still holds it, and goes back to waiting if it lost it. The checkpoint is reloaded after
    /// each acquisition (another owner may have moved it); its compare-and-set stays the last word
    /// if two owners ever overlap.
    pub async fn run_exclusive<L: ProjectionLocks>(
        &mut self,
        locks: &L,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RunnerError> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let mut lock = loop {
                if let Some(lock) = locks.try_lock(&self.name).await? {
                    break lock;
                }
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(self.options.idle_wait) => {}
                }
            };
            tracing::info!(projection = %self.name, "es.projection: lock acquired; running");
            self.checkpoint = Known::Unknown;
            loop {
                let caught_up = self.catch_up().await?;
                if !lock.is_held().await {
                    tracing::warn!(
                        projection = %self.name,
                        "es.projection: lock lost; waiting to get it back"
                    );
                    break;
                }
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    waited = self.store.wait_for_events(caught_up.checkpoint, self.options.idle_wait) => { waited?; }
                }
            }
        }
    }

    /// The projection's progress: checkpoint, head, lag, last error.
    pub async fn status(&self) -> Result<ProjectionStatus, StoreError> {
        let checkpoint =
            self.store.load_checkpoint(&self.name).await?.unwrap_or(Position::BEGINNING);
        let head = self.store.head_position().await?;
        Ok(ProjectionStatus {
            name: self.name.clone(),
            checkpoint,
            head,
            lag: head.value().saturating_sub(checkpoint.value()),
            last_error: self.last_error.clone(),
        })
    }
}

impl<P, S> ProjectionRunner<P, S>
where
    P: Projection + Clone,
    S: EventStore + CheckpointStore + DeadLetterStore,
{
    /// Handles up to `partitions` streams of a batch at once, each stream's events in log order,
    /// every partition on its own clone of the projection; the checkpoint moves after the whole
    /// batch. For projections whose clones share their state and whose events of different
    /// streams are independent: process managers (each step its own command), models behind an
    /// `Arc`. When a partition stops on a failing event, the checkpoint stays before it, and
    /// later events of other partitions that were handled come again (at least once).
    #[must_use]
    pub fn with_concurrency(mut self, partitions: usize) -> Self {
        self.partitions = Some((partitions.max(1), P::clone));
        self
    }
}

/// One stream's events of a batch, in log order, with the projection clone that handles them.
type Partition<'a, P> = (P, Vec<&'a crate::RecordedEvent>);

/// Splits a batch by stream (first appearance order), skipping what is at or below `after`.
fn partition<'a, P>(
    projection: &P,
    fork: fn(&P) -> P,
    batch: &'a [crate::RecordedEvent],
    after: Position,
) -> Vec<Partition<'a, P>> {
    let mut index = std::collections::HashMap::<&str, usize>::new();
    let mut partitions: Vec<Partition<'a, P>> = Vec::new();
    for event in batch.iter().filter(|event| event.position > after) {
        let slot = *index.entry(event.stream_id.as_str()).or_insert_with(|| {
            partitions.push((fork(projection), Vec::new()));
            partitions.len() - 1
        });
        partitions[slot].1.push(event);
    }
    partitions
}

/// Runs the partitions, at most `at_once` at a time; returns the earliest failure under
/// [`OnFailure::Stop`], if any.
async fn run_partitions<P: Projection, S: DeadLetterStore>(
    partitions: Vec<Partition<'_, P>>,
    at_once: usize,
    store: &S,
    name: &str,
    options: &RunnerOptions,
) -> Result<Option<RunnerError>, RunnerError> {
    use futures_util::StreamExt;
    // A named async fn per partition and a hand-rolled bound on how many run (rather than a
    // closure and `buffer_unordered`): the future stays `Send` for callers that spawn it.
    let mut waiting = partitions.into_iter();
    let mut running = futures_util::stream::FuturesUnordered::new();
    for (worker, events) in waiting.by_ref().take(at_once.max(1)) {
        running.push(run_partition(worker, events, store, name, options));
    }
    let mut earliest: Option<RunnerError> = None;
    while let Some(outcome) = running.next().await {
        if let Some(failure) = outcome?
            && failure_position(&failure)
                < earliest.as_ref().map_or(Position::new(u64::MAX), failure_position)
        {
            earliest = Some(failure);
        }
        if let Some((worker, events)) = waiting.next() {
            running.push(run_partition(worker, events, store, name, options));
        }
    }
    Ok(earliest)
}

/// The position a handler failure stopped at.
fn failure_position(failure: &RunnerError) -> Position {
    match failure {
        RunnerError::Handler { position, .. } => *position,
        _ => Position::new(u64::MAX),
    }
}

/// Handles one partition's events in order; `Some(failure)` if one kept failing under
/// [`OnFailure::Stop`] (the partition stops there).
async fn run_partition<P: Projection, S: DeadLetterStore>(
    mut worker: P,
    events: Vec<&crate::RecordedEvent>,
    store: &S,
    name: &str,
    options: &RunnerOptions,
) -> Result<Option<RunnerError>, RunnerError> {
    for event in events {
        if let Err(failure) = handle_with_retries(&mut worker, event, options, name).await {
            if options.on_failure == OnFailure::Park {
                park(store, name, options.handler_attempts, event, &failure).await?;
                continue;
            }
            return Ok(Some(failure));
        }
    }
    Ok(None)
}

/// Hands `event` to the projection, retrying with backoff up to `options.handler_attempts`.
async fn handle_with_retries<P: Projection>(
    projection: &mut P,
    event: &crate::RecordedEvent,
    options: &RunnerOptions,
    name: &str,
) -> Result<(), RunnerError> {
    use futures_util::FutureExt;
    let mut delay = options.retry_delay;
    let mut attempt = 1;
    loop {
        // A panicking handler must not take the runner's task down with it (a dead task would
        // leave its model frozen while everything reports it running): the panic becomes a
        // handler failure, retried and then stopped on or parked like any other.
        let handled = std::panic::AssertUnwindSafe(projection.handle(event))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(ProjectionError::Panicked { message: panic_message(panic.as_ref()) })
            });
        match handled {
            Ok(()) => return Ok(()),
            Err(source) if attempt >= options.handler_attempts => {
                return Err(RunnerError::Handler {
                    projection: name.to_owned(),
                    position: event.position,
                    event_type: event.event_type.to_string(),
                    attempts: attempt,
                    source,
                });
            }
            Err(error) => {
                tracing::warn!(projection = %name, position = %event.position, attempt, %error, "es.projection: handler failed, retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
                attempt += 1;
            }
        }
    }
}

/// The text of a panic's payload (`panic!("…")` carries a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic payload that is not text)".to_owned()
    }
}

/// Parks `event` with its failure in the dead-letter store.
async fn park<S: DeadLetterStore>(
    store: &S,
    name: &str,
    attempts: u32,
    event: &crate::RecordedEvent,
    failure: &RunnerError,
) -> Result<(), RunnerError> {
    tracing::error!(projection = %name, position = %event.position, error = %failure, "es.projection: event parked");
    metrics::counter!("es_projection_parked_total", "projection" => name.to_owned()).increment(1);
    store
        .park(ParkedEvent {
            projection: name.to_owned(),
            position: event.position,
            event_type: event.event_type.clone(),
            // A handler's message is the application's text: a NUL in it would make PostgreSQL
            // refuse the record (and the runner fail) where the memory store keeps it.
            error: failure.to_string().replace('\0', "\u{fffd}"),
            attempts,
            parked_at: crate::event::recorded_now(),
        })
        .await?;
    Ok(())
}
