//! Projection ownership: a session-level advisory lock held on a connection of its own. If the
//! process dies, the connection closes and PostgreSQL releases the lock, so another process
//! takes over.

use es_core::StoreError;
use es_core::projection::{ProjectionLock, ProjectionLocks};
use sqlx::{Connection, PgConnection};

use crate::PgTenantStore;
use crate::error::read_error;

/// A held projection lock; dropping it closes its connection, which releases it.
pub struct PgProjectionLock {
    connection: Option<PgConnection>,
    tenant: String,
    projection: es_core::ProjectionName,
}

impl std::fmt::Debug for PgProjectionLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgProjectionLock")
            .field("tenant", &self.tenant)
            .field("projection", &self.projection)
            .finish_non_exhaustive()
    }
}

impl ProjectionLocks for PgTenantStore {
    type Lock = PgProjectionLock;

    async fn try_lock(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<Option<PgProjectionLock>, StoreError> {
        // A connection that never goes back to the pool: the lock lives as long as it does.
        let mut connection =
            self.pool().acquire().await.map_err(|error| read_error("try_lock", error))?.detach();
        let taken: bool = sqlx::query_scalar(crate::sql::TRY_LOCK)
            .bind(self.tenant_id().as_str())
            .bind(projection.as_str())
            .fetch_one(&mut connection)
            .await
            .map_err(|error| read_error("try_lock", error))?;
        if !taken {
            let _ = connection.close().await;
            return Ok(None);
        }
        Ok(Some(PgProjectionLock {
            connection: Some(connection),
            tenant: self.tenant_id().as_str().to_owned(),
            projection: projection.clone(),
        }))
    }
}

impl ProjectionLock for PgProjectionLock {
    async fn is_held(&mut self) -> bool {
        let Some(connection) = self.connection.as_mut() else { return false };
        let held = sqlx::query_scalar::<_, bool>(crate::sql::LOCK_HELD)
            .bind(&self.tenant)
            .bind(self.projection.as_str())
            .fetch_one(connection)
            .await;
        match held {
            Ok(held) => held,
            Err(error) => {
                // The connection is gone, and the lock with it.
                tracing::warn!(%error, projection = %self.projection, "es.projection: lock connection lost");
                self.connection = None;
                false
            }
        }
    }
}
