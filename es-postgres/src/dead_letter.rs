//! Parked events in the `dead_letters` table (migration 5).

use chrono::{DateTime, Utc};
use es_core::projection::{DeadLetterStore, ParkedEvent};
use es_core::{EventType, Position, StoreError};

use crate::PgTenantStore;
use crate::error::read_error;
use crate::row::{bound_i32, bound_i64, corrupt_in, stored_u32, stored_u64};
use crate::sql;

/// A row of `dead_letters`, as stored.
#[derive(sqlx::FromRow)]
struct DeadLetterRow {
    position: i64,
    event_type: String,
    error: String,
    attempts: i32,
    parked_at: DateTime<Utc>,
}

impl DeadLetterRow {
    fn parked(self, projection: &es_core::ProjectionName) -> Result<ParkedEvent, StoreError> {
        let what = format!("dead letter of {projection} at {}", self.position);
        Ok(ParkedEvent {
            projection: projection.clone(),
            position: Position::new(stored_u64(self.position, format_args!("{what}: position"))?),
            event_type: EventType::new(self.event_type)
                .map_err(corrupt_in(format_args!("{what}: event type")))?,
            error: self.error,
            attempts: stored_u32(self.attempts, format_args!("{what}: attempts"))?,
            parked_at: self.parked_at,
        })
    }
}

impl DeadLetterStore for PgTenantStore {
    async fn park(&self, parked: ParkedEvent) -> Result<(), StoreError> {
        sqlx::query(sql::PARK)
            .bind(self.tenant_id().as_str())
            .bind(parked.projection.as_str())
            .bind(bound_i64(parked.position.value()))
            .bind(parked.event_type.as_str())
            .bind(&parked.error)
            .bind(bound_i32(parked.attempts))
            .bind(parked.parked_at)
            .execute(self.pool())
            .await
            .map_err(|error| read_error("park", error))?;
        Ok(())
    }

    async fn parked(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<Vec<ParkedEvent>, StoreError> {
        let rows: Vec<DeadLetterRow> = sqlx::query_as(sql::PARKED)
            .bind(self.tenant_id().as_str())
            .bind(projection.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(|error| read_error("parked", error))?;
        rows.into_iter().map(|row| row.parked(projection)).collect()
    }

    async fn unpark(
        &self,
        projection: &es_core::ProjectionName,
        position: Position,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::UNPARK)
            .bind(self.tenant_id().as_str())
            .bind(projection.as_str())
            .bind(bound_i64(position.value()))
            .execute(self.pool())
            .await
            .map_err(|error| read_error("unpark", error))?;
        Ok(())
    }
}
