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
        let moved = move_checkpoint(self, self.pool(), projection, expected, next)
            .await
            .map_err(|error| read_error("save_checkpoint", error))?;
        self.checkpoint_moved(moved, projection, expected).await
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

/// Moves a projection's checkpoint from `from` to `to` by compare-and-set, on any executor (the
/// pool, or a transactional batch's transaction), in one statement: the first save inserts (and
/// loses to a concurrent first save on the key), later saves update only from `from`. Returns
/// whether it moved.
pub(crate) async fn move_checkpoint<'e>(
    store: &PgTenantStore,
    executor: impl sqlx::PgExecutor<'e>,
    projection: &es_core::ProjectionName,
    from: Option<Position>,
    to: Position,
) -> Result<bool, sqlx::Error> {
    let moved = match from {
        None => {
            sqlx::query(sql::INSERT_CHECKPOINT)
                .bind(store.tenant_id().as_str())
                .bind(projection.as_str())
                .bind(to_column(to))
                .execute(executor)
                .await?
        }
        Some(from) => {
            sqlx::query(sql::MOVE_CHECKPOINT)
                .bind(store.tenant_id().as_str())
                .bind(projection.as_str())
                .bind(to_column(from))
                .bind(to_column(to))
                .execute(executor)
                .await?
        }
    };
    Ok(moved.rows_affected() == 1)
}

impl PgTenantStore {
    /// Ok if the checkpoint moved; otherwise the conflict, with the checkpoint stored now.
    pub(crate) async fn checkpoint_moved(
        &self,
        moved: bool,
        projection: &es_core::ProjectionName,
        expected: Option<Position>,
    ) -> Result<(), CheckpointError> {
        if moved {
            return Ok(());
        }
        let found = self.load_checkpoint(projection).await?;
        Err(CheckpointConflict { projection: projection.clone(), expected, found }.into())
    }
}
