//! Projection checkpoints in the `checkpoints` table (migration 4), saved with compare-and-set.

use es_core::projection::{CheckpointConflict, CheckpointError, CheckpointStore};
use es_core::{Position, StoreError};

use crate::PgTenantStore;
use crate::error::read_error;
use crate::row::{bound_i64, stored_u64};
use crate::sql;

fn to_column(position: Position) -> i64 {
    bound_i64(position.value())
}

impl CheckpointStore for PgTenantStore {
    async fn load_checkpoint(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<Option<Position>, StoreError> {
        let position: Option<i64> = sqlx::query_scalar(sql::LOAD_CHECKPOINT)
            .bind(self.tenant_id().as_str())
            .bind(projection.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(|error| read_error("load_checkpoint", error))?;
        position
            .map(|value| {
                stored_u64(value, format_args!("checkpoint of {projection}")).map(Position::new)
            })
            .transpose()
    }

    async fn save_checkpoint(
        &self,
        projection: &es_core::ProjectionName,
        expected: Option<Position>,
        next: Position,
    ) -> Result<(), CheckpointError> {
        // One statement either way: the first save inserts (and loses to a concurrent first save
        // on the key), later saves update only if the stored position is the expected one.
        let saved = match expected {
            None => {
                sqlx::query(sql::INSERT_CHECKPOINT)
                    .bind(self.tenant_id().as_str())
                    .bind(projection.as_str())
                    .bind(to_column(next))
                    .execute(self.pool())
                    .await
            }
            Some(expected) => {
                sqlx::query(sql::MOVE_CHECKPOINT)
                    .bind(self.tenant_id().as_str())
                    .bind(projection.as_str())
                    .bind(to_column(expected))
                    .bind(to_column(next))
                    .execute(self.pool())
                    .await
            }
        }
        .map_err(|error| read_error("save_checkpoint", error))?;
        if saved.rows_affected() == 1 {
            return Ok(());
        }
        let found = self.load_checkpoint(projection).await?;
        Err(CheckpointConflict { projection: projection.clone(), expected, found }.into())
    }

    async fn reset_checkpoint(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<Option<Position>, StoreError> {
        let removed: Option<i64> = sqlx::query_scalar(sql::RESET_CHECKPOINT)
            .bind(self.tenant_id().as_str())
            .bind(projection.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(|error| read_error("reset_checkpoint", error))?;
        removed
            .map(|value| {
                stored_u64(value, format_args!("checkpoint of {projection}")).map(Position::new)
            })
            .transpose()
    }
}
