//! What one process knows of its tenants' usage, to check appends against their limits without
//! touching the database on the append path.
//!
//! Per tenant: its limits and its usage counted from the log through a mark (both from
//! `tenant_usage_sync()`, refreshed every [`PgStoreOptions::quota_sync_interval`]), the committed
//! events above the mark (counted by the same refresh, not stored: an append in flight below them
//! may still commit), this process's own appends since, and what it has in flight. An append is
//! checked against the sum, under a short lock, and reserves its share while it runs; so within
//! one process a limit is exact (concurrent appends included). Other processes' appends count
//! once they are committed at a refresh, however far an open transaction holds the read horizon
//! back: across processes a tenant can pass a limit by what the others append within one
//! interval, plus what is in flight.
//!
//! [`PgStoreOptions::quota_sync_interval`]: crate::PgStoreOptions::quota_sync_interval

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use es_core::quota::{Limits, QuotaExceeded, Usage};
use es_core::{AppendRequest, ExpectedVersion, StoreError, TenantId};
use sqlx::{PgPool, Row};

use crate::append::Appended;
use crate::error::read_error;
use crate::row::{bound_i64, stored_u64};
use crate::sql;

/// The ledgers of a store's tenants.
pub(crate) struct Ledgers {
    interval: Duration,
    tenants: Mutex<HashMap<TenantId, Arc<Ledger>>>,
    /// Which tenants have limits (one query per interval for all): the others pay nothing more.
    limited: Mutex<Limited>,
    refreshing_limited: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Limited {
    refreshed: Option<Instant>,
    tenants: HashSet<TenantId>,
}

/// One tenant's ledger.
pub(crate) struct Ledger {
    state: Mutex<State>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// When it was last refreshed (`None`: never, or invalidated).
    refreshed: Option<Instant>,
    limits: Limits,
    /// Usage counted from the log through `mark`.
    counted: Usage,
    mark: u64,
    /// Events counted whose second (server clock, Unix time) is `window.0`.
    window: (u64, u64),
    /// Committed events above the mark when last refreshed, and those of them in `window.0`.
    above: Usage,
    above_in_window: u64,
    /// This process's appends the last refresh may not have seen.
    own: OwnAppends,
    /// What appends running now will add (streams: those that may create one).
    in_flight: Usage,
    in_flight_events: u64,
}

/// An append of this process that the last refresh may not have counted.
#[derive(Clone, Copy)]
struct Own {
    last_position: u64,
    usage: Usage,
    second: u64,
    /// Its place among this process's appends (see [`OwnAppends::pushed`]).
    sequence: u64,
    /// Whether it was committed when it returned: `false` for an append into the caller's
    /// transaction, which counts until the mark passes it (committed or rolled back).
    committed: bool,
}

/// This process's appends the last refresh may not have counted, with their sums kept as they
/// change, so a check costs the same however many there are. A committed append leaves at the
/// first refresh sent after it returned (that refresh sees it, below the mark or above it); an
/// append into a transaction leaves when the mark passes it. While the mark cannot move (a
/// transaction holding the read horizon back), neighbours are merged past [`OWN_MAX`] entries: a
/// merged entry leaves when both of its appends would, so it may count a little longer, never
/// less.
#[derive(Default)]
struct OwnAppends {
    entries: Vec<Own>,
    total: Usage,
    /// Events of `this_second.0`, the latest second appended in.
    this_second: (u64, u64),
    /// How many appends were ever pushed: the next one's sequence.
    pushed: u64,
}

const OWN_MAX: usize = 4_096;

impl OwnAppends {
    fn push(&mut self, mut own: Own) {
        own.sequence = self.pushed;
        self.pushed += 1;
        self.total = self.total + own.usage;
        if own.second == self.this_second.0 {
            self.this_second.1 += own.usage.events;
        } else if own.second > self.this_second.0 {
            self.this_second = (own.second, own.usage.events);
        }
        self.entries.push(own);
        if self.entries.len() > OWN_MAX {
            self.entries.sort_unstable_by_key(|own| own.last_position);
            self.entries = self
                .entries
                .chunks(2)
                .map(|pair| {
                    pair.iter().copied().reduce(|a, b| Own {
                        last_position: a.last_position.max(b.last_position),
                        usage: a.usage + b.usage,
                        second: a.second.max(b.second),
                        sequence: a.sequence.max(b.sequence),
                        committed: a.committed && b.committed,
                    })
                })
                .map(|merged| merged.unwrap_or_else(|| unreachable!("chunks are not empty")))
                .collect();
        }
    }

