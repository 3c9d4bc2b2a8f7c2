//! Parked events in the `dead_letters` table (migration 5).

use es_core::projection::{DeadLetterStore, ParkedEvent};
use es_core::{EventType, Position, StoreError};
use sqlx::Row;

use crate::PgTenantStore;
use crate::error::read_error;

impl DeadLetterStore for PgTenantStore {
    async fn park(&self, parked: ParkedEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dead_letters (tenant, projection, position, event_type, error, attempts, parked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant, projection, position) DO UPDATE SET error = EXCLUDED.error, \
               attempts = EXCLUDED.attempts, parked_at = EXCLUDED.parked_at",
        )
        .bind(self.tenant_id().as_str())
        .bind(&parked.projection)
        .bind(i64::try_from(parked.position.value()).unwrap_or(i64::MAX))
        .bind(parked.event_type.as_str())
        .bind(&parked.error)
        .bind(i32::try_from(parked.attempts).unwrap_or(i32::MAX))
        .bind(parked.parked_at)
        .execute(self.pool())
        .await
        .map_err(|error| read_error("park", error))?;
        Ok(())
    }

    async fn parked(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT position, event_type, error, attempts, parked_at FROM dead_letters \
             WHERE tenant = $1 AND projection = $2 ORDER BY position",
        )
        .bind(self.tenant_id().as_str())
        .bind(projection)
        .fetch_all(self.pool())
        .await
        .map_err(|error| read_error("parked", error))?;
        rows.iter()
            .map(|row| {
                let corrupt = |error: String| StoreError::Corrupt {
                    detail: format!("dead letter of {projection}: {error}"),
                };
                let position: i64 =
                    row.try_get("position").map_err(|error| corrupt(error.to_string()))?;
                let event_type: String =
                    row.try_get("event_type").map_err(|error| corrupt(error.to_string()))?;
                let attempts: i32 =
                    row.try_get("attempts").map_err(|error| corrupt(error.to_string()))?;
                Ok(ParkedEvent {
                    projection: projection.to_owned(),
                    position: Position::new(
                        u64::try_from(position)
                            .map_err(|_| corrupt(format!("position {position}")))?,
                    ),
                    event_type: EventType::new(event_type)
                        .map_err(|error| corrupt(error.to_string()))?,
                    error: row.try_get("error").map_err(|error| corrupt(error.to_string()))?,
                    attempts: u32::try_from(attempts)
                        .map_err(|_| corrupt(format!("attempts {attempts}")))?,
                    parked_at: row
                        .try_get("parked_at")
                        .map_err(|error| corrupt(error.to_string()))?,
                })
            })
            .collect()
    }

    async fn unpark(&self, projection: &str, position: Position) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM dead_letters WHERE tenant = $1 AND projection = $2 AND position = $3",
        )
        .bind(self.tenant_id().as_str())
        .bind(projection)
        .bind(i64::try_from(position.value()).unwrap_or(i64::MAX))
        .execute(self.pool())
        .await
        .map_err(|error| read_error("unpark", error))?;
        Ok(())
    }
}
