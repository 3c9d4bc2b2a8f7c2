//! What the application lets the console do to its projections, and the lag history it keeps.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use es_core::{Position, ProjectionName};

/// An action's outcome: a line for the operator, or what went wrong.
pub type ActionResult = Result<String, String>;

type Action = Arc<dyn Fn() -> BoxFuture<'static, ActionResult> + Send + Sync>;
type Replay = Arc<dyn Fn(Option<Position>) -> BoxFuture<'static, ActionResult> + Send + Sync>;
type Status = Arc<dyn Fn() -> BoxFuture<'static, ProjectionStatus> + Send + Sync>;

/// What the application reports of a projection whose checkpoint the store does not hold (an
/// in-memory view, say).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProjectionStatus {
    /// A word for its state (`running`, `rebuilding`, `stopped`, ...).
    pub state: String,
    /// Its checkpoint: the last position it handled.
    pub checkpoint: Option<Position>,
    /// Its last error, if any.
    pub last_error: Option<String>,
}

impl ProjectionStatus {
    /// A status.
    pub fn new(state: impl Into<String>, checkpoint: Option<Position>) -> Self {
        Self { state: state.into(), checkpoint, last_error: None }
    }

    /// With its last error.
    #[must_use]
    pub fn last_error(mut self, error: Option<String>) -> Self {
        self.last_error = error;
        self
    }
}

/// A projection the console shows, with the actions the application offers for it.
///
/// Without a [`status`](Self::status) hook the console reads the projection's checkpoint from
/// the store; without an action hook, that action's button is not shown.
///
/// ```
/// use es_console::ProjectionControl;
/// use es_core::ProjectionName;
/// let control = ProjectionControl::new(ProjectionName::new("balances")?)
///     .rebuild(|| async { Ok("rebuilt: 1,204 events".to_owned()) })
///     .replay_parked(|position| async move {
///         Ok(format!("replayed {}", position.map_or("all".to_owned(), |p| p.to_string())))
///     });
/// assert_eq!(control.name().as_str(), "balances");
/// # Ok::<(), es_core::IdError>(())
/// ```
#[derive(Clone)]
pub struct ProjectionControl {
    name: ProjectionName,
    pub(crate) status: Option<Status>,
    pub(crate) rebuild: Option<Action>,
    pub(crate) reset: Option<Action>,
    pub(crate) replay: Option<Replay>,
    pub(crate) history: Arc<LagHistory>,
}

impl fmt::Debug for ProjectionControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectionControl")
            .field("name", &self.name)
            .field("status", &self.status.is_some())
            .field("rebuild", &self.rebuild.is_some())
            .field("reset", &self.reset.is_some())
            .field("replay_parked", &self.replay.is_some())
            .finish_non_exhaustive()
    }
}

impl ProjectionControl {
    /// A projection, shown read-only until actions are added.
    pub fn new(name: ProjectionName) -> Self {
        Self {
            name,
            status: None,
            rebuild: None,
            reset: None,
            replay: None,
            history: Arc::new(LagHistory::default()),
        }
    }

    /// The projection's name.
    pub fn name(&self) -> &ProjectionName {
        &self.name
    }

    /// Reports the projection's state and checkpoint (instead of the store's checkpoint).
    #[must_use]
    pub fn status<F, Fut>(mut self, status: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ProjectionStatus> + Send + 'static,
    {
        self.status = Some(Arc::new(move || Box::pin(status())));
        self
    }

    /// Rebuilds the projection side by side and switches to it (admin, after a confirmation).
    #[must_use]
    pub fn rebuild<F, Fut>(mut self, rebuild: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ActionResult> + Send + 'static,
    {
        self.rebuild = Some(Arc::new(move || Box::pin(rebuild())));
        self
    }

    /// Resets the projection to the start of the log (admin, after a confirmation).
    #[must_use]
    pub fn reset<F, Fut>(mut self, reset: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ActionResult> + Send + 'static,
    {
        self.reset = Some(Arc::new(move || Box::pin(reset())));
        self
    }

    /// Replays the projection's parked events: the one at `Some(position)`, or all with `None`
    /// (admin).
    #[must_use]
    pub fn replay_parked<F, Fut>(mut self, replay: F) -> Self
    where
        F: Fn(Option<Position>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ActionResult> + Send + 'static,
    {
        self.replay = Some(Arc::new(move |position| Box::pin(replay(position))));
        self
    }
}

/// The most lag samples kept per projection.
const SAMPLES: usize = 120;

/// The least time between two samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// A projection's recent lag, sampled whenever the console computes it (at most once a second).
#[derive(Default)]
pub(crate) struct LagHistory {
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl LagHistory {
    /// Records a lag: a new sample, or within a second of the last one, its new value.
    pub(crate) fn record(&self, lag: u64) {
        let now = Instant::now();
        let mut samples = self.samples.lock();
        if let Some((at, last)) = samples.back_mut()
            && now.duration_since(*at) < SAMPLE_EVERY
        {
            *last = lag;
            return;
        }
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back((now, lag));
    }

    /// The samples, oldest first.
    pub(crate) fn lags(&self) -> Vec<u64> {
        self.samples.lock().iter().map(|(_, lag)| *lag).collect()
    }
}
