//! Checkpoints kept in this process, for read models that live in memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{CheckpointConflict, CheckpointError, CheckpointStore, DeadLetterStore, ParkedEvent};
use crate::{
    AppendOptions, AppendResult, EventData, EventStore, EventStream, ExpectedVersion,
    IdempotencyKey, IdempotencyRecord, Position, ProjectionName, ReadAllOptions, ReadStreamOptions,
    ReplayStream, StoreError, StreamId, TenantId,
};

/// A store whose projection checkpoints live in this process and die with it; everything else
/// (events, dead letters) goes to the wrapped store.
///
/// A read model held in memory is lost when its process stops, so its checkpoint must be lost
/// too: a stored checkpoint would make the next process skip the events its empty model never
/// saw. Each process (and each clone of this handle shares one set) rebuilds its in-memory models
/// from the log at start, and processes never contend for one checkpoint row.
///
/// ```
/// use es_core::ProjectionName;
/// use es_core::projection::{CheckpointStore, VolatileCheckpoints};
/// # async fn demo(store: impl es_core::EventStore) -> Result<(), Box<dyn std::error::Error>> {
/// let store = VolatileCheckpoints::new(store);
/// assert_eq!(store.load_checkpoint(&ProjectionName::new("balances")?).await?, None);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct VolatileCheckpoints<S> {
    inner: S,
    checkpoints: Arc<Mutex<HashMap<ProjectionName, Position>>>,
}

impl<S> VolatileCheckpoints<S> {
    /// Wraps a store; no checkpoints yet.
    pub fn new(inner: S) -> Self {
        Self { inner, checkpoints: Arc::default() }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: EventStore> EventStore for VolatileCheckpoints<S> {
    fn tenant(&self) -> &TenantId {
        self.inner.tenant()
    }

    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
        options: AppendOptions,
    ) -> Result<AppendResult, StoreError> {
        self.inner.append(stream_id, expected, events, options).await
    }

    fn read_stream(&self, stream_id: &StreamId, options: ReadStreamOptions) -> EventStream {
        self.inner.read_stream(stream_id, options)
    }

    fn replay_stream(&self, stream_id: &StreamId, from_version: u64) -> ReplayStream {
        self.inner.replay_stream(stream_id, from_version)
    }

    fn read_all(&self, options: ReadAllOptions) -> EventStream {
        self.inner.read_all(options)
    }

    fn replay_all(&self, options: ReadAllOptions) -> crate::LogEventStream {
        self.inner.replay_all(options)
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream_id).await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.inner.head_position().await
    }

    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<Position, StoreError> {
        self.inner.wait_for_events(after, timeout).await
    }

    async fn idempotency_record(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(key).await
    }

    async fn fingerprint_matches(
        &self,
        record: &IdempotencyRecord,
        fingerprint: &crate::Fingerprint,
    ) -> Result<bool, StoreError> {
        self.inner.fingerprint_matches(record, fingerprint).await
    }
}

impl<S: DeadLetterStore> DeadLetterStore for VolatileCheckpoints<S> {
    async fn park(&self, parked: ParkedEvent) -> Result<(), StoreError> {
        self.inner.park(parked).await
    }

    async fn parked(&self, projection: &ProjectionName) -> Result<Vec<ParkedEvent>, StoreError> {
        self.inner.parked(projection).await
    }

    async fn unpark(
        &self,
        projection: &ProjectionName,
        position: Position,
    ) -> Result<(), StoreError> {
        self.inner.unpark(projection, position).await
    }
}

impl<S: Clone + Send + Sync + 'static> CheckpointStore for VolatileCheckpoints<S> {
    async fn load_checkpoint(
        &self,
        projection: &ProjectionName,
    ) -> Result<Option<Position>, StoreError> {
        Ok(self.checkpoints.lock().get(projection).copied())
    }

    async fn save_checkpoint(
        &self,
        projection: &ProjectionName,
        expected: Option<Position>,
        next: Position,
    ) -> Result<(), CheckpointError> {
        let mut checkpoints = self.checkpoints.lock();
        let found = checkpoints.get(projection).copied();
        if found != expected {
            return Err(
                CheckpointConflict { projection: projection.clone(), expected, found }.into()
            );
        }
        checkpoints.insert(projection.clone(), next);
        Ok(())
    }

    async fn reset_checkpoint(
        &self,
        projection: &ProjectionName,
    ) -> Result<Option<Position>, StoreError> {
        Ok(self.checkpoints.lock().remove(projection))
    }
}
