//! Group commit: concurrent appends share one statement, one transaction and one WAL flush.
//!
//! With [`PgStoreOptions::group_commit`](crate::PgStoreOptions::group_commit), an append of the
//! fast path (no idempotency key, no publications, `NoStream` or `Exact(n)`: every append of the
//! command pipeline for commands without a key) that finds the store idle is written by its
//! caller, as without group commit; one that arrives while a batch is in flight joins a queue.
//! When a batch lands, its task takes everything queued as the next batch (one append per stream,
//! none for a stream another batch in flight writes, at most [`MAX_GROUP_EVENTS`] events) and
//! writes it with one `INSERT` ([`sql::APPEND_GROUP`]), so the batches grow with the load. Another
//! batch starts beside those in flight only once [`GROW_AT`] appends wait, up to
//! [`group_commit_batches`](crate::PgStoreOptions::group_commit_batches) in all.
//!
//! Each append keeps its own outcome. A stale expectation inserts none of that append's rows and
//! answers [`StoreError::VersionConflict`] to its caller alone. The one failure that aborts the
//! statement as a whole (a version or an event id taken by a transaction that was running when
//! the statement began, which the unique keys refuse) writes nothing, and the batch's appends are
//! then made one by one, each with its own result. A lost connection leaves every outcome of the
//! batch unknown, as it does for one append. The read horizon is unchanged: the batch is one
//! `INSERT` that locks `events` before it takes positions, as every append does.
//!
//! The batch runs in a task of its own, so a caller that stops waiting (its future dropped) does
//! not strand the others; an append dropped before its batch starts is not written.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use es_core::{AppendRequest, AppendResult, Position, StoreError, StreamId, TenantId};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tracing::Instrument;
use uuid::Uuid;

use crate::append::{Columns, append_exact, metadata_of, schema_version, version_conflict};
use crate::error::outcome_unknown;
use crate::row::stored_u64;
use crate::sql;
use crate::store::Inner;

/// The most events one batch writes (an append larger than this is a batch of its own).
pub(crate) const MAX_GROUP_EVENTS: usize = 1_000;

/// How many appends must be waiting before a batch starts beside one already in flight.
const GROW_AT: usize = 32;

/// The queue of appends waiting for a batch, shared by a store's tenants.
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// The most batches in flight at once.
    batches: usize,
    written: AtomicU64,
    grouped: AtomicU64,
    refused: AtomicU64,
}

/// What group commit has done since the store was created
/// ([`PgStore::group_commit_stats`](crate::PgStore::group_commit_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommitStats {
    /// Batches written (a batch of one append included).
    pub batches: u64,
    /// Appends those batches carried.
    pub appends: u64,
    /// Batches of several appends that the database refused as a whole (a version or event id
    /// taken by a concurrent transaction), whose appends were then made one by one.
    pub refused_batches: u64,
    /// Appends waiting for a batch now.
    pub queued: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Batches in flight (tasks draining the queue, or a caller writing its own append).
    running: usize,
    /// The streams those batches write: an append for one of them waits for the next batch, so
    /// no two statements in flight race for one stream's versions.
    in_flight: HashSet<StreamKey>,
}

/// A stream of a tenant.
type StreamKey = (TenantId, StreamId);

/// An append waiting for its batch.
struct Queued {
    tenant: TenantId,
    request: AppendRequest,
    /// The version it expects (`NoStream` is 0); fits in an `i64`.
    version: u64,
    /// Each event's metadata, serialized once when the append arrives.
    metadata: Vec<Option<String>>,
    reply: oneshot::Sender<Reply>,
}

type Reply = Result<AppendResult, StoreError>;

