//! An in-memory read model being served: a runner task keeps it up to date, queries read it,
//! callers can wait until it has reached a position (read-your-writes), and a rebuild replaces it
//! side by side without a moment of empty answers.

use std::sync::Arc;
use std::time::Duration;

use es::projection::{
    CheckpointStore, DeadLetterStore, ProjectionRunner, Rebuild, RunnerError, RunnerOptions,
};
use es::{EventStore, Position, Projection};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// What operators see of a projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectionReport {
    /// Its name.
    pub name: String,
    /// `running`, `rebuilding`, `failing` (the last pass failed; it is retried), `stopped` (on
    /// request) or `dead` (its task ended unexpectedly; the service is not ready).
    pub state: &'static str,
    /// Its checkpoint.
    pub checkpoint: u64,
    /// The log's head.
    pub head: u64,
    /// `head - checkpoint`.
    pub lag: u64,
    /// The last error, if the last pass failed.
    pub last_error: Option<String>,
}

struct Running<P, S> {
    stop: oneshot::Sender<()>,
    task: JoinHandle<ProjectionRunner<P, S>>,
}

/// A read model `P` (a cheap, shared handle) kept up to date by its runner over `S`.
pub struct Served<P, S> {
    model: RwLock<P>,
    store: S,
    options: RunnerOptions,
    progress: watch::Sender<Position>,
    caught_up: std::sync::atomic::AtomicBool,
    state: Mutex<(&'static str, Option<String>)>,
    running: tokio::sync::Mutex<Option<Running<P, S>>>,
    /// Set before a runner is stopped on purpose, so its ending is not reported as a death.
    stopping: std::sync::atomic::AtomicBool,
}

/// Lives as long as a runner's task: when the task ends without being asked to (a panic outside
/// the handlers, a bug), dropping it marks the view dead, so status and readiness tell the truth.
struct Watchdog<P, S>(Arc<Served<P, S>>);

impl<P, S> Drop for Watchdog<P, S> {
    fn drop(&mut self) {
        if !self.0.stopping.load(std::sync::atomic::Ordering::Acquire) {
            tracing::error!("bank.projection: a view's runner task ended unexpectedly");
            *self.0.state.lock() =
                ("dead", Some("the runner task ended unexpectedly; restart the service".into()));
        }
    }
}

impl<P, S> Served<P, S>
where
    P: Projection + Clone + Sync,
    S: EventStore + CheckpointStore + DeadLetterStore,
{
    /// Starts following the log from `store`'s checkpoint of `P` (none: from the beginning).
    pub async fn start(model: P, store: S, options: RunnerOptions) -> Arc<Self> {
        let served = Arc::new(Self {
            model: RwLock::new(model.clone()),
            store: store.clone(),
            options: options.clone(),
            progress: watch::Sender::new(Position::BEGINNING),
            caught_up: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(("running", None)),
            running: tokio::sync::Mutex::new(None),
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        let runner = ProjectionRunner::new(model, store).with_options(options);
        served.spawn(runner).await;
        served
    }

    /// The model as served now.
    pub fn model(&self) -> P {
        self.model.read().clone()
    }

    /// The checkpoint reached.
    pub fn checkpoint(&self) -> Position {
        *self.progress.borrow()
    }

    /// Whether the model has caught up with the log at least once since it started.
    pub fn has_caught_up(&self) -> bool {
        self.caught_up.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Its state (`running`, `rebuilding`, `failing`, `stopped`, `dead`) and last error, as
    /// [`report`](Self::report) gives them, without reading the store.
    pub fn state(&self) -> (&'static str, Option<String>) {
        self.state.lock().clone()
    }

    /// What keeps the view from serving (`None`: it serves): not caught up yet, failing, dead.
    pub fn health(&self) -> Option<String> {
        let (state, last_error) = self.state.lock().clone();
        match state {
            "dead" | "failing" | "stopped" => Some(format!(
                "is {state}{}",
                last_error.map(|error| format!(": {error}")).unwrap_or_default()
            )),
            _ if !self.has_caught_up() => Some("is still catching up".to_owned()),
            _ => None,
        }
    }

    /// Waits until the model has applied everything up to `position`; `false` on timeout.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        let mut progress = self.progress.subscribe();
        tokio::time::timeout(timeout, progress.wait_for(|reached| *reached >= position))
            .await
            .is_ok_and(|reached| reached.is_ok())
    }

    /// The projection's state, checkpoint, head and lag.
    pub async fn report(&self) -> Result<ProjectionReport, es::StoreError> {
        let head = self.store.head_position().await?;
        let checkpoint = self.checkpoint();
        let (state, last_error) = self.state();
        Ok(ProjectionReport {
            name: P::NAME.to_owned(),
            state,
            checkpoint: checkpoint.value(),
            head: head.value(),
            lag: head.value().saturating_sub(checkpoint.value()),
            last_error,
        })
    }

    /// Builds `fresh` beside the served model, then switches to it: the old model answers queries
    /// until the new one has caught up. Returns how many events the new model handled.
    pub async fn rebuild(self: &Arc<Self>, fresh: P) -> Result<u64, RunnerError> {
        let mut running = self.running.lock().await;
        self.state.lock().0 = "rebuilding";
        let mut next = Rebuild::start(fresh, self.store.clone(), self.options.clone()).await?;
        let mut handled = 0;
        let built = next.build(|pass| handled += pass.handled).await;
        if let Err(error) = built {
            self.state.lock().0 = "running";
            return Err(error);
        }
        // The switch: stop the old runner, promote the new one, serve its model.
        if let Some(old) = running.take() {
            let _ = self.halt(old).await;
        }
        let runner = next.promote().await?;
        *self.model.write() = runner.projection().clone();
        self.progress.send_replace(
            runner.store().load_checkpoint(runner.name()).await?.unwrap_or(Position::BEGINNING),
        );
        *running = Some(self.follow(runner));
        self.state.lock().0 = "running";
        tracing::info!(
            projection = P::NAME,
            handled,
            "bank.projection: rebuilt side by side and switched"
        );
        Ok(handled)
    }

    /// Hands the view's parked events (all, or the one at `position`) to it again, between two
    /// passes of its runner. Returns how many were replayed and how many remain parked.
    pub async fn replay_parked(
        self: &Arc<Self>,
        position: Option<Position>,
    ) -> Result<(u64, u64), String> {
        let mut running = self.running.lock().await;
        let Some(old) = running.take() else {
            return Err("the view is stopped".into());
        };
        let Ok(mut runner) = self.halt(old).await else {
            *self.state.lock() = ("dead", Some("the runner task ended unexpectedly".into()));
            return Err("the view's runner task ended unexpectedly".into());
        };
        let replayed = runner.replay_parked_at(position).await;
        *running = Some(self.follow(runner));
        replayed.map_err(|error| error.to_string())
    }

    /// Stops the runner (after its current pass).
    pub async fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
        if let Some(old) = self.running.lock().await.take() {
            let _ = old.stop.send(());
            let _ = old.task.await;
        }
        self.state.lock().0 = "stopped";
    }

    /// Stops a running runner on purpose (its ending is not reported as a death) and returns it
    /// once its current pass is done.
    async fn halt(
        &self,
        old: Running<P, S>,
    ) -> Result<ProjectionRunner<P, S>, tokio::task::JoinError> {
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
        let _ = old.stop.send(());
        let joined = old.task.await;
        self.stopping.store(false, std::sync::atomic::Ordering::Release);
        joined
    }

    async fn spawn(self: &Arc<Self>, runner: ProjectionRunner<P, S>) {
        let running = self.follow(runner);
        *self.running.lock().await = Some(running);
    }

    fn follow(self: &Arc<Self>, mut runner: ProjectionRunner<P, S>) -> Running<P, S> {
        let (stop, stopped) = oneshot::channel::<()>();
        let served = Arc::clone(self);
        let task = tokio::spawn(async move {
            let watchdog = Watchdog(served);
            let served = &watchdog.0;
            let shutdown = async {
                let _ = stopped.await;
            };
            runner
                .follow(shutdown, |pass| match pass {
                    Ok(pass) => {
                        served.progress.send_replace(pass.checkpoint);
                        served.caught_up.store(true, std::sync::atomic::Ordering::Release);
                        let mut state = served.state.lock();
                        // A view that recovers leaves the failing state (a rebuild keeps its own).
                        if state.0 == "failing" {
                            state.0 = "running";
                        }
                        state.1 = None;
                    }
                    Err(error) => *served.state.lock() = ("failing", Some(error.to_string())),
                })
                .await;
            drop(watchdog);
            runner
        });
        Running { stop, task }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use es::MultiTenantStore;
    use es::projection::VolatileCheckpoints;

    use super::*;
    use crate::bank::read_models::Balances;

    /// A view whose runner task ends without being asked to (here: aborted, as a panic outside
    /// the handlers would end it) reports itself dead, with an error, and is not healthy; a view
    /// stopped on purpose reports `stopped`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runner_task_that_dies_is_reported_dead() {
        let store = es::memory::MemoryStore::new().tenant(es::TenantId::default());
        let views = VolatileCheckpoints::new(store);
        let options = RunnerOptions::default().idle_wait(Duration::from_millis(20));
        let served = Served::start(Balances::default(), views, options).await;
        for _ in 0..200 {
            if served.has_caught_up() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(served.health(), None, "a live, caught-up view is healthy");
        served.running.lock().await.as_ref().expect("a running task").task.abort();
        for _ in 0..200 {
            if served.state.lock().0 == "dead" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let report = served.report().await.unwrap();
        assert_eq!(report.state, "dead");
        assert!(report.last_error.is_some(), "a dead view says why: {report:?}");
        assert!(served.health().is_some_and(|problem| problem.contains("dead")));

        let other = Served::start(
            Balances::default(),
            VolatileCheckpoints::new(
                es::memory::MemoryStore::new().tenant(es::TenantId::default()),
            ),
            RunnerOptions::default().idle_wait(Duration::from_millis(20)),
        )
        .await;
        other.stop().await;
        assert_eq!(other.report().await.unwrap().state, "stopped");
    }
}
