//! The one loop that keeps a runner going: passes, then waiting for new events, until shutdown;
//! optionally only while holding the projection's lock, optionally restarting after a failed pass.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use super::{CatchUp, Known, ProjectionRunner, RunnerError, RunnerOptions};
use crate::projection::{
    CheckpointStore, DeadLetterStore, Projection, ProjectionLock, ProjectionLocks,
};
use crate::{EventStore, Position};

/// What the drive loop needs of a runner: passes, and where to wait for new events. Implemented
/// by [`ProjectionRunner`] and the transactional runner, so both keep going the same way.
pub(crate) trait Passes {
    /// The store the runner reads (and waits on).
    type Store: EventStore;

    /// One catch-up pass.
    fn pass(&mut self) -> impl Future<Output = Result<CatchUp, RunnerError>>;

    /// The store.
    fn events(&self) -> &Self::Store;

    /// The name the lock and the logs go under.
    fn lock_name(&self) -> &crate::ProjectionName;

    /// The options (retry delay, idle wait).
    fn drive_options(&self) -> &RunnerOptions;

    /// Forgets what the runner believes of its stored checkpoint (after acquiring the lock:
    /// another owner may have moved it).
    fn forget_checkpoint(&mut self);
}

impl<P, S, B> Passes for ProjectionRunner<P, S, B>
where
    P: Projection,
    S: EventStore + CheckpointStore + DeadLetterStore,
    B: super::BatchStrategy<P>,
{
    type Store = S;

    fn pass(&mut self) -> impl Future<Output = Result<CatchUp, RunnerError>> {
        self.catch_up()
    }

    fn events(&self) -> &S {
        &self.store
    }

    fn lock_name(&self) -> &crate::ProjectionName {
        &self.name
    }

    fn drive_options(&self) -> &RunnerOptions {
        &self.options
    }

    fn forget_checkpoint(&mut self) {
        self.checkpoint = Known::Unknown;
    }
}

/// The longest pause between failed passes when restarting after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How [`drive`] keeps going.
struct Drive<'l, L> {
    /// Run only while holding this lock set's lock on the projection's name.
    locks: Option<&'l L>,
    /// After a failed pass (or a failed wait), pause and try again instead of returning the error.
    restart: bool,
}

/// What to do after a pass.
enum Next {
    /// Wait for events after this checkpoint, then pass again.
    Wait(Position),
    /// Pause (a failure, with restarts), then pass again.
    Pause,
    /// The lock was lost: wait to get it back.
    Reacquire,
}

/// The four ways to keep a runner going, the same on every runner that implements [`Passes`]:
/// written once, expanded in each runner's `impl` block.
macro_rules! drive_methods {
    () => {
        /// Catches up, then follows the log, woken by the store when events commit, until `shutdown`
        /// completes (it is checked between passes, so a pass always finishes and saves). Returns the
        /// first failure.
        pub async fn run_until(
            &mut self,
            shutdown: impl ::std::future::Future<Output = ()>,
        ) -> ::std::result::Result<(), crate::projection::RunnerError> {
            crate::projection::runner::drive::until(self, shutdown).await
        }

        /// Like [`run_until`](Self::run_until), but a failing pass does not end it: `on_pass` sees
        /// every pass's outcome (to publish progress or a health state), and after a failure the
        /// runner waits (from `retry_delay`, doubling, at most 30 s) and tries again. For services
        /// that must keep a read model live through transient store or handler failures.
        pub async fn follow(
            &mut self,
            shutdown: impl ::std::future::Future<Output = ()>,
            on_pass: impl FnMut(
                &::std::result::Result<crate::projection::CatchUp, crate::projection::RunnerError>,
            ),
        ) {
            crate::projection::runner::drive::following(self, shutdown, on_pass).await;
        }

        /// Like [`run_until`](Self::run_until), but only while holding the projection's lock: waits
        /// (polling every `idle_wait`) until it gets the lock, runs, checks after every pass that it
        /// still holds it, and goes back to waiting if it lost it. The checkpoint is reloaded after
        /// each acquisition (another owner may have moved it); its compare-and-set stays the last word
        /// if two owners ever overlap. Returns the first failure.
        pub async fn run_exclusive<L: crate::projection::ProjectionLocks>(
            &mut self,
            locks: &L,
            shutdown: impl ::std::future::Future<Output = ()>,
        ) -> ::std::result::Result<(), crate::projection::RunnerError> {
            crate::projection::runner::drive::exclusive(self, locks, shutdown).await
        }

        /// [`run_exclusive`](Self::run_exclusive) that restarts after failures like
        /// [`follow`](Self::follow): for a service's single active worker of a projection (a
        /// process manager, say) that must outlive transient failures. The lock is checked after
        /// every pass, failed or not.
        pub async fn follow_exclusive<L: crate::projection::ProjectionLocks>(
            &mut self,
            locks: &L,
            shutdown: impl ::std::future::Future<Output = ()>,
            on_pass: impl FnMut(
                &::std::result::Result<crate::projection::CatchUp, crate::projection::RunnerError>,
            ),
        ) {
            crate::projection::runner::drive::following_exclusive(self, locks, shutdown, on_pass)
                .await;
        }
    };
}
pub(crate) use drive_methods;

