//! The consumer side of integration messages: an [`Inbox`] records each message a consumer
//! applied in the same transaction as its effect, so a redelivered message (the publisher's
//! at-least-once, a consumer killed before acknowledging) changes nothing the second time.
//!
//! es-postgres implements it (`PgStore` as an inbox: tables `inbox` and `inbox_parked`); the
//! NATS consumer of es-nats drives it (`es_nats::InboxConsumer`).

use std::future::Future;

use bytes::Bytes;
use chrono::{DateTime, Utc};

#[cfg(doc)]
use crate::Subject;
use crate::outbox::Headers;
use crate::{ProjectionName, StoreError};

/// A message as a consumer receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The message's id (the publisher's event id, `Nats-Msg-Id`): what the inbox records.
    pub message_id: String,
    /// Where it was published (as received: a consumer also reads messages es did not publish,
    /// so this is not an es [`Subject`]).
    pub subject: String,
    /// The body.
    pub payload: Bytes,
    /// Its headers (the publisher's `Es-*` headers among them).
    pub headers: Headers,
    /// How many times it has been delivered, this time included.
    pub deliveries: u64,
}

/// A message a consumer gave up on (its handler kept failing), kept with the error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedDelivery {
    /// The consumer.
    pub consumer: ProjectionName,
    /// The message.
    pub delivery: Delivery,
    /// The handler's last error.
    pub error: String,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
}

/// Where a consumer records what it applied.
///
/// The rules (es-postgres's implementation is tested against them):
/// - [`begin`](Self::begin) returns a transaction in which the message is already recorded as
///   applied by `consumer`; the handler writes its effect in the same transaction and
///   [`commit`](Self::commit) makes both durable at once. Dropping the transaction rolls both back.
/// - `begin` returns `None` when the message was applied before (a redelivery): acknowledge it
///   and do nothing. A second `begin` of a message whose first transaction is still open waits
///   for it to end, so two deliveries at once never both apply.
pub trait Inbox: Clone + Send + Sync + 'static {
    /// The transaction a message's effect is written in.
    type Transaction: Send + 'static;

    /// Starts applying `message_id` (see the trait's rules).
    fn begin(
        &self,
        consumer: &ProjectionName,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<Self::Transaction>, StoreError>> + Send;

    /// Commits the effect and the record of the message together.
    fn commit(
        &self,
        transaction: Self::Transaction,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps a message the consumer gives up on, with its error (a second park of the same
    /// message replaces the first).
    fn park(&self, parked: ParkedDelivery) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The messages `consumer` parked, oldest first.
    fn parked(
        &self,
        consumer: &ProjectionName,
    ) -> impl Future<Output = Result<Vec<ParkedDelivery>, StoreError>> + Send;
}
