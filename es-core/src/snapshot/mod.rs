//! Snapshots: an aggregate's state at a version, so a long stream need not be replayed whole.
//!
//! A snapshot records the aggregate type, stream, version, snapshot schema version, the id of the
//! event at that version, and a SHA-256 checksum of all of it with the serialized state. The
//! repository ignores (with a warning and the counter `es_snapshots_rejected_total{reason}`) any
//! snapshot whose checksum, aggregate, schema version or deserialization fails, or whose stream
//! does not hold that event at that version (a snapshots table restored from another point in time
//! than the events), and rebuilds from events: a snapshot can cost time, never correctness.

use std::future::Future;

use sha2::{Digest, Sha256};

use crate::{EventId, Payload, StoreError, StreamId};

/// A stored snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The aggregate type's name (`Aggregate::NAME`).
    pub aggregate: String,
    /// The stream.
    pub stream_id: StreamId,
    /// The stream version the state includes.
    pub version: u64,
    /// The id of the stream's event at `version`: the proof that the snapshot was taken of this
    /// stream's history, checked against the stream on every load.
    pub event_id: EventId,
    /// The snapshot schema version (`SnapshotPolicy::version`).
    pub schema_version: u32,
    /// The state, as JSON text, byte for byte as it was checksummed.
    pub state: Payload,
    /// SHA-256 of the fields above (see [`Snapshot::compute_checksum`]).
    pub checksum: [u8; 32],
}

impl Snapshot {
    /// Builds a snapshot of `stream_id` at `version`, whose event there has id `event_id`, and its
    /// checksum.
    pub fn new(
        aggregate: &str,
        stream_id: StreamId,
        version: u64,
        event_id: EventId,
        schema_version: u32,
        state: Payload,
    ) -> Self {
        let mut snapshot = Self {
            aggregate: aggregate.to_owned(),
            stream_id,
            version,
            event_id,
            schema_version,
            state,
            checksum: [0; 32],
        };
        snapshot.checksum = snapshot.compute_checksum();
        snapshot
    }

    /// The checksum of the snapshot's fields (length-prefixed, so no two field sets collide).
    pub fn compute_checksum(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for field in
            [self.aggregate.as_bytes(), self.stream_id.as_str().as_bytes(), self.state.as_bytes()]
        {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
        hasher.update(self.version.to_le_bytes());
        hasher.update(self.event_id.as_uuid().as_bytes());
        hasher.update(self.schema_version.to_le_bytes());
        hasher.finalize().into()
    }

    /// Whether the stored checksum matches the stored fields.
    pub fn is_intact(&self) -> bool {
        self.compute_checksum() == self.checksum
    }
}

/// Why a stored snapshot was not used (the `reason` label of `es_snapshots_rejected_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotRejection {
    /// It was taken of another aggregate type.
    #[error("the snapshot belongs to another aggregate type")]
    Aggregate,
    /// Its schema version is not the one the code writes (the state's shape changed).
    #[error("the snapshot's schema version is not the current one")]
    SchemaVersion,
    /// The checksum does not match the stored fields (damaged or edited).
    #[error("the checksum does not match the snapshot's fields")]
    Checksum,
    /// The state no longer deserializes into the aggregate.
    #[error("the state does not deserialize into the aggregate")]
    Deserialize,
    /// The stream has no event at the snapshot's version, or another event than the one the
    /// snapshot was taken at: the snapshot is of another history (a restore from another time).
    #[error("the stream does not hold the event the snapshot was taken at")]
    StreamMismatch,
}

impl SnapshotRejection {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aggregate => "aggregate",
            Self::SchemaVersion => "schema_version",
            Self::Checksum => "checksum",
            Self::Deserialize => "deserialize",
            Self::StreamMismatch => "stream_mismatch",
        }
    }
}

/// What [`Repository::verify_snapshot`](crate::repository::Repository::verify_snapshot) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotVerdict {
    /// The stream has no snapshot.
    Missing,
    /// The snapshot would be used: it is intact, readable and of this stream's history.
    Trusted {
        /// The version it holds.
        version: u64,
    },
    /// The snapshot would be ignored (and the aggregate rebuilt from events).
    Rejected {
        /// The version it claims.
        version: u64,
        /// Why.
        reason: SnapshotRejection,
    },
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
}

/// No snapshots: the repository replays every stream from its first event, and the aggregate
/// need not serialize (see [`SnapshotsOf`](crate::repository::SnapshotsOf)).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSnapshots;

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot::new(
            "account",
            StreamId::new("account-1").unwrap_or_else(|_| unreachable!()),
            7,
            EventId::new(),
            2,
            Payload::from_value(&serde_json::json!({ "balance": 10 }))
                .unwrap_or_else(|_| unreachable!()),
        )
    }

    /// The reasons are metric labels (documented in the README): they must not drift.
    #[test]
    fn rejection_labels_are_stable() {
        let labels = [
            (SnapshotRejection::Aggregate, "aggregate"),
            (SnapshotRejection::SchemaVersion, "schema_version"),
            (SnapshotRejection::Checksum, "checksum"),
            (SnapshotRejection::Deserialize, "deserialize"),
            (SnapshotRejection::StreamMismatch, "stream_mismatch"),
        ];
        for (reason, label) in labels {
            assert_eq!(reason.as_str(), label);
        }
    }

    /// Every field is covered by the checksum: changing any one of them, checksum kept, is seen.
    #[test]
    fn every_field_is_covered_by_the_checksum() {
        let good = snapshot();
        assert!(good.is_intact());
        let other_stream = StreamId::new("account-2").unwrap_or_else(|_| unreachable!());
        let other_state = Payload::from_value(&serde_json::json!({ "balance": 11 }))
            .unwrap_or_else(|_| unreachable!());
        let altered = [
            ("aggregate", Snapshot { aggregate: "ledger".into(), ..good.clone() }),
            ("stream", Snapshot { stream_id: other_stream, ..good.clone() }),
            ("version", Snapshot { version: 8, ..good.clone() }),
            ("event id", Snapshot { event_id: EventId::new(), ..good.clone() }),
            ("schema version", Snapshot { schema_version: 3, ..good.clone() }),
            ("state", Snapshot { state: other_state, ..good.clone() }),
        ];
        for (field, snapshot) in altered {
            assert!(!snapshot.is_intact(), "a changed {field} must break the checksum");
        }
    }
}
