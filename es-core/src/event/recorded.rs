//! What a store returns: the appended event with its tenant, stream, version, position and time.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde::de::DeserializeOwned;

use super::{EventMetadata, Payload};
use crate::{EventId, EventType, Position, StreamId, TenantId};

/// An event as a store returns it: the appended data plus where and when it was recorded.
///
/// Every field is cheap to clone (shared text and bytes), because reads hand out many of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The event's unique id.
    pub event_id: EventId,
    /// The tenant that owns the stream.
    pub tenant: TenantId,
    /// The stream the event belongs to.
    pub stream_id: StreamId,
    /// Its version in the stream: 1 for the first event, then 2, 3, … without gaps.
    pub stream_version: u64,
    /// Its position in the store's global order: increasing in the order readers see events, but
    /// not contiguous (a backend may leave gaps, for example after a rolled-back append).
    pub position: Position,
    /// The stable type name.
    pub event_type: EventType,
    /// The payload's schema version as written (before any upcasting).
    pub schema_version: u32,
    /// The event's body as written.
    pub payload: Payload,
    /// Correlation, causation, actor and custom key-values (shared by the events of one append
    /// when they carry the same metadata).
    pub metadata: Arc<EventMetadata>,
    /// When the store recorded the event, to the microsecond; every event of one append shares it.
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Deserializes the payload as written, without upcasting.
    pub fn deserialize_payload<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        self.payload.deserialize()
    }
}

/// The current time at the precision every backend stores (microseconds, as PostgreSQL's
/// `timestamptz`), so that a timestamp reads back equal to what was recorded.
pub fn recorded_now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
