//! Snapshots in the `snapshots` table (migration 3).

use crate::PgTenantStore;
use crate::error::read_error;
use crate::row::{bound_i32, bound_i64, stored_u32, stored_u64};
use crate::sql;
use es_core::snapshot::{Snapshot, SnapshotStore};
use es_core::{EventId, Payload, StoreError, StreamId};

/// A row of `snapshots`, as stored.
#[derive(sqlx::FromRow)]
struct SnapshotRow {
    aggregate: String,
    version: i64,
    schema_version: i32,
    state: Vec<u8>,
    checksum: Vec<u8>,
    event_id: uuid::Uuid,
}

impl SnapshotRow {
    /// The snapshot; a damaged checksum is handed over as it is (the repository checks and
    /// ignores it), only what cannot be represented at all is corruption.
    fn snapshot(self, stream_id: &StreamId) -> Result<Snapshot, StoreError> {
        let mut checksum = [0u8; 32];
        if self.checksum.len() == 32 {
            checksum.copy_from_slice(&self.checksum);
        }
        Ok(Snapshot {
            aggregate: self.aggregate,
            stream_id: stream_id.clone(),
            version: stored_u64(self.version, format_args!("snapshot of {stream_id}: version"))?,
            event_id: EventId::from_uuid(self.event_id),
            schema_version: stored_u32(
                self.schema_version,
                format_args!("snapshot of {stream_id}: schema version"),
            )?,
            state: Payload::from_stored(self.state),
            checksum,
        })
    }
}

impl SnapshotStore for PgTenantStore {
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row: Option<SnapshotRow> = sqlx::query_as(sql::LOAD_SNAPSHOT)
            .bind(self.tenant_id().as_str())
            .bind(stream_id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(|error| read_error("load_snapshot", error))?;
        row.map(|row| row.snapshot(stream_id)).transpose()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        sqlx::query(sql::SAVE_SNAPSHOT)
            .bind(self.tenant_id().as_str())
            .bind(snapshot.stream_id.as_str())
            .bind(&snapshot.aggregate)
            .bind(bound_i64(snapshot.version))
            .bind(bound_i32(snapshot.schema_version))
            .bind(snapshot.state.as_bytes())
            .bind(&snapshot.checksum[..])
            .bind(snapshot.event_id.as_uuid())
            .execute(self.pool())
            .await
            .map_err(|error| read_error("save_snapshot", error))?;
        Ok(())
    }
}
