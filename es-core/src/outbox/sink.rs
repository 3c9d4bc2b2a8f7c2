//! Where a relay delivers messages: a [`Sink`] (NATS JetStream: `es_nats::JetStreamSink`, facade feature `nats`;
//! [`MemorySink`] for tests).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;

use super::OutboxMessage;
use crate::EventId;

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The sink could not be reached or did not acknowledge (it may still have stored the
    /// message: a re-delivery carries the same id, which the sink drops). The relay retries with
    /// backoff, and opens its circuit breaker when failures go on.
    #[error("sink unavailable: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
    },
    /// The sink refused this message for good (too large, a subject it does not accept). The
    /// relay parks it with the reason and goes on.
    #[error("sink refused the message: {reason}")]
    Rejected {
        /// The sink's reason.
        reason: String,
    },
}

/// Publishes messages and waits for each one's acknowledgement.
pub trait Sink: Send + Sync + 'static {
    /// Publishes `messages` and returns each one's outcome, in the same order. The relay passes
    /// at most one message per stream in one call, so the sink may send them all at once.
    fn publish(
        &self,
        messages: &[OutboxMessage],
    ) -> impl Future<Output = Vec<Result<(), SinkError>>> + Send;
}

/// A sink in memory: what was delivered, deduplicated by event id as JetStream does, with
/// switches to make it fail. Clones share the state.
#[derive(Clone, Default)]
pub struct MemorySink {
    state: Arc<Mutex<MemorySinkState>>,
}

#[derive(Default)]
struct MemorySinkState {
    delivered: Vec<OutboxMessage>,
    ids: HashSet<EventId>,
    down: bool,
    fail_next: usize,
    refuse_larger_than: Option<usize>,
    published: u64,
}

impl MemorySink {
    /// An empty, working sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The messages delivered, each once, in delivery order.
    pub fn delivered(&self) -> Vec<OutboxMessage> {
        self.state.lock().delivered.clone()
    }

    /// How many publish attempts were made, re-deliveries and failures included.
    pub fn attempts(&self) -> u64 {
        self.state.lock().published
    }

    /// While down, every publish fails as [`SinkError::Unavailable`].
    pub fn set_down(&self, down: bool) {
        self.state.lock().down = down;
    }

    /// The next `count` publishes fail as [`SinkError::Unavailable`].
    pub fn fail_next(&self, count: usize) {
        self.state.lock().fail_next = count;
    }

    /// Payloads larger than `bytes` are refused ([`SinkError::Rejected`]).
    pub fn refuse_larger_than(&self, bytes: usize) {
        self.state.lock().refuse_larger_than = Some(bytes);
    }
}

impl Sink for MemorySink {
    async fn publish(&self, messages: &[OutboxMessage]) -> Vec<Result<(), SinkError>> {
        let mut state = self.state.lock();
        messages
            .iter()
            .map(|message| {
                state.published += 1;
                if state.down {
                    return Err(SinkError::Unavailable { reason: "the sink is down".into() });
                }
                if state.fail_next > 0 {
                    state.fail_next -= 1;
                    return Err(SinkError::Unavailable { reason: "injected failure".into() });
                }
                if state.refuse_larger_than.is_some_and(|max| message.payload.len() > max) {
                    return Err(SinkError::Rejected { reason: "message too large".into() });
                }
                if state.ids.insert(message.event_id) {
                    state.delivered.push(message.clone());
                }
                Ok(())
            })
            .collect()
    }
}
