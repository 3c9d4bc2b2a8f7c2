//! The circuit breaker: after enough failing passes in a row the relay stops calling the sink
//! for a cool-down, then tries one pass.

use std::time::Duration;

use tokio::time::Instant;

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// The sink is called.
    Closed,
    /// The sink is not called until the cool-down ends.
    Open,
    /// The cool-down ended: the next pass is a trial.
    HalfOpen,
}

#[derive(Debug)]
pub(super) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cool_down: Duration) -> Self {
        Self { threshold, cool_down, failures: 0, open_until: None }
    }

    pub(super) fn state(&self) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if Instant::now() < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// How long until a trial is allowed (zero when closed or half-open).
    pub(super) fn wait(&self) -> Duration {
        self.open_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(Instant::now()))
    }

    /// A pass delivered something: close.
    pub(super) fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
    }

    /// A pass delivered nothing and failed: count it; open at the threshold, or again after a
    /// failed trial. Returns whether the breaker opened.
    pub(super) fn failure(&mut self) -> bool {
        self.failures = self.failures.saturating_add(1);
        let trial_failed = self.state() == BreakerState::HalfOpen;
        if trial_failed || self.failures >= self.threshold {
            self.open_until = Some(Instant::now() + self.cool_down);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_threshold_and_tries_again_after_the_cool_down() {
        let mut breaker = Breaker::new(3, Duration::from_secs(5));
        assert!(!breaker.failure());
        assert!(!breaker.failure());
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.failure());
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.wait(), Duration::from_secs(5));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.failure(), "a failed trial opens it again");
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        breaker.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(!breaker.failure(), "the count starts over");
    }
}
