//! Side-by-side rebuilds: a new version of a read model builds from the beginning of the log
//! while the old one keeps serving; the switch happens once the new one has caught up.

use std::future::Future;
use std::marker::PhantomData;

use super::{
    CatchUp, CheckpointStore, DeadLetterStore, Projection, ProjectionRunner, RunnerError,
    RunnerOptions, TransactionalProjection, TransactionalRunner, TransactionalStore,
};
use crate::{EventStore, ProjectionName};

/// A replacement read model building beside the live one, under the staging checkpoint
/// `"{NAME}.rebuild"`: a [`Projection`] ([`Rebuild::start`]) or a [`TransactionalProjection`]
/// ([`Rebuild::start_transactional`], whose promoted runner is a [`TransactionalRunner`]).
///
/// 1. [`Rebuild::start`] clears any staging checkpoint an abandoned rebuild left.
/// 2. [`Rebuild::build`] catches up pass after pass (the live runner goes on serving and moving
///    its own checkpoint) until a pass finds the log caught up.
/// 3. Stop the live runner (or let its task end), then [`Rebuild::promote`]: a last pass over
///    what was appended meanwhile, the staging checkpoint moves to the live name, and the runner
///    you get back runs the new model under it. Serve its read model from then on.
///
/// Nothing the live model serves changes while the new one builds; if the build fails, drop the
/// `Rebuild` and the live model goes on as before.
///
/// ```
/// use es_core::projection::{ProjectionRunner, Rebuild, RunnerOptions};
/// # async fn demo<P: es_core::Projection + Default, S>(store: S, live: tokio::task::JoinHandle<()>)
/// #     -> Result<(), es_core::projection::RunnerError>
/// # where S: es_core::EventStore + es_core::projection::CheckpointStore + es_core::projection::DeadLetterStore {
/// let mut next = Rebuild::start(P::default(), store, RunnerOptions::default()).await?;
/// next.build(|pass| tracing::info!(handled = pass.handled, "rebuilding")).await?;
/// live.abort(); // stop the old version's runner
/// let runner: ProjectionRunner<P, S> = next.promote().await?;
/// // serve `runner.projection()` and run `runner` from here on
/// # Ok(()) }
/// ```
pub struct Rebuild<P, S, R = ProjectionRunner<P, S>> {
    runner: R,
    kind: PhantomData<fn() -> (P, S)>,
}

/// What a rebuild drives: [`ProjectionRunner`], or [`TransactionalRunner`] for a
/// [`TransactionalProjection`] (whose new model writes to tables of its own, beside the live
/// model's, in the same transactions as the staging checkpoint).
mod sealed {
    use std::future::Future;

    use crate::ProjectionName;
    use crate::projection::{CatchUp, CheckpointStore, RunnerError};

    pub trait RebuildRunner: Sized {
        type Projection;
        type Store: CheckpointStore;
        /// The live name of the projection.
        fn live_name() -> ProjectionName;
        fn projection(&self) -> &Self::Projection;
        fn store(&self) -> &Self::Store;
        fn catch_up(&mut self) -> impl Future<Output = Result<CatchUp, RunnerError>> + Send;
        #[must_use]
        fn with_name(self, name: ProjectionName) -> Self;
    }
}

use sealed::RebuildRunner;

impl<P, S> RebuildRunner for ProjectionRunner<P, S>
where
    P: Projection,
    S: EventStore + CheckpointStore + DeadLetterStore,
{
    type Projection = P;
    type Store = S;
    fn live_name() -> ProjectionName {
        P::projection_name()
    }
    fn projection(&self) -> &P {
        ProjectionRunner::projection(self)
    }
    fn store(&self) -> &S {
        ProjectionRunner::store(self)
    }
    fn catch_up(&mut self) -> impl Future<Output = Result<CatchUp, RunnerError>> + Send {
        ProjectionRunner::catch_up(self)
    }
    fn with_name(self, name: ProjectionName) -> Self {
        ProjectionRunner::with_name(self, name)
    }
}

