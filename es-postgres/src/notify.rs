//! Waking waiting readers: in process at once, across processes through LISTEN/NOTIFY.
//!
//! A `NOTIFY` inside every append transaction would make commits queue on PostgreSQL's notify lock,
//! so appends only signal a background task that sends one `pg_notify` for however many appends
//! happened meanwhile, at most one per `notify_interval` (a few milliseconds: a sequential writer
//! then pays for one NOTIFY per interval, not one per append). Readers in the same process are woken directly; readers elsewhere within a
//! round trip; and every waiter also polls, so a lost notification only delays it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;

pub(crate) struct Wakeups {
    notify_interval: Duration,
    channel: String,
    /// Bumped on every local append and every notification received.
    generation: watch::Sender<u64>,
    outgoing: Arc<Notify>,
    notifier: OnceLock<AbortHandle>,
    listener: OnceLock<AbortHandle>,
}

impl Wakeups {
    pub(crate) fn new(schema: &str, notify_interval: Duration) -> Self {
        Self {
            notify_interval,
            channel: format!("es_events_{schema}"),
            generation: watch::Sender::new(0),
            outgoing: Arc::new(Notify::new()),
            notifier: OnceLock::new(),
            listener: OnceLock::new(),
        }
    }

    /// The channel `NOTIFY` goes to.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Called after an append committed.
    pub(crate) fn appended(&self, pool: &PgPool) {
        self.generation.send_modify(|generation| *generation = generation.wrapping_add(1));
        self.notifier.get_or_init(|| {
            let (pool, channel, outgoing) = (pool.clone(), self.channel.clone(), self.outgoing.clone());
            let interval = self.notify_interval;
            tokio::spawn(async move {
                loop {
                    outgoing.notified().await;
                    if let Err(error) = sqlx::query(crate::sql::NOTIFY).bind(&channel).execute(&pool).await {
                        tracing::warn!(%error, "es.notify: NOTIFY failed; remote readers fall back to polling");
                    }
                    // Appends during the pause leave one permit: one NOTIFY covers them all.
                    tokio::time::sleep(interval).await;
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
