//! Admin queries for operators' tools: what a tenant's store holds, which streams have
//! snapshots, which projections have checkpoints or parked events. Read-only, tenant-scoped.

use es_core::{EventStore, Position, StoreError, StreamId};
use sqlx::Row;

use crate::PgTenantStore;
use crate::error::read_error;
use crate::row::stored_u64;
use crate::sql;

/// What a tenant's store holds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStatistics {
    /// Events in the log.
    pub events: u64,
    /// Streams with at least one event.
    pub streams: u64,
    /// Bytes of stored payloads (jsonb, after compression).
    pub payload_bytes: u64,
    /// The head position.
    pub head: Position,
    /// Events per type, most frequent first.
    pub event_types: Vec<(String, u64)>,
}

/// A count column of a statistics row.
fn count(row: &sqlx::postgres::PgRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column).map_err(|error| read_error("statistics", error))?;
    stored_u64(value, format_args!("statistics column {column}"))
}

impl PgTenantStore {
    /// Counts the tenant's events, streams and payload bytes (a full scan of the tenant's events:
    /// run it off-peak on large stores).
    pub async fn statistics(&self) -> Result<StoreStatistics, StoreError> {
        let tenant = self.tenant_id().as_str();
        let row = sqlx::query(sql::STATISTICS)
            .bind(tenant)
            .fetch_one(self.pool())
            .await
            .map_err(|error| read_error("statistics", error))?;
        let event_types = sqlx::query(sql::EVENT_TYPE_COUNTS)
            .bind(tenant)
            .fetch_all(self.pool())
            .await
            .map_err(|error| read_error("statistics", error))?
            .iter()
            .map(|row| {
                let event_type: String =
                    row.try_get("event_type").map_err(|error| read_error("statistics", error))?;
                Ok((event_type, count(row, "n")?))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(StoreStatistics {
            events: count(&row, "events")?,
            streams: count(&row, "streams")?,
            payload_bytes: count(&row, "payload_bytes")?,
            head: self.head_position().await?,
            event_types,
        })
    }

    /// The streams that have a snapshot, in order.
    pub async fn snapshot_streams(&self) -> Result<Vec<StreamId>, StoreError> {
        let streams: Vec<String> = sqlx::query_scalar(sql::SNAPSHOT_STREAMS)
            .bind(self.tenant_id().as_str())
            .fetch_all(self.pool())
            .await
            .map_err(|error| read_error("snapshot_streams", error))?;
        streams
            .into_iter()
            .map(|stream| {
                StreamId::new(&stream).map_err(crate::row::corrupt_in(format_args!(
                    "stored snapshot stream id {stream:?}"
                )))
            })
            .collect()
    }

    /// The projections with a checkpoint or parked events, in order.
    pub async fn projection_names(&self) -> Result<Vec<es_core::ProjectionName>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(sql::PROJECTION_NAMES)
            .bind(self.tenant_id().as_str())
            .fetch_all(self.pool())
            .await
            .map_err(|error| read_error("projection_names", error))?;
        names
            .into_iter()
            .map(|name| {
                es_core::ProjectionName::new(&name).map_err(crate::row::corrupt_in(format_args!(
                    "stored projection name {name:?}"
                )))
            })
            .collect()
    }
}