    /// Drops what a refresh counted: appends through its `mark`, and committed appends pushed
    /// before `seen` (the count of pushes when it was sent: they were committed before it read).
    fn trim(&mut self, mark: u64, seen: u64) {
        self.entries
            .retain(|own| own.last_position > mark && !(own.committed && own.sequence < seen));
        self.total = self.entries.iter().fold(Usage::default(), |sum, own| sum + own.usage);
        let second = self.this_second.0;
        let events =
            self.entries.iter().filter(|own| own.second == second).map(|own| own.usage.events);
        self.this_second = (second, events.sum());
    }

    fn events_in(&self, second: u64) -> u64 {
        if self.this_second.0 == second { self.this_second.1 } else { 0 }
    }
}

/// An admitted append's reservation; settled when the append returns.
/// Dropped without [`settle`](Ticket::settle) (the append's future was cancelled), it releases
/// the reservation: an append that may have been written counts again once the log count reaches
/// it.
pub(crate) struct Ticket {
    ledger: Arc<Ledger>,
    reserved: Usage,
    settled: bool,
}

/// What an append would add.
struct Request {
    usage: Usage,
    /// Whether it creates a stream for sure (`NoStream`, `Exact(0)`), may (`Any`), or cannot.
    new_stream: NewStream,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NewStream {
    Yes,
    Maybe,
    No,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state is plain numbers updated in single steps: a panic elsewhere leaves it consistent.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Refreshes what is known as of `stamp()` (when the refresh that made it began) when it is older
/// than `interval`, one refresh at a time. While another runs, what was known before is used,
/// unless every use must refresh (a zero interval); then, and when nothing was ever known, it
/// waits and accepts a refresh begun after it arrived. A failed refresh of something known before
/// is logged and the old knowledge used: checks do not fail because a refresh did.
async fn refresh_when_stale<F, Fut>(
    refreshing: &tokio::sync::Mutex<()>,
    interval: Duration,
    stamp: impl Fn() -> Option<Instant>,
    refresh: F,
) -> Result<(), StoreError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let arrival = Instant::now();
    let known = match stamp() {
        Some(at) if at.elapsed() < interval => return Ok(()),
        stamp => stamp.is_some(),
    };
    let _one = if known && !interval.is_zero() {
        match refreshing.try_lock() {
            Ok(guard) => guard,
            Err(_) => return Ok(()),
        }
    } else {
        refreshing.lock().await
    };
    if stamp().is_some_and(|at| at > arrival) {
        return Ok(());
    }
    match refresh().await {
        Err(error) if known => {
            tracing::warn!(%error, "quota refresh failed; checking against the last one");
            Ok(())
        }
        outcome => outcome,
    }
}

fn unix_second() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

impl Ledgers {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            tenants: Mutex::default(),
            limited: Mutex::default(),
            refreshing_limited: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether `tenant` has limits, as known within the interval.
    /// `pool` is the store's own (every tenant's rows, also under row-level security).
    async fn has_limits(&self, pool: &PgPool, tenant: &TenantId) -> Result<bool, StoreError> {
        let stamp = || self.limited.lock().unwrap_or_else(PoisonError::into_inner).refreshed;
        refresh_when_stale(&self.refreshing_limited, self.interval, stamp, || {
            self.refresh_limited(pool)
        })
        .await?;
        Ok(self.limited.lock().unwrap_or_else(PoisonError::into_inner).tenants.contains(tenant))
    }

    /// Reads which tenants have limits.
    async fn refresh_limited(&self, pool: &PgPool) -> Result<(), StoreError> {
        let started = Instant::now();
        let names: Vec<String> = sqlx::query_scalar(sql::LIMITED_TENANTS)
            .fetch_all(pool)
            .await
            .map_err(|error| read_error("quota refresh", error))?;
        let tenants = names.iter().filter_map(|name| TenantId::new(name).ok()).collect();
        *self.limited.lock().unwrap_or_else(PoisonError::into_inner) =
            Limited { refreshed: Some(started), tenants };
        Ok(())
    }

