//! Per-tenant quotas: limits on events, streams, stored bytes and the append rate, enforced at
//! append with a typed error ([`QuotaExceeded`]) and nothing written.
//!
//! ```
//! use es_core::quota::{Limits, Quota};
//! let limits = Limits::none().events(1_000_000).streams(10_000).bytes(1 << 30).events_per_second(500);
//! assert_eq!(limits.of(Quota::Streams), Some(10_000));
//! assert_eq!(Limits::none().of(Quota::Events), None);
//! ```
//!
//! Backends check every append against the tenant's limits before it writes. es-memory counts
//! every tenant and checks under the tenant's lock, exactly. es-postgres counts usage from the log
//! itself (no counter is written on the append path) and each process checks appends against a
//! ledger: the tenant's usage counted through a recent read horizon, the process's own appends
//! since, and what it has in flight, refreshed every `quota_sync_interval` (250 ms by default).
//! Within one process a limit is exact, also under concurrent appends; across processes a tenant
//! can pass a limit by what the other processes append within one interval, plus what is in
//! flight; a limit set elsewhere holds within one interval. The rate is counted in one-second
//! windows with the same bound.
//!
use std::fmt;
use std::future::Future;

use crate::{StoreError, TenantId};

/// What a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quota {
    /// Events stored.
    Events,
    /// Streams (a stream counts from its first event).
    Streams,
    /// Payload bytes stored (the JSON text as the store keeps it).
    Bytes,
    /// Events appended within one second (a fixed window).
    AppendRate,
}

impl Quota {
    /// Every quota.
    pub const ALL: [Quota; 4] = [Quota::Events, Quota::Streams, Quota::Bytes, Quota::AppendRate];

    /// Its name in messages and configuration: `events`, `streams`, `bytes`, `events_per_second`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Streams => "streams",
            Self::Bytes => "bytes",
            Self::AppendRate => "events_per_second",
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's limits; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Events stored.
    pub events: Option<u64>,
    /// Streams.
    pub streams: Option<u64>,
    /// Payload bytes stored.
    pub bytes: Option<u64>,
    /// Events appended per second.
    pub events_per_second: Option<u64>,
}

impl Limits {
    /// No limit at all.
    pub const fn none() -> Self {
        Self { events: None, streams: None, bytes: None, events_per_second: None }
    }

    /// Limits the events stored.
    #[must_use]
    pub const fn events(mut self, limit: u64) -> Self {
        self.events = Some(limit);
        self
    }

    /// Limits the streams.
    #[must_use]
    pub const fn streams(mut self, limit: u64) -> Self {
        self.streams = Some(limit);
        self
    }

    /// Limits the payload bytes stored.
    #[must_use]
    pub const fn bytes(mut self, limit: u64) -> Self {
        self.bytes = Some(limit);
        self
    }

    /// Limits the events appended per second.
    #[must_use]
    pub const fn events_per_second(mut self, limit: u64) -> Self {
        self.events_per_second = Some(limit);
        self
    }

    /// The limit of one quota.
    pub const fn of(&self, quota: Quota) -> Option<u64> {
        match quota {
            Quota::Events => self.events,
            Quota::Streams => self.streams,
            Quota::Bytes => self.bytes,
            Quota::AppendRate => self.events_per_second,
        }
    }

    /// Whether no limit is set.
    pub const fn is_none(&self) -> bool {
        self.events.is_none()
            && self.streams.is_none()
            && self.bytes.is_none()
            && self.events_per_second.is_none()
    }

