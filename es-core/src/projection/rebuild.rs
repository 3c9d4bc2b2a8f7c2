//! Side-by-side rebuilds: a new version of a read model builds from the beginning of the log
//! while the old one keeps serving; the switch happens once the new one has caught up.

use super::{
    CatchUp, CheckpointStore, DeadLetterStore, Projection, ProjectionRunner, RunnerError,
    RunnerOptions,
};
use crate::{EventStore, ProjectionName};

/// A replacement read model building beside the live one, under the staging checkpoint
/// `"{NAME}.rebuild"`.
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
pub struct Rebuild<P, S> {
    runner: ProjectionRunner<P, S>,
}

impl<P: Projection, S: EventStore + CheckpointStore + DeadLetterStore> Rebuild<P, S> {
    /// The staging checkpoint name of projection `P`.
    pub fn staging_name() -> ProjectionName {
        // A projection's own name is at most 64 bytes (checked at compile time), so the suffixed
        // name is within the 128-byte limit.
        P::projection_name().suffixed("rebuild").unwrap_or_else(|error| {
            unreachable!("{error}: a checked name leaves room for a suffix")
        })
    }

    /// Prepares a rebuild of `projection` (a fresh, empty read model) from the beginning of the log.
    pub async fn start(
        projection: P,
        store: S,
        options: RunnerOptions,
    ) -> Result<Self, RunnerError> {
        let name = Self::staging_name();
        store.reset_checkpoint(&name).await?;
        let runner = ProjectionRunner::new(projection, store).with_options(options).with_name(name);
        Ok(Self { runner })
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
    pub async fn promote(mut self) -> Result<ProjectionRunner<P, S>, RunnerError> {
        let last = self.runner.catch_up().await?;
        let store = self.runner.store().clone();
        let live_name = P::projection_name();
        let live = store.load_checkpoint(&live_name).await?;
        if live != Some(last.checkpoint) {
            store.save_checkpoint(&live_name, live, last.checkpoint).await?;
        }
        store.reset_checkpoint(&Self::staging_name()).await?;
        tracing::info!(projection = P::NAME, checkpoint = %last.checkpoint, "es.projection: rebuilt model promoted");
        Ok(self.runner.with_name(live_name))
    }
}
