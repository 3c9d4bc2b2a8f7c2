//! One tenant's events, streams and idempotency records, and the append that changes them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use es_core::event::recorded_now;
use es_core::quota::{Limits, QuotaExceeded, Usage};
use es_core::{
    AppendRequest, AppendResult, EventId, IdempotencyKey, IdempotencyRecord, Position,
    RecordedEvent, StoreError, StreamId, TenantId,
};
use parking_lot::RwLock;
use tokio::sync::watch;

/// A tenant's data behind its lock, and the channel that wakes readers waiting for new events.
pub(crate) struct TenantLog {
    pub(crate) tenant: TenantId,
    pub(crate) state: RwLock<TenantState>,
    pub(crate) head: watch::Sender<Position>,
}

#[derive(Default)]
pub(crate) struct TenantState {
    /// Every event of the tenant, in position order.
    pub(crate) events: Vec<RecordedEvent>,
    /// For each stream, the indexes of its events in `events`, in version order.
    pub(crate) streams: HashMap<StreamId, Vec<usize>>,
    event_ids: HashSet<EventId>,
    idempotency: HashMap<IdempotencyKey, IdempotencyRecord>,
    pub(crate) snapshots: HashMap<StreamId, es_core::snapshot::Snapshot>,
    pub(crate) checkpoints: HashMap<es_core::ProjectionName, Position>,
    pub(crate) locked_projections: HashSet<es_core::ProjectionName>,
    pub(crate) parked: HashMap<
        es_core::ProjectionName,
        std::collections::BTreeMap<Position, es_core::projection::ParkedEvent>,
    >,
    /// The outbox, by sequence.
    pub(crate) outbox: crate::outbox::Outbox,
    /// Payload bytes stored.
    pub(crate) bytes: u64,
    /// The append-rate window: its second (Unix time) and the events appended in it.
    window: (u64, u64),
    /// The tenant's limits.
    pub(crate) limits: Limits,
}

impl TenantState {
    /// What the tenant uses.
    pub(crate) fn usage(&self) -> Usage {
        Usage {
            events: self.events.len() as u64,
            streams: self.streams.len() as u64,
            bytes: self.bytes,
        }
    }

    /// The first limit this append would pass (checked under the write lock: exact).
    fn over_limit(
        &self,
        tenant: &TenantId,
        request: &AppendRequest,
        new_stream: bool,
        second: u64,
    ) -> Option<QuotaExceeded> {
        let request_usage =
            Usage { streams: u64::from(new_stream), ..Usage::of_events(&request.events) };
        let rate_used = if self.window.0 == second { self.window.1 } else { 0 };
        self.limits.first_exceeded(tenant, self.usage(), rate_used, request_usage)
    }
}

fn unix_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl TenantState {
    /// Every text kept, for a search of what is stored (see `MemoryStore::stored_text`).
    pub(crate) fn dump(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::new();
        for event in &self.events {
            let _ = writeln!(text, "{} {:?}", event.payload.as_str(), event.metadata);
        }
        for snapshot in self.snapshots.values() {
            let _ = writeln!(text, "{}", snapshot.state.as_str());
        }
        let _ = writeln!(text, "{:?}\n{:?}\n{:?}", self.idempotency, self.checkpoints, self.parked);
        let _ = write!(text, "{}", self.outbox.dump());
        text
    }
}

impl TenantLog {
    pub(crate) fn new(tenant: TenantId) -> Self {
        Self { tenant, state: RwLock::default(), head: watch::Sender::new(Position::BEGINNING) }
    }

    /// Checks and writes one append atomically: under the write lock nothing else can interleave,
    /// and every check happens before the first event is pushed, so a refused append leaves no trace.
    pub(crate) fn append(
        &self,
        request: AppendRequest,
        positions: &AtomicU64,
    ) -> Result<AppendResult, StoreError> {
        let mut state = self.state.write();

        if let Some((key, fingerprint)) = &request.idempotency
            && let Some(record) = state.idempotency.get(key)
        {
            return if record.fingerprint == *fingerprint {
                Ok(record.result)
            } else {
                Err(StoreError::IdempotencyConflict {
                    tenant: self.tenant.clone(),
                    key: key.clone(),
                    original_stream_id: record.stream_id.clone(),
                })
            };
        }

        let current = state.streams.get(&request.stream_id).map_or(0, Vec::len) as u64;
        if !request.expected.matches(current) {
            return Err(StoreError::VersionConflict {
                tenant: self.tenant.clone(),
                stream_id: request.stream_id,
                expected: request.expected,
                actual: current,
            });
        }
        if let Some(event) =
            request.events.iter().find(|event| state.event_ids.contains(&event.event_id))
        {
            return Err(StoreError::DuplicateEventId {
                tenant: self.tenant.clone(),
                event_id: event.event_id,
            });
        }

        let second = unix_second();
        if let Some(exceeded) = state.over_limit(&self.tenant, &request, current == 0, second) {
            return Err(StoreError::QuotaExceeded(Box::new(exceeded)));
        }
        let recorded_at = recorded_now();
        let count = request.events.len() as u64;
        // Positions are taken under this tenant's write lock, so within the tenant they increase in
        // the order appends commit; other tenants' appends may take numbers in between.
        let first_position = positions.fetch_add(count, Ordering::Relaxed) + 1;
        let state = &mut *state;
        state.bytes += request.events.iter().map(|event| event.payload.len() as u64).sum::<u64>();
        state.window = if state.window.0 == second {
            (second, state.window.1 + count)
        } else {
            (second, count)
        };
        let first_index = state.events.len();
        state.events.reserve(request.events.len());
        let mut metadata_of_previous = None::<Arc<es_core::EventMetadata>>;
        for (offset, event) in request.events.into_iter().enumerate() {
            let offset = offset as u64;
            state.event_ids.insert(event.event_id);
            // Events of one command usually share their metadata: share it in memory too.
            let metadata = match metadata_of_previous {
                Some(previous) if *previous == event.metadata => previous,
                _ => Arc::new(event.metadata),
            };
            metadata_of_previous = Some(metadata.clone());
            state.events.push(RecordedEvent {
                event_id: event.event_id,
                tenant: self.tenant.clone(),
                stream_id: request.stream_id.clone(),
                stream_version: current + 1 + offset,
                position: Position::new(first_position + offset),
                event_type: event.event_type,
                schema_version: event.schema_version,
                payload: event.payload,
                metadata,
                recorded_at,
            });
        }
        state
            .streams
            .entry(request.stream_id.clone())
            .or_default()
            .extend(first_index..state.events.len());
        for publication in request.publications {
            let event = &state.events[first_index + publication.event];
            state.outbox.enqueue(event, publication);
        }

        let result = AppendResult {
            first_version: current + 1,
            last_version: current + count,
            first_position: Position::new(first_position),
            last_position: Position::new(first_position + count - 1),
        };
        if let Some((key, fingerprint)) = request.idempotency {
            state.idempotency.insert(
                key.clone(),
                IdempotencyRecord {
                    key,
                    stream_id: request.stream_id,
                    fingerprint,
                    result,
                    recorded_at,
                },
            );
        }
        self.head.send_replace(result.last_position);
        Ok(result)
    }

    pub(crate) fn stream_version(&self, stream_id: &StreamId) -> u64 {
        self.state.read().streams.get(stream_id).map_or(0, Vec::len) as u64
    }

    pub(crate) fn idempotency_record(&self, key: &IdempotencyKey) -> Option<IdempotencyRecord> {
        self.state.read().idempotency.get(key).cloned()
    }
}
