//! How a runner reads, retries, and treats an event its handler keeps failing on.

use std::time::Duration;

/// How a runner reads and retries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunnerOptions {
    /// Events per batch; the checkpoint is saved after each batch (one save per batch, so larger
    /// batches rebuild faster and replay more after a crash). Default 5,000. The store is read
    /// in pages of up to four batches ([`RunnerOptions::read_page`]), the next page while this
    /// one is handled where the backend can (PostgreSQL does).
    pub batch_size: usize,
    /// Attempts per event before the runner stops with the handler's error. Default 3.
    pub handler_attempts: u32,
    /// The pause before a handler's second attempt; doubled each time. Default 50 ms.
    pub retry_delay: Duration,
    /// How long live mode waits for new events before looking again. Default 1 s.
    pub idle_wait: Duration,
    /// What happens to an event whose handler still fails after `handler_attempts`. Default
    /// [`OnFailure::Stop`].
    pub on_failure: OnFailure,
}

/// What a runner does with an event its handler keeps failing on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop, with the checkpoint before the event (nothing is skipped).
    #[default]
    Stop,
    /// Park the event with its error in the dead-letter store and go on; operators list and
    /// replay parked events ([`ProjectionRunner::replay_parked`](super::ProjectionRunner::replay_parked)).
    Park,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            batch_size: 5_000,
            handler_attempts: 3,
            retry_delay: Duration::from_millis(50),
            idle_wait: Duration::from_secs(1),
            on_failure: OnFailure::Stop,
        }
    }
}

impl RunnerOptions {
    /// The most events one page of a pass's read holds: four batches, but never more than the
    /// larger of one batch and 20,000 events (memory: about three pages may be held at once).
    /// Fewer, larger pages cost fewer queries (`projection_rebuild` in `docs/benchmarks.md`).
    ///
    /// ```
    /// use es_core::projection::RunnerOptions;
    /// assert_eq!(RunnerOptions::default().read_page(), 20_000);
    /// assert_eq!(RunnerOptions::default().batch_size(100).read_page(), 400);
    /// assert_eq!(RunnerOptions::default().batch_size(50_000).read_page(), 50_000);
    /// ```
    pub fn read_page(&self) -> usize {
        const MOST: usize = 20_000;
        self.batch_size.saturating_mul(4).min(self.batch_size.max(MOST))
    }

    /// Sets the batch size (at least 1).
    #[must_use]
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// Sets what happens to an event whose handler keeps failing.
    #[must_use]
    pub fn on_failure(mut self, policy: OnFailure) -> Self {
        self.on_failure = policy;
        self
    }

    /// Sets how long live mode (and a runner waiting for its lock) waits before looking again.
    #[must_use]
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }

    /// Sets the handler attempts (at least 1) and the first retry delay.
    #[must_use]
    pub fn retries(mut self, attempts: u32, delay: Duration) -> Self {
        self.handler_attempts = attempts.max(1);
        self.retry_delay = delay;
        self
    }
}
