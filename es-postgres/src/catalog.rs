//! The stream catalog (`StreamCatalog`): a tenant's streams by id prefix, a page at a time.

use chrono::{DateTime, Utc};
use es_core::{Position, StoreError, StreamCatalog, StreamId, StreamQuery, StreamSummary};

use crate::PgTenantStore;
use crate::error::read_error;
use crate::row::{bound_i64, corrupt_in, stored_u64};
use crate::sql;

/// A row of a catalog page, as stored.
#[derive(sqlx::FromRow)]
struct StreamRow {
    stream_id: String,
    version: i64,
    last_position: i64,
    last_recorded_at: DateTime<Utc>,
}

impl StreamRow {
    fn summary(self) -> Result<StreamSummary, StoreError> {
        let stream_id = StreamId::new(&self.stream_id)
            .map_err(corrupt_in(format_args!("stored stream id {:?}", self.stream_id)))?;
        let what = format_args!("stream {stream_id}");
        let version = stored_u64(self.version, format_args!("{what}: version"))?;
        let position = stored_u64(self.last_position, format_args!("{what}: last position"))?;
        Ok(StreamSummary::new(stream_id, version, Position::new(position), self.last_recorded_at))
    }
}

impl StreamCatalog for PgTenantStore {
    async fn list_streams(&self, query: &StreamQuery) -> Result<Vec<StreamSummary>, StoreError> {
        let rows: Vec<StreamRow> = sqlx::query_as(sql::LIST_STREAMS)
            .bind(self.tenant_id().as_str())
            .bind(query.prefix_str())
            .bind(query.after_id().map(StreamId::as_str))
            .bind(bound_i64(query.page_size() as u64))
            .fetch_all(self.pool())
            .await
            .map_err(|error| read_error("list_streams", error))?;
        rows.into_iter().map(StreamRow::summary).collect()
    }
}