impl<P, S> RebuildRunner for TransactionalRunner<P, S>
where
    S: EventStore + TransactionalStore + DeadLetterStore,
    P: TransactionalProjection<S::Connection>,
{
    type Projection = P;
    type Store = S;
    fn live_name() -> ProjectionName {
        P::projection_name()
    }
    fn projection(&self) -> &P {
        TransactionalRunner::projection(self)
    }
    fn store(&self) -> &S {
        TransactionalRunner::store(self)
    }
    fn catch_up(&mut self) -> impl Future<Output = Result<CatchUp, RunnerError>> + Send {
        TransactionalRunner::catch_up(self)
    }
    fn with_name(self, name: ProjectionName) -> Self {
        TransactionalRunner::with_name(self, name)
    }
}

/// The staging checkpoint name of the projection named `live`.
fn staging_name(live: &ProjectionName) -> ProjectionName {
    // A projection's own name is at most 64 bytes (checked at compile time), so the suffixed
    // name is within the 128-byte limit.
    live.suffixed("rebuild")
        .unwrap_or_else(|error| unreachable!("{error}: a checked name leaves room for a suffix"))
}

impl<P: Projection, S: EventStore + CheckpointStore + DeadLetterStore> Rebuild<P, S> {
    /// The staging checkpoint name of projection `P`.
    pub fn staging_name() -> ProjectionName {
        staging_name(&P::projection_name())
    }

    /// Prepares a rebuild of `projection` (a fresh, empty read model) from the beginning of the log.
    pub async fn start(
        projection: P,
        store: S,
        options: RunnerOptions,
    ) -> Result<Self, RunnerError> {
        let runner = ProjectionRunner::new(projection, store).with_options(options);
        Self::staged(runner).await
    }
}

impl<P, S> Rebuild<P, S, TransactionalRunner<P, S>>
where
    S: EventStore + TransactionalStore + DeadLetterStore,
    P: TransactionalProjection<S::Connection>,
{
    /// Prepares a rebuild of a transactional projection from the beginning of the log. The new
    /// model must write where the live one does not (tables of its own, a version suffix): both
    /// run at once until [`promote`](Self::promote). Each of its batches commits with the staging
    /// checkpoint, so a crash mid-build resumes where it was, as the live runner does.
    pub async fn start_transactional(
        projection: P,
        store: S,
        options: RunnerOptions,
    ) -> Result<Self, RunnerError> {
        let runner = TransactionalRunner::new(projection, store).with_options(options);
        Self::staged(runner).await
    }
}

impl<P, S, R> Rebuild<P, S, R>
where
    R: RebuildRunner<Projection = P, Store = S>,
    S: CheckpointStore,
{
    /// Clears any staging checkpoint an abandoned rebuild left and names the runner after it.
    async fn staged(runner: R) -> Result<Self, RunnerError> {
        let name = staging_name(&R::live_name());
        runner.store().reset_checkpoint(&name).await?;
        Ok(Self { runner: runner.with_name(name), kind: PhantomData })
    }

    /// The new read model, as far as it has been built.
    pub fn projection(&self) -> &P {
        self.runner.projection()
    }

    /// Catches up until a pass finds nothing more to handle, calling `progress` after each pass.
    /// Returns the last pass.
    pub async fn build(
        &mut self,
        mut progress: impl FnMut(&CatchUp),
    ) -> Result<CatchUp, RunnerError> {
        loop {
            let pass = self.runner.catch_up().await?;
            progress(&pass);
            if pass.handled == 0 {
                return Ok(pass);
            }
        }
    }

    /// The switch, once the live runner has stopped: a last pass, then the live checkpoint is set
    /// to the new model's and the staging checkpoint removed. Returns the runner of the new
    /// model under the live name.
    pub async fn promote(mut self) -> Result<R, RunnerError> {
        let last = self.runner.catch_up().await?;
        let live_name = R::live_name();
        let store = self.runner.store();
        let live = store.load_checkpoint(&live_name).await?;
        if live != Some(last.checkpoint) {
            store.save_checkpoint(&live_name, live, last.checkpoint).await?;
        }
        store.reset_checkpoint(&staging_name(&live_name)).await?;
        tracing::info!(projection = %live_name, checkpoint = %last.checkpoint, "es.projection: rebuilt model promoted");
        Ok(self.runner.with_name(live_name))
    }
}
