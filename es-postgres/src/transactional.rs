//! Transactional projections: the read model lives in this database, and each batch's handler
//! writes commit in the same transaction as the checkpoint's move. A failure rolls the whole batch
//! back, so every event's effect happens exactly once, even across crashes.
//!
//! ```no_run
//! use es_core::{Event, EventType, ProjectionError, RecordedEvent};
//! use es_postgres::transactional::{TransactionalProjection, TransactionalRunner};
//!
//! #[derive(serde::Deserialize)]
//! struct Deposited { amount: i64 }
//!
//! struct Balances;
//!
//! impl TransactionalProjection for Balances {
//!     const NAME: &'static str = "balances";
//!
//!     fn event_types() -> Vec<EventType> {
//!         vec![EventType::new("account.deposited").expect("valid name")]
//!     }
//!
//!     async fn handle(&mut self, tx: &mut sqlx::PgConnection, event: &RecordedEvent) -> Result<(), ProjectionError> {
//!         let deposited: Deposited = event.deserialize_payload().map_err(|e| ProjectionError::with_source("bad payload", e))?;
//!         sqlx::query("INSERT INTO balances (account, cents) VALUES ($1, $2) \
//!                      ON CONFLICT (account) DO UPDATE SET cents = balances.cents + EXCLUDED.cents")
//!             .bind(event.stream_id.as_str())
//!             .bind(deposited.amount)
//!             .execute(tx)
//!             .await
//!             .map_err(|e| ProjectionError::with_source("upsert failed", e))?;
//!         Ok(())
//!     }
//! }
//!
//! # async fn run(store: es_postgres::PgTenantStore) -> Result<(), Box<dyn std::error::Error>> {
//! let mut runner = TransactionalRunner::new(Balances, store);
//! runner.catch_up().await?;
//! # Ok(()) }
//! ```

use std::future::Future;

use es_core::projection::{CatchUp, CheckpointConflict, RunnerError};
use es_core::{EventStore, EventType, Position, ProjectionError, ReadAllOptions, RecordedEvent};
use futures_util::TryStreamExt;
use sqlx::PgConnection;

use crate::PgTenantStore;
use crate::error::read_error;
use crate::row::{bound_i64, stored_u64};

/// A projection whose handlers write through the runner's transaction.
pub trait TransactionalProjection: Send + 'static {
    /// The stable name its checkpoint is stored under.
    const NAME: &'static str;

    /// The event types it handles (the store's filter).
    fn event_types() -> Vec<EventType>;

    /// Handles one event, writing through `tx`; an error rolls back the whole batch.
    fn handle(
        &mut self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// Handles a batch of events, in log order, writing through `tx`; an error rolls back the
    /// whole batch. The default calls [`TransactionalProjection::handle`] for each event, one
    /// round trip per statement; override it to write a batch in a few set-based statements
    /// (one multi-row upsert instead of one upsert per event), which is what makes rebuilds fast.
    fn handle_batch(
        &mut self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), BatchFailure>> + Send {
        async move {
            for (index, event) in events.iter().enumerate() {
                self.handle(tx, event).await.map_err(|source| BatchFailure { index, source })?;
            }
            Ok(())
        }
    }
}

/// A batch handler failed.
#[derive(Debug)]
pub struct BatchFailure {
    /// The index in the batch of the event that failed (0 when a set-based write cannot tell).
    pub index: usize,
    /// Why.
    pub source: ProjectionError,
}

/// Runs a [`TransactionalProjection`]: per batch, one transaction holding the handlers' writes and
/// the checkpoint's move (the checkpoint row is locked for the batch, so two runners cannot
/// interleave).
pub struct TransactionalRunner<P> {
    projection: P,
    store: PgTenantStore,
    batch_size: usize,
}

impl<P: TransactionalProjection> TransactionalRunner<P> {
    /// A runner with batches of 1,000 events.
    pub fn new(projection: P, store: PgTenantStore) -> Self {
        Self { projection, store, batch_size: 1_000 }
    }

    /// Sets the batch size (at least 1).
    #[must_use]
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Handles events until caught up with the head; each batch commits atomically with its
    /// checkpoint.
    pub async fn catch_up(&mut self) -> Result<CatchUp, RunnerError> {
        let head = self.store.head_position().await?;
        let mut handled = 0;
        loop {
            let mut tx =
                self.store.pool().begin().await.map_err(|error| read_error("begin", error))?;
            // Lock the checkpoint row for the batch (creating it at 0 the first time).
            sqlx::query("INSERT INTO checkpoints (tenant, projection, position) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING")
                .bind(self.store.tenant_id().as_str())
                .bind(P::NAME)
                .execute(&mut *tx)
                .await
                .map_err(|error| read_error("checkpoint", error))?;
            let stored: i64 = sqlx::query_scalar(
                "SELECT position FROM checkpoints WHERE tenant = $1 AND projection = $2 FOR UPDATE",
            )
            .bind(self.store.tenant_id().as_str())
            .bind(P::NAME)
            .fetch_one(&mut *tx)
            .await
            .map_err(|error| read_error("checkpoint", error))?;
            let after =
                Position::new(stored_u64(stored, format_args!("checkpoint of {}", P::NAME))?);
            let batch: Vec<RecordedEvent> = self
                .store
                .read_all(
                    ReadAllOptions::after(after)
                        .event_types(P::event_types())
                        .page_size(self.batch_size)
                        .limit(self.batch_size as u64),
                )
                .try_collect()
                .await?;
            let full = batch.len() >= self.batch_size;
            if let Err(failure) = self.projection.handle_batch(&mut tx, &batch).await {
                // Dropping the transaction rolls back every write of the batch.
                let event = batch.get(failure.index).or(batch.first());
                return Err(RunnerError::Handler {
                    projection: P::NAME.to_owned(),
                    position: event.map_or(after, |event| event.position),
                    event_type: event.map(|event| event.event_type.to_string()).unwrap_or_default(),
                    attempts: 1,
                    source: failure.source,
                });
            }
            let last = batch.last().map_or(after, |event| event.position);
            let next = es_core::projection::checkpoint_after_batch(full, last, head);
            if next > after {
                let moved = sqlx::query("UPDATE checkpoints SET position = $3, updated_at = now() WHERE tenant = $1 AND projection = $2 AND position = $4")
                    .bind(self.store.tenant_id().as_str())
                    .bind(P::NAME)
                    .bind(bound_i64(next.value()))
                    .bind(stored)
                    .execute(&mut *tx)
                    .await
                    .map_err(|error| read_error("checkpoint", error))?;
                if moved.rows_affected() != 1 {
                    return Err(RunnerError::Checkpoint(
                        CheckpointConflict {
                            projection: P::NAME.to_owned(),
                            expected: Some(after),
                            found: None,
                        }
                        .into(),
                    ));
                }
            }
            tx.commit().await.map_err(|error| read_error("commit", error))?;
            handled += batch.len() as u64;
            if !full {
                return Ok(CatchUp { handled, checkpoint: next.max(after) });
            }
        }
    }
}
