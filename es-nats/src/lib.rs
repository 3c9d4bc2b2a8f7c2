//! # es-nats
//!
//! The NATS JetStream sink of the outbox relay ([`es_core::outbox`]): each message is published
//! to a JetStream stream and counts as delivered once the server acknowledged it (stored it);
//! the event id goes as `Nats-Msg-Id`, so the stream's duplicate window drops a re-delivery (a
//! relay killed between the acknowledgement and marking the message, or two relays overlapping
//! while a lease changes hands).
//!
//! ```no_run
//! use es_core::outbox::{Relay, RelayOptions};
//! use es_nats::{JetStreamSink, StreamConfig};
//! # async fn demo(store: es_memory::MemoryTenantStore) -> Result<(), Box<dyn std::error::Error>> {
//! let sink = JetStreamSink::connect(
//!     "nats://127.0.0.1:4222",
//!     StreamConfig::new("BANK", ["bank.>"]),
//! )
//! .await?;
//! let relay = Relay::with_options(store, sink, RelayOptions::default());
//! relay.run(std::future::pending()).await; // or a shutdown signal
//! # Ok(()) }
//! ```
//!
//! **Which failures park a message.** Only what can never succeed: a payload larger than the
//! server's or the stream's limit, or a subject the stream does not capture (checked against the
//! stream's subjects before publishing). Everything else — no acknowledgement in time, a lost
//! connection, "no responders" while JetStream restarts, an error the server answers — is
//! [`SinkError::Unavailable`]: the relay retries and, if it goes on, opens its breaker, and the
//! messages wait in the outbox.

mod consumer;

use std::time::Duration;

/// The NATS client this crate uses (to connect once and share the client).
pub use async_nats;
pub use consumer::{Applied, ConsumerConfig, HandlerError, InboxConsumer, MessageHandler};

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use async_nats::{Client, HeaderMap};
use es_core::outbox::{OutboxMessage, Sink, SinkError};
use futures_util::future::join_all;

/// The JetStream stream messages are published to; created at start if missing, checked if not.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StreamConfig {
    /// The stream's name (no spaces, `.`, `*` or `>`).
    pub name: String,
    /// The subjects the stream captures (wildcards allowed: `bank.>`); every message's subject
    /// must match one, or it is parked.
    pub subjects: Vec<String>,
    /// How long the stream remembers message ids to drop re-deliveries (default 10 minutes).
    /// A re-delivery later than that (a relay down longer) reaches consumers twice; their inbox
    /// drops it by event id.
    pub duplicate_window: Duration,
    /// How long to wait for each acknowledgement (default 5 s).
    pub ack_timeout: Duration,
}

impl StreamConfig {
    /// A stream `name` capturing `subjects`, with the default duplicate window.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        subjects: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            name: name.into(),
            subjects: subjects.into_iter().map(Into::into).collect(),
            duplicate_window: Duration::from_mins(10),
            ack_timeout: Duration::from_secs(5),
        }
    }

    /// Sets the duplicate window.
    #[must_use]
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// Sets the acknowledgement timeout.
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }
}

/// The sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The server could not be reached.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The server's address.
        url: String,
        /// The client's error.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The stream could not be created or read.
    #[error("JetStream stream {stream}: {source}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The stream exists with another configuration than asked.
    #[error("JetStream stream {stream} exists but {reason}")]
    Mismatch {
        /// The stream's name.
        stream: String,
        /// What differs.
        reason: String,
    },
}

/// Publishes outbox messages to a JetStream stream (see the crate docs).
#[derive(Clone, Debug)]
pub struct JetStreamSink {
    context: jetstream::Context,
    client: Client,
    stream: String,
    subjects: Vec<String>,
    max_message_size: Option<usize>,
}

impl JetStreamSink {
    /// Connects to `url` and prepares the stream.
    pub async fn connect(url: &str, config: StreamConfig) -> Result<Self, NatsError> {
        let client = async_nats::connect(url)
            .await
            .map_err(|source| NatsError::Connect { url: url.to_owned(), source })?;
        Self::new(client, config).await
    }