    fn ledger(&self, tenant: &TenantId) -> Arc<Ledger> {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(tenants.entry(tenant.clone()).or_insert_with(|| {
            Arc::new(Ledger { state: Mutex::default(), refreshing: tokio::sync::Mutex::new(()) })
        }))
    }

    /// Checks an append against the tenant's limits and reserves its share: `None` when the
    /// tenant has no limits, a [`StoreError::QuotaExceeded`] when it would pass one. A database
    /// failure here is reported as the append's.
    pub(crate) async fn admit(
        &self,
        store: &crate::store::Inner,
        pool: &PgPool,
        tenant: &TenantId,
        request: &AppendRequest,
    ) -> Result<Option<Ticket>, StoreError> {
        match self.check(store, pool, tenant, request).await {
            Err(StoreError::Backend { retryable, source, .. }) => {
                Err(StoreError::Backend { operation: "append", retryable, source })
            }
            outcome => outcome,
        }
    }

    async fn check(
        &self,
        store: &crate::store::Inner,
        pool: &PgPool,
        tenant: &TenantId,
        request: &AppendRequest,
    ) -> Result<Option<Ticket>, StoreError> {
        if !self.has_limits(&store.pool, tenant).await? {
            return Ok(None);
        }
        let ledger = self.ledger(tenant);
        let stamp = || lock(&ledger.state).refreshed;
        refresh_when_stale(&ledger.refreshing, self.interval, stamp, || {
            ledger.refresh(store, pool, tenant)
        })
        .await?;
        let mut wanted = Request::of(request);
        let mut probed = false;
        loop {
            {
                let mut state = lock(&ledger.state);
                if state.limits.is_none() {
                    return Ok(None);
                }
                // An `Any` append to a tenant at its streams limit must know whether the stream
                // exists (only then, so appends below the limit pay nothing).
                let near = state.limits.streams.is_some_and(|max| state.used().streams + 1 > max);
                if wanted.new_stream != NewStream::Maybe || probed || !near {
                    let reserved = wanted.reserved();
                    if let Some(exceeded) = state.exceeds(tenant, &wanted) {
                        return Err(StoreError::QuotaExceeded(Box::new(exceeded)));
                    }
                    state.in_flight = state.in_flight + reserved;
                    state.in_flight_events += reserved.events;
                    return Ok(Some(Ticket {
                        ledger: Arc::clone(&ledger),
                        reserved,
                        settled: false,
                    }));
                }
            }
            let version: Option<i64> = sqlx::query_scalar(sql::STREAM_VERSION)
                .bind(tenant.as_str())
                .bind(request.stream_id.as_str())
                .fetch_one(pool)
                .await
                .map_err(|error| read_error("quota stream probe", error))?;
            wanted.new_stream =
                if version.unwrap_or(0) == 0 { NewStream::Yes } else { NewStream::No };
            probed = true;
        }
    }

