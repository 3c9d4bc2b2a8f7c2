//! The outbox of one tenant: messages enqueued by appends (under the same lock as the events),
//! their delivery state, and the partition leases.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::outbox::{
    Lease, OutboxMessage, OutboxStats, ParkedMessage, Publication, partition_of,
};
use es_core::{RecordedEvent, StoreError};
use uuid::Uuid;

use crate::store::MemoryTenantStore;

#[derive(Default)]
pub(crate) struct Outbox {
    next_sequence: u64,
    messages: BTreeMap<u64, Entry>,
    leases: HashMap<u16, (Uuid, DateTime<Utc>)>,
    relays: HashMap<Uuid, DateTime<Utc>>,
}

struct Entry {
    message: OutboxMessage,
    state: State,
}

enum State {
    Pending,
    Delivered,
    Parked(String),
}

impl Outbox {
    /// Every message's text, for a search of what is stored.
    pub(crate) fn dump(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::new();
        for entry in self.messages.values() {
            let payload = String::from_utf8_lossy(&entry.message.payload);
            let _ = writeln!(text, "{payload} {:?}", entry.message.headers);
        }
        text
    }

    /// Enqueues the message publishing `event` (called by the append, under the tenant's lock).
    pub(crate) fn enqueue(&mut self, event: &RecordedEvent, publication: Publication) {
        self.next_sequence += 1;
        let message = OutboxMessage {
            sequence: self.next_sequence,
            tenant: event.tenant.clone(),
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            subject: publication.subject,
            payload: publication.payload,
            headers: publication.headers,
            partition: partition_of(&event.stream_id),
            enqueued_at: event.recorded_at,
        };
        self.messages.insert(message.sequence, Entry { message, state: State::Pending });
    }
}

fn ttl(ttl: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(ttl).unwrap_or(chrono::TimeDelta::MAX)
}

impl es_core::outbox::OutboxStore for MemoryTenantStore {
    async fn pending(
        &self,
        partitions: &[u16],
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let state = self.log().state.read();
        Ok(state
            .outbox
            .messages
            .values()
            .filter(|entry| {
                matches!(entry.state, State::Pending)
                    && partitions.contains(&entry.message.partition)
            })
            .take(limit)
            .map(|entry| entry.message.clone())
            .collect())
    }

    async fn mark_delivered(&self, sequences: &[u64]) -> Result<(), StoreError> {
        let mut state = self.log().state.write();
        for sequence in sequences {
            if let Some(entry) = state.outbox.messages.get_mut(sequence)
                && matches!(entry.state, State::Pending)
            {
                entry.state = State::Delivered;
            }
        }
        Ok(())
    }

    async fn park_message(&self, sequence: u64, reason: &str) -> Result<(), StoreError> {
        if let Some(entry) = self.log().state.write().outbox.messages.get_mut(&sequence) {
            entry.state = State::Parked(reason.to_owned());
        }
        Ok(())
    }

    async fn parked_messages(&self, limit: usize) -> Result<Vec<ParkedMessage>, StoreError> {
        let state = self.log().state.read();
        Ok(state
            .outbox
            .messages
            .values()
            .filter_map(|entry| match &entry.state {
                State::Parked(reason) => {
                    Some(ParkedMessage { message: entry.message.clone(), reason: reason.clone() })
                }
                _ => None,
            })
            .take(limit)
            .collect())
    }

    async fn lease(
        &self,
        owner: Uuid,
        partitions: &[u16],
        duration: Duration,
    ) -> Result<Vec<u16>, StoreError> {
        let now = Utc::now();
        let until = now + ttl(duration);
        let mut state = self.log().state.write();
        state.outbox.relays.retain(|_, until| *until > now);
        state.outbox.relays.insert(owner, until);
        let mut held = Vec::new();
        for &partition in partitions {
            let lease = state.outbox.leases.entry(partition).or_insert((owner, until));
            if lease.0 == owner || lease.1 <= now {
                *lease = (owner, until);
                held.push(partition);
            }
        }
        held.sort_unstable();
        held.dedup();
        Ok(held)
    }

    async fn release(&self, owner: Uuid, partitions: &[u16]) -> Result<(), StoreError> {
        let mut state = self.log().state.write();
        for partition in partitions {
            if state.outbox.leases.get(partition).is_some_and(|(holder, _)| *holder == owner) {
                state.outbox.leases.remove(partition);
            }
        }
        Ok(())
    }

    async fn leave(&self, owner: Uuid) -> Result<(), StoreError> {
        let mut state = self.log().state.write();
        state.outbox.leases.retain(|_, (holder, _)| *holder != owner);
        state.outbox.relays.remove(&owner);
        Ok(())
    }

    fn message_generation(&self) -> u64 {
        self.log().head.borrow().value()
    }

    async fn wait_for_messages(&self, seen: u64, timeout: Duration) {
        let mut head = self.log().head.subscribe();
        let _ = tokio::time::timeout(timeout, head.wait_for(|head| head.value() != seen)).await;
    }

    async fn relays(&self) -> Result<Vec<Uuid>, StoreError> {
        let now = Utc::now();
        let state = self.log().state.read();
        let mut relays: Vec<Uuid> = state
            .outbox
            .relays
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(owner, _)| *owner)
            .collect();
        relays.sort_unstable();
        Ok(relays)
    }

    async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let now = Utc::now();
        let state = self.log().state.read();
        let mut leases: Vec<Lease> = state
            .outbox
            .leases
            .iter()
            .filter(|(_, (_, until))| *until > now)
            .map(|(&partition, &(owner, expires_at))| Lease { partition, owner, expires_at })
            .collect();
        leases.sort_by_key(|lease| lease.partition);
        Ok(leases)
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let tenant = self.log().state.read();
        let mut stats = OutboxStats::default();
        for entry in tenant.outbox.messages.values() {
            match entry.state {
                State::Pending => {
                    stats.pending += 1;
                    stats.oldest_pending.get_or_insert(entry.message.enqueued_at);
                }
                State::Delivered => stats.delivered += 1,
                State::Parked(_) => stats.parked += 1,
            }
        }
        Ok(stats)
    }

    async fn prune_delivered(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.log().state.write();
        let count = state.outbox.messages.len();
        state.outbox.messages.retain(|_, entry| {
            !(matches!(entry.state, State::Delivered) && entry.message.enqueued_at < before)
        });
        Ok((count - state.outbox.messages.len()) as u64)
    }
}
