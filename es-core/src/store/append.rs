//! Appends: options (idempotency key, fingerprint, publications), the checked request, the result.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ExpectedVersion, InvalidAppend, Position, StoreError};
use crate::outbox::Publication;
use crate::{EventData, IdempotencyKey, StreamId};

/// Options of one append.
///
/// ```
/// use es_core::{AppendOptions, IdempotencyKey};
/// let options = AppendOptions::default().idempotency_key(IdempotencyKey::new("req-1")?);
/// assert!(options.idempotency_key.is_some());
/// # Ok::<(), es_core::IdError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendOptions {
    /// Makes the append safe to retry: the first append with this key (in the tenant) writes and
    /// records its result; a later append with the same key and the same request writes nothing and
    /// returns that result, whatever the stream's version has become; the same key with a different
    /// request fails with [`StoreError::IdempotencyConflict`]. Records are durable and do not expire.
    pub idempotency_key: Option<IdempotencyKey>,
    /// What identifies the request under its idempotency key, when the caller knows better than
    /// the events: the command pipeline passes a digest of the *command*, so that a key reused with
    /// another command is a conflict even where the two would decide the same events, and a retry
    /// of one command is recognised even though the stream moved on. `None`: the store computes
    /// the [`Fingerprint`] from the stream, the expected version and the events.
    pub fingerprint: Option<Fingerprint>,
    /// Integration messages to enqueue in the outbox with the events, in the same atomic step
    /// (see [`crate::outbox`]): at most one per event. An idempotent replay enqueues nothing
    /// again; publications are not part of the fingerprint.
    pub publications: Vec<Publication>,
}

impl AppendOptions {
    /// Adds an integration message to enqueue with the events (see
    /// [`AppendOptions::publications`]).
    #[must_use]
    pub fn publish(mut self, publication: Publication) -> Self {
        self.publications.push(publication);
        self
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Sets the request's fingerprint (see [`AppendOptions::fingerprint`]).
    #[must_use]
    pub fn fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        self.fingerprint = Some(fingerprint);
        self
    }
}

/// What an append wrote (or, for an idempotent retry, what the first append wrote).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendResult {
    /// Stream version of the first event written.
    pub first_version: u64,
    /// Stream version of the last event written: the stream's version after the append.
    pub last_version: u64,
    /// Global position of the first event written.
    pub first_position: Position,
    /// Global position of the last event written.
    pub last_position: Position,
}

/// The digest that tells a retry of an idempotent append from a different request under the same
/// key: SHA-256 over the stream, the expected version, and each event's type, schema version and
/// payload.
///
/// Event ids and metadata are left out on purpose: a client that retries often rebuilds its events,
/// with fresh ids and timestamps, and that is still the same request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// The durable record of an idempotent append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The key.
    pub key: IdempotencyKey,
    /// The stream the first append wrote to.
    pub stream_id: StreamId,
    /// The first request's fingerprint.
    pub fingerprint: Fingerprint,
    /// What the first append wrote.
    pub result: AppendResult,
    /// When it was written.
    pub recorded_at: DateTime<Utc>,
}

/// An append checked against the rules every backend shares, ready for a backend to write.
///
/// Backends build one first thing in `append`, so that bad input is refused the same way
/// everywhere and before any I/O: the batch is not empty, no event id
/// appears twice, schema versions are within 1..=2³¹−1; and, when an idempotency key is given, its [`Fingerprint`] is computed.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    /// The target stream.
    pub stream_id: StreamId,
    /// The caller's expectation of the stream's version.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<EventData>,
    /// The idempotency key and the request's fingerprint, if the caller gave a key.
    pub idempotency: Option<(IdempotencyKey, Fingerprint)>,
    /// The messages to enqueue, in event order, each naming an event of the batch (checked),
    /// with the event's correlation and causation ids added to its headers.
    pub publications: Vec<Publication>,
}

impl AppendRequest {
    /// Validates an append.
    pub fn new(
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
        options: AppendOptions,
    ) -> Result<Self, StoreError> {
        let invalid = |reason| StoreError::InvalidAppend { stream_id: stream_id.clone(), reason };
        if events.is_empty() {
            return Err(invalid(InvalidAppend::EmptyBatch));
        }
        if let Some((index, event)) = events.iter().enumerate().find(|(_, event)| {
            event.schema_version == 0 || i32::try_from(event.schema_version).is_err()
        }) {
            let schema_version = event.schema_version;
            return Err(invalid(InvalidAppend::SchemaVersionOutOfRange { index, schema_version }));
        }
        for (index, event) in events.iter().enumerate() {
            if let Err(error) = event.payload.validate() {
                return Err(invalid(InvalidAppend::InvalidPayload {
                    index,
                    reason: error.to_string(),
                }));
            }
            // Backends store metadata as JSON (jsonb in PostgreSQL), which cannot hold a NUL.
            let metadata = &event.metadata;
            let texts =
                metadata.actor.iter().chain(metadata.custom.iter().flat_map(|(k, v)| [k, v]));
            if let Some(text) = texts.into_iter().find(|text| text.contains('\0')) {
                let reason = format!("{text:?} holds a NUL character, which cannot be stored");
                return Err(invalid(InvalidAppend::InvalidMetadata { index, reason }));
            }
        }
        if events.len() > 1 {
            let mut seen = HashSet::with_capacity(events.len());
            if let Some(event) = events.iter().find(|event| !seen.insert(event.event_id)) {
                return Err(invalid(InvalidAppend::DuplicateEventId { event_id: event.event_id }));
            }
        }
        let publications =
            publications(&events, options.publications).map_err(|(index, reason)| {
                invalid(InvalidAppend::InvalidPublication { index, reason })
            })?;
        let idempotency = options.idempotency_key.map(|key| {
            let fingerprint =
                options.fingerprint.unwrap_or_else(|| fingerprint(stream_id, expected, &events));
            (key, fingerprint)
        });
        Ok(Self { stream_id: stream_id.clone(), expected, events, idempotency, publications })
    }
}

