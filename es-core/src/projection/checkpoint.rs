//! Projection checkpoints: the position of the last event a projection handled, saved with
//! compare-and-set so a worker that lost ownership cannot move it.

use std::future::Future;

use crate::{Position, ProjectionName, StoreError};

/// A checkpoint save lost a race: the stored checkpoint is not the one the writer read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "checkpoint of projection {projection:?} moved: expected {expected:?}, found {found:?}; another worker owns it"
)]
pub struct CheckpointConflict {
    /// The projection.
    pub projection: ProjectionName,
    /// The checkpoint the writer read.
    pub expected: Option<Position>,
    /// The checkpoint stored now.
    pub found: Option<Position>,
}

/// Why a checkpoint could not be saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Another worker moved the checkpoint.
    #[error(transparent)]
    Conflict(#[from] CheckpointConflict),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores projection checkpoints; implemented by the tenant-scoped store handles (a capability
/// beside [`EventStore`](crate::EventStore)).
pub trait CheckpointStore: Clone + Send + Sync + 'static {
    /// The checkpoint of `projection`, if it has one.
    fn load_checkpoint(
        &self,
        projection: &ProjectionName,
    ) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;

    /// Moves the checkpoint from `expected` (as the caller read it; `None`: no checkpoint yet) to
    /// `next`, or fails with [`CheckpointConflict`] and changes nothing.
    fn save_checkpoint(
        &self,
        projection: &ProjectionName,
        expected: Option<Position>,
        next: Position,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;

    /// Removes the checkpoint of `projection`, so its next run starts from the beginning; returns
    /// the removed position. Stop the projection's runners first (or hold its lock): a runner
    /// still running would fail its next save with a [`CheckpointConflict`].
    fn reset_checkpoint(
        &self,
        projection: &ProjectionName,
    ) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;
}
