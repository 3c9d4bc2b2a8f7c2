//! Loading an aggregate: the latest trustworthy snapshot, then the events after it.

use futures_util::TryStreamExt;
use tracing::Instrument;

use super::snapshots::{SnapshotsOf, accept, anchored, reject};
use super::{Loaded, Repository, RepositoryError};
use crate::snapshot::{SnapshotRejection, SnapshotVerdict};
use crate::{Aggregate, DecodeError, Event, EventStore, ReplayedEvent, StoreError, StreamId};

impl<A, S, N> Repository<A, S, N>
where
    A: Aggregate,
    S: EventStore,
    N: SnapshotsOf<A>,
{
    /// Loads an aggregate: the latest valid snapshot, then the events after it.
    ///
    /// The tail is read from the snapshot's own version, so its first event proves the snapshot was
    /// taken of this stream's history (same version, same event id); a snapshot that cannot prove
    /// it is ignored like a damaged one, and the state is rebuilt from the first event.
    pub async fn load(&self, stream_id: &StreamId) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let span = tracing::debug_span!(
            "es.load",
            aggregate = A::NAME,
            stream = %stream_id,
            version = tracing::field::Empty,
            from_snapshot = tracing::field::Empty,
        );
        let loaded = self.load_traced(stream_id).instrument(span.clone()).await?;
        span.record("version", loaded.version);
        if let Some(version) = loaded.from_snapshot {
            span.record("from_snapshot", version);
        }
        Ok(loaded)
    }

    async fn load_traced(
        &self,
        stream_id: &StreamId,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let snapshot = match self.snapshots.latest(stream_id).await {
            Ok(Some(snapshot)) => match accept::<A, N>(&snapshot) {
                Ok(state) => Some((state, snapshot)),
                Err(reason) => {
                    reject::<A>(stream_id, snapshot.version, reason);
                    None
                }
            },
            Ok(None) => None,
            Err(error) => {
                // A snapshot store that fails costs a full replay, never the command.
                tracing::warn!(%error, aggregate = A::NAME, stream = %stream_id, "es.snapshot: load failed; replaying from events");
                metrics::counter!("es_snapshot_load_failures_total", "aggregate" => A::NAME)
                    .increment(1);
                None
            }
        };
        if let Some((state, snapshot)) = snapshot {
            let mut pages = self.store.replay_stream(stream_id, snapshot.version);
            let first = pages.try_next().await?;
            if anchored(&snapshot, first.as_deref()) {
                let mut loaded = Loaded {
                    state,
                    version: snapshot.version,
                    from_snapshot: Some(snapshot.version),
                };
                if let Some(page) = first {
                    fold_page(&mut loaded, &page[1..])?;
                }
                while let Some(page) = pages.try_next().await? {
                    fold_page(&mut loaded, &page)?;
                }
                return Ok(loaded);
            }
            reject::<A>(stream_id, snapshot.version, SnapshotRejection::StreamMismatch);
        }
        let mut loaded = Loaded { state: A::default(), version: 0, from_snapshot: None };
        let mut pages = self.store.replay_stream(stream_id, 1);
        while let Some(page) = pages.try_next().await? {
            fold_page(&mut loaded, &page)?;
        }
        Ok(loaded)
    }

    /// Judges the stream's stored snapshot as [`load`](Self::load) would, without loading the
    /// aggregate (for operators: `snapshots verify`).
    pub async fn verify_snapshot(
        &self,
        stream_id: &StreamId,
    ) -> Result<SnapshotVerdict, StoreError> {
        let Some(snapshot) = self.snapshots.latest(stream_id).await? else {
            return Ok(SnapshotVerdict::Missing);
        };
        let version = snapshot.version;
        if let Err(reason) = accept::<A, N>(&snapshot) {
            return Ok(SnapshotVerdict::Rejected { version, reason });
        }
        let mut pages = self.store.replay_stream(stream_id, version);
        let first = pages.try_next().await?;
        Ok(if anchored(&snapshot, first.as_deref()) {
            SnapshotVerdict::Trusted { version }
        } else {
            SnapshotVerdict::Rejected { version, reason: SnapshotRejection::StreamMismatch }
        })
    }
}

/// Folds a page of stored events into a loaded state.
fn fold_page<A: Aggregate>(
    loaded: &mut Loaded<A>,
    page: &[ReplayedEvent],
) -> Result<(), DecodeError> {
    for event in page {
        loaded.state.evolve(&A::Event::from_stored(
            event.event_type.as_str(),
            event.schema_version,
            &event.payload,
        )?);
        loaded.version = event.stream_version;
    }
    Ok(())
}
