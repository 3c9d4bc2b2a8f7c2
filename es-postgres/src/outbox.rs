//! The outbox capability: messages read by partition, settled, leased (see the migration
//! `20261130000001_outbox.sql` and `es_core::outbox`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::outbox::{Headers, Lease, OutboxMessage, OutboxStats, OutboxStore, ParkedMessage};
use es_core::{EventId, EventType, StoreError, StreamId, Subject, TenantId};
use uuid::Uuid;

use crate::error::read_error;
use crate::row::{bound_i64, corrupt_in, stored_u64};
use crate::sql;
use crate::store::PgTenantStore;

/// A row of `outbox`, as stored.
#[derive(sqlx::FromRow)]
struct MessageRow {
    sequence: i64,
    stream_id: String,
    stream_version: i64,
    event_id: Uuid,
    event_type: String,
    subject: String,
    payload: Vec<u8>,
    headers: String,
    partition: i16,
    enqueued_at: DateTime<Utc>,
    parked_reason: Option<String>,
}

/// Names a message in corruption reports; formatted only when one is reported (a relay reads
/// a thousand rows a pass).
#[derive(Clone, Copy)]
struct Message(i64);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "outbox message {}", self.0)
    }
}

impl MessageRow {
    fn into_message(
        self,
        tenant: &TenantId,
    ) -> Result<(OutboxMessage, Option<String>), StoreError> {
        let what = Message(self.sequence);
        let pairs: Vec<(String, String)> =
            serde_json::from_str(&self.headers).map_err(corrupt_in(what))?;
        let message = OutboxMessage {
            sequence: stored_u64(self.sequence, what)?,
            tenant: tenant.clone(),
            stream_id: StreamId::new(&self.stream_id).map_err(corrupt_in(what))?,
            stream_version: stored_u64(self.stream_version, what)?,
            event_id: EventId::from_uuid(self.event_id),
            event_type: EventType::new(&self.event_type).map_err(corrupt_in(what))?,
            subject: Subject::new(&self.subject).map_err(corrupt_in(what))?,
            payload: self.payload.into(),
            headers: Headers::from_stored(pairs),
            partition: u16::try_from(self.partition).map_err(corrupt_in(what))?,
            enqueued_at: self.enqueued_at,
        };
        Ok((message, self.parked_reason))
    }
}

impl PgTenantStore {
    /// Enqueues an integration message on `connection`, inside the caller's transaction: what a
    /// transactional projection or process manager publishes about `source`, committed with its
    /// read model and checkpoint (see `es_core::projection::TransactionalProjection`).
    ///
    /// The message's id is [`EventId::derived`] from `source` and `publisher`, so handling the
    /// event again (a retried batch, a rebuild) enqueues nothing new; returns whether it was
    /// enqueued now. It is ordered with the other messages of `source`'s stream, in the order
    /// they were enqueued.
    pub async fn enqueue_in(
        &self,
        connection: &mut sqlx::PgConnection,
        publisher: &str,
        source: &es_core::RecordedEvent,
        subject: &Subject,
        payload: &[u8],
        headers: &Headers,
    ) -> Result<bool, StoreError> {
        let pairs: Vec<(&str, &str)> = headers.iter().collect();
        let headers = serde_json::to_string(&pairs)
            .map_err(|error| StoreError::backend("outbox enqueue", false, error))?;
        let done = sqlx::query(sql::OUTBOX_ENQUEUE)
            .bind(self.tenant_id().as_str())
            .bind(i16::try_from(es_core::outbox::partition_of(&source.stream_id)).unwrap_or(0))
            .bind(source.stream_id.as_str())
            .bind(bound_i64(source.stream_version))
            .bind(*EventId::derived(source.event_id, publisher).as_uuid())
            .bind(source.event_type.as_str())
            .bind(subject.as_str())
            .bind(payload)
            .bind(headers)
            .bind(publisher)
            .execute(connection)
            .await
            .map_err(|error| StoreError::backend("outbox enqueue", false, error))?;
        Ok(done.rows_affected() == 1)
    }
}

fn partitions(partitions: &[u16]) -> Vec<i16> {
    partitions.iter().filter_map(|&p| i16::try_from(p).ok()).collect()
}

fn limit(limit: usize) -> i64 {
    bound_i64(limit as u64)
}

impl OutboxStore for PgTenantStore {
    async fn pending(
        &self,
        partitions_asked: &[u16],
        at_most: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows: Vec<MessageRow> = sqlx::query_as(sql::OUTBOX_PENDING)
            .bind(self.tenant_id().as_str())
            .bind(partitions(partitions_asked))
            .bind(limit(at_most))
            .fetch_all(self.pool())
            .await
            .map_err(|error| read_error("outbox pending", error))?;
        rows.into_iter()
            .map(|row| row.into_message(self.tenant_id()).map(|(message, _)| message))
            .collect()
    }

    async fn mark_delivered(&self, sequences: &[u64]) -> Result<(), StoreError> {
        let sequences: Vec<i64> = sequences.iter().map(|&s| bound_i64(s)).collect();
        sqlx::query(sql::OUTBOX_DELIVERED)
            .bind(self.tenant_id().as_str())
            .bind(sequences)
            .execute(self.pool())
            .await
            .map_err(|error| StoreError::backend("outbox mark delivered", true, error))?;
        Ok(())
    }