    /// Uses `client`, creating the stream if it is missing; an existing stream must capture
    /// every subject asked for and keep ids at least as long as the duplicate window.
    pub async fn new(client: Client, config: StreamConfig) -> Result<Self, NatsError> {
        let mut context = jetstream::new(client.clone());
        context.set_timeout(config.ack_timeout);
        let stream_error = |source: Box<dyn std::error::Error + Send + Sync>| NatsError::Stream {
            stream: config.name.clone(),
            source,
        };
        let stream = context
            .get_or_create_stream(jetstream::stream::Config {
                name: config.name.clone(),
                subjects: config.subjects.clone(),
                duplicate_window: config.duplicate_window,
                ..jetstream::stream::Config::default()
            })
            .await
            .map_err(|error| stream_error(Box::new(error)))?;
        let existing = &stream.cached_info().config;
        let mismatch = |reason: String| NatsError::Mismatch { stream: config.name.clone(), reason };
        if let Some(missing) = config.subjects.iter().find(|s| !existing.subjects.contains(s)) {
            return Err(mismatch(format!(
                "does not capture {missing:?} (its subjects: {:?})",
                existing.subjects
            )));
        }
        if existing.duplicate_window < config.duplicate_window {
            return Err(mismatch(format!(
                "keeps message ids for {:?}, less than the {:?} asked for",
                existing.duplicate_window, config.duplicate_window
            )));
        }
        let max_message_size =
            usize::try_from(existing.max_message_size).ok().filter(|&max| max > 0);
        tracing::info!(stream = %config.name, subjects = ?existing.subjects, "es.nats: stream ready");
        Ok(Self {
            context,
            client,
            stream: config.name,
            subjects: existing.subjects.clone(),
            max_message_size,
        })
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Why a message can never be published, if it cannot.
    fn refusal(&self, message: &OutboxMessage) -> Option<String> {
        let subject = message.subject.as_str();
        if !self.subjects.iter().any(|filter| subject_matches(filter, subject)) {
            return Some(format!(
                "subject {subject:?} is not captured by stream {} (subjects {:?})",
                self.stream, self.subjects
            ));
        }
        let size = message.payload.len() + header_bytes(message);
        let max_payload = self.client.max_payload();
        if max_payload > 0 && size > max_payload {
            return Some(format!(
                "message of {size} bytes exceeds the server's max payload of {max_payload} bytes"
            ));
        }
        if let Some(max) = self.max_message_size
            && size > max
        {
            return Some(format!(
                "message of {size} bytes exceeds stream {}'s limit of {max} bytes",
                self.stream
            ));
        }
        None
    }
}

/// The headers a message is published with: `Nats-Msg-Id` (the event id), the standard `Es-*`
/// headers, then the application's.
fn headers_of(message: &OutboxMessage) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", message.event_id.to_string());
    for (name, value) in message.standard_headers() {
        headers.insert(name, value);
    }
    for (name, value) in message.headers.iter() {
        headers.append(name, value);
    }
    headers
}

/// About how many bytes the headers of [`headers_of`] take on the wire (`Name: value\r\n`).
fn header_bytes(message: &OutboxMessage) -> usize {
    let line = |name: &str, value: &str| name.len() + value.len() + 4;
    let id = line("Nats-Msg-Id", &message.event_id.to_string());
    let standard: usize =
        message.standard_headers().iter().map(|(name, value)| line(name, value)).sum();
    let own: usize = message.headers.iter().map(|(name, value)| line(name, value)).sum();
    // "NATS/1.0\r\n" and the blank line that ends the headers.
    12 + id + standard + own
}

/// Whether NATS subject `filter` (with `*` for one token and a final `>` for one or more)
/// matches `subject`.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for part in filter.split('.') {
        match (part, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (part, Some(token)) if part == token => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

impl Sink for JetStreamSink {
    async fn publish(&self, messages: &[OutboxMessage]) -> Vec<Result<(), SinkError>> {
        // Send them all, then wait for the acknowledgements together: one round trip a wave.
        let mut sent = Vec::with_capacity(messages.len());
        for message in messages {
            if let Some(reason) = self.refusal(message) {
                sent.push(Err(SinkError::Rejected { reason }));
                continue;
            }
            let headers = headers_of(message);
            let publish = PublishMessage::build().payload(message.payload.clone()).headers(headers);
            sent.push(
                self.context
                    .send_publish(message.subject.as_str().to_owned(), publish)
                    .await
                    .map_err(|error| unavailable(&error)),
            );
        }
        join_all(sent.into_iter().map(|sent| async move {
            match sent {
                Ok(ack) => ack.await.map(drop).map_err(|error| unavailable(&error)),
                Err(error) => Err(error),
            }
        }))
        .await
    }
}

fn unavailable(error: &jetstream::context::PublishError) -> SinkError {
    let reason = match error.kind() {
        PublishErrorKind::StreamNotFound => {
            "no stream answered (JetStream unavailable, or the stream was deleted)".to_owned()
        }
        _ => error.to_string(),
    };
    SinkError::Unavailable { reason }
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn subjects_match_like_nats() {
        assert!(subject_matches("bank.>", "bank.account.opened"));
        assert!(subject_matches("bank.>", "bank.x"));
        assert!(!subject_matches("bank.>", "bank"));
        assert!(subject_matches("bank.*.opened", "bank.account.opened"));
        assert!(!subject_matches("bank.*.opened", "bank.account.closed"));
        assert!(!subject_matches("bank.*", "bank.account.opened"));
        assert!(subject_matches("bank.account", "bank.account"));
        assert!(!subject_matches("bank.account", "bank.accounts"));
        assert!(!subject_matches("bank.account", "bank"));
    }
}
