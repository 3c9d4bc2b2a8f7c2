//! The backend and its tenant-scoped handles.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use es_core::pii::{KeyProvider, MasterKeys, PersonalData, Vault, open_events};
use es_core::quota::{Limits, TenantQuotas, TenantUsage};
use es_core::{
    AppendOptions, AppendRequest, AppendResult, EventData, EventStore, EventStream,
    ExpectedVersion, IdempotencyKey, IdempotencyRecord, MultiTenantStore, Position, ReadAllOptions,
    ReadStreamOptions, StoreError, StreamId, TenantId,
};
use parking_lot::{Mutex, RwLock};

use crate::keys::{KeyState, MemoryKeys};

use crate::reader::PageReader;
use crate::tenant_log::TenantLog;

/// The in-memory backend: hands out a [`MemoryTenantStore`] per tenant. Clones share the data.
///
/// `#[pii]` fields are sealed as on PostgreSQL (see [`es_core::pii`]); by default with a master key
/// that lives as long as the store ([`MasterKeys::ephemeral`]), which is all a store in memory
/// needs.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
    vault: Arc<Vault>,
}

#[derive(Default)]
pub(crate) struct Inner {
    tenants: RwLock<HashMap<TenantId, Arc<TenantLog>>>,
    /// The last position handed out, shared by all tenants.
    pub(crate) positions: AtomicU64,
    /// The key store of personal data.
    pub(crate) keys: Mutex<KeyState>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store, sealing personal data with a key of its own.
    pub fn new() -> Self {
        Self::with_key_provider(Arc::new(MasterKeys::ephemeral()))
    }

    /// An empty store whose data keys are wrapped by `provider`'s master keys.
    pub fn with_key_provider(provider: Arc<dyn KeyProvider>) -> Self {
        Self::over(Arc::new(Inner::default()), provider)
    }

    /// The same data (events, keys, everything) seen through another key provider: for tests of
    /// what a process with the wrong master key, or a rotated one, would see.
    #[must_use]
    pub fn reopen_with(&self, provider: Arc<dyn KeyProvider>) -> Self {
        Self::over(self.inner.clone(), provider)
    }

    fn over(inner: Arc<Inner>, provider: Arc<dyn KeyProvider>) -> Self {
        let keys = Arc::new(MemoryKeys { inner: inner.clone() });
        Self { inner, vault: Arc::new(Vault::new(keys, provider)) }
    }

    /// Everything the store keeps for `tenant`, as kept (sealed fields sealed): event payloads
    /// and metadata, snapshots, idempotency records, checkpoints, parked events, outbox messages,
    /// key rows and the audit trail. For audits and tests that search for personal data.
    pub fn stored_text(&self, tenant: &TenantId) -> String {
        use std::fmt::Write as _;
        let log = self.inner.log(tenant.clone());
        let mut text = log.state.read().dump();
        let keys = self.inner.keys.lock();
        let _ = write!(text, "{}", keys.dump(tenant));
        text
    }

    /// The payloads of `tenant`'s events as stored (sealed fields sealed), in position order.
    pub fn stored_payloads(&self, tenant: &TenantId) -> Vec<String> {
        let log = self.inner.log(tenant.clone());
        let state = log.state.read();
        state.events.iter().map(|event| event.payload.as_str().to_owned()).collect()
    }

    /// The store's vault (master-key rotation, for example: [`Vault::rotate`]).
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
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
}

impl Inner {
    pub(crate) fn log(&self, tenant: TenantId) -> Arc<TenantLog> {
        if let Some(log) = self.tenants.read().get(&tenant) {
            return log.clone();
        }
        self.tenants
            .write()
            .entry(tenant.clone())
            .or_insert_with(|| Arc::new(TenantLog::new(tenant)))
            .clone()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tenants", &self.inner.tenants.read().len())
            .field("vault", &self.vault)
            .finish()
    }
}

impl TenantQuotas for MemoryStore {
    async fn set_limits(&self, tenant: &TenantId, limits: Limits) -> Result<(), StoreError> {
        self.inner.log(tenant.clone()).state.write().limits = limits;
        Ok(())
    }

