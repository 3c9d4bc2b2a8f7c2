//! How a repository uses snapshots: not at all ([`NoSnapshots`]), or through a [`SnapshotStore`],
//! which is the only case that needs the aggregate's state to serialize.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::snapshot::{NoSnapshots, Snapshot, SnapshotRejection, SnapshotStore};
use crate::{Aggregate, Payload, PayloadError, ReplayedEvent, StoreError, StreamId};

/// Where a repository of `A` loads snapshots from and saves them to.
///
/// Implemented by [`NoSnapshots`] for every aggregate, and by every [`SnapshotStore`] for
/// aggregates whose state serializes: so `Serialize + DeserializeOwned` is required only of an
/// aggregate whose repository keeps snapshots
/// ([`Repository::with_snapshots`](super::Repository::with_snapshots)).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot keep snapshots of `{A}`",
    label = "snapshots of `{A}` need a `SnapshotStore` and a state that serializes",
    note = "derive `serde::Serialize` and `serde::Deserialize` for `{A}`, or use a repository without snapshots (`NoSnapshots`)"
)]
pub trait SnapshotsOf<A>: Clone + Send + Sync + 'static {
    /// Whether snapshots are kept at all (the repository builds none otherwise).
    const KEPT: bool;

    /// The stream's latest stored snapshot, if any.
    fn latest(
        &self,
        stream_id: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// Stores a snapshot, replacing an older one of the stream.
    fn save(&self, snapshot: Snapshot) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The state a snapshot holds.
    fn restore(snapshot: &Snapshot) -> Result<A, SnapshotRejection>;

    /// The state, as a snapshot stores it.
    fn capture(state: &A) -> Result<Payload, PayloadError>;
}

impl<A> SnapshotsOf<A> for NoSnapshots {
    const KEPT: bool = false;

    async fn latest(&self, _: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        Ok(None)
    }

    async fn save(&self, _: Snapshot) -> Result<(), StoreError> {
        Ok(())
    }

    /// Never called: there is never a snapshot to restore.
    fn restore(_: &Snapshot) -> Result<A, SnapshotRejection> {
        Err(SnapshotRejection::Deserialize)
    }

    /// Never called: nothing is ever kept.
    fn capture(_: &A) -> Result<Payload, PayloadError> {
        Payload::from_value(&())
    }
}

impl<A, M> SnapshotsOf<A> for M
where
    A: Serialize + DeserializeOwned,
    M: SnapshotStore,
{
    const KEPT: bool = true;

    fn latest(
        &self,
        stream_id: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        self.load_snapshot(stream_id)
    }

    fn save(&self, snapshot: Snapshot) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.save_snapshot(snapshot)
    }

    fn restore(snapshot: &Snapshot) -> Result<A, SnapshotRejection> {
        snapshot.state.deserialize::<A>().map_err(|_| SnapshotRejection::Deserialize)
    }

    fn capture(state: &A) -> Result<Payload, PayloadError> {
        Payload::from_value(state)
    }
}

/// Checks what a snapshot says about itself (aggregate, schema version, checksum, readable
/// state); whether its stream holds the event it was taken at is checked by the read that follows
/// ([`anchored`]).
pub(super) fn accept<A: Aggregate, N: SnapshotsOf<A>>(
    snapshot: &Snapshot,
) -> Result<A, SnapshotRejection> {
    if snapshot.aggregate != A::NAME {
        Err(SnapshotRejection::Aggregate)
    } else if snapshot.schema_version != A::SNAPSHOT.version {
        Err(SnapshotRejection::SchemaVersion)
    } else if !snapshot.is_intact() {
        Err(SnapshotRejection::Checksum)
    } else {
        N::restore(snapshot)
    }
}

/// Whether the tail read from a snapshot's version starts with the event the snapshot was taken
/// at (same version, same id): the proof that the snapshot is of this stream's history.
pub(super) fn anchored(snapshot: &Snapshot, first_page: Option<&[ReplayedEvent]>) -> bool {
    first_page.and_then(<[_]>::first).is_some_and(|event| {
        event.stream_version == snapshot.version && event.event_id == snapshot.event_id
    })
}

/// Reports a snapshot that will not be used: a warning and a counter.
pub(super) fn reject<A: Aggregate>(stream_id: &StreamId, version: u64, reason: SnapshotRejection) {
    tracing::warn!(
        aggregate = A::NAME,
        stream = %stream_id,
        version,
        reason = reason.as_str(),
        "es.snapshot: ignored ({reason}); rebuilding from events"
    );
    metrics::counter!("es_snapshots_rejected_total", "aggregate" => A::NAME, "reason" => reason.as_str())
        .increment(1);
}
