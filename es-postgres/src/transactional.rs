//! Transactional projections on PostgreSQL: the read model lives in this database, and each
//! batch's handler writes commit in the same transaction as the checkpoint's move
//! ([`TransactionalStore`] for [`PgTenantStore`]). A failure rolls the batch back, so every
//! event's effect happens exactly once, even across crashes. Handlers receive typed, upcast
//! events and the transaction either as its `sqlx::PgConnection` (each statement one round trip,
//! below) or as [`BatchWrites`] (statements deferred to the end of the batch and sent in one round
//! trip: see its example); the runner is es-core's [`TransactionalRunner`], with live mode, the
//! exclusive lock, lag, retries and parking.
//!
//! ```no_run
//! use es_core::{Event, ProjectionError, RecordedEvent, projection};
//! use es_postgres::transactional::TransactionalRunner;
//!
//! #[derive(serde::Serialize, serde::Deserialize, Event)]
//! #[event(name = "account.deposited")]
//! struct Deposited { amount: i64 }
//!
//! struct Balances;
//!
//! #[projection(name = "balances")]
//! impl Balances {
//!     async fn on_deposited(
//!         &mut self,
//!         tx: &mut sqlx::PgConnection,
//!         event: &Deposited,
//!         meta: &RecordedEvent,
//!     ) -> Result<(), ProjectionError> {
//!         sqlx::query("INSERT INTO balances (account, cents) VALUES ($1, $2) \
//!                      ON CONFLICT (account) DO UPDATE SET cents = balances.cents + EXCLUDED.cents")
//!             .bind(meta.stream_id.as_str())
//!             .bind(event.amount)
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

use es_core::projection::CheckpointError;
pub use es_core::projection::{
    BatchFailure, Through, TransactionalProjection, TransactionalRunner, TransactionalStore,
};
use es_core::{Position, ProjectionError, StoreError};

pub use crate::writes::{BatchWrites, Statement, Value};

use crate::PgTenantStore;
use crate::error::read_error;
use crate::row::stored_u64;
use crate::sql;

impl TransactionalStore for PgTenantStore {
    type Connection = BatchWrites;
    type Transaction = Box<BatchWrites>;

    /// Begins a transaction and locks the projection's checkpoint row in it (`FOR UPDATE`), so a
    /// second runner's batch waits for this one to end. Before the first commit there is no row
    /// to lock; two first batches then race, and the loser's commit is refused (compare-and-set).
    async fn begin_batch(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<(Self::Transaction, Option<Position>), StoreError> {
        let mut tx = self.pool().begin().await.map_err(|error| read_error("begin_batch", error))?;
        let stored: Option<i64> = sqlx::query_scalar(sql::LOCK_CHECKPOINT)
            .bind(self.tenant_id().as_str())
            .bind(projection.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|error| read_error("begin_batch", error))?;
        let stored = stored
            .map(|value| {
                stored_u64(value, format_args!("checkpoint of {projection}")).map(Position::new)
            })
            .transpose()?;
        Ok((Box::new(BatchWrites::new(tx)), stored))
    }

    /// Sends what the handlers pushed, in one round trip.
    async fn flush_batch(
        &self,
        transaction: &mut Self::Transaction,
    ) -> Result<(), ProjectionError> {
        transaction.flush().await
    }

    /// Sends what is still pending (nothing, after the runner's
    /// [`flush_batch`](TransactionalStore::flush_batch)), moves the checkpoint and commits.
    async fn commit_batch(
        &self,
        mut transaction: Self::Transaction,
        projection: &es_core::ProjectionName,
        from: Option<Position>,
        to: Position,
    ) -> Result<(), CheckpointError> {
        if transaction.pending() > 0 {
            transaction
                .flush()
                .await
                .map_err(|error| StoreError::backend("commit_batch", false, error))?;
        }
        let mut transaction = transaction.into_transaction();
        let moved =
            crate::checkpoint::move_checkpoint(self, &mut *transaction, projection, from, to)
                .await
                .map_err(|error| read_error("commit_batch", error))?;
        if !moved {
            // Dropping the transaction rolls back the batch's writes with it.
            drop(transaction);
            return self.checkpoint_moved(false, projection, from).await;
        }
        // A commit whose outcome is lost with the connection is safe to redo: if it committed,
        // the next batch finds the checkpoint moved and does not apply the events again.
        transaction.commit().await.map_err(|error| read_error("commit_batch", error))?;
        Ok(())
    }
}