    async fn tenant_usage(&self, tenant: &TenantId) -> Result<TenantUsage, StoreError> {
        let log = self.inner.log(tenant.clone());
        let state = log.state.read();
        Ok(TenantUsage { tenant: tenant.clone(), usage: state.usage(), limits: state.limits })
    }

    async fn tenants_usage(&self) -> Result<Vec<TenantUsage>, StoreError> {
        let tenants = self.inner.tenants.read();
        let mut all: Vec<TenantUsage> = tenants
            .iter()
            .filter_map(|(tenant, log)| {
                let state = log.state.read();
                let usage = state.usage();
                (usage.events > 0 || !state.limits.is_none()).then(|| TenantUsage {
                    tenant: tenant.clone(),
                    usage,
                    limits: state.limits,
                })
            })
            .collect();
        all.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(all)
    }
}

impl MultiTenantStore for MemoryStore {
    type Store = MemoryTenantStore;

    fn tenant(&self, tenant: TenantId) -> MemoryTenantStore {
        MemoryTenantStore { log: self.inner.log(tenant), store: self.clone() }
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
        let mut request = AppendRequest::new(stream_id, expected, events, options)?;
        es_core::pii::seal_request(Some(&self.store.vault), &self.log.tenant, &mut request).await?;
        let count = request.events.len();
        let result = self.log.append(request, &self.store.inner.positions);
        tracing::trace!(
            tenant = %self.log.tenant, stream = %stream_id, %expected, count,
            ok = result.is_ok(), "es.append"
        );
        result
    }

    fn read_stream(&self, stream_id: &StreamId, options: ReadStreamOptions) -> EventStream {
        let events = Box::pin(PageReader::stream(self.log.clone(), stream_id.clone(), options));
        open_events(Some(self.store.vault.clone()), self.log.tenant.clone(), events)
    }

    fn read_all(&self, options: ReadAllOptions) -> EventStream {
        let events = Box::pin(PageReader::all(self.log.clone(), options));
        open_events(Some(self.store.vault.clone()), self.log.tenant.clone(), events)
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

    async fn fingerprint_matches(
        &self,
        record: &IdempotencyRecord,
        fingerprint: &es_core::Fingerprint,
    ) -> Result<bool, StoreError> {
        if record.fingerprint == *fingerprint {
            return Ok(true);
        }
        // The recorded events as stored (sealed): whose keys keyed the record's fingerprint.
        let sealed: Vec<_> = {
            let state = self.log.state.read();
            let (first, last) = (record.result.first_position, record.result.last_position);
            let from = state.events.partition_point(|event| event.position < first);
            state.events[from..]
                .iter()
                .take_while(|event| event.position <= last)
                .filter(|event| event.stream_id == record.stream_id)
                .map(|event| event.payload.clone())
                .collect()
        };
        self.store
            .vault
            .keyed_fingerprint_matches(&self.log.tenant, record, fingerprint, &sealed)
            .await
    }
}

impl PersonalData for MemoryTenantStore {
    fn vault(&self) -> Option<&Arc<Vault>> {
        Some(&self.store.vault)
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

impl es_core::StreamCatalog for MemoryTenantStore {
    async fn list_streams(
        &self,
        query: &es_core::StreamQuery,
    ) -> Result<Vec<es_core::StreamSummary>, StoreError> {
        let state = self.log.state.read();
        let mut matching: Vec<(&StreamId, &Vec<usize>)> =
            state.streams.iter().filter(|(stream_id, _)| query.matches(stream_id)).collect();
        let limit = query.page_size();
        if matching.len() > limit {
            // The `limit` smallest ids go before index `limit`; the rest is dropped unsorted.
            matching.select_nth_unstable_by(limit, |a, b| a.0.as_str().cmp(b.0.as_str()));
            matching.truncate(limit);
        }
        matching.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(matching
            .into_iter()
            .filter_map(|(stream_id, indexes)| {
                let last = &state.events[*indexes.last()?];
                Some(es_core::StreamSummary::new(
                    stream_id.clone(),
                    indexes.len() as u64,
                    last.position,
                    last.recorded_at,
                ))
            })
            .collect())
    }
}