    /// Refreshes a tenant's ledger now (after its limits changed; for usage reports).
    pub(crate) async fn refresh(
        &self,
        store: &crate::store::Inner,
        pool: &PgPool,
        tenant: &TenantId,
    ) -> Result<(), StoreError> {
        {
            let _one = self.refreshing_limited.lock().await;
            self.refresh_limited(&store.pool).await?;
        }
        let ledger = self.ledger(tenant);
        let _one = ledger.refreshing.lock().await;
        ledger.refresh(store, pool, tenant).await
    }
}

impl Ledger {
    async fn refresh(
        &self,
        store: &crate::store::Inner,
        pool: &PgPool,
        tenant: &TenantId,
    ) -> Result<(), StoreError> {
        // Stamped with its start: what it reads is at least as new as that. So is what it reads of
        // the appends this process had returned by then.
        let started = Instant::now();
        let seen = lock(&self.state).own.pushed;
        let horizon = store.horizon.advance(&store.pool, Duration::ZERO).await?;
        let row = sqlx::query(sql::TENANT_USAGE_SYNC)
            .bind(tenant.as_str())
            .bind(bound_i64(horizon))
            .fetch_optional(pool)
            .await
            .map_err(|error| read_error("quota refresh", error))?;
        let mut state = lock(&self.state);
        state.refreshed = Some(started);
        let Some(row) = row else {
            state.limits = Limits::none();
            state.above = Usage::default();
            state.above_in_window = 0;
            let pushed = state.own.pushed;
            state.own = OwnAppends { pushed, ..OwnAppends::default() };
            return Ok(());
        };
        let number = |name: &str| -> Result<Option<u64>, StoreError> {
            let value: Option<i64> = row.try_get(name).map_err(|e| read_error("quota", e))?;
            value.map(|value| stored_u64(value, format_args!("{name} of a tenant"))).transpose()
        };
        state.limits = Limits {
            events: number("o_max_events")?,
            streams: number("o_max_streams")?,
            bytes: number("o_max_bytes")?,
            events_per_second: number("o_max_events_per_second")?,
        };
        state.counted = Usage {
            events: number("o_events")?.unwrap_or(0),
            streams: number("o_streams")?.unwrap_or(0),
            bytes: number("o_bytes")?.unwrap_or(0),
        };
        state.mark = number("o_counted_through")?.unwrap_or(0);
        state.above = Usage {
            events: number("o_above_events")?.unwrap_or(0),
            streams: number("o_above_streams")?.unwrap_or(0),
            bytes: number("o_above_bytes")?.unwrap_or(0),
        };
        // The window is the server's current second, whether or not it counted any event.
        let second = number("o_second")?.unwrap_or(0);
        let counted_in_window = match number("o_window_second")? {
            Some(counted) if counted == second => number("o_window_events")?.unwrap_or(0),
            _ => 0,
        };
        state.window = (second, counted_in_window);
        state.above_in_window = number("o_above_in_second")?.unwrap_or(0);
        let mark = state.mark;
        state.own.trim(mark, seen);
        Ok(())
    }
}

impl State {
    /// Counted usage, committed events above the mark, own appends since, and what is in flight.
    fn used(&self) -> Usage {
        self.counted + self.above + self.own.total + self.in_flight
    }

    /// Events of the current second: counted (through the mark and above it), own, in flight.
    fn used_this_second(&self, second: u64) -> u64 {
        let counted = if self.window.0 == second {
            self.window.1.saturating_add(self.above_in_window)
        } else {
            0
        };
        counted.saturating_add(self.own.events_in(second)).saturating_add(self.in_flight_events)
    }

    fn exceeds(&self, tenant: &TenantId, wanted: &Request) -> Option<QuotaExceeded> {
        let used = self.used();
        let second = unix_second();
        let new_streams = u64::from(wanted.new_stream == NewStream::Yes);
        // A `Maybe` stream is reserved (in flight) but checked only when it must be new.
        let request = Usage { streams: new_streams, ..wanted.usage };
        self.limits.first_exceeded(tenant, used, self.used_this_second(second), request)
    }
}

impl Request {
    fn of(request: &AppendRequest) -> Self {
        let new_stream = match request.expected {
            ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => NewStream::Yes,
            ExpectedVersion::Any => NewStream::Maybe,
            ExpectedVersion::StreamExists | ExpectedVersion::Exact(_) => NewStream::No,
        };
        let usage = Usage::of_events(&request.events);
        Self { usage, new_stream }
    }

    /// What it holds while it runs: a stream it may create counts as one.
    fn reserved(&self) -> Usage {
        Usage { streams: u64::from(self.new_stream != NewStream::No), ..self.usage }
    }
}

impl Ticket {
    /// Releases the reservation; a written append becomes one of this process's own (until a
    /// refresh counts it); a replay wrote nothing and counts nothing. `committed`: whether it
    /// was committed when it returned (not an append into the caller's transaction).
    pub(crate) fn settle(mut self, appended: &Result<Appended, StoreError>, committed: bool) {
        let mut state = lock(&self.ledger.state);
        self.release(&mut state);
        self.settled = true;
        if let Ok(Appended { result, replayed: false }) = appended
            && result.last_position.value() > state.mark
        {
            let created = u64::from(result.first_version == 1);
            state.own.push(Own {
                last_position: result.last_position.value(),
                usage: Usage { streams: created, ..self.reserved },
                second: unix_second(),
                sequence: 0,
                committed,
            });
        }
    }

