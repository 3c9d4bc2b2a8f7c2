//! The read horizon: the highest position below which no event can still appear.
//!
//! PostgreSQL's sequence hands out positions when appends run, but their events become visible
//! when they commit, in any order. A reader that returned position 11 while the transaction holding
//! position 10 was still open would never see 10. So readers return events only up to the horizon,
//! a position `L` such that every transaction that took a position `<= L` has ended.
//!
//! `horizon_probe()` reads `L` (the sequence's last value) and then lists the transactions that
//! hold a `RowExclusiveLock` on `events`; an append's INSERT takes that lock before it evaluates
//! `nextval()`, so every transaction that could still hold a position `<= L` is on that list. When all of them have
//! ended (committed: their events are visible; rolled back: their positions are dead), `L` becomes
//! the horizon. Nothing is skipped on a timer, and a rolled-back append only delays readers until
//! it ends.
//!
//! The cost: an append transaction that stays open holds back every reader of this schema until it
//! ends (other long transactions in the cluster do not: only writers of `events` count).
//! [`PgStore::horizon_status`](crate::PgStore::horizon_status) names the sessions that do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use es_core::StoreError;
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::read_error;
use crate::sql;

/// The horizon shared by every reader of one store.
#[derive(Default)]
pub(crate) struct Horizon {
    published: AtomicU64,
    /// How many probes have started, and the number of the last one that completed.
    started: AtomicU64,
    completed: AtomicU64,
    /// One probe at a time. A reader that finds, once it holds the lock, that a probe which started
    /// after the reader arrived has completed uses that probe's result: it reflects every commit
    /// that preceded the reader's call, so many concurrent readers share one probe (and one wait)
    /// instead of queueing for one each.
    probing: Mutex<()>,
}

impl Horizon {
    /// The last published horizon, without asking the database.
    pub(crate) fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Advances the horizon as far as the database allows now, waiting at most `max_wait` for
    /// in-flight appends to end, and returns it.
    pub(crate) async fn advance(
        &self,
        pool: &PgPool,
        max_wait: Duration,
    ) -> Result<u64, StoreError> {
        let arrival = self.started.load(Ordering::Acquire);
        let _probing = self.probing.lock().await;
        if self.completed.load(Ordering::Acquire) > arrival {
            return Ok(self.published());
        }
        let probe = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        let horizon = self.probe(pool, max_wait).await?;
        self.completed.store(probe, Ordering::Release);
        Ok(horizon)
    }

    /// Reads L and the open appends, waits up to `max_wait` for them to end, publishes L if they did.
    async fn probe(&self, pool: &PgPool, max_wait: Duration) -> Result<u64, StoreError> {
        let (last_position, mut writers): (i64, Vec<String>) = sqlx::query_as(sql::HORIZON_PROBE)
            .fetch_one(pool)
            .await
            .map_err(|error| read_error("read horizon", error))?;
        let deadline = Instant::now() + max_wait;
        let mut pause = Duration::from_micros(500);
        while !writers.is_empty() {
            if Instant::now() >= deadline {
                tracing::debug!(
                    candidate = last_position,
                    waiting_for = ?writers,
                    "es.horizon: in-flight appends still open; readers stay at the previous horizon"
                );
                return Ok(self.published());
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(Duration::from_millis(20));
            writers = sqlx::query_scalar(sql::RUNNING_TRANSACTIONS)
                .bind(&writers)
                .fetch_one(pool)
                .await
                .map_err(|error| read_error("read horizon", error))?;
        }
        let horizon = crate::row::stored_u64(last_position, "the last position taken")?;
        Ok(self.published.fetch_max(horizon, Ordering::AcqRel).max(horizon))
    }
}