/// Checks that each publication names an event of the batch, one at the most, orders them by
/// event, and adds the event's correlation and causation ids to the headers.
fn publications(
    events: &[EventData],
    mut publications: Vec<Publication>,
) -> Result<Vec<Publication>, (usize, String)> {
    let mut published = vec![false; events.len()];
    for (index, publication) in publications.iter_mut().enumerate() {
        let Some(event) = events.get(publication.event) else {
            return Err((
                index,
                format!("names event #{} of a batch of {}", publication.event, events.len()),
            ));
        };
        if std::mem::replace(&mut published[publication.event], true) {
            return Err((index, format!("event #{} is published twice", publication.event)));
        }
        for (name, id) in [
            ("Es-Correlation-Id", event.metadata.correlation_id),
            ("Es-Causation-Id", event.metadata.causation_id),
        ] {
            if let Some(id) = id
                && publication.headers.get(name).is_none()
            {
                // A UUID's text always makes a valid header value.
                let _ = publication.headers.insert(name, id.to_string());
            }
        }
    }
    publications.sort_by_key(|publication| publication.event);
    Ok(publications)
}

fn fingerprint(
    stream_id: &StreamId,
    expected: ExpectedVersion,
    events: &[EventData],
) -> Fingerprint {
    let mut hasher = Sha256::new();
    // Every variable-length field is length-prefixed, so no two requests hash the same bytes.
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(stream_id.as_str().as_bytes());
    let (tag, version) = match expected {
        ExpectedVersion::Any => (0u8, 0),
        ExpectedVersion::NoStream => (1, 0),
        ExpectedVersion::StreamExists => (2, 0),
        ExpectedVersion::Exact(version) => (3, version),
    };
    field(&[tag]);
    field(&version.to_le_bytes());
    field(&(events.len() as u64).to_le_bytes());
    for event in events {
        field(event.event_type.as_str().as_bytes());
        field(&event.schema_version.to_le_bytes());
        field(event.payload.as_bytes());
    }
    Fingerprint(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_given_fingerprint_replaces_the_computed_one() {
        let given = Fingerprint([7; 32]);
        let options = AppendOptions::default()
            .idempotency_key(crate::IdempotencyKey::new("k").unwrap())
            .fingerprint(given);
        assert_eq!(options.fingerprint, Some(given));
        let request =
            AppendRequest::new(&stream("s"), ExpectedVersion::Any, vec![event("a")], options)
                .unwrap();
        assert_eq!(request.idempotency.map(|(_, print)| print), Some(given));
    }

    use super::*;
    use crate::{EventId, EventType};

    fn event(body: &str) -> EventData {
        EventData::json(EventType::new("t").unwrap(), body).unwrap()
    }

    fn stream(name: &str) -> StreamId {
        StreamId::new(name).unwrap()
    }

    fn print(stream_id: &str, expected: ExpectedVersion, bodies: &[&str]) -> Fingerprint {
        fingerprint(
            &stream(stream_id),
            expected,
            &bodies.iter().map(|b| event(b)).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn fingerprint_ignores_event_ids_and_metadata_but_not_content() {
        let base = print("s", ExpectedVersion::Any, &["a", "b"]);
        let mut rebuilt = vec![event("a"), event("b")];
        rebuilt[0] = rebuilt[0]
            .clone()
            .with_event_id(EventId::new())
            .with_metadata(crate::EventMetadata::default().with_actor("someone else"));
        assert_eq!(base, fingerprint(&stream("s"), ExpectedVersion::Any, &rebuilt));
        assert_ne!(base, print("s", ExpectedVersion::Any, &["a", "c"]));
        assert_ne!(base, print("s", ExpectedVersion::Any, &["ab"]));
        assert_ne!(base, print("t", ExpectedVersion::Any, &["a", "b"]));
        assert_ne!(base, print("s", ExpectedVersion::NoStream, &["a", "b"]));
        assert_ne!(
            print("s", ExpectedVersion::Exact(1), &["a"]),
            print("s", ExpectedVersion::Exact(2), &["a"])
        );
    }

    #[test]
    fn invalid_batches_are_refused_before_any_io() {
        let s = stream("s");
        let empty = AppendRequest::new(&s, ExpectedVersion::Any, vec![], AppendOptions::default());
        assert!(matches!(
            empty,
            Err(StoreError::InvalidAppend { reason: InvalidAppend::EmptyBatch, .. })
        ));
        let zero = AppendRequest::new(
            &s,
            ExpectedVersion::Any,
            vec![event("a").with_schema_version(0)],
            AppendOptions::default(),
        );
        assert!(matches!(
            zero,
            Err(StoreError::InvalidAppend {
                reason: InvalidAppend::SchemaVersionOutOfRange { index: 0, schema_version: 0 },
                ..
            })
        ));
        let twice = event("a");
        let dup = AppendRequest::new(
            &s,
            ExpectedVersion::Any,
            vec![twice.clone(), twice],
            AppendOptions::default(),
        );
        assert!(matches!(
            dup,
            Err(StoreError::InvalidAppend { reason: InvalidAppend::DuplicateEventId { .. }, .. })
        ));
    }
}
