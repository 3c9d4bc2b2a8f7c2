//! Counters the demo reports (Prometheus gets the same from the framework's metrics).

use std::sync::atomic::{AtomicU64, Ordering};

/// Commands run and the conflicts they retried.
#[derive(Debug, Default)]
pub struct Stats {
    commands: AtomicU64,
    conflicts: AtomicU64,
}

impl Stats {
    /// Counts a command that took `attempts` attempts.
    pub fn command(&self, attempts: u32) {
        self.commands.fetch_add(1, Ordering::Relaxed);
        self.conflicts.fetch_add(u64::from(attempts.saturating_sub(1)), Ordering::Relaxed);
    }

    /// Commands run so far.
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// Version conflicts retried so far.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }
}
