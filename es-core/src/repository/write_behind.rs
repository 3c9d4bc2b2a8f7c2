//! After a successful append: the cache gets the new state, and a snapshot is written in the
//! background when one is due; the repository owns those writes so they can be awaited.

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::snapshots::SnapshotsOf;
use super::{Loaded, Repository};
use crate::snapshot::Snapshot;
use crate::{Aggregate, EventId, EventStore, StreamId};

/// Snapshot writes in flight, shared by a repository and its clones.
pub(super) type Writes = std::sync::Arc<Mutex<Vec<JoinHandle<()>>>>;

impl<A, S, N> Repository<A, S, N>
where
    A: Aggregate,
    S: EventStore,
    N: SnapshotsOf<A>,
{
    /// Waits until every snapshot write started so far (by this repository or its clones) has
    /// finished: for tests, benchmarks, and a tidy shutdown.
    pub async fn flush_snapshots(&self) {
        let writes = std::mem::take(&mut *self.writes.lock());
        for write in writes {
            // A write that panicked has nothing left to wait for; the next load replays instead.
            let _ = write.await;
        }
    }

    pub(super) fn cache_put(&self, stream_id: &StreamId, loaded: Loaded<A>) {
        if let Some(cache) = &self.cache {
            cache.put(stream_id, loaded.version, loaded.state);
        }
    }

    /// After a successful append: the state with the new events goes to the cache, and to a
    /// snapshot written in the background when the append crossed a multiple of the policy's
    /// interval (after the append, so it never fails or slows the command).
    pub(super) fn after_append(
        &self,
        stream_id: &StreamId,
        mut loaded: Loaded<A>,
        events: &[A::Event],
        new_version: u64,
        last_event_id: Option<EventId>,
    ) {
        let snapshot_due = A::SNAPSHOT
            .every
            .is_some_and(|every| N::KEPT && loaded.version / every != new_version / every);
        if !snapshot_due && self.cache.is_none() {
            return;
        }
        for event in events {
            loaded.state.evolve(event);
        }
        loaded.version = new_version;
        if snapshot_due && let Some(event_id) = last_event_id {
            self.snapshot(stream_id, &loaded.state, new_version, event_id);
        }
        self.cache_put(stream_id, loaded);
    }

    fn snapshot(&self, stream_id: &StreamId, state: &A, new_version: u64, event_id: EventId) {
        let state = match N::capture(state) {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(%error, aggregate = A::NAME, stream = %stream_id, "es.snapshot: state does not serialize; not snapshotted");
                return;
            }
        };
        let snapshot = Snapshot::new(
            A::NAME,
            stream_id.clone(),
            new_version,
            event_id,
            A::SNAPSHOT.version,
            state,
        );
        let snapshots = self.snapshots.clone();
        let span = tracing::debug_span!(
            "es.snapshot.save",
            aggregate = A::NAME,
            stream = %stream_id,
            version = new_version,
        );
        let write = async move {
            if let Err(error) = snapshots.save(snapshot).await {
                tracing::warn!(%error, "es.snapshot: save failed; the next load replays a little more");
            }
        }
        .instrument(span);
        // In the background, so it never slows or fails the command; owned by the repository, so
        // `flush_snapshots` can wait for it. Outside a tokio runtime there is nowhere to run it:
        // the snapshot is skipped (it is only a cache), never a panic.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(aggregate = A::NAME, stream = %stream_id, "es.snapshot: no tokio runtime to write it on; skipped");
            return;
        };
        let mut writes = self.writes.lock();
        writes.retain(|write| !write.is_finished());
        writes.push(runtime.spawn(write));
    }
}
