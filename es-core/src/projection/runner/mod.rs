//! The projection runner: reads the log from the projection's checkpoint, only the types it
//! handles, applies the handlers, saves the checkpoint (compare-and-set); then waits for new events.
//!
//! Delivery is at least once (a crash between handling and saving replays the batch), so handlers
//! must be idempotent; events at or below the checkpoint are never delivered again by one runner.

//!
//! The layout: `options` (how it reads and retries), `outcome` (what it reports), `batch` (one
//! batch, sequential or partitioned by stream, as one outcome), `drive` (the one loop behind
//! `run_until`, `follow`, `run_exclusive` and `follow_exclusive`), and here the pass itself.

pub(crate) mod batch;
pub(crate) mod drive;
mod options;
mod outcome;

use futures_util::TryStreamExt;
use tracing::Instrument;

use self::batch::Context;
pub use self::batch::{BatchStrategy, Partitioned, Sequential};
pub use self::options::{OnFailure, RunnerOptions};
pub use self::outcome::{CatchUp, ProjectionStatus, RunnerError};
use super::{CheckpointStore, DeadLetterStore, Projection, Reads};
use crate::{EventStore, Position, ProjectionName, ReadAllOptions, RecordedEvent, StoreError};

/// Drives one projection over one tenant's store, handling each batch by strategy `B`
/// ([`Sequential`], or [`Partitioned`] after [`with_concurrency`](Self::with_concurrency)).
pub struct ProjectionRunner<P, S, B = Sequential> {
    projection: P,
    store: S,
    name: ProjectionName,
    options: RunnerOptions,
    /// How each batch is handled: a type, so replacing the options never changes it.
    batches: B,
    checkpoint: Known,
    last_error: Option<String>,
}

/// What the runner knows of its stored checkpoint.
#[derive(Clone, Copy, Debug)]
enum Known {
    /// Not read yet, or forgotten after a failed save: read it from the store.
    Unknown,
    /// As last read or saved (`None`: the projection has no checkpoint yet).
    Stored(Option<Position>),
}

impl<P: Projection, S: EventStore + CheckpointStore + DeadLetterStore> ProjectionRunner<P, S> {
    /// A runner with default options, handling batches in log order.
    pub fn new(projection: P, store: S) -> Self {
        Self {
            projection,
            store,
            name: P::projection_name(),
            options: RunnerOptions::default(),
            batches: Sequential,
            checkpoint: Known::Unknown,
            last_error: None,
        }
    }
}

