//! How a relay batches, leases, retries and cleans up.

use std::time::Duration;

/// The relay's settings; the defaults suit a relay per service instance.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RelayOptions {
    /// Messages read per pass (default 1,000).
    pub batch_size: usize,
    /// How long a partition lease lasts unless renewed (default 10 s): a killed relay's
    /// partitions are taken over by the others after at most this long. Each pass renews.
    pub lease_ttl: Duration,
    /// How long an idle relay waits for new events before looking again (default 1 s); an
    /// append wakes it earlier.
    pub idle_wait: Duration,
    /// The first delay after a failed delivery (default 50 ms); it doubles per failure, with
    /// jitter, up to `max_retry_delay`.
    pub retry_delay: Duration,
    /// The longest delay between retries (default 10 s).
    pub max_retry_delay: Duration,
    /// Failing passes in a row that open the circuit breaker (default 5).
    pub breaker_threshold: u32,
    /// How long the open breaker keeps the relay from the sink before one trial pass (default 5 s).
    pub breaker_cool_down: Duration,
    /// Delivered messages are deleted this long after they were enqueued (default 1 hour);
    /// `None` keeps them.
    pub retention: Option<Duration>,
    /// How often the relay prunes delivered messages and reports the outbox's depth and age
    /// (default 30 s).
    pub housekeeping_every: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            lease_ttl: Duration::from_secs(10),
            idle_wait: Duration::from_secs(1),
            retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_secs(10),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(5),
            retention: Some(Duration::from_hours(1)),
            housekeeping_every: Duration::from_secs(30),
        }
    }
}

impl RelayOptions {
    /// Sets the batch size (at least 1).
    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Sets the lease duration.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Sets the idle wait.
    #[must_use]
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }

    /// Sets the first and the longest retry delay.
    #[must_use]
    pub fn retry_delays(mut self, first: Duration, max: Duration) -> Self {
        self.retry_delay = first;
        self.max_retry_delay = max.max(first);
        self
    }

    /// Sets the circuit breaker: failing passes in a row that open it, and its cool-down.
    #[must_use]
    pub fn breaker(mut self, threshold: u32, cool_down: Duration) -> Self {
        self.breaker_threshold = threshold.max(1);
        self.breaker_cool_down = cool_down;
        self
    }

    /// Sets how long delivered messages are kept (`None`: forever).
    #[must_use]
    pub fn retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// Sets how often the relay prunes and reports.
    #[must_use]
    pub fn housekeeping_every(mut self, every: Duration) -> Self {
        self.housekeeping_every = every;
        self
    }
}
