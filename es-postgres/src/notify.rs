//! Waking waiting readers: in process at once, across processes through LISTEN/NOTIFY.
//!
//! A `NOTIFY` costs its transaction a commit record and a WAL flush, and makes commits that carry
//! one queue on PostgreSQL's notify lock: one per append would slow every writer. So at most one
//! append per `notify_interval` carries it, in its own statement ([`Wakeups::carrier`]): the
//! notification is sent when, and only if, that append commits, and costs no transaction of its
//! own. Appends between two carriers leave a mark; if no carrier follows within the interval
//! (the writers have gone quiet), a background task sends one `pg_notify` for all of them, so the
//! last appends of a burst wake remote readers within two intervals. Readers in the same process
//! are woken directly; and every waiter also polls, so a lost notification only delays it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;

pub(crate) struct Wakeups {
    notify_interval: Duration,
    channel: String,
    /// Bumped on every local append and every notification received.
    generation: watch::Sender<u64>,
    /// When the next append may carry a notification, in microseconds since `epoch`.
    next_carrier: Arc<AtomicU64>,
    /// Appends committed since the last notification was claimed, that no notification covers.
    uncovered: Arc<AtomicBool>,
    epoch: Instant,
    /// Wakes the task that sends a notification for uncovered appends.
    outgoing: Arc<Notify>,
    notifier: OnceLock<AbortHandle>,
    listener: OnceLock<AbortHandle>,
}

/// A claim to carry the notification in one append's statement ([`Wakeups::carrier`]). Report
/// what became of the append with [`Wakeups::appended`] (it committed) or [`Wakeups::failed`].
#[must_use]
pub(crate) struct Carrier<'a> {
    channel: Option<&'a str>,
}

impl<'a> Carrier<'a> {
    /// The channel to bind (`NULL` when this append carries no notification).
    pub(crate) fn channel(&self) -> Option<&'a str> {
        self.channel
    }
}

impl Wakeups {
    pub(crate) fn new(schema: &str, notify_interval: Duration) -> Self {
        Self {
            notify_interval,
            channel: format!("es_events_{schema}"),
            generation: watch::Sender::new(0),
            next_carrier: Arc::new(AtomicU64::new(0)),
            uncovered: Arc::new(AtomicBool::new(false)),
            epoch: Instant::now(),
            outgoing: Arc::new(Notify::new()),
            notifier: OnceLock::new(),
            listener: OnceLock::new(),
        }
    }

    /// The channel `NOTIFY` goes to.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Whether the append about to be sent carries the notification: yes when none has been
    /// claimed within `notify_interval`. A claim covers every append committed before it, so
    /// their mark is cleared: the carrier commits after them.
    pub(crate) fn carrier(&self) -> Carrier<'_> {
        let now = micros_since(self.epoch);
        let due = self.next_carrier.load(Ordering::Acquire);
        let next = now.saturating_add(micros(self.notify_interval));
        let claimed = now >= due
            && self
                .next_carrier
                .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        if claimed {
            self.uncovered.store(false, Ordering::Release);
        }
        Carrier { channel: claimed.then_some(self.channel.as_str()) }
    }

    /// Called after an append committed: wakes local readers, and leaves remote ones to the
    /// notification the append carried or, if it carried none, to the next carrier or the
    /// background task.
    pub(crate) fn appended(&self, pool: &PgPool, carrier: &Carrier<'_>) {
        self.generation.send_modify(|generation| *generation = generation.wrapping_add(1));
        if carrier.channel.is_none() {
            self.uncover(pool);
        }
    }

    /// Called when an append wrote nothing or its outcome is unknown. If it had claimed the
    /// notification, the appends its claim covered are uncovered again.
    pub(crate) fn failed(&self, pool: &PgPool, carrier: &Carrier<'_>) {
        if carrier.channel.is_some() {
            self.uncover(pool);
        }
    }

    /// Marks appends as not covered by any notification and makes sure the background task will
    /// send one if no carrier comes first (within two intervals of the last claim).
    fn uncover(&self, pool: &PgPool) {
        self.uncovered.store(true, Ordering::Release);
        self.notifier.get_or_init(|| {
            let pool = pool.clone();
            let (channel, outgoing) = (self.channel.clone(), Arc::clone(&self.outgoing));
            let (next_carrier, uncovered) =
                (Arc::clone(&self.next_carrier), Arc::clone(&self.uncovered));
            let (epoch, interval) = (self.epoch, micros(self.notify_interval));
            tokio::spawn(async move {
                loop {
                    outgoing.notified().await;
                    // Leave the mark to a carrier while the writers keep coming: the first
                    // append after `next_carrier` claims it. Send only when none has.
                    loop {
                        let now = micros_since(epoch);
                        let give_up_at =
                            next_carrier.load(Ordering::Acquire).saturating_add(interval);
                        if now < give_up_at {
                            tokio::time::sleep(Duration::from_micros(give_up_at - now)).await;
                            continue;
                        }
                        if !uncovered.swap(false, Ordering::AcqRel) {
                            break;
                        }
                        next_carrier.store(now.saturating_add(interval), Ordering::Release);
                        if let Err(error) =
                            sqlx::query(crate::sql::NOTIFY).bind(&channel).execute(&pool).await
                        {
                            tracing::warn!(%error, "es.notify: NOTIFY failed; remote readers fall back to polling");
                        }
                    }
                }
            })
            .abort_handle()
        });
        self.outgoing.notify_one();
    }

    /// A receiver that changes whenever events may have been appended; starts the LISTEN task.
    pub(crate) fn subscribe(&self, pool: &PgPool) -> watch::Receiver<u64> {
        self.listener.get_or_init(|| {
            let (pool, channel, generation) =
                (pool.clone(), self.channel.clone(), self.generation.clone());
            tokio::spawn(listen(pool, channel, generation)).abort_handle()
        });
        self.generation.subscribe()
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        self.notifier.get().into_iter().chain(self.listener.get()).for_each(AbortHandle::abort);
    }
}

async fn listen(pool: PgPool, channel: String, generation: watch::Sender<u64>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "es.notify: LISTEN connection failed; retrying in 1 s, polling meanwhile");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(&channel).await {
            tracing::warn!(%error, "es.notify: LISTEN failed; retrying in 1 s, polling meanwhile");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // After (re)connecting, wake everyone once: notifications may have been missed meanwhile.
        generation.send_modify(|generation| *generation = generation.wrapping_add(1));
        while listener.recv().await.is_ok() {
            generation.send_modify(|generation| *generation = generation.wrapping_add(1));
        }
        tracing::debug!("es.notify: LISTEN connection lost; reconnecting");
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn micros_since(epoch: Instant) -> u64 {
    micros(epoch.elapsed())
}
