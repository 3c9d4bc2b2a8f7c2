//! Snapshots: an aggregate's state at a version, so a long stream need not be replayed whole.
//!
//! A snapshot records the aggregate type, stream, version, snapshot schema version and a SHA-256
//! checksum of the serialized state. The repository ignores (with a warning and the counter
//! `es_snapshots_rejected_total{reason}`) any snapshot whose checksum, aggregate, schema version or
//! deserialization fails, and rebuilds from events: a snapshot can cost time, never correctness.

use std::future::Future;

use sha2::{Digest, Sha256};

use crate::{Payload, StoreError, StreamId};

/// A stored snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The aggregate type's name (`Aggregate::NAME`).
    pub aggregate: String,
    /// The stream.
    pub stream_id: StreamId,
    /// The stream version the state includes.
    pub version: u64,
    /// The snapshot schema version (`SnapshotPolicy::version`).
    pub schema_version: u32,
    /// The state, as JSON text, byte for byte as it was checksummed.
    pub state: Payload,
    /// SHA-256 of the fields above (see [`Snapshot::compute_checksum`]).
    pub checksum: [u8; 32],
}

impl Snapshot {
    /// Builds a snapshot and its checksum.
    pub fn new(
        aggregate: &str,
        stream_id: StreamId,
        version: u64,
        schema_version: u32,
        state: Payload,
    ) -> Self {
        let checksum =
            Self::compute_checksum(aggregate, &stream_id, version, schema_version, &state);
        Self {
            aggregate: aggregate.to_owned(),
            stream_id,
            version,
            schema_version,
            state,
            checksum,
        }
    }

    /// The checksum of a snapshot's fields (length-prefixed, so no two field sets collide).
    pub fn compute_checksum(
        aggregate: &str,
        stream_id: &StreamId,
        version: u64,
        schema_version: u32,
        state: &Payload,
    ) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for field in [aggregate.as_bytes(), stream_id.as_str().as_bytes(), state.as_bytes()] {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
        hasher.update(version.to_le_bytes());
        hasher.update(schema_version.to_le_bytes());
        hasher.finalize().into()
    }

    /// Whether the stored checksum matches the stored fields.
    pub fn is_intact(&self) -> bool {
        Self::compute_checksum(
            &self.aggregate,
            &self.stream_id,
            self.version,
            self.schema_version,
            &self.state,
        ) == self.checksum
    }
}

/// Stores snapshots; implemented by the tenant-scoped store handles that support them (es-memory,
/// es-postgres). A separate capability: an event store need not keep snapshots.
pub trait SnapshotStore: Clone + Send + Sync + 'static {
    /// The latest snapshot of a stream, if any.
    fn load_snapshot(
        &self,
        stream_id: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// Stores a snapshot, replacing an older one of the stream (never a newer one).
    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether this store keeps snapshots at all (the repository skips building them otherwise).
    fn enabled(&self) -> bool {
        true
    }
}

/// No snapshots: the repository replays every stream from its first event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSnapshots;

impl SnapshotStore for NoSnapshots {
    async fn load_snapshot(&self, _: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        Ok(None)
    }

    async fn save_snapshot(&self, _: Snapshot) -> Result<(), StoreError> {
        Ok(())
    }

    fn enabled(&self) -> bool {
        false
    }
}