    /// The first limit an append adding `request` (its events, the streams it creates, its
    /// payload bytes) would pass, for a tenant using `used` and having appended
    /// `used_this_second` events in the current second; `None` when it fits. For backends.
    ///
    /// ```
    /// use es_core::TenantId;
    /// use es_core::quota::{Limits, Quota, Usage};
    /// let limits = Limits::none().events(10);
    /// let tenant = TenantId::new("acme")?;
    /// let used = Usage { events: 8, streams: 1, bytes: 100 };
    /// let request = Usage { events: 3, streams: 0, bytes: 30 };
    /// let exceeded = limits.first_exceeded(&tenant, used, 0, request).expect("over");
    /// assert_eq!((exceeded.quota, exceeded.used, exceeded.requested), (Quota::Events, 8, 3));
    /// assert!(limits.first_exceeded(&tenant, used, 0, Usage { events: 2, ..request }).is_none());
    /// # Ok::<(), es_core::IdError>(())
    /// ```
    pub fn first_exceeded(
        &self,
        tenant: &TenantId,
        used: Usage,
        used_this_second: u64,
        request: Usage,
    ) -> Option<QuotaExceeded> {
        let checks = [
            (Quota::Events, used.events, request.events),
            (Quota::Streams, used.streams, request.streams),
            (Quota::Bytes, used.bytes, request.bytes),
            (Quota::AppendRate, used_this_second, request.events),
        ];
        checks.into_iter().find_map(|(quota, used, requested)| {
            let limit = self.of(quota)?;
            (requested > 0 && used.checked_add(requested).is_none_or(|sum| sum > limit))
                .then(|| QuotaExceeded { tenant: tenant.clone(), quota, limit, used, requested })
        })
    }
}

/// What a tenant uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Events stored.
    pub events: u64,
    /// Streams.
    pub streams: u64,
    /// Payload bytes stored.
    pub bytes: u64,
}

impl std::ops::Add for Usage {
    type Output = Self;

    /// Saturating: a count never wraps.
    fn add(self, other: Self) -> Self {
        Self {
            events: self.events.saturating_add(other.events),
            streams: self.streams.saturating_add(other.streams),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }
}

impl Usage {
    /// What appending `events` adds, streams aside (whether the append creates its stream is the
    /// backend's to tell).
    pub fn of_events(events: &[crate::EventData]) -> Self {
        Self {
            events: events.len() as u64,
            streams: 0,
            bytes: events.iter().map(|event| event.payload.len() as u64).sum(),
        }
    }

    /// `self` less `other`, each count at least 0.
    #[must_use]
    pub const fn saturating_sub(self, other: Self) -> Self {
        Self {
            events: self.events.saturating_sub(other.events),
            streams: self.streams.saturating_sub(other.streams),
            bytes: self.bytes.saturating_sub(other.bytes),
        }
    }
}

/// A tenant's usage and limits, for operators.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TenantUsage {
    /// The tenant.
    pub tenant: TenantId,
    /// What it uses.
    pub usage: Usage,
    /// Its limits.
    pub limits: Limits,
}

/// An append would take a tenant past a limit; nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant {tenant} is at its {quota} quota: limit {limit}, used {used}, this append adds {requested} ({over} over); nothing was written",
    over = used.saturating_add(*requested).saturating_sub(*limit)
)]
pub struct QuotaExceeded {
    /// The tenant.
    pub tenant: TenantId,
    /// Which limit.
    pub quota: Quota,
    /// The limit.
    pub limit: u64,
    /// What the tenant used before this append (for the rate: in the current second).
    pub used: u64,
    /// What this append would add.
    pub requested: u64,
}

/// A backend that keeps per-tenant quotas: operators set limits (live: the next append of this
/// process sees them; other processes of the same store within their refresh interval, see the
/// module docs) and read usage. An admin API across tenants.
pub trait TenantQuotas: Send + Sync {
    /// Sets a tenant's limits ([`Limits::none`] removes them).
    fn set_limits(
        &self,
        tenant: &TenantId,
        limits: Limits,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A tenant's usage and limits.
    fn tenant_usage(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<TenantUsage, StoreError>> + Send;

    /// Every tenant with events or limits, by id.
    fn tenants_usage(&self) -> impl Future<Output = Result<Vec<TenantUsage>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_near_the_top_of_u64_never_wrap() {
        let tenant = TenantId::new("acme").unwrap();
        let used = Usage { events: u64::MAX - 1, streams: 0, bytes: 0 };
        let request = Usage { events: 5, streams: 0, bytes: 0 };
        let exceeded = Limits::none()
            .events(u64::MAX)
            .first_exceeded(&tenant, used, 0, request)
            .expect("passing the largest limit is refused, not wrapped to a small sum");
        assert_eq!((exceeded.used, exceeded.requested), (u64::MAX - 1, 5));
        assert!(!exceeded.to_string().is_empty(), "its message does not overflow either");
        assert_eq!((used + request).events, u64::MAX);
    }
}
