//! The transactional runner: per batch, one transaction holding the handlers' writes and the
//! checkpoint's move; the same retries, parking, lag, live mode and lock as the projection runner.

use std::future::Future;

use futures_util::FutureExt;

use super::{BatchFailure, TransactionalProjection, TransactionalStore};
use crate::projection::runner::batch::{Context, panic_message, park};
use crate::projection::runner::drive::Passes;
use crate::projection::runner::{read_batch, report_lag, status};
use crate::projection::{
    CatchUp, DeadLetterStore, OnFailure, ProjectionError, ProjectionStatus, RunnerError,
    RunnerOptions,
};
use crate::{EventStore, EventType, Position, ProjectionName, RecordedEvent, StoreError};

/// Drives one [`TransactionalProjection`] over one tenant's [`TransactionalStore`].
///
/// A batch whose handler fails is rolled back and retried whole (`handler_attempts`, with
/// backoff). When it keeps failing, the events before the failing one are committed on their own,
/// so the checkpoint stops right before it; then, by [`RunnerOptions::on_failure`], the runner
/// stops there or parks that event (its checkpoint moving past it in a transaction of its own)
/// and goes on. Writes the connection deferred ([`TransactionalStore::flush_batch`]) that fail
/// cannot name their event: that batch is redone one event per transaction, so the events before
/// the failing one commit and it is retried and parked or stopped at like any other.
pub struct TransactionalRunner<P, S> {
    projection: P,
    store: S,
    name: ProjectionName,
    options: RunnerOptions,
    last_error: Option<String>,
    /// How many events are still to be handled one per transaction (after deferred writes of a
    /// batch failed).
    narrow: usize,
}

/// Why a batch's handling failed.
enum Failed {
    /// A handler failed, at an event it names.
    Handler(BatchFailure),
    /// The writes deferred until the end of the batch failed, at an event they cannot name.
    Flush(ProjectionError),
}