impl<P, S, B> ProjectionRunner<P, S, B>
where
    P: Projection,
    S: EventStore + CheckpointStore + DeadLetterStore,
    B: super::BatchStrategy<P>,
{
    drive_methods!();
}

/// The loop behind the four: acquire (if locked), pass, check the lock, wait or pause, until
/// shutdown. Without restarts the first failure ends it.
async fn drive<R: Passes, L: ProjectionLocks>(
    runner: &mut R,
    how: Drive<'_, L>,
    shutdown: impl Future<Output = ()>,
    mut on_pass: impl FnMut(&Result<CatchUp, RunnerError>),
) -> Result<(), RunnerError> {
    let mut shutdown = pin!(shutdown);
    let mut backoff = runner.drive_options().retry_delay;
    loop {
        let mut lock = match how.locks {
            None => None,
            Some(locks) => {
                let acquired = tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    acquired = acquire(runner, locks, how.restart) => acquired?,
                };
                tracing::info!(projection = %runner.lock_name(), "es.projection: lock acquired; running");
                // Another owner may have moved the checkpoint while this runner waited.
                runner.forget_checkpoint();
                Some(acquired)
            }
        };
        loop {
            let pass = runner.pass().await;
            on_pass(&pass);
            let next = match pass {
                Ok(caught_up) => {
                    backoff = runner.drive_options().retry_delay;
                    Next::Wait(caught_up.checkpoint)
                }
                Err(error) if how.restart => {
                    tracing::error!(projection = %runner.lock_name(), %error, "es.projection: pass failed; retrying");
                    Next::Pause
                }
                Err(error) => return Err(error),
            };
            let lost = match &mut lock {
                Some(lock) => !lock.is_held().await,
                None => false,
            };
            let next = if lost { Next::Reacquire } else { next };
            match next {
                Next::Wait(checkpoint) => {
                    let waited = tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        waited = runner.events().wait_for_events(checkpoint, runner.drive_options().idle_wait) => waited,
                    };
                    match waited {
                        Ok(_) => continue,
                        Err(error) if how.restart => {
                            tracing::warn!(projection = %runner.lock_name(), %error, "es.projection: waiting for events failed");
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
                Next::Pause => {}
                Next::Reacquire => {
                    tracing::warn!(projection = %runner.lock_name(), "es.projection: lock lost; waiting to get it back");
                    break;
                }
            }
            let pause = backoff;
            backoff = backoff.saturating_mul(2).clamp(Duration::from_millis(1), MAX_BACKOFF);
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Waits (polling every `idle_wait`) until this runner holds the projection's lock. A failure
/// to ask ends the wait unless `restart`, when it is logged and asked again.
async fn acquire<R: Passes, L: ProjectionLocks>(
    runner: &R,
    locks: &L,
    restart: bool,
) -> Result<L::Lock, RunnerError> {
    loop {
        match locks.try_lock(runner.lock_name()).await {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) => {}
            Err(error) if restart => {
                tracing::warn!(projection = %runner.lock_name(), %error, "es.projection: asking for the lock failed");
            }
            Err(error) => return Err(error.into()),
        }
        tokio::time::sleep(runner.drive_options().idle_wait).await;
    }
}

/// Passes until shutdown; the first failure ends it.
pub(crate) async fn until<R: Passes>(
    runner: &mut R,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunnerError> {
    drive::<R, NoLocks>(runner, Drive { locks: None, restart: false }, shutdown, |_| {}).await
}

/// Passes until shutdown, through failures.
pub(crate) async fn following<R: Passes>(
    runner: &mut R,
    shutdown: impl Future<Output = ()>,
    on_pass: impl FnMut(&Result<CatchUp, RunnerError>),
) {
    // With restarts, only shutdown ends the loop.
    let _ =
        drive::<R, NoLocks>(runner, Drive { locks: None, restart: true }, shutdown, on_pass).await;
}

/// Passes while holding the lock, until shutdown; the first failure ends it.
pub(crate) async fn exclusive<R: Passes, L: ProjectionLocks>(
    runner: &mut R,
    locks: &L,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunnerError> {
    drive(runner, Drive { locks: Some(locks), restart: false }, shutdown, |_| {}).await
}

/// Passes while holding the lock, until shutdown, through failures.
pub(crate) async fn following_exclusive<R: Passes, L: ProjectionLocks>(
    runner: &mut R,
    locks: &L,
    shutdown: impl Future<Output = ()>,
    on_pass: impl FnMut(&Result<CatchUp, RunnerError>),
) {
    let _ = drive(runner, Drive { locks: Some(locks), restart: true }, shutdown, on_pass).await;
}

/// The lock type of an unlocked drive: never asked for.
#[derive(Clone, Copy)]
pub(crate) struct NoLocks;

/// The lock of [`NoLocks`]: never held.
pub(crate) struct NoLock;

impl ProjectionLock for NoLock {
    async fn is_held(&mut self) -> bool {
        true
    }
}

impl ProjectionLocks for NoLocks {
    type Lock = NoLock;

    async fn try_lock(
        &self,
        _: &crate::ProjectionName,
    ) -> Result<Option<NoLock>, crate::StoreError> {
        Ok(Some(NoLock))
    }
}
