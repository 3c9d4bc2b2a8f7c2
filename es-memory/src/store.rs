//! The backend and its tenant-scoped handles.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use es_core::{
    AppendOptions, AppendRequest, AppendResult, EventData, EventStore, EventStream,
    ExpectedVersion, IdempotencyKey, IdempotencyRecord, MultiTenantStore, Position, ReadAllOptions,
    ReadStreamOptions, StoreError, StreamId, TenantId,
};
use parking_lot::RwLock;

use crate::reader::PageReader;
use crate::tenant_log::TenantLog;

/// The in-memory backend: hands out a [`MemoryTenantStore`] per tenant. Clones share the data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tenants: RwLock<HashMap<TenantId, Arc<TenantLog>>>,
    /// The last position handed out, shared by all tenants.
    positions: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tenants that hold at least one event (an admin view across tenants).
    pub fn tenants(&self) -> Vec<TenantId> {
        let tenants = self.inner.tenants.read();
        let mut ids: Vec<TenantId> = tenants
            .iter()
            .filter(|(_, log)| !log.state.read().events.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    fn log(&self, tenant: TenantId) -> Arc<TenantLog> {
        if let Some(log) = self.inner.tenants.read().get(&tenant) {
            return log.clone();
        }
        self.inner
            .tenants
            .write()
            .entry(tenant.clone())
            .or_insert_with(|| Arc::new(TenantLog::new(tenant)))
            .clone()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").field("tenants", &self.inner.tenants.read().len()).finish()
    }
}

impl MultiTenantStore for MemoryStore {
    type Store = MemoryTenantStore;

    fn tenant(&self, tenant: TenantId) -> MemoryTenantStore {
        MemoryTenantStore { log: self.log(tenant), store: self.clone() }
    }
}

/// One tenant's view of a [`MemoryStore`]; implements [`EventStore`].
#[derive(Clone)]
pub struct MemoryTenantStore {
    log: Arc<TenantLog>,
    store: MemoryStore,
}

impl MemoryTenantStore {
    pub(crate) fn log(&self) -> &TenantLog {
        &self.log
    }
}

impl fmt::Debug for MemoryTenantStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTenantStore")
            .field("tenant", &self.log.tenant)
            .finish_non_exhaustive()
    }
}

impl EventStore for MemoryTenantStore {
    fn tenant(&self) -> &TenantId {
        &self.log.tenant
    }

    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
        options: AppendOptions,
    ) -> Result<AppendResult, StoreError> {
        let request = AppendRequest::new(stream_id, expected, events, options)?;
        let count = request.events.len();
        let result = self.log.append(request, &self.store.inner.positions);
        tracing::trace!(
            tenant = %self.log.tenant, stream = %stream_id, %expected, count,
            ok = result.is_ok(), "es.append"
        );
        result
    }

    fn read_stream(&self, stream_id: &StreamId, options: ReadStreamOptions) -> EventStream {
        Box::pin(PageReader::stream(self.log.clone(), stream_id.clone(), options))
    }

    fn read_all(&self, options: ReadAllOptions) -> EventStream {
        Box::pin(PageReader::all(self.log.clone(), options))
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, StoreError> {
        Ok(self.log.stream_version(stream_id))
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        Ok(*self.log.head.borrow())
    }

    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<Position, StoreError> {
        let mut head = self.log.head.subscribe();
        // The sender lives as long as the log this handle holds, so `wait_for` cannot see it closed.
        let _ = tokio::time::timeout(timeout, head.wait_for(|head| *head > after)).await;
        Ok(*head.borrow())
    }

    async fn idempotency_record(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.log.idempotency_record(key))
    }
}

impl es_core::snapshot::SnapshotStore for MemoryTenantStore {
    async fn load_snapshot(
        &self,
        stream_id: &StreamId,
    ) -> Result<Option<es_core::snapshot::Snapshot>, StoreError> {
        Ok(self.log.state.read().snapshots.get(stream_id).cloned())
    }

    async fn save_snapshot(&self, snapshot: es_core::snapshot::Snapshot) -> Result<(), StoreError> {
        let mut state = self.log.state.write();
        let newer = state
            .snapshots
            .get(&snapshot.stream_id)
            .is_none_or(|stored| stored.version < snapshot.version);
        if newer {
            state.snapshots.insert(snapshot.stream_id.clone(), snapshot);
        }
        Ok(())
    }
}

impl MemoryTenantStore {
    /// Replaces a stream's snapshot as it is, even an older or damaged one: for tests of how the
    /// repository treats snapshots it cannot trust.
    pub fn put_snapshot_unchecked(&self, snapshot: es_core::snapshot::Snapshot) {
        self.log.state.write().snapshots.insert(snapshot.stream_id.clone(), snapshot);
    }
}

impl es_core::projection::CheckpointStore for MemoryTenantStore {
    async fn load_checkpoint(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<Option<Position>, StoreError> {
        Ok(self.log.state.read().checkpoints.get(projection).copied())
    }

    async fn save_checkpoint(
        &self,
        projection: &es_core::ProjectionName,
        expected: Option<Position>,
        next: Position,
    ) -> Result<(), es_core::projection::CheckpointError> {
        let mut state = self.log.state.write();
        let found = state.checkpoints.get(projection).copied();
        if found != expected {
            return Err(es_core::projection::CheckpointConflict {
                projection: projection.clone(),
                expected,
                found,
            }
            .into());
        }
        state.checkpoints.insert(projection.clone(), next);
        Ok(())
    }

    async fn reset_checkpoint(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<Option<Position>, StoreError> {
        Ok(self.log.state.write().checkpoints.remove(projection))
    }
}

/// A held projection lock of the in-memory store; dropping it releases it.
pub struct MemoryProjectionLock {
    log: Arc<TenantLog>,
    projection: es_core::ProjectionName,
}

impl fmt::Debug for MemoryProjectionLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryProjectionLock")
            .field("projection", &self.projection)
            .finish_non_exhaustive()
    }
}

impl es_core::projection::ProjectionLock for MemoryProjectionLock {
    async fn is_held(&mut self) -> bool {
        true
    }
}

impl Drop for MemoryProjectionLock {
    fn drop(&mut self) {
        self.log.state.write().locked_projections.remove(&self.projection);
    }
}

impl es_core::projection::ProjectionLocks for MemoryTenantStore {
    type Lock = MemoryProjectionLock;

    async fn try_lock(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<Option<MemoryProjectionLock>, StoreError> {
        let taken = self.log.state.write().locked_projections.insert(projection.clone());
        Ok(taken.then(|| MemoryProjectionLock {
            log: self.log.clone(),
            projection: projection.clone(),
        }))
    }
}

impl es_core::projection::DeadLetterStore for MemoryTenantStore {
    async fn park(&self, parked: es_core::projection::ParkedEvent) -> Result<(), StoreError> {
        let mut state = self.log.state.write();
        state.parked.entry(parked.projection.clone()).or_default().insert(parked.position, parked);
        Ok(())
    }

    async fn parked(
        &self,
        projection: &es_core::ProjectionName,
    ) -> Result<Vec<es_core::projection::ParkedEvent>, StoreError> {
        Ok(self
            .log
            .state
            .read()
            .parked
            .get(projection)
            .map(|parked| parked.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn unpark(
        &self,
        projection: &es_core::ProjectionName,
        position: Position,
    ) -> Result<(), StoreError> {
        if let Some(parked) = self.log.state.write().parked.get_mut(projection) {
            parked.remove(&position);
        }
        Ok(())
    }
}
