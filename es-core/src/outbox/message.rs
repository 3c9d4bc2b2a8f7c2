//! What is published: a [`Publication`] enqueued with an append, an [`OutboxMessage`] as the
//! relay reads it back.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::{EventId, EventType, StreamId, Subject, TenantId};

/// The headers of a message: names and values, in order. Names are 1 to 64 bytes of ASCII
/// letters, digits and `-` (what NATS and HTTP both accept); values hold no control characters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Headers(Vec<(String, String)>);

/// A header name or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header {name:?}: {reason}")]
pub struct HeaderError {
    /// The header's name.
    pub name: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header (a name may repeat).
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), HeaderError> {
        let (name, value) = (name.into(), value.into());
        let refuse = |reason| Err(HeaderError { name: name.clone(), reason });
        if name.is_empty() || name.len() > 64 {
            return refuse("header names are 1 to 64 bytes long");
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return refuse("header names use ASCII letters, digits and '-'");
        }
        if value.chars().any(char::is_control) {
            return refuse("header values hold no control characters");
        }
        self.0.push((name, value));
        Ok(())
    }

    /// With a header added.
    pub fn with(mut self, name: &str, value: &str) -> Result<Self, HeaderError> {
        self.insert(name, value)?;
        Ok(self)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every header, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds headers from pairs a store kept (already checked when they were enqueued).
    #[doc(hidden)]
    pub fn from_stored(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }
}

/// An integration message to publish when an append commits: written to the outbox in the same
/// atomic step as the events (see [`AppendOptions::publish`](crate::AppendOptions::publish)),
/// so it is published if and only if the events are stored.
///
/// ```
/// use es_core::outbox::Publication;
/// use es_core::Subject;
/// let message = Publication::new(0, Subject::new("bank.account.opened")?, r#"{"account":"42"}"#)
///     .header("Content-Type", "application/json")?;
/// assert_eq!(message.event, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Publication {
    /// The index, in the append's batch, of the event the message publishes. One message per
    /// event at the most: the event's id is the message's id, by which sinks drop re-deliveries.
    pub event: usize,
    /// Where it is published.
    pub subject: Subject,
    /// The public body: a stable contract, not the stored event's payload.
    pub payload: Bytes,
    /// The application's headers. The relay adds the standard ones (see [`OutboxMessage`]).
    pub headers: Headers,
}

impl Publication {
    /// A message for the `event`th event of the batch.
    pub fn new(event: usize, subject: Subject, payload: impl Into<Bytes>) -> Self {
        Self { event, subject, payload: payload.into(), headers: Headers::new() }
    }

    /// With a header added.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, HeaderError> {
        self.headers.insert(name, value)?;
        Ok(self)
    }
}

/// A message in the outbox, as a relay reads it: the publication and the event it publishes.
///
/// Sinks publish `subject`, `payload` and `headers`, plus the standard headers of
/// [`OutboxMessage::standard_headers`]; the event id identifies the message (`Nats-Msg-Id` on
/// NATS JetStream), so a re-delivery is dropped by the receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Increasing in the order messages were enqueued, within the tenant; per stream, in stream
    /// version order.
    pub sequence: u64,
    /// The tenant.
    pub tenant: TenantId,
    /// The stream of the event.
    pub stream_id: StreamId,
    /// The event's version in its stream.
    pub stream_version: u64,
    /// The event's id: the message's id.
    pub event_id: EventId,
    /// The event's stored type name.
    pub event_type: EventType,
    /// Where it is published.
    pub subject: Subject,
    /// The public body.
    pub payload: Bytes,
    /// The application's headers, and the event's correlation and causation ids
    /// (`Es-Correlation-Id`, `Es-Causation-Id`) when it had them.
    pub headers: Headers,
    /// The partition of the stream (see [`partition_of`](super::partition_of)).
    pub partition: u16,
    /// When the append that enqueued it committed.
    pub enqueued_at: DateTime<Utc>,
}

impl OutboxMessage {
    /// The headers every sink sends beside the application's: `Es-Event-Id`, `Es-Event-Type`,
    /// `Es-Tenant`, `Es-Stream`, `Es-Stream-Version`.
    pub fn standard_headers(&self) -> [(&'static str, String); 5] {
        [
            ("Es-Event-Id", self.event_id.to_string()),
            ("Es-Event-Type", self.event_type.to_string()),
            ("Es-Tenant", self.tenant.to_string()),
            ("Es-Stream", self.stream_id.to_string()),
            ("Es-Stream-Version", self.stream_version.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked() {
        let mut headers = Headers::new();
        assert!(headers.insert("Content-Type", "application/json").is_ok());
        assert!(headers.insert("", "x").is_err());
        assert!(headers.insert("Bad Name", "x").is_err());
        assert!(headers.insert("X-Ok", "line\nbreak").is_err());
        assert!(headers.insert("x".repeat(65), "v").is_err());
        assert_eq!(headers.get("Content-Type"), Some("application/json"));
        assert_eq!(headers.iter().count(), 1);
    }
}