impl<P, S> TransactionalRunner<P, S>
where
    S: EventStore + TransactionalStore + DeadLetterStore,
    P: TransactionalProjection<S::Connection>,
{
    /// A runner with default options.
    pub fn new(projection: P, store: S) -> Self {
        Self {
            projection,
            store,
            name: P::projection_name(),
            options: RunnerOptions::default(),
            last_error: None,
            narrow: 0,
        }
    }

    /// Sets the options.
    #[must_use]
    pub fn with_options(mut self, options: RunnerOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs under another checkpoint name (a side-by-side rebuild's staging checkpoint, see
    /// [`Rebuild::start_transactional`](crate::projection::Rebuild::start_transactional)).
    #[must_use]
    pub fn with_name(mut self, name: ProjectionName) -> Self {
        self.name = name;
        self
    }

    /// The name the checkpoint, dead letters, lock and metrics go under:
    /// [`TransactionalProjection::NAME`] unless renamed.
    pub fn name(&self) -> &ProjectionName {
        &self.name
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The store the runner reads and writes.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles events until caught up with the head; each batch commits with its checkpoint.
    pub async fn catch_up(&mut self) -> Result<CatchUp, RunnerError> {
        let result = self.catch_up_inner().await;
        self.last_error = result.as_ref().err().map(ToString::to_string);
        result
    }

    async fn catch_up_inner(&mut self) -> Result<CatchUp, RunnerError> {
        let head = self.store.head_position().await?;
        let mut handled = 0;
        loop {
            let (done, full, checkpoint) = self.batch(head).await?;
            handled += done;
            report_lag(&self.name, head, checkpoint);
            if !full {
                return Ok(CatchUp { handled, checkpoint });
            }
        }
    }

    /// One batch, with retries: returns the events it handled or parked, whether the batch was
    /// full, and the checkpoint after it.
    async fn batch(&mut self, head: Position) -> Result<(u64, bool, Position), RunnerError> {
        let mut attempt = 1;
        let mut delay = self.options.retry_delay;
        loop {
            let (mut tx, stored) = self.store.begin_batch(&self.name).await?;
            let after = stored.unwrap_or(Position::BEGINNING);
            let narrowed = self.narrow > 0;
            // Options are cloned only for a narrowed batch, not for every batch.
            let one;
            let options = if narrowed {
                one = RunnerOptions { batch_size: 1, ..self.options.clone() };
                &one
            } else {
                &self.options
            };
            let batch =
                read_batch(&self.store, &self.name, P::event_types(), after, options).await?;
            let full = batch.len() >= options.batch_size;
            // An empty batch has nothing to handle: handlers never see one.
            let handled =
                if batch.is_empty() { Ok(()) } else { self.handle(&mut tx, &batch).await };
            let failure = match handled {
                Ok(()) => {
                    let last = batch.last().map_or(after, |event| event.position);
                    let next = crate::projection::checkpoint_after_batch(full, last, head);
                    if next > after {
                        self.store.commit_batch(tx, &self.name, stored, next).await?;
                    }
                    if narrowed {
                        self.narrow -= 1;
                    }
                    return Ok((batch.len() as u64, full, next.max(after)));
                }
                Err(Failed::Flush(source)) if batch.len() > 1 => {
                    // Which event's write failed is unknown: redo the batch one event per
                    // transaction, each with attempts of its own (this was not an attempt).
                    tracing::warn!(projection = %self.name, events = batch.len(), error = %source, "es.projection: deferred writes failed, redoing the batch one event at a time");
                    drop(tx);
                    self.narrow = batch.len();
                    (attempt, delay) = (1, self.options.retry_delay);
                    continue;
                }
                Err(Failed::Flush(source)) => BatchFailure { index: 0, source },
                Err(Failed::Handler(failure)) => failure,
            };
            // Dropping the transaction rolls back every write of the batch.
            drop(tx);
            let index = failure.index.min(batch.len().saturating_sub(1));
            let Some(failed) = batch.get(index) else {
                unreachable!("a failure of a non-empty batch names one of its events");
            };
            if attempt < self.options.handler_attempts {
                tracing::warn!(projection = %self.name, position = %failed.position, attempt, error = %failure.source, "es.projection: batch failed, retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
                attempt += 1;
                continue;
            }
            // Keeps failing: commit what comes before the failing event on its own.
            let mut checkpoint = stored;
            if index > 0 {
                let Some(committed) = self.commit_prefix(&batch[..index], stored).await? else {
                    // The events before the failing one failed in their turn (a deferred write
                    // that the failed attempts never reached, say): which one is unknown, so redo
                    // the batch one event per transaction, each with attempts of its own.
                    tracing::warn!(projection = %self.name, events = batch.len(), "es.projection: the events before a failing one failed too, redoing the batch one event at a time");
                    self.narrow = batch.len();
                    (attempt, delay) = (1, self.options.retry_delay);
                    continue;
                };
                checkpoint = Some(committed);
            }
            let error = Self::handler_error(
                &self.name,
                failed.position,
                &failed.event_type,
                attempt,
                failure.source,
            );
            if self.options.on_failure == OnFailure::Stop {
                return Err(error);
            }
            let context = Context { store: &self.store, name: &self.name, options: &self.options };
            park(&context, failed, &error).await?;
            let (tx, _) = self.store.begin_batch(&self.name).await?;
            self.store.commit_batch(tx, &self.name, checkpoint, failed.position).await?;
            if narrowed {
                self.narrow -= 1;
            }
            return Ok((index as u64 + 1, true, failed.position));
        }
    }

    /// Runs the batch handler, then does the writes it deferred; a panic is a failure of the
    /// batch, not of the runner's task.
    async fn handle(
        &mut self,
        tx: &mut S::Transaction,
        batch: &[RecordedEvent],
    ) -> Result<(), Failed> {
        std::panic::AssertUnwindSafe(self.projection.handle_batch(&mut **tx, batch))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(BatchFailure {
                    index: 0,
                    source: ProjectionError::Panicked { message: panic_message(panic.as_ref()) },
                })
            })
            .map_err(Failed::Handler)?;
        self.store.flush_batch(tx).await.map_err(Failed::Flush)
    }

    /// Commits the events before a failing one in a transaction of their own; returns the new
    /// checkpoint, or `None` when one of them failed in its turn (nothing is committed then).
    async fn commit_prefix(
        &mut self,
        prefix: &[RecordedEvent],
        stored: Option<Position>,
    ) -> Result<Option<Position>, RunnerError> {
        let (mut tx, now) = self.store.begin_batch(&self.name).await?;
        let last = prefix.last().map_or(Position::BEGINNING, |event| event.position);
        if now != stored {
            // Another runner moved the checkpoint meanwhile: leave the batch to it.
            return Err(RunnerError::Checkpoint(
                crate::projection::CheckpointConflict {
                    projection: self.name.clone(),
                    expected: stored,
                    found: now,
                }
                .into(),
            ));
        }
        if self.handle(&mut tx, prefix).await.is_err() {
            // Dropping the transaction rolls the prefix back.
            return Ok(None);
        }
        self.store.commit_batch(tx, &self.name, stored, last).await?;
        Ok(Some(last))
    }

    fn handler_error(
        name: &ProjectionName,
        position: Position,
        event_type: &EventType,
        attempts: u32,
        source: ProjectionError,
    ) -> RunnerError {
        RunnerError::Handler {
            projection: name.clone(),
            position,
            event_type: event_type.clone(),
            attempts,
            source,
        }
    }

    crate::projection::runner::drive::drive_methods!();

    /// The projection's progress: checkpoint, head, lag, last error.
    pub async fn status(&self) -> Result<ProjectionStatus, StoreError> {
        status(&self.store, &self.name, self.last_error.clone()).await
    }
}

impl<P, S> Passes for TransactionalRunner<P, S>
where
    S: EventStore + TransactionalStore + DeadLetterStore,
    P: TransactionalProjection<S::Connection>,
{
    type Store = S;

    fn pass(&mut self) -> impl Future<Output = Result<CatchUp, RunnerError>> {
        self.catch_up()
    }

    fn events(&self) -> &S {
        &self.store
    }

    fn lock_name(&self) -> &ProjectionName {
        &self.name
    }

    fn drive_options(&self) -> &RunnerOptions {
        &self.options
    }

    /// Nothing to forget: every batch reads the checkpoint under the transaction's lock.
    fn forget_checkpoint(&mut self) {}
}