impl<P, S, B> ProjectionRunner<P, S, B>
where
    P: Projection,
    S: EventStore + CheckpointStore + DeadLetterStore,
    B: BatchStrategy<P>,
{
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
    pub fn name(&self) -> &ProjectionName {
        &self.name
    }

    /// Runs the projection under another checkpoint name (a rebuild's staging name, or one
    /// read model per process for volatile in-memory models).
    #[must_use]
    pub fn with_name(mut self, name: ProjectionName) -> Self {
        self.name = name;
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
        // One read for the whole pass, cut into batches: a backend may read its next page while
        // a batch is handled (PostgreSQL does, in a task of its own). Dropped, so ended, when the
        // pass ends or fails. Payloads only where the projection reads nothing else and the
        // batches are handled in log order (partitions need the envelope's stream id).
        let options = ReadAllOptions::after(saved.unwrap_or(Position::BEGINNING))
            .event_types(P::event_types())
            .page_size(self.options.read_page());
        let mut events = if P::READS == Reads::Payload && self.batches.in_log_order() {
            Read::Payloads(self.store.replay_all(options), Vec::new().into_iter())
        } else {
            Read::Envelopes(self.store.read_all(options))
        };
        loop {
            let after = saved.unwrap_or(Position::BEGINNING);
            let batch_size = self.options.batch_size;
            let context = Context { store: &self.store, name: &self.name, options: &self.options };
            let (outcome, full) = match &mut events {
                Read::Envelopes(events) => {
                    let batch = next_batch(events, &self.name, after, batch_size).await?;
                    // Handled by the runner's strategy: partitioned by stream when
                    // `with_concurrency` asked for more than one partition, otherwise in log order.
                    let outcome =
                        self.batches.run(&mut self.projection, &batch, after, &context).await?;
                    (outcome, batch.len() >= batch_size)
                }
                Read::Payloads(pages, pending) => {
                    let batch =
                        next_batch_of_pages(pages, pending, &self.name, after, batch_size).await?;
                    let outcome =
                        batch::sequential(&mut self.projection, &batch, after, &context).await?;
                    (outcome, batch.len() >= batch_size)
                }
            };
            handled += outcome.handled;
            // After a failure the checkpoint stops before the failing event; otherwise it may
            // pass over events of other types up to the head (see `checkpoint_after_batch`).
            let next = if outcome.failure.is_some() {
                outcome.last
            } else {
                super::checkpoint_after_batch(full, outcome.last, head)
            };
            if next > after {
                self.save(&mut saved, next).await?;
            }
            let checkpoint = saved.unwrap_or(Position::BEGINNING);
            self.report_lag(head, checkpoint);
            if let Some(failure) = outcome.failure {
                return Err(failure);
            }
            if !full {
                return Ok(CatchUp { handled, checkpoint });
            }
        }
    }

    /// Sets the `es_projection_lag` gauge: at the start of each pass (so it shows what arrived
    /// since the last one) and after each batch (so it falls as a long catch-up proceeds).
    fn report_lag(&self, head: Position, checkpoint: Position) {
        report_lag(&self.name, head, checkpoint);
    }

    /// Hands every parked event of this projection to its handler again (with the usual
    /// retries); those that now succeed are unparked, the others stay parked with the new error.
    /// Returns how many were replayed successfully and how many remain parked.
    pub async fn replay_parked(&mut self) -> Result<(u64, u64), RunnerError> {
        self.replay_parked_at(None).await
    }

    /// As [`replay_parked`](Self::replay_parked), but with `Some(position)` only the event parked
    /// at that position (none if nothing is parked there).
    pub async fn replay_parked_at(
        &mut self,
        only: Option<Position>,
    ) -> Result<(u64, u64), RunnerError> {
        let (mut replayed, mut remaining) = (0, 0);
        let parked = self.store.parked(&self.name).await?;
        for parked in
            parked.into_iter().filter(|parked| only.is_none_or(|at| parked.position == at))
        {
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
            let context = Context { store: &self.store, name: &self.name, options: &self.options };
            match batch::handle_with_retries(&mut self.projection, &event, &context).await {
                Ok(()) => {
                    self.store.unpark(&self.name, parked.position).await?;
                    replayed += 1;
                }
                Err(failure) => {
                    batch::park(&context, &event, &failure).await?;
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

    /// The projection's progress: checkpoint, head, lag, last error.
    pub async fn status(&self) -> Result<ProjectionStatus, StoreError> {
        status(&self.store, &self.name, self.last_error.clone()).await
    }
}

impl<P, S, B> ProjectionRunner<P, S, B>
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
    /// `with_concurrency(1)` (or 0) is the sequential runner: every event in log order, on the
    /// projection itself.
    #[must_use]
    pub fn with_concurrency(self, partitions: usize) -> ProjectionRunner<P, S, Partitioned> {
        ProjectionRunner {
            projection: self.projection,
            store: self.store,
            name: self.name,
            options: self.options,
            batches: Partitioned { at_once: partitions.max(1) },
            checkpoint: self.checkpoint,
            last_error: self.last_error,
        }
    }
}

/// Reads one batch of a projection: its types after `after`, `batch_size` events at most, in an
/// `es.projection.read` span that records how many came.
pub(crate) async fn read_batch<S: EventStore>(
    store: &S,
    name: &ProjectionName,
    types: Vec<crate::EventType>,
    after: Position,
    options: &RunnerOptions,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = store.read_all(
        ReadAllOptions::after(after)
            .event_types(types)
            .page_size(options.batch_size)
            .limit(options.batch_size as u64),
    );
    next_batch(&mut events, name, after, options.batch_size).await
}

/// A pass's read: whole envelopes, or pages of payloads only (see [`Projection::READS`]) with
/// what is left of the page a batch ended in.
enum Read {
    Envelopes(crate::EventStream),
    Payloads(crate::LogEventStream, std::vec::IntoIter<crate::LogEvent>),
}

/// [`next_batch`] from a read of pages: the rest of the current page, then whole pages, without
/// a poll per event.
async fn next_batch_of_pages(
    pages: &mut crate::LogEventStream,
    pending: &mut std::vec::IntoIter<crate::LogEvent>,
    name: &ProjectionName,
    after: Position,
    batch_size: usize,
) -> Result<Vec<crate::LogEvent>, StoreError> {
    in_read_span(name, after, async {
        let mut batch = Vec::with_capacity(batch_size.min(8_192));
        loop {
            batch.extend(pending.by_ref().take(batch_size - batch.len()));
            if batch.len() >= batch_size {
                break;
            }
            match pages.try_next().await? {
                Some(page) => *pending = page.into_iter(),
                None => break,
            }
        }
        Ok(batch)
    })
    .await
}

/// The next batch of a pass's read: up to `batch_size` events (fewer only where the read ends),
/// in an `es.projection.read` span that records how many came.
async fn next_batch(
    events: &mut crate::EventStream,
    name: &ProjectionName,
    after: Position,
    batch_size: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    in_read_span(name, after, async {
        let mut batch = Vec::with_capacity(batch_size.min(8_192));
        while batch.len() < batch_size {
            match events.try_next().await? {
                Some(event) => batch.push(event),
                None => break,
            }
        }
        Ok(batch)
    })
    .await
}

/// Reads a batch (`read`) in an `es.projection.read` span that records how many events came.
async fn in_read_span<T>(
    name: &ProjectionName,
    after: Position,
    read: impl std::future::Future<Output = Result<Vec<T>, StoreError>>,
) -> Result<Vec<T>, StoreError> {
    let span = tracing::debug_span!(
        "es.projection.read",
        projection = %name,
        after = after.value(),
        events = tracing::field::Empty,
    );
    let batch = read.instrument(span.clone()).await?;
    span.record("events", batch.len());
    Ok(batch)
}

/// Sets the `es_projection_lag` gauge of `name`.
pub(crate) fn report_lag(name: &ProjectionName, head: Position, checkpoint: Position) {
    let lag = head.value().saturating_sub(checkpoint.value());
    // A gauge is an f64; lags beyond 2^52 positions would lose precision, which is moot.
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("es_projection_lag", "projection" => name.to_string()).set(lag as f64);
}

/// A projection's progress as stored: its checkpoint against the tenant's head.
pub(crate) async fn status<S: EventStore + CheckpointStore>(
    store: &S,
    name: &ProjectionName,
    last_error: Option<String>,
) -> Result<ProjectionStatus, StoreError> {
    let checkpoint = store.load_checkpoint(name).await?.unwrap_or(Position::BEGINNING);
    let head = store.head_position().await?;
    Ok(ProjectionStatus {
        name: name.clone(),
        checkpoint,
        head,
        lag: head.value().saturating_sub(checkpoint.value()),
        last_error,
    })
}
