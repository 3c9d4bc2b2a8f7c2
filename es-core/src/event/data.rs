//! What a caller appends: an event's id, type, schema version, payload and metadata.

use serde::Serialize;

use super::typed::PiiField;
use super::{EventMetadata, Payload, PayloadError};
use crate::{EventId, EventType};

/// One event to append: its id, type name, schema version, payload and metadata.
///
/// ```
/// use es_core::{EventData, EventType};
/// #[derive(serde::Serialize)]
/// struct Deposited { amount: i64 }
///
/// let event = EventData::json(EventType::new("account.deposited")?, &Deposited { amount: 5 })?
///     .with_schema_version(2);
/// assert_eq!(event.schema_version, 2);
/// assert_eq!(event.payload.as_str(), r#"{"amount":5}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventData {
    /// Unique within the tenant; a fresh UUID v7 unless the caller sets one.
    pub event_id: EventId,
    /// The stable type name.
    pub event_type: EventType,
    /// The version of the payload's schema, starting at 1; readers upcast older versions.
    pub schema_version: u32,
    /// The event's body.
    pub payload: Payload,
    /// Correlation, causation, actor and custom key-values.
    pub metadata: EventMetadata,
    /// The payload's fields holding personal data, which the store seals before writing (set from
    /// the event type's `#[pii]` fields by [`Event::to_event_data`](crate::Event::to_event_data);
    /// empty for most events).
    pub pii: &'static [PiiField],
}

impl EventData {
    /// An event with a fresh id, schema version 1 and empty metadata.
    pub fn new(event_type: EventType, payload: Payload) -> Self {
        Self {
            event_id: EventId::new(),
            event_type,
            schema_version: 1,
            payload,
            metadata: EventMetadata::default(),
            pii: &[],
        }
    }

    /// Serializes `value` as the payload of a new event (see [`EventData::new`]).
    pub fn json<T: Serialize + ?Sized>(
        event_type: EventType,
        value: &T,
    ) -> Result<Self, PayloadError> {
        Ok(Self::new(event_type, Payload::from_value(value)?))
    }

    /// Sets the event id, for callers that choose their own (for example to make retries idempotent).
    #[must_use]
    pub fn with_event_id(mut self, event_id: EventId) -> Self {
        self.event_id = event_id;
        self
    }

    /// Sets the schema version (1 to 2³¹−1; a store refuses others).
    #[must_use]
    pub fn with_schema_version(mut self, schema_version: u32) -> Self {
        self.schema_version = schema_version;
        self
    }

    /// Sets the fields holding personal data (see [`EventData::pii`]).
    #[must_use]
    pub fn with_pii(mut self, pii: &'static [PiiField]) -> Self {
        self.pii = pii;
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: EventMetadata) -> Self {
        self.metadata = metadata;
        self
    }
}
