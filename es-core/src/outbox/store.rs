//! The outbox capability of a store: what a relay needs to read, lease and settle messages.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::OutboxMessage;
use crate::{StoreError, StreamId};

/// How many partitions a tenant's outbox is split into. Every message of a stream is in one
/// partition; a relay delivers the partitions it holds a lease on, so several relays share the
/// work while each stream's messages go out in order from one relay at a time.
pub const PARTITIONS: u16 = 16;

/// The partition of a stream's messages: a stable hash (FNV-1a) of the stream id, the same on
/// every backend and in every process.
///
/// ```
/// use es_core::outbox::{PARTITIONS, partition_of};
/// let stream = es_core::StreamId::new("account-42")?;
/// assert!(partition_of(&stream) < PARTITIONS);
/// assert_eq!(partition_of(&stream), partition_of(&stream));
/// # Ok::<(), es_core::IdError>(())
/// ```
pub fn partition_of(stream: &StreamId) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stream.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // PARTITIONS fits in a u16, so the remainder does.
    u16::try_from(hash % u64::from(PARTITIONS)).unwrap_or(0)
}

/// A relay's hold on a partition, until `expires_at` unless renewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The partition.
    pub partition: u16,
    /// The relay holding it.
    pub owner: Uuid,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// The state of a tenant's outbox, for metrics and health checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Messages waiting to be delivered.
    pub pending: u64,
    /// When the oldest waiting message was enqueued.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// Messages parked (refused by the sink; see [`OutboxStore::park_message`]).
    pub parked: u64,
    /// Delivered messages not yet pruned.
    pub delivered: u64,
}

/// A parked message and why it was parked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedMessage {
    /// The message.
    pub message: OutboxMessage,
    /// The sink's reason.
    pub reason: String,
}

/// The outbox of one tenant, implemented by the tenant-scoped store handles beside
/// [`EventStore`](crate::EventStore) (whose appends enqueue the messages:
/// [`AppendOptions::publish`](crate::AppendOptions::publish)).
///
/// Every backend keeps these rules (the conformance suite checks them):
/// - a message is enqueued if and only if its append wrote its events (not on a conflict, not
///   again on an idempotent replay);
/// - [`pending`](Self::pending) returns the messages neither delivered nor parked, in `sequence`
///   order, which within a stream is version order;
/// - a partition's lease is held by one relay at a time: [`lease`](Self::lease) takes a
///   partition only when it is free, lapsed or already the caller's.
pub trait OutboxStore: Clone + Send + Sync + 'static {
    /// Undelivered, unparked messages of `partitions`, in sequence order, at most `limit`.
    fn pending(
        &self,
        partitions: &[u16],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxMessage>, StoreError>> + Send;

    /// Marks messages delivered (a message already delivered stays so).
    fn mark_delivered(
        &self,
        sequences: &[u64],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Parks a message the sink refused for good: it is not delivered again, and the stream's
    /// later messages go on (see the relay's documentation).
    fn park_message(
        &self,
        sequence: u64,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The parked messages, oldest first, at most `limit`.
    fn parked_messages(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ParkedMessage>, StoreError>> + Send;

    /// Takes or renews the leases of `partitions` for `owner` until `ttl` from now, where each is
    /// free, lapsed or already `owner`'s; returns the partitions `owner` holds afterwards (of
    /// those asked for), in ascending order. Also records that `owner` is alive until then (see
    /// [`relays`](Self::relays)), even when it asks for no partition.
    fn lease(
        &self,
        owner: Uuid,
        partitions: &[u16],
        ttl: Duration,
    ) -> impl Future<Output = Result<Vec<u16>, StoreError>> + Send;

    /// Gives up `owner`'s leases of `partitions`.
    fn release(
        &self,
        owner: Uuid,
        partitions: &[u16],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `owner` stops: its leases are released and it is no longer counted as alive, so the
    /// others take its share at once instead of after its leases lapse.
    fn leave(&self, owner: Uuid) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The relays alive: those whose last [`lease`](Self::lease) call has not lapsed.
    fn relays(&self) -> impl Future<Output = Result<Vec<Uuid>, StoreError>> + Send;

    /// Every lease that has not lapsed.
    fn leases(&self) -> impl Future<Output = Result<Vec<Lease>, StoreError>> + Send;

    /// A number that changes whenever messages may have been enqueued (by this process at once,
    /// by others as soon as the backend hears of it); read it before looking for messages, then
    /// [`wait_for_messages`](Self::wait_for_messages) with it.
    fn message_generation(&self) -> u64;

    /// Returns once [`message_generation`](Self::message_generation) differs from `seen`, or
    /// after `timeout`. A relay waits here when idle; unlike
    /// [`EventStore::wait_for_events`](crate::EventStore::wait_for_events) it does not wait
    /// for the read horizon, as the outbox needs none.
    fn wait_for_messages(&self, seen: u64, timeout: Duration) -> impl Future<Output = ()> + Send;

    /// Counts for metrics and health.
    fn outbox_stats(&self) -> impl Future<Output = Result<OutboxStats, StoreError>> + Send;

    /// Deletes delivered messages enqueued before `before`; returns how many.
    fn prune_delivered(
        &self,
        before: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_streams() {
        let mut seen = [0u32; PARTITIONS as usize];
        for n in 0..1600 {
            let stream = StreamId::new(format!("account-{n}")).unwrap_or_else(|_| unreachable!());
            seen[usize::from(partition_of(&stream))] += 1;
        }
        assert!(seen.iter().all(|&count| count > 50), "{seen:?}");
        // The hash is part of the stored data: it must never change.
        let stream = StreamId::new("account-42").unwrap_or_else(|_| unreachable!());
        // FNV-1a 64 of "account-42" (computed independently, in Python) modulo 16.
        assert_eq!(partition_of(&stream), 5);
    }
}
