//! Handling one batch: in log order on the projection itself, or partitioned by stream over
//! clones of it. Both return one [`BatchOutcome`], which the runner saves and reports in one place.

use futures_util::FutureExt;

use super::{OnFailure, RunnerError, RunnerOptions};
use crate::projection::{DeadLetterStore, ParkedEvent, Projection, ProjectionError};
use crate::{EventType, LogEvent, Position, ProjectionName, RecordedEvent};

/// An event as a runner hands it to a projection: a whole envelope ([`Projection::handle`]) or,
/// for a projection that reads only payloads, a [`LogEvent`] ([`Projection::handle_payload`]).
pub(crate) trait Delivered: Sync {
    /// Its position in the log.
    fn position(&self) -> Position;
    /// Its stored type.
    fn event_type(&self) -> &EventType;
    /// Hands it to the projection's handler for this kind of event.
    fn deliver<P: Projection>(
        &self,
        projection: &mut P,
    ) -> impl std::future::Future<Output = Result<(), ProjectionError>> + Send;
}

impl Delivered for RecordedEvent {
    fn position(&self) -> Position {
        self.position
    }

    fn event_type(&self) -> &EventType {
        &self.event_type
    }

    fn deliver<P: Projection>(
        &self,
        projection: &mut P,
    ) -> impl std::future::Future<Output = Result<(), ProjectionError>> + Send {
        projection.handle(self)
    }
}

impl Delivered for LogEvent {
    fn position(&self) -> Position {
        self.position
    }

    fn event_type(&self) -> &EventType {
        &self.event_type
    }

    fn deliver<P: Projection>(
        &self,
        projection: &mut P,
    ) -> impl std::future::Future<Output = Result<(), ProjectionError>> + Send {
        projection.handle_payload(self)
    }
}

/// How a runner handles a batch: [`Sequential`] (the default) or [`Partitioned`] by stream,
/// chosen by type ([`ProjectionRunner::with_concurrency`](super::ProjectionRunner::with_concurrency)
/// turns one into the other and requires what partitioning needs: a `Clone` projection). Sealed:
/// the two strategies are the runner's own.
pub trait BatchStrategy<P>: sealed::Sealed + Send + Sync + 'static {
    #[doc(hidden)]
    fn run<S: DeadLetterStore>(
        &self,
        projection: &mut P,
        batch: &[RecordedEvent],
        after: Position,
        context: &Context<'_, S>,
    ) -> impl std::future::Future<Output = Result<BatchOutcome, RunnerError>>;

    /// Whether it handles every batch in log order on the projection itself (so a runner may
    /// read payloads only, for a projection that declares [`crate::projection::Reads::Payload`]).
    #[doc(hidden)]
    fn in_log_order(&self) -> bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Sequential {}
    impl Sealed for super::Partitioned {}
}

/// Every event of a batch in log order, on the projection itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sequential;

/// Up to `at_once` streams of a batch at a time, each in log order, each on its own clone of the
/// projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partitioned {
    /// How many streams run at once (at least 1).
    pub at_once: usize,
}

impl<P: Projection> BatchStrategy<P> for Sequential {
    fn run<S: DeadLetterStore>(
        &self,
        projection: &mut P,
        batch: &[RecordedEvent],
        after: Position,
        context: &Context<'_, S>,
    ) -> impl std::future::Future<Output = Result<BatchOutcome, RunnerError>> {
        sequential(projection, batch, after, context)
    }

    fn in_log_order(&self) -> bool {
        true
    }
}

impl<P: Projection + Clone> BatchStrategy<P> for Partitioned {
    fn run<S: DeadLetterStore>(
        &self,
        projection: &mut P,
        batch: &[RecordedEvent],
        after: Position,
        context: &Context<'_, S>,
    ) -> impl std::future::Future<Output = Result<BatchOutcome, RunnerError>> {
        let at_once = self.at_once;
        async move {
            if at_once > 1 {
                partitioned(projection, P::clone, at_once, batch, after, context).await
            } else {
                sequential(projection, batch, after, context).await
            }
        }
    }

    fn in_log_order(&self) -> bool {
        self.at_once <= 1
    }
}

/// What a batch strategy needs of its runner: where to park, under which name, with which options.
#[doc(hidden)]
pub struct Context<'a, S> {
    pub(crate) store: &'a S,
    pub(crate) name: &'a ProjectionName,
    pub(crate) options: &'a RunnerOptions,
}

/// What handling a batch did.
#[doc(hidden)]
pub struct BatchOutcome {
    /// The last position handled (or parked) with everything before it handled: where the
    /// checkpoint may move. The batch's `after` if nothing was.
    pub(super) last: Position,
    /// Events handled or parked.
    pub(super) handled: u64,
    /// The failure that stopped the batch under [`OnFailure::Stop`], at the position after `last`
    /// among the batch's events.
    pub(super) failure: Option<RunnerError>,
}

