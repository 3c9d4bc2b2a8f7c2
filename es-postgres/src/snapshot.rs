//! Snapshots in the `snapshots` table (migration 3).

use es_core::snapshot::{Snapshot, SnapshotStore};
use es_core::{EventId, Payload, StoreError, StreamId};
use sqlx::Row;

use crate::PgTenantStore;
use crate::error::read_error;

impl SnapshotStore for PgTenantStore {
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT aggregate, version, schema_version, state, checksum, event_id FROM snapshots \
             WHERE tenant = $1 AND stream_id = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(stream_id.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(|error| read_error("load_snapshot", error))?;
        let Some(row) = row else { return Ok(None) };
        let corrupt = |detail: String| StoreError::Corrupt {
            detail: format!("snapshot of {stream_id}: {detail}"),
        };
        let get = |error: sqlx::Error| corrupt(error.to_string());
        let version: i64 = row.try_get("version").map_err(get)?;
        let schema_version: i32 = row.try_get("schema_version").map_err(get)?;
        let state: Vec<u8> = row.try_get("state").map_err(get)?;
        let checksum: Vec<u8> = row.try_get("checksum").map_err(get)?;
        // A damaged row is handed over as it is: the repository checks and ignores it.
        let mut sum = [0u8; 32];
        if checksum.len() == 32 {
            sum.copy_from_slice(&checksum);
        }
        Ok(Some(Snapshot {
            aggregate: row.try_get("aggregate").map_err(get)?,
            stream_id: stream_id.clone(),
            version: u64::try_from(version).map_err(|_| corrupt(format!("version {version}")))?,
            event_id: EventId::from_uuid(row.try_get("event_id").map_err(get)?),
            schema_version: u32::try_from(schema_version)
                .map_err(|_| corrupt(format!("schema version {schema_version}")))?,
            state: Payload::from_stored(state),
            checksum: sum,
        }))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO snapshots (tenant, stream_id, aggregate, version, schema_version, state, checksum, event_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant, stream_id) DO UPDATE SET aggregate = EXCLUDED.aggregate, \
               version = EXCLUDED.version, schema_version = EXCLUDED.schema_version, \
               event_id = EXCLUDED.event_id, \
               state = EXCLUDED.state, checksum = EXCLUDED.checksum, taken_at = now() \
             WHERE snapshots.version < EXCLUDED.version",
        )
        .bind(self.tenant_id().as_str())
        .bind(snapshot.stream_id.as_str())
        .bind(&snapshot.aggregate)
        .bind(i64::try_from(snapshot.version).unwrap_or(i64::MAX))
        .bind(i32::try_from(snapshot.schema_version).unwrap_or(i32::MAX))
        .bind(snapshot.state.as_bytes())
        .bind(&snapshot.checksum[..])
        .bind(snapshot.event_id.as_uuid())
        .execute(self.pool())
        .await
        .map_err(|error| read_error("save_snapshot", error))?;
        Ok(())
    }
}
