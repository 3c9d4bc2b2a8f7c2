//! What a repository and each command can be told: retries, idempotency key, metadata.

use std::time::Duration;

use uuid::Uuid;

use crate::{EventMetadata, IdempotencyKey};

/// How the repository runs concurrent commands and retries after version conflicts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepositoryOptions {
    /// Attempts per command (load, decide, append), at least 1. Default 8.
    pub max_attempts: u32,
    /// The backoff before the second attempt; doubled each time, with jitter. Default 2 ms.
    pub base_delay: Duration,
    /// The longest backoff. Default 200 ms.
    pub max_delay: Duration,
    /// Whether commands for one stream take turns within the process (the repository and its
    /// clones): a hot aggregate's commands queue instead of racing each other to version conflicts.
    /// Default on. Commands from other processes still race; the retries handle them.
    pub take_turns: bool,
    /// With [`take_turns`](Self::take_turns), how many commands queued for one stream are decided
    /// together: one after the other on one load of the state, their events appended as one
    /// batch with one version check (default 64; 1 turns it off). Each caller still gets its own
    /// outcome: its own versions and its own domain error; the positions in
    /// [`CommandOutcome::appended`](super::CommandOutcome::appended) are those of the shared
    /// append. A command with an idempotency key is never grouped. If the shared append fails
    /// other than by a version conflict (a quota, a size limit, the database), the commands run
    /// again one by one, each getting the outcome it would have had alone.
    pub decide_together: usize,
}

impl Default for RepositoryOptions {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(200),
            take_turns: true,
            decide_together: 64,
        }
    }
}

impl RepositoryOptions {
    /// Sets the attempts per command (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Whether commands for one stream take turns within the process (see
    /// [`take_turns`](Self::take_turns); default on).
    #[must_use]
    pub fn take_turns(mut self, on: bool) -> Self {
        self.take_turns = on;
        self
    }

    /// How many queued commands for one stream are decided together (see
    /// [`decide_together`](Self::decide_together); default 64, at least 1: 1 turns it off).
    #[must_use]
    pub fn decide_together(mut self, max: usize) -> Self {
        self.decide_together = max.max(1);
        self
    }

    /// Sets the backoff range.
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max.max(base);
        self
    }
}

/// Per-command options: the idempotency key and the metadata its events carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandOptions {
    /// Makes the command safe to retry: if an append with this key already happened, its result is
    /// returned and nothing is decided or written again.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Metadata for every event the command appends (correlation, causation, actor, custom).
    pub metadata: EventMetadata,
}

impl CommandOptions {
    /// Sets the idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Sets the correlation id of the events.
    #[must_use]
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.metadata.correlation_id = Some(id);
        self
    }

    /// Sets the causation id of the events (the id of the message that caused the command).
    #[must_use]
    pub fn causation_id(mut self, id: Uuid) -> Self {
        self.metadata.causation_id = Some(id);
        self
    }

    /// Sets the actor.
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.metadata.actor = Some(actor.into());
        self
    }
}

impl RepositoryOptions {
    /// The pause after failed attempt `attempt`, before the next one: exponential from `base_delay`, capped at
    /// `max_delay`, with "equal jitter" (half fixed, half random) so retrying writers spread out.
    pub(super) fn delay_after(&self, attempt: u32) -> Duration {
        let exponential = self.base_delay.saturating_mul(1 << attempt.saturating_sub(1).min(16));
        let capped = exponential.min(self.max_delay);
        capped / 2 + capped.mul_f64(fastrand::f64() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_its_range() {
        let options = RepositoryOptions::default()
            .backoff(Duration::from_millis(4), Duration::from_millis(20));
        for (attempt, full) in [(1, 4), (2, 8), (3, 16), (4, 20), (30, 20)] {
            let full = Duration::from_millis(full);
            for _ in 0..50 {
                let delay = options.delay_after(attempt);
                assert!(delay >= full / 2 && delay <= full, "attempt {attempt}: {delay:?}");
            }
        }
    }

    #[test]
    fn attempts_are_at_least_one() {
        assert_eq!(RepositoryOptions::default().max_attempts(0).max_attempts, 1);
    }
}
