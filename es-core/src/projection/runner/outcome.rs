//! What a runner reports: a pass's result, why it stopped, a projection's progress.

use super::super::ProjectionError;
use crate::projection::CheckpointError;
use crate::{EventType, Position, ProjectionName, StoreError};

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
        projection: ProjectionName,
        /// The event's position.
        position: Position,
        /// The event's type.
        event_type: EventType,
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
    /// The name its checkpoint is stored under ([`Projection::NAME`](crate::projection::Projection::NAME) unless the runner was
    /// renamed, as a rebuild's staging runner is).
    pub name: ProjectionName,
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