impl GroupCommit {
    pub(crate) fn new(batches: u32) -> Self {
        Self {
            state: Mutex::new(State::default()),
            batches: usize::try_from(batches.max(1)).unwrap_or(1),
            written: AtomicU64::new(0),
            grouped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    pub(crate) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            batches: self.written.load(Ordering::Relaxed),
            appends: self.grouped.load(Ordering::Relaxed),
            refused_batches: self.refused.load(Ordering::Relaxed),
            queued: self.state().queue.len() as u64,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a queue and a counter, consistent after every statement: a panic elsewhere
        // cannot leave it half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The append's result, once a batch has written it (`version`: what `request` expects).
    /// `inner` is the store this queue belongs to.
    pub(crate) async fn append(
        &self,
        inner: &Arc<Inner>,
        tenant: &TenantId,
        request: AppendRequest,
        version: u64,
    ) -> Reply {
        // Metadata that does not serialize fails here, before the append is queued.
        let metadata = metadata_of(&request)?;
        let (reply, answer) = oneshot::channel();
        let queued = Queued { tenant: tenant.clone(), request, version, metadata, reply };
        let (queued, spawn) = {
            let mut state = self.state();
            let idle = state.running == 0;
            // Another batch starts beside those in flight only once the queue holds enough to
            // be worth a flush of its own: fewer appends wait for the next batch, which is then
            // larger (one WAL flush for all of them) instead of two half-empty ones.
            let free = idle || (state.running < self.batches && state.queue.len() + 1 >= GROW_AT);
            if free {
                state.running += 1;
            }
            if idle && state.queue.is_empty() {
                state.in_flight.insert((tenant.clone(), queued.request.stream_id.clone()));
                (Some(queued), false)
            } else {
                state.queue.push_back(queued);
                (None, free)
            }
        };
        if let Some(queued) = queued {
            // Nobody waits: this append is a batch of one, written by its caller (no task, no
            // hand-over). Only the caller waits for it, so dropping it strands nobody.
            let mut slot = Slot::new(inner, false);
            slot.streams.push((tenant.clone(), queued.request.stream_id.clone()));
            self.count(1);
            let (_, result) = one(inner, &inner.pool_for(tenant), queued).await;
            drop(slot);
            return result;
        }
        if spawn {
            tokio::spawn(drain(Slot::new(inner, true)));
        }
        answer.await.unwrap_or_else(|_| {
            // The batch's task ended without answering: its runtime shut down mid-append.
            Err(StoreError::backend(
                "append",
                false,
                "the group commit was interrupted (its runtime shut down): the outcome is unknown",
            ))
        })
    }

    fn count(&self, appends: usize) {
        self.written.fetch_add(1, Ordering::Relaxed);
        self.grouped.fetch_add(appends as u64, Ordering::Relaxed);
    }

    /// The next batch: appends in arrival order, one per stream, at most [`MAX_GROUP_EVENTS`]
    /// events (one larger append alone); appends whose callers stopped waiting are dropped
    /// unwritten. `None` when the queue is empty (and this drainer then stops).
    fn next_batch(&self, slot: &mut Slot) -> Option<Vec<Queued>> {
        let mut state = self.state();
        let mut batch = Vec::new();
        let mut events = 0;
        let mut deferred = VecDeque::new();
        while let Some(queued) = state.queue.pop_front() {
            if queued.reply.is_closed() {
                continue;
            }
            let size = queued.request.events.len();
            if !batch.is_empty() && events + size > MAX_GROUP_EVENTS {
                state.queue.push_front(queued);
                break;
            }
            let stream = (queued.tenant.clone(), queued.request.stream_id.clone());
            if state.in_flight.contains(&stream) {
                deferred.push_back(queued);
                continue;
            }
            state.in_flight.insert(stream.clone());
            slot.streams.push(stream);
            events += size;
            batch.push(queued);
        }
        while let Some(queued) = deferred.pop_back() {
            state.queue.push_front(queued);
        }
        if batch.is_empty() {
            state.running -= 1;
            slot.released = true;
            return None;
        }
        Some(batch)
    }

    /// The streams of a batch that has been answered are free for the next one.
    fn landed(&self, streams: &mut Vec<StreamKey>) {
        let mut state = self.state();
        for stream in streams.drain(..) {
            state.in_flight.remove(&stream);
        }
    }
}

/// One of the `batches` in flight, held by a caller writing its own append or by a task
/// draining the queue; given back when dropped.
struct Slot {
    inner: Arc<Inner>,
    /// Whether the holder may stop before the queue is empty (a task whose runtime shuts down):
    /// then the appends still queued, if no other holder is left to write them, are answered with
    /// an error rather than left waiting. A caller's slot is given back by starting a task for
    /// what queued meanwhile.
    abandoned: bool,
    /// Already given back (by [`GroupCommit::next_batch`], finding the queue empty).
    released: bool,
    /// The streams its batch in flight writes.
    streams: Vec<StreamKey>,
}

impl Slot {
    fn new(inner: &Arc<Inner>, abandoned: bool) -> Self {
        Self { inner: Arc::clone(inner), abandoned, released: false, streams: Vec::new() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(group) = self.inner.group_commit.as_ref() else { return };
        group.landed(&mut self.streams);
        if self.released {
            return;
        }
        let mut state = group.state();
        if !self.abandoned
            && !state.queue.is_empty()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // The slot passes to a task that drains what queued while it was held.
            let slot = Slot::new(&self.inner, true);
            drop(state);
            runtime.spawn(drain(slot));
            return;
        }
        state.running -= 1;
        if self.abandoned && state.running == 0 {
            // Dropping the senders answers their callers (see `GroupCommit::append`).
            state.queue.clear();
        }
    }
}

/// Writes batches until the queue is empty (`next_batch` then gives the slot back).
async fn drain(mut slot: Slot) {
    let inner = Arc::clone(&slot.inner);
    let Some(group) = inner.group_commit.as_ref() else {
        return;
    };
    loop {
        // Let the callers woken by the last batch (or by the batch in flight) queue their next
        // appends first: the batch grows at the cost of one pass of the scheduler.
        tokio::task::yield_now().await;
        let Some(batch) = group.next_batch(&mut slot) else { break };
        let span = tracing::debug_span!("es.group_commit", appends = batch.len());
        group.count(batch.len());
        if inner.has_tenant_pools() {
            let mut tenants: HashMap<TenantId, Vec<Queued>> = HashMap::new();
            for queued in batch {
                tenants.entry(queued.tenant.clone()).or_default().push(queued);
            }
            let inner = &*inner;
            let writes = tenants.into_iter().map(|(tenant, batch)| {
                let pool = inner.pool_for(&tenant);
                async move { write(inner, &pool, batch).await }
            });
            futures_util::future::join_all(writes).instrument(span).await;
        } else {
            write(&inner, &inner.pool, batch).instrument(span).await;
        }
        group.landed(&mut slot.streams);
    }
}

/// Writes one batch and answers each of its callers.
async fn write(inner: &Inner, pool: &PgPool, mut batch: Vec<Queued>) {
    if batch.len() == 1
        && let Some(queued) = batch.pop()
    {
        let (reply, result) = one(inner, pool, queued).await;
        let _ = reply.send(result);
        return;
    }
    let carrier = inner.wakeups.carrier();
    let rows = match insert(pool, &batch, carrier.channel()).await {
        Ok(rows) => rows,
        Err(error) if outcome_unknown(&error) => {
            inner.wakeups.failed(&inner.pool, &carrier);
            // The statement may have committed: no append of the batch can be repeated blindly.
            let error = Arc::new(error);
            for queued in batch {
                let _ = queued.reply.send(Err(StoreError::backend(
                    "append",
                    false,
                    SharedError(Arc::clone(&error)),
                )));
            }
            return;
        }
        Err(error) => {
            inner.wakeups.failed(&inner.pool, &carrier);
            // Nothing was written: each append on its own, with its own outcome.
            if let Some(group) = &inner.group_commit {
                group.refused.fetch_add(1, Ordering::Relaxed);
            }
            tracing::debug!(%error, appends = batch.len(), "es.group_commit: batch refused as a whole, appending one by one");
            let ones = batch.into_iter().map(|queued| async move {
                let (reply, result) = one(inner, pool, queued).await;
                let _ = reply.send(result);
            });
            futures_util::future::join_all(ones).await;
            return;
        }
    };
    let positions: HashMap<Uuid, i64> = rows.into_iter().collect();
    let mut written = false;
    for queued in batch {
        let result = answer(inner, &queued, &positions).await;
        written |= result.is_ok();
        let _ = queued.reply.send(result);
    }
    // The batch's NOTIFY was sent only if a row was written.
    if written {
        inner.wakeups.appended(&inner.pool, &carrier);
    } else {
        inner.wakeups.failed(&inner.pool, &carrier);
    }
}

/// One append on the ordinary fast path; gives back the sender to answer it with.
async fn one(inner: &Inner, pool: &PgPool, queued: Queued) -> (oneshot::Sender<Reply>, Reply) {
    let Queued { tenant, request, version, metadata, reply } = queued;
    let columns = Columns::with_metadata(&request, metadata);
    let result = append_exact(inner, pool, &tenant, &request, &columns, None, version).await;
    (reply, result)
}

/// The batch's statement: each event's id and position as written (the statement's third column,
/// the NOTIFY's, is not read). It carries the notification when `channel` is given.
async fn insert(
    pool: &PgPool,
    batch: &[Queued],
    channel: Option<&str>,
) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let events: usize = batch.iter().map(|queued| queued.request.events.len()).sum();
    let mut tenants = Vec::with_capacity(events);
    let mut streams = Vec::with_capacity(events);
    let mut expected = Vec::with_capacity(events);
    let mut ordinals = Vec::with_capacity(events);
    let mut ids = Vec::with_capacity(events);
    let mut types = Vec::with_capacity(events);
    let mut schema_versions = Vec::with_capacity(events);
    let mut payloads = Vec::with_capacity(events);
    let mut metadata = Vec::with_capacity(events);
    for queued in batch {
        // Checked by `append` before queueing.
        let version = i64::try_from(queued.version).unwrap_or(i64::MAX);
        for ((ordinal, event), meta) in (1i64..).zip(&queued.request.events).zip(&queued.metadata) {
            tenants.push(queued.tenant.as_str());
            streams.push(queued.request.stream_id.as_str());
            expected.push(version);
            ordinals.push(ordinal);
            ids.push(*event.event_id.as_uuid());
            types.push(event.event_type.as_str());
            schema_versions.push(schema_version(event));
            payloads.push(event.payload.as_str());
            metadata.push(meta.as_deref());
        }
    }
    sqlx::query_as::<_, (Uuid, i64)>(sql::APPEND_GROUP)
        .bind(&tenants)
        .bind(&streams)
        .bind(&expected)
        .bind(&ordinals)
        .bind(&ids)
        .bind(&types)
        .bind(&schema_versions)
        .bind(&payloads)
        .bind(&metadata)
        .bind(channel)
        .fetch_all(pool)
        .await
}

/// One append's outcome from the rows the batch wrote: all its events, or none (a stale
/// expectation).
async fn answer(inner: &Inner, queued: &Queued, positions: &HashMap<Uuid, i64>) -> Reply {
    let events = &queued.request.events;
    let mine: Vec<i64> = events
        .iter()
        .filter_map(|event| positions.get(event.event_id.as_uuid()).copied())
        .collect();
    if mine.is_empty() {
        return Err(version_conflict(inner, &queued.tenant, &queued.request).await);
    }
    if mine.len() != events.len() {
        return Err(StoreError::corrupt(format!(
            "a group commit wrote {} of the {} events of one append",
            mine.len(),
            events.len()
        )));
    }
    let position = |value: Option<&i64>| {
        stored_u64(value.copied().unwrap_or(0), "an appended event's position").map(Position::new)
    };
    let count = events.len() as u64;
    Ok(AppendResult {
        first_version: queued.version + 1,
        last_version: queued.version + count,
        first_position: position(mine.iter().min())?,
        last_position: position(mine.iter().max())?,
    })
}

/// One driver error reported to every caller of a batch.
#[derive(Debug)]
struct SharedError(Arc<sqlx::Error>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "group commit: {}", self.0)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
