//! Dead letters: events a projection could not handle, parked with their error so the projection
//! can go on; listed and replayed by operators.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::{EventType, Position, ProjectionName, StoreError};

/// An event a projection parked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedEvent {
    /// The projection.
    pub projection: ProjectionName,
    /// The event's position.
    pub position: Position,
    /// The event's type.
    pub event_type: EventType,
    /// The last error.
    pub error: String,
    /// Attempts made before parking.
    pub attempts: u32,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
}

/// Stores parked events; implemented by the tenant-scoped store handles (a capability).
pub trait DeadLetterStore: Clone + Send + Sync + 'static {
    /// Parks an event (parking it again replaces the earlier record).
    fn park(&self, parked: ParkedEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The events a projection parked, oldest position first.
    fn parked(
        &self,
        projection: &ProjectionName,
    ) -> impl Future<Output = Result<Vec<ParkedEvent>, StoreError>> + Send;

    /// Forgets a parked event (after it was replayed successfully).
    fn unpark(
        &self,
        projection: &ProjectionName,
        position: Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
