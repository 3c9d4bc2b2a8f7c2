//! Positions in a tenant's global log.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A place in a store's global order of events.
///
/// Positions increase in the order readers can see events, but are not contiguous: a backend may
/// leave numbers unused (PostgreSQL does after a rolled-back append). [`Position::BEGINNING`] comes
/// before every event, so reading *after* it reads everything; a checkpoint is the position of the
/// last event handled.
///
/// ```
/// use es_core::Position;
/// assert!(Position::BEGINNING < Position::new(1));
/// assert_eq!(Position::new(42).value(), 42);
/// ```
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(u64);

impl Position {
    /// Before the first event.
    pub const BEGINNING: Self = Self(0);

    /// Wraps a raw position.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The raw position.
    pub const fn value(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for Position {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn positions_convert_and_display_as_their_number() {
        assert_eq!(Position::from(42), Position::new(42));
        assert_eq!(Position::from(42).value(), 42);
        assert_eq!(Position::new(7).to_string(), "7");
    }
}
