//! Reads: of one stream, of the global log, and the lighter read a fold needs.

use std::pin::Pin;

use futures_core::Stream;

use super::{Position, StoreError};
use crate::{EventId, EventType, RecordedEvent};

/// The events a read returns, one at a time, fetched by the backend in pages so that memory stays
/// bounded whatever the size of the log. A read that fails yields the error as an item; a read
/// that finds nothing simply ends.
pub type EventStream =
    Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send + 'static>>;

/// The part of an event a fold needs: what [`EventStore::replay_stream`](crate::EventStore::replay_stream)
/// returns, cheaper to read than the whole envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayedEvent {
    /// Its version in the stream.
    pub stream_version: u64,
    /// Its id (a loaded snapshot is checked against the id of the event it was taken at).
    pub event_id: EventId,
    /// The stored type name.
    pub event_type: EventType,
    /// The payload's schema version as written.
    pub schema_version: u32,
    /// The payload as written.
    pub payload: crate::Payload,
}

impl From<RecordedEvent> for ReplayedEvent {
    fn from(event: RecordedEvent) -> Self {
        Self {
            stream_version: event.stream_version,
            event_id: event.event_id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            payload: event.payload,
        }
    }
}

/// The events a replay returns, oldest first, one page (a few hundred to a few thousand events) per
/// item, never an empty page: a fold walks millions of events, and per-event stream polling would
/// cost it measurably.
pub type ReplayStream =
    Pin<Box<dyn Stream<Item = Result<Vec<ReplayedEvent>, StoreError>> + Send + 'static>>;

/// The part of an event of the global log that a projection needs when its handlers take only
/// the event, not the envelope: what [`EventStore::replay_all`](crate::EventStore::replay_all)
/// returns. Without the stream id, version, event id, metadata and time, a store reads and sends
/// less than half of each row, which is most of a long replay's cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    /// Its position in the tenant's global log.
    pub position: Position,
    /// The stored type name.
    pub event_type: EventType,
    /// The payload's schema version as written (before any upcasting).
    pub schema_version: u32,
    /// The payload as written (personal data opened, as by `read_all`).
    pub payload: crate::Payload,
}

impl From<RecordedEvent> for LogEvent {
    fn from(event: RecordedEvent) -> Self {
        Self {
            position: event.position,
            event_type: event.event_type,
            schema_version: event.schema_version,
            payload: event.payload,
        }
    }
}

/// The events [`EventStore::replay_all`](crate::EventStore::replay_all) returns, in position
/// order, one page (up to the read's page size) per item, never an empty page: a replay walks
/// millions of events, and per-event stream polling would cost it measurably (as for
/// [`ReplayStream`]).
pub type LogEventStream =
    Pin<Box<dyn Stream<Item = Result<Vec<LogEvent>, StoreError>> + Send + 'static>>;

/// The direction of a stream read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Oldest first.
    #[default]
    Forward,
    /// Newest first.
    Backward,
}

/// Which events of one stream to read.
///
/// ```
/// use es_core::{Direction, ReadStreamOptions};
/// // Versions 5, 6, 7 (if the stream has them):
/// let middle = ReadStreamOptions::forward().from_version(5).limit(3);
/// // The last event only:
/// let last = ReadStreamOptions::backward().limit(1);
/// assert_eq!(last.direction, Direction::Backward);
/// assert_eq!(middle.from_version, Some(5));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadStreamOptions {
    /// Oldest first or newest first.
    pub direction: Direction,
    /// The first version to return: forwards, events at this version and after; backwards, at this
    /// version and before. `None` starts at the stream's first event (forwards) or last (backwards).
    /// A version past the end reads nothing forwards and everything backwards.
    pub from_version: Option<u64>,
    /// The most events to return; `None` for all.
    pub limit: Option<u64>,
}

impl ReadStreamOptions {
    /// Reads oldest first from the first event.
    pub fn forward() -> Self {
        Self { direction: Direction::Forward, ..Self::default() }
    }

    /// Reads newest first from the last event.
    pub fn backward() -> Self {
        Self { direction: Direction::Backward, ..Self::default() }
    }

    /// Starts at `version` (inclusive).
    #[must_use]
    pub fn from_version(mut self, version: u64) -> Self {
        self.from_version = Some(version);
        self
    }

    /// Returns at most `limit` events.
    #[must_use]
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// Which events of the tenant's global log to read.
///
/// The read returns the events after `after` in position order, up to the head as it stands while
/// the read goes on, then ends; to follow the log, read again from the last position seen (waiting
/// with [`EventStore::wait_for_events`](crate::EventStore::wait_for_events) in between).
///
/// ```
/// use es_core::{EventType, Position, ReadAllOptions};
/// let options = ReadAllOptions::after(Position::new(1_000))
///     .event_types([EventType::new("account.opened")?])
///     .limit(500);
/// assert_eq!(options.after, Position::new(1_000));
/// # Ok::<(), es_core::IdError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadAllOptions {
    /// Read events whose position is greater than this one.
    pub after: Position,
    /// Only events of these types (filtered by the store, not the caller); `None` for all types.
    pub event_types: Option<Vec<EventType>>,
    /// The most events to return; `None` for all.
    pub limit: Option<u64>,
    /// How many events the backend fetches per page (a hint; memory use is bounded by a few pages:
    /// a backend may read the next page while the reader handles this one, as PostgreSQL does).
    pub page_size: usize,
}

impl ReadAllOptions {
    /// The default page size.
    pub const DEFAULT_PAGE_SIZE: usize = 1_000;

    /// Reads the whole log.
    pub fn from_beginning() -> Self {
        Self::after(Position::BEGINNING)
    }

    /// Reads the events after `position`.
    pub fn after(position: Position) -> Self {
        Self { after: position, event_types: None, limit: None, page_size: Self::DEFAULT_PAGE_SIZE }
    }

    /// Only events of these types.
    #[must_use]
    pub fn event_types(mut self, types: impl IntoIterator<Item = EventType>) -> Self {
        self.event_types = Some(types.into_iter().collect());
        self
    }

    /// Returns at most `limit` events.
    #[must_use]
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Fetches `page_size` events per page (at least 1).
    #[must_use]
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Whether an event of this type passes the type filter.
    pub fn wants(&self, event_type: &EventType) -> bool {
        self.event_types.as_ref().is_none_or(|types| types.contains(event_type))
    }
}

impl Default for ReadAllOptions {
    fn default() -> Self {
        Self::from_beginning()
    }
}