/// Handles the batch's events after `after`, in log order, on the projection itself.
pub(super) async fn sequential<P: Projection, S: DeadLetterStore, E: Delivered>(
    projection: &mut P,
    batch: &[E],
    after: Position,
    context: &Context<'_, S>,
) -> Result<BatchOutcome, RunnerError> {
    let mut outcome = BatchOutcome { last: after, handled: 0, failure: None };
    for event in batch {
        if event.position() <= outcome.last {
            continue; // delivered twice: handled already
        }
        if let Err(failure) = handle_with_retries(projection, event, context).await {
            if context.options.on_failure == OnFailure::Stop {
                outcome.failure = Some(failure);
                return Ok(outcome);
            }
            park(context, event, &failure).await?;
        }
        outcome.last = event.position();
        outcome.handled += 1;
    }
    Ok(outcome)
}

/// Handles the batch's events after `after` by stream, up to `at_once` streams at a time, each on
/// its own clone of the projection (`fork`), each stream in log order.
async fn partitioned<P: Projection, S: DeadLetterStore>(
    projection: &P,
    fork: fn(&P) -> P,
    at_once: usize,
    batch: &[RecordedEvent],
    after: Position,
    context: &Context<'_, S>,
) -> Result<BatchOutcome, RunnerError> {
    let partitions = partition(projection, fork, batch, after);
    let failure = run_partitions(partitions, at_once, context).await?;
    // The batch is in log order: everything before the earliest failure was handled.
    let stop = failure.as_ref().map_or(Position::new(u64::MAX), failure_position);
    let mut outcome = BatchOutcome { last: after, handled: 0, failure };
    for event in batch.iter().filter(|event| event.position > after && event.position < stop) {
        outcome.last = event.position;
        outcome.handled += 1;
    }
    Ok(outcome)
}

/// One stream's events of a batch, in log order, with the projection clone that handles them.
type Partition<'a, P> = (P, Vec<&'a RecordedEvent>);

/// Splits a batch by stream (first appearance order), skipping what is at or below `after`.
fn partition<'a, P>(
    projection: &P,
    fork: fn(&P) -> P,
    batch: &'a [RecordedEvent],
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
    context: &Context<'_, S>,
) -> Result<Option<RunnerError>, RunnerError> {
    use futures_util::StreamExt;
    // A named async fn per partition and a hand-rolled bound on how many run (rather than a
    // closure and `buffer_unordered`): the future stays `Send` for callers that spawn it.
    let mut waiting = partitions.into_iter();
    let mut running = futures_util::stream::FuturesUnordered::new();
    for (worker, events) in waiting.by_ref().take(at_once.max(1)) {
        running.push(run_partition(worker, events, context));
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
            running.push(run_partition(worker, events, context));
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
    events: Vec<&RecordedEvent>,
    context: &Context<'_, S>,
) -> Result<Option<RunnerError>, RunnerError> {
    for event in events {
        if let Err(failure) = handle_with_retries(&mut worker, event, context).await {
            if context.options.on_failure == OnFailure::Park {
                park(context, event, &failure).await?;
                continue;
            }
            return Ok(Some(failure));
        }
    }
    Ok(None)
}

/// Hands `event` to the projection, retrying with backoff up to `options.handler_attempts`.
pub(super) async fn handle_with_retries<P: Projection, S, E: Delivered>(
    projection: &mut P,
    event: &E,
    context: &Context<'_, S>,
) -> Result<(), RunnerError> {
    let (options, name) = (context.options, context.name);
    let mut delay = options.retry_delay;
    let mut attempt = 1;
    loop {
        // A panicking handler must not take the runner's task down with it (a dead task would
        // leave its model frozen while everything reports it running): the panic becomes a
        // handler failure, retried and then stopped on or parked like any other.
        let handled = std::panic::AssertUnwindSafe(event.deliver(projection))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(ProjectionError::Panicked { message: panic_message(panic.as_ref()) })
            });
        match handled {
            Ok(()) => return Ok(()),
            Err(source) if attempt >= options.handler_attempts => {
                return Err(RunnerError::Handler {
                    projection: name.clone(),
                    position: event.position(),
                    event_type: event.event_type().clone(),
                    attempts: attempt,
                    source,
                });
            }
            Err(error) => {
                tracing::warn!(projection = %name, position = %event.position(), attempt, %error, "es.projection: handler failed, retrying");
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
pub(crate) async fn park<S: DeadLetterStore, E: Delivered>(
    context: &Context<'_, S>,
    event: &E,
    failure: &RunnerError,
) -> Result<(), RunnerError> {
    let (store, name, attempts) = (context.store, context.name, context.options.handler_attempts);
    tracing::error!(projection = %name, position = %event.position(), error = %failure, "es.projection: event parked");
    metrics::counter!("es_projection_parked_total", "projection" => name.to_string()).increment(1);
    store
        .park(ParkedEvent {
            projection: name.clone(),
            position: event.position(),
            event_type: event.event_type().clone(),
            // A handler's message is the application's text: a NUL in it would make PostgreSQL
            // refuse the record (and the runner fail) where the memory store keeps it.
            error: failure.to_string().replace('\0', "\u{fffd}"),
            attempts,
            parked_at: crate::event::recorded_now(),
        })
        .await?;
    Ok(())
}