    async fn park_message(&self, sequence: u64, reason: &str) -> Result<(), StoreError> {
        sqlx::query(sql::OUTBOX_PARK)
            .bind(self.tenant_id().as_str())
            .bind(bound_i64(sequence))
            .bind(reason.replace('\0', "\u{fffd}"))
            .execute(self.pool())
            .await
            .map_err(|error| StoreError::backend("outbox park", true, error))?;
        Ok(())
    }

    async fn parked_messages(&self, at_most: usize) -> Result<Vec<ParkedMessage>, StoreError> {
        let rows: Vec<MessageRow> = sqlx::query_as(sql::OUTBOX_PARKED)
            .bind(self.tenant_id().as_str())
            .bind(limit(at_most))
            .fetch_all(self.pool())
            .await
            .map_err(|error| read_error("outbox parked", error))?;
        rows.into_iter()
            .map(|row| {
                let (message, reason) = row.into_message(self.tenant_id())?;
                Ok(ParkedMessage { message, reason: reason.unwrap_or_default() })
            })
            .collect()
    }

    async fn lease(
        &self,
        owner: Uuid,
        partitions_asked: &[u16],
        ttl: Duration,
    ) -> Result<Vec<u16>, StoreError> {
        let held: Vec<i16> = sqlx::query_scalar(sql::OUTBOX_LEASE)
            .bind(self.tenant_id().as_str())
            .bind(owner)
            .bind(partitions(partitions_asked))
            .bind(ttl.as_secs_f64())
            .fetch_all(self.pool())
            .await
            .map_err(|error| StoreError::backend("outbox lease", true, error))?;
        let mut held: Vec<u16> = held.into_iter().filter_map(|p| u16::try_from(p).ok()).collect();
        held.sort_unstable();
        Ok(held)
    }

    async fn release(&self, owner: Uuid, partitions_released: &[u16]) -> Result<(), StoreError> {
        sqlx::query(sql::OUTBOX_RELEASE)
            .bind(self.tenant_id().as_str())
            .bind(owner)
            .bind(partitions(partitions_released))
            .execute(self.pool())
            .await
            .map_err(|error| StoreError::backend("outbox release", true, error))?;
        Ok(())
    }

    async fn leave(&self, owner: Uuid) -> Result<(), StoreError> {
        sqlx::query(sql::OUTBOX_LEAVE)
            .bind(self.tenant_id().as_str())
            .bind(owner)
            .execute(self.pool())
            .await
            .map_err(|error| StoreError::backend("outbox leave", true, error))?;
        Ok(())
    }

    fn message_generation(&self) -> u64 {
        *self.wakeups().borrow()
    }

    async fn wait_for_messages(&self, seen: u64, timeout: Duration) {
        let mut wakeups = self.wakeups();
        let _ =
            tokio::time::timeout(timeout, wakeups.wait_for(|generation| *generation != seen)).await;
    }

    async fn relays(&self) -> Result<Vec<Uuid>, StoreError> {
        sqlx::query_scalar(sql::OUTBOX_RELAYS)
            .bind(self.tenant_id().as_str())
            .fetch_all(self.pool())
            .await
            .map_err(|error| read_error("outbox relays", error))
    }

    async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let rows: Vec<(i16, Uuid, DateTime<Utc>)> = sqlx::query_as(sql::OUTBOX_LEASES)
            .bind(self.tenant_id().as_str())
            .fetch_all(self.pool())
            .await
            .map_err(|error| read_error("outbox leases", error))?;
        rows.into_iter()
            .map(|(partition, owner, expires_at)| {
                let partition = u16::try_from(partition)
                    .map_err(corrupt_in(format_args!("outbox lease of partition {partition}")))?;
                Ok(Lease { partition, owner, expires_at })
            })
            .collect()
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let (pending, oldest_pending, parked, delivered): (i64, Option<DateTime<Utc>>, i64, i64) =
            sqlx::query_as(sql::OUTBOX_STATS)
                .bind(self.tenant_id().as_str())
                .fetch_one(self.pool())
                .await
                .map_err(|error| read_error("outbox stats", error))?;
        Ok(OutboxStats {
            pending: stored_u64(pending, "the outbox's pending count")?,
            oldest_pending,
            parked: stored_u64(parked, "the outbox's parked count")?,
            delivered: stored_u64(delivered, "the outbox's delivered count")?,
        })
    }

    async fn prune_delivered(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        sqlx::query(sql::OUTBOX_RELAYS_FORGET)
            .bind(self.tenant_id().as_str())
            .execute(self.pool())
            .await
            .map_err(|error| StoreError::backend("outbox prune", true, error))?;
        let done = sqlx::query(sql::OUTBOX_PRUNE)
            .bind(self.tenant_id().as_str())
            .bind(before)
            .execute(self.pool())
            .await
            .map_err(|error| StoreError::backend("outbox prune", true, error))?;
        Ok(done.rows_affected())
    }
}
