//! The relay: delivers the outbox to a [`Sink`] at least once, in per-stream order, sharing
//! the partitions with the other relays of the tenant.

mod breaker;
mod options;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use breaker::Breaker;
pub use breaker::BreakerState;
pub use options::RelayOptions;

use super::{OutboxMessage, OutboxStore, PARTITIONS, Sink, SinkError};
use crate::{EventStore, StoreError, StreamId};

/// What a relay could not do: reach its store. (A failing sink is not an error of the relay:
/// it retries, opens its breaker, and parks what the sink refuses.)
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Messages the sink acknowledged.
    pub delivered: u64,
    /// Messages the sink refused for good, now parked.
    pub parked: u64,
    /// Messages that failed and wait for a retry (they and their streams' later messages).
    pub failed: u64,
    /// The partitions this relay held.
    pub partitions: usize,
    /// Whether the batch was full (more may be waiting).
    pub full: bool,
    /// Whether the breaker kept the pass from calling the sink.
    pub breaker_open: bool,
}

/// Delivers a tenant's outbox to a sink.
///
/// - **At least once**: a message is marked delivered after the sink acknowledged it; a relay
///   killed in between delivers it again, with the same id (the event's), which the sink drops
///   (JetStream's duplicate window with `Nats-Msg-Id`; [`MemorySink`](super::MemorySink) by id).
/// - **Per-stream order**: each pass sends messages in waves, the first pending message of each
///   stream, then the second, …; a stream whose message failed sends nothing more in that pass,
///   so no message overtakes an earlier one of its stream. A message the sink refuses for good
///   (too large, a subject it will not take) is parked with the reason and the stream's later
///   messages go on: order holds among the messages delivered.
/// - **Several relays**: the outbox is split into [`PARTITIONS`] by stream; each relay leases a
///   fair share (partitions ÷ live relays) and renews its leases every pass; a killed relay's
///   leases lapse after [`RelayOptions::lease_ttl`] and the others take them over. A relay that
///   stalls past its lease may overlap with its successor for a moment: both send the same
///   messages in the same order, and the sink drops the repeats.
/// - **Failures**: retries with exponential backoff and jitter; after
///   [`RelayOptions::breaker_threshold`] failing passes the circuit breaker opens and the sink is
///   left alone for the cool-down, while appends go on filling the outbox.
/// - **Observability**: counters `es_outbox_delivered_total`, `es_outbox_failed_total`,
///   `es_outbox_parked_total`; gauges `es_outbox_pending`, `es_outbox_oldest_age_seconds`,
///   `es_outbox_breaker_open` (by tenant); a span `es.outbox.pass` per pass.
/// - **Clean-up**: delivered messages are deleted [`RelayOptions::retention`] after they were
///   enqueued, checked every [`RelayOptions::housekeeping_every`].
pub struct Relay<S, K> {
    store: S,
    sink: K,
    options: RelayOptions,
    owner: Uuid,
    held: Vec<u16>,
    breaker: Breaker,
    retry: u32,
    last_housekeeping: Option<Instant>,
}

