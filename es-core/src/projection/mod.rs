//! Projections: read models built from the global log.
//!
//! `#[projection(name = "…")]` (feature `derive`) on an impl block of async handlers, one per
//! event type, implements [`Projection`]: the handled types (so the store filters, not the
//! runner), the dispatch, and the name the runner checkpoints under.

mod checkpoint;
mod dead_letter;
mod lock;
mod rebuild;
mod runner;
pub mod transactional;
mod volatile;

pub use checkpoint::{CheckpointConflict, CheckpointError, CheckpointStore};
pub use dead_letter::{DeadLetterStore, ParkedEvent};
pub use lock::{ProjectionLock, ProjectionLocks};
pub use rebuild::Rebuild;
pub use runner::{
    BatchStrategy, CatchUp, OnFailure, Partitioned, ProjectionRunner, ProjectionStatus,
    RunnerError, RunnerOptions, Sequential,
};
pub use transactional::{
    BatchFailure, Through, TransactionalProjection, TransactionalRunner, TransactionalStore,
};
pub use volatile::VolatileCheckpoints;

use std::error::Error as StdError;
use std::future::Future;

use crate::event::typed::{DecodeError, EventTypeInfo};
use crate::{EventType, LogEvent, Position, ProjectionName, RecordedEvent};

/// The checkpoint after a batch read from the log filtered to a projection's types.
///
/// `last` is the last event handled; `head` is the tenant's head read *before* the batch was read.
/// A full batch stops at `last`. A short batch means the read reached its horizon, which is at or
/// past `head` (the horizon only grows), so every event of a handled type up to `head` was
/// returned: the checkpoint may move up to `head`, over events of other types, and the lag of a
/// filtered projection reaches 0. Every runner uses this one rule.
pub fn checkpoint_after_batch(full: bool, last: Position, head: Position) -> Position {
    if full { last } else { last.max(head) }
}

/// A read model fed by events.
pub trait Projection: Send + 'static {
    /// The stable name its checkpoint is stored under.
    const NAME: &'static str;
    /// The event types it handles; the store delivers only these.
    const EVENT_TYPES: &'static [&'static EventTypeInfo];

    /// Handles one event (decoded and upcast by the generated code). At-least-once delivery:
    /// handlers must be idempotent.
    fn handle(
        &mut self,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// What its handlers read of each event. [`Reads::Envelope`] (the default): the runner reads
    /// whole envelopes and calls [`handle`](Projection::handle). [`Reads::Payload`]: the runner
    /// reads only position, type, schema version and payload
    /// ([`EventStore::replay_all`](crate::EventStore::replay_all), less than half of each stored
    /// row) and calls [`handle_payload`](Projection::handle_payload) instead, except when it
    /// handles batches partitioned by stream, which needs the envelope's stream id.
    /// `#[projection]` declares `Payload` when no handler takes the envelope.
    const READS: Reads = Reads::Envelope;

    /// Handles one event read without its envelope (see [`Projection::READS`]); the same
    /// contract as [`handle`](Projection::handle). A projection that declares
    /// [`Reads::Payload`] must implement it: the default fails every event with a
    /// [`ProjectionError::Handler`] that says so (the runner then retries, parks or stops under
    /// its policy, never skips).
    fn handle_payload(
        &mut self,
        event: &LogEvent,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        let position = event.position;
        async move {
            Err(ProjectionError::new(format!(
                "projection {} declares `Reads::Payload` but does not implement `handle_payload` \
                 (event at position {position})",
                Self::NAME
            )))
        }
    }

    /// The names of [`Projection::EVENT_TYPES`], for the store's filter.
    fn event_types() -> Vec<EventType> {
        Self::EVENT_TYPES.iter().filter_map(|info| EventType::new(info.name).ok()).collect()
    }

    /// [`Projection::NAME`] as a [`ProjectionName`]. Checked when the program is built: a
    /// hand-written `NAME` that breaks the naming rules stops the build here, never the runner.
    fn projection_name() -> ProjectionName {
        checked_name(<Self as CheckedName>::NAME)
    }
}

/// What a projection's handlers read of each event: see [`Projection::READS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reads {
    /// The whole [`RecordedEvent`]: stream, version, id, metadata, time (a handler that takes
    /// `meta: &RecordedEvent`).
    #[default]
    Envelope,
    /// Only position, type, schema version and payload: a [`LogEvent`].
    Payload,
}

/// The name of a projection, checked at compile time (evaluated once per projection type).
trait CheckedName {
    const NAME: &'static str;
}

impl<P: Projection + ?Sized> CheckedName for P {
    const NAME: &'static str = ProjectionName::checked(P::NAME);
}

/// A name already checked by [`ProjectionName::checked`] (so `new` cannot fail).
pub(crate) fn checked_name(name: &'static str) -> ProjectionName {
    ProjectionName::new(name)
        .unwrap_or_else(|error| unreachable!("{error}: checked at compile time"))
}

/// A projection failed to handle an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The stored event could not be decoded (unknown version, failed upcaster, bad payload).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The handler failed.
    #[error("{message}")]
    Handler {
        /// What failed.
        message: String,
        /// Why.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// The handler panicked. The runner treats it as a failure under its policy (retry, then stop
    /// before the event or park it) instead of dying with its task; whatever the handler had
    /// changed before it panicked stays changed, so handlers should change their model last.
    #[error("the handler panicked: {message}")]
    Panicked {
        /// The panic's message (or a placeholder when the payload is not text).
        message: String,
    },
}

impl ProjectionError {
    /// A handler failure with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self::Handler { message: message.into(), source: None }
    }

    /// A handler failure caused by another error.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::Handler { message: message.into(), source: Some(source.into()) }
    }
}
