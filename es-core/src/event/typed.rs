//! Typed events: the link between Rust types and stored (type name, schema version, JSON).

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{EventData, Payload, PayloadError, RecordedEvent};
use crate::upcast::UpcastError;
use crate::{EventType, IdError};

/// The stable identity of one stored event type: its name, the schema version the code writes,
/// and the fields that hold personal data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventTypeInfo {
    /// The stored type name (`account.opened`).
    pub name: &'static str,
    /// The schema version the code writes; older stored versions are upcast to it on read.
    pub version: u32,
    /// Fields holding personal data, each with the field naming its data subject.
    pub pii: &'static [PiiField],
}

/// A field that holds personal data (`#[pii(subject = "customer")]` or `#[pii(stream)]`): the
/// store seals it with its data subject's key and it reads as redacted once the subject is
/// forgotten (see [`pii`](crate::pii)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PiiField {
    /// The top-level field holding the data.
    pub field: &'static str,
    /// What names the data subject.
    pub subject: PiiSubject,
}

/// What names the data subject of a [`PiiField`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PiiSubject {
    /// Another top-level field of the event, holding the subject's id (a string or an integer).
    Field(&'static str),
    /// The stream the event is appended to (`#[pii(stream)]`).
    Stream,
}

/// A Rust type whose values are stored as events: one event struct, or an enum of them.
///
/// Derive it (`#[derive(Event)]`, feature `derive`) rather than implement it: the derive checks
/// names and versions at compile time and generates the upcaster chain.
pub trait Event: Sized + Send + Sync + 'static {
    /// Every stored event type this Rust type reads and writes.
    const TYPES: &'static [&'static EventTypeInfo];

    /// The stored type (name and version) of this value.
    fn type_info(&self) -> &'static EventTypeInfo;

    /// The payload to store.
    fn to_payload(&self) -> Result<Payload, PayloadError>;

    /// Rebuilds a value from a stored event of type `event_type` at `schema_version`, upcasting
    /// older versions first. Never panics on stored data: every failure is a [`DecodeError`].
    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &Payload,
    ) -> Result<Self, DecodeError>;

    /// Rebuilds a value from a recorded event (see [`Event::from_stored`]).
    fn decode(recorded: &RecordedEvent) -> Result<Self, DecodeError> {
        Self::from_stored(recorded.event_type.as_str(), recorded.schema_version, &recorded.payload)
    }

    /// The event to append: type name, current schema version and payload (a fresh event id, no
    /// metadata).
    fn to_event_data(&self) -> Result<EventData, EncodeError> {
        let info = self.type_info();
        let event_type = EventType::new(info.name)?;
        Ok(EventData::new(event_type, self.to_payload()?)
            .with_schema_version(info.version)
            .with_pii(info.pii))
    }

    /// The stored type names of [`Event::TYPES`], for a store-side filter
    /// ([`ReadAllOptions::event_types`](crate::ReadAllOptions::event_types)).
    fn event_types() -> Vec<EventType> {
        Self::TYPES.iter().filter_map(|info| EventType::new(info.name).ok()).collect()
    }
}

/// One event struct (what `#[derive(Event)]` on a struct implements): its single stored type, for
/// enums of events and projections to name in constants.
pub trait EventVariant: Event + Serialize + DeserializeOwned {
    /// The stored type.
    const INFO: EventTypeInfo;
}

/// A typed event could not be turned into an [`EventData`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload could not be serialized.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The type name is not a valid [`EventType`] (only possible for hand-written impls: the derive
    /// checks names at compile time).
    #[error(transparent)]
    TypeName(#[from] IdError),
}

/// A stored event could not be read as a typed event. Nothing is skipped silently: the caller
/// decides (a projection parks the event, an aggregate load fails).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stored type name is not one this Rust type reads.
    #[error("event type {event_type:?} is not one of {known}")]
    UnknownType {
        /// The stored name.
        event_type: String,
        /// The names this type reads.
        known: KnownTypes,
    },
    /// The stored schema version is newer than the code (deploy the newer code first).
    #[error(
        "event {event_type:?} has schema version {stored}, newer than version {current} this code reads; deploy the code that writes it"
    )]
    NewerVersion {
        /// The type name.
        event_type: String,
        /// The stored version.
        stored: u32,
        /// The newest version this code knows.
        current: u32,
    },
    /// The stored schema version is older than the upcaster chain reaches.
    #[error(
        "event {event_type:?} has schema version {stored}, and no upcaster reads it (version {current} is current; add `upcast(from = {stored}, …)`)"
    )]
    NoUpcaster {
        /// The type name.
        event_type: String,
        /// The stored version.
        stored: u32,
        /// The current version.
        current: u32,
    },
    /// An upcaster failed.
    #[error("upcasting event {event_type:?} from version {from} failed: {source}")]
    Upcast {
        /// The type name.
        event_type: String,
        /// The version the failing upcaster reads.
        from: u32,
        /// What went wrong.
        source: UpcastError,
    },
    /// The (upcast) payload does not deserialize into the type.
    #[error(
        "event {event_type:?} (stored at schema version {schema_version}) does not deserialize: {source}"
    )]
    Deserialize {
        /// The type name.
        event_type: String,
        /// The stored version.
        schema_version: u32,
        /// The serde error.
        source: serde_json::Error,
    },
}

/// The type names a [`DecodeError::UnknownType`] expected, for its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownTypes(pub &'static [&'static EventTypeInfo]);

impl fmt::Display for KnownTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, info) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{:?}", info.name)?;
        }
        f.write_str("]")
    }
}
