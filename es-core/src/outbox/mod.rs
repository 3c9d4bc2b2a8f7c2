//! Events leave the system safely: integration messages written to an outbox in the same atomic
//! step as the events they publish, and a [`Relay`] that delivers them to a [`Sink`] at least
//! once, in per-stream order.
//!
//! 1. **Enqueue** with the append: [`AppendOptions::publish`](crate::AppendOptions::publish)
//!    takes one [`Publication`] per published event (its subject, its public payload, headers).
//!    A backend writes them in the append's own transaction: published if and only if stored,
//!    never again on an idempotent replay. The command pipeline does it for you with a
//!    [`Publisher`] ([`Repository::with_publisher`](crate::repository::Repository::with_publisher)).
//! 2. **Relay**: [`Relay::run`] reads the outbox ([`OutboxStore`]) by partition, sends waves of
//!    at most one message per stream to the sink, and marks what was acknowledged.
//! 3. **Sinks**: NATS JetStream (`es_nats::JetStreamSink`, facade feature `nats`), [`MemorySink`]
//!    for tests.
//! 4. **Consumers** of other services: `es_nats::InboxConsumer` over an [`Inbox`](crate::inbox::Inbox),
//!    each message applied once.
//!
//! ```
//! use es_core::outbox::{MemorySink, Publication, Relay};
//! use es_core::{AppendOptions, EventData, EventStore, EventType, ExpectedVersion, Payload, StreamId, Subject};
//! # async fn demo<S: EventStore + es_core::outbox::OutboxStore>(store: S) -> Result<(), Box<dyn std::error::Error>> {
//! let opened = EventData::new(EventType::new("account.opened")?, Payload::from_value(&serde_json::json!({"owner": "Ada"}))?);
//! let message = Publication::new(0, Subject::new("bank.account.opened")?, r#"{"account":"42"}"#);
//! store
//!     .append(&StreamId::new("account-42")?, ExpectedVersion::NoStream, vec![opened],
//!             AppendOptions::default().publish(message))
//!     .await?;
//! let sink = MemorySink::new();
//! let mut relay = Relay::new(store, sink.clone());
//! relay.relay_once().await?;
//! assert_eq!(sink.delivered().len(), 1);
//! # Ok(()) }
//! ```

mod message;
mod publisher;
mod relay;
mod sink;
mod store;

pub use message::{HeaderError, Headers, OutboxMessage, Publication};
pub use publisher::{NoPublisher, Publisher};
pub use relay::{BreakerState, Relay, RelayError, RelayOptions, RelayPass};
pub use sink::{MemorySink, Sink, SinkError};
pub use store::{Lease, OutboxStats, OutboxStore, PARTITIONS, ParkedMessage, partition_of};