impl<S, K> Relay<S, K>
where
    S: EventStore + OutboxStore,
    K: Sink,
{
    /// A relay with default options and a fresh owner id.
    pub fn new(store: S, sink: K) -> Self {
        Self::with_options(store, sink, RelayOptions::default())
    }

    /// A relay with `options`.
    pub fn with_options(store: S, sink: K, options: RelayOptions) -> Self {
        let breaker = Breaker::new(options.breaker_threshold, options.breaker_cool_down);
        Self {
            store,
            sink,
            options,
            owner: Uuid::now_v7(),
            held: Vec::new(),
            breaker,
            retry: 0,
            last_housekeeping: None,
        }
    }

    /// This relay's id in the lease table.
    pub fn owner(&self) -> Uuid {
        self.owner
    }

    /// The partitions leased at the last pass.
    pub fn partitions(&self) -> &[u16] {
        &self.held
    }

    /// The circuit breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The sink.
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// One pass: renew and balance the leases, read a batch of the held partitions, deliver it
    /// in waves, settle what was delivered or refused.
    pub async fn relay_once(&mut self) -> Result<RelayPass, RelayError> {
        let span = tracing::info_span!("es.outbox.pass", tenant = %self.store.tenant(), owner = %self.owner);
        self.pass().instrument(span).await
    }

    async fn pass(&mut self) -> Result<RelayPass, RelayError> {
        self.balance_leases().await?;
        let mut pass = RelayPass { partitions: self.held.len(), ..RelayPass::default() };
        if self.held.is_empty() {
            return Ok(pass);
        }
        if self.breaker.state() == BreakerState::Open {
            pass.breaker_open = true;
            return Ok(pass);
        }
        // At least one: a batch size set to 0 by hand would read nothing and call it full.
        let batch_size = self.options.batch_size.max(1);
        let messages = self.store.pending(&self.held, batch_size).await?;
        pass.full = messages.len() >= batch_size;
        let mut blocked: HashSet<StreamId> = HashSet::new();
        for wave in waves(messages) {
            let wave: Vec<OutboxMessage> =
                wave.into_iter().filter(|message| !blocked.contains(&message.stream_id)).collect();
            if wave.is_empty() {
                continue;
            }
            let outcomes = self.sink.publish(&wave).await;
            let mut delivered = Vec::with_capacity(wave.len());
            for (message, outcome) in
                wave.iter().zip(outcomes.into_iter().chain(std::iter::repeat_with(|| {
                    Err(SinkError::Unavailable { reason: "the sink gave no outcome".into() })
                })))
            {
                match outcome {
                    Ok(()) => delivered.push(message.sequence),
                    Err(SinkError::Rejected { reason }) => {
                        tracing::warn!(sequence = message.sequence, stream = %message.stream_id, %reason, "es.outbox: message parked");
                        self.store.park_message(message.sequence, &reason).await?;
                        pass.parked += 1;
                    }
                    Err(SinkError::Unavailable { reason }) => {
                        tracing::debug!(sequence = message.sequence, stream = %message.stream_id, %reason, "es.outbox: delivery failed");
                        blocked.insert(message.stream_id.clone());
                        pass.failed += 1;
                    }
                }
            }
            if !delivered.is_empty() {
                self.store.mark_delivered(&delivered).await?;
                pass.delivered += delivered.len() as u64;
            }
        }
        let tenant = self.store.tenant().to_string();
        metrics::counter!("es_outbox_delivered_total", "tenant" => tenant.clone())
            .increment(pass.delivered);
        metrics::counter!("es_outbox_failed_total", "tenant" => tenant.clone())
            .increment(pass.failed);
        metrics::counter!("es_outbox_parked_total", "tenant" => tenant.clone())
            .increment(pass.parked);
        if pass.failed > 0 && pass.delivered == 0 {
            if self.breaker.failure() {
                tracing::warn!(tenant, "es.outbox: circuit breaker open");
            }
        } else if pass.delivered > 0 || pass.failed == 0 {
            self.breaker.success();
        }
        metrics::gauge!("es_outbox_breaker_open", "tenant" => tenant)
            .set(if self.breaker.state() == BreakerState::Closed { 0.0 } else { 1.0 });
        Ok(pass)
    }

    /// Takes this relay's fair share of the partitions (all of them ÷ live relays, rounded
    /// up), renewing the leases it holds and giving back any above its share.
    async fn balance_leases(&mut self) -> Result<(), RelayError> {
        let leases = self.store.leases().await?;
        let mut owners: HashSet<Uuid> = self.store.relays().await?.into_iter().collect();
        owners.extend(leases.iter().map(|lease| lease.owner));
        owners.insert(self.owner);
        let share = usize::from(PARTITIONS).div_ceil(owners.len());
        let others: HashSet<u16> = leases
            .iter()
            .filter(|lease| lease.owner != self.owner)
            .map(|lease| lease.partition)
            .collect();
        let mut mine: Vec<u16> = leases
            .iter()
            .filter(|lease| lease.owner == self.owner)
            .map(|lease| lease.partition)
            .collect();
        mine.sort_unstable();
        if mine.len() > share {
            let extra = mine.split_off(share);
            self.store.release(self.owner, &extra).await?;
        }
        let free = (0..PARTITIONS).filter(|p| !others.contains(p) && !mine.contains(p));
        let wanted: Vec<u16> =
            mine.iter().copied().chain(free.take(share.saturating_sub(mine.len()))).collect();
        self.held = self.store.lease(self.owner, &wanted, self.options.lease_ttl).await?;
        self.held.sort_unstable();
        Ok(())
    }

    /// Prunes delivered messages past the retention and reports the outbox's depth and age, at
    /// most every `housekeeping_every`.
    async fn housekeeping(&mut self) -> Result<(), RelayError> {
        if self.last_housekeeping.is_some_and(|at| at.elapsed() < self.options.housekeeping_every) {
            return Ok(());
        }
        self.last_housekeeping = Some(Instant::now());
        if let Some(retention) = self.options.retention {
            let before = Utc::now()
                - chrono::Duration::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
            let pruned = self.store.prune_delivered(before).await?;
            if pruned > 0 {
                tracing::debug!(pruned, "es.outbox: delivered messages pruned");
            }
        }
        let stats = self.store.outbox_stats().await?;
        let tenant = self.store.tenant().to_string();
        #[allow(clippy::cast_precision_loss, reason = "a gauge")]
        metrics::gauge!("es_outbox_pending", "tenant" => tenant.clone()).set(stats.pending as f64);
        let age = stats.oldest_pending.map_or(0.0, |oldest| {
            (Utc::now() - oldest).to_std().map_or(0.0, |age| age.as_secs_f64())
        });
        metrics::gauge!("es_outbox_oldest_age_seconds", "tenant" => tenant).set(age);
        Ok(())
    }

    /// The delay before the next retry: exponential, with jitter (between half and all of it).
    fn backoff(&mut self) -> Duration {
        self.retry = self.retry.saturating_add(1);
        let exponent = self.retry.saturating_sub(1).min(16);
        let full = self
            .options
            .retry_delay
            .saturating_mul(1 << exponent)
            .min(self.options.max_retry_delay);
        full.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// Relays until `shutdown` completes: passes back to back while there is a backlog, waiting
    /// for new events when idle, backing off after failures; releases its leases at the end.
    /// Store errors are logged and retried like sink failures: the relay keeps going.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            let wait = tokio::select! {
                biased;
                () = &mut shutdown => break,
                wait = self.step() => wait,
            };
            if let Some(wait) = wait {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = wait => {}
                }
            }
        }
        if let Err(error) = self.leave().await {
            tracing::warn!(%error, "es.outbox: could not give up the leases; they lapse on their own");
        }
    }

    /// Gives up this relay's leases and its place among the live relays now (a graceful stop,
    /// a hand-over), so the others take its share at once instead of after
    /// [`RelayOptions::lease_ttl`]. A later pass joins again.
    pub async fn leave(&mut self) -> Result<(), RelayError> {
        self.store.leave(self.owner).await?;
        self.held.clear();
        Ok(())
    }

    /// One pass and housekeeping; returns what to wait for before the next, if anything.
    async fn step(&mut self) -> Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> {
        if let Err(error) = self.housekeeping().await {
            tracing::warn!(%error, "es.outbox: housekeeping failed");
        }
        // Read before the pass: a message enqueued during it changes the generation, so the
        // wait below returns at once.
        let generation = self.store.message_generation();
        match self.relay_once().await {
            Err(error) => {
                tracing::warn!(%error, "es.outbox: pass failed");
                Some(Box::pin(tokio::time::sleep(self.backoff())))
            }
            Ok(pass) if pass.breaker_open => Some(Box::pin(tokio::time::sleep(
                self.breaker.wait().max(self.options.retry_delay),
            ))),
            Ok(pass) if pass.failed > 0 => Some(Box::pin(tokio::time::sleep(self.backoff()))),
            Ok(pass) => {
                self.retry = 0;
                if pass.full || pass.parked > 0 {
                    return None;
                }
                let (store, idle) = (self.store.clone(), self.options.idle_wait);
                Some(Box::pin(async move { store.wait_for_messages(generation, idle).await }))
            }
        }
    }
}

/// Splits messages (in sequence order) into waves: the first message of each stream, then the
/// second, and so on; within a wave, no two messages share a stream.
fn waves(messages: Vec<OutboxMessage>) -> Vec<Vec<OutboxMessage>> {
    let mut waves: Vec<Vec<OutboxMessage>> = Vec::new();
    let mut depth: HashMap<StreamId, usize> = HashMap::new();
    for message in messages {
        let wave = depth.entry(message.stream_id.clone()).or_insert(0);
        if waves.len() <= *wave {
            waves.push(Vec::new());
        }
        waves[*wave].push(message);
        *wave += 1;
    }
    waves
}