    fn release(&self, state: &mut State) {
        state.in_flight = state.in_flight.saturating_sub(self.reserved);
        state.in_flight_events = state.in_flight_events.saturating_sub(self.reserved.events);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled {
            let mut state = lock(&self.ledger.state);
            self.release(&mut state);
        }
    }
}

#[cfg(test)]
mod tests {
    use es_core::AppendResult;

    use super::*;

    fn own(position: u64, second: u64) -> Own {
        let usage = Usage { events: 1, streams: 0, bytes: 10 };
        Own { last_position: position, usage, second, sequence: 0, committed: false }
    }

    #[test]
    fn own_appends_keep_their_sums_through_merges_and_trims() {
        let mut appends = OwnAppends::default();
        let n = OWN_MAX as u64 * 3;
        for position in 1..=n {
            appends.push(own(position, 7));
        }
        assert!(appends.entries.len() <= OWN_MAX, "bounded: {}", appends.entries.len());
        assert_eq!(appends.total.events, n);
        assert_eq!(appends.total.bytes, n * 10);
        assert_eq!(appends.events_in(7), n);
        assert_eq!(appends.events_in(8), 0);
        // A merged entry leaves only when the mark passes its later append: never undercounted.
        appends.trim(n / 2, u64::MAX);
        assert!(appends.total.events >= n - n / 2, "{}", appends.total.events);
        assert!(appends.total.events <= n - n / 2 + 8, "{}", appends.total.events);
        appends.trim(n, u64::MAX);
        assert_eq!((appends.total.events, appends.events_in(7)), (0, 0));
    }

    #[test]
    fn a_cancelled_append_releases_its_reservation() {
        let ledger =
            Arc::new(Ledger { state: Mutex::default(), refreshing: tokio::sync::Mutex::new(()) });
        let reserved = Usage { events: 2, streams: 1, bytes: 20 };
        let reserve = || {
            let mut state = lock(&ledger.state);
            state.in_flight = state.in_flight + reserved;
            state.in_flight_events += reserved.events;
            Ticket { ledger: Arc::clone(&ledger), reserved, settled: false }
        };
        drop(reserve()); // the append's future dropped mid-way
        assert_eq!(lock(&ledger.state).used(), Usage::default());
        assert_eq!(lock(&ledger.state).used_this_second(unix_second()), 0);
        let result = AppendResult {
            first_version: 1,
            last_version: 2,
            first_position: es_core::Position::new(5),
            last_position: es_core::Position::new(6),
        };
        let written = Ok(Appended { result, replayed: false });
        reserve().settle(&written, true); // settled: counted once, as its own append
        assert_eq!(lock(&ledger.state).used(), reserved);
        // Its replay wrote nothing: released, and not counted again.
        reserve().settle(&Ok(Appended { result, replayed: true }), true);
        assert_eq!(lock(&ledger.state).used(), reserved);
    }

    #[test]
    fn a_later_second_starts_a_new_window() {
        let mut appends = OwnAppends::default();
        appends.push(own(1, 5));
        appends.push(own(2, 6));
        appends.push(own(3, 6));
        assert_eq!((appends.events_in(5), appends.events_in(6)), (0, 2));
        appends.trim(2, u64::MAX);
        assert_eq!((appends.total.events, appends.events_in(6)), (1, 1));
    }

    #[test]
    fn a_refresh_drops_the_committed_appends_it_saw_and_keeps_the_rest() {
        let mut appends = OwnAppends::default();
        let committed = |position| Own { committed: true, ..own(position, 1) };
        appends.push(committed(10)); // returned before the refresh was sent
        appends.push(own(11, 1)); // into a transaction: counted until the mark passes it
        let seen = appends.pushed;
        appends.push(committed(12)); // returned while the refresh ran: it may not have seen it
        appends.trim(5, seen);
        let kept: Vec<u64> = appends.entries.iter().map(|own| own.last_position).collect();
        assert_eq!(kept, [11, 12]);
        assert_eq!((appends.total.events, appends.events_in(1)), (2, 2));
        appends.trim(11, appends.pushed);
        assert_eq!(appends.total.events, 0);
    }
}
