//! What an append expects of its stream's version.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the caller believes about a stream's version when it appends (optimistic concurrency).
///
/// A stream's version is the version of its last event: 0 while it is empty, 1 after its first
/// event. When the belief is wrong the append fails with
/// [`StoreError::VersionConflict`](crate::StoreError::VersionConflict) and writes nothing.
///
/// ```
/// use es_core::ExpectedVersion;
/// assert!(ExpectedVersion::NoStream.matches(0));
/// assert!(!ExpectedVersion::StreamExists.matches(0));
/// assert!(ExpectedVersion::Exact(3).matches(3));
/// assert!(ExpectedVersion::Exact(0).matches(0)); // the same as NoStream
/// assert!(ExpectedVersion::Any.matches(17));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "version", rename_all = "snake_case")]
pub enum ExpectedVersion {
    /// Append whatever the stream's version.
    Any,
    /// The stream must be empty (have no events).
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's version must be exactly this; `Exact(0)` means the stream is empty.
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at version `current` satisfies this expectation.
    pub const fn matches(self, current: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::StreamExists => current > 0,
            Self::Exact(expected) => current == expected,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("an existing stream"),
            Self::Exact(version) => write!(f, "version {version}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExpectedVersion;

    /// The texts errors are made of (`VersionConflict` says "expected {expected}").
    #[test]
    fn expectations_read_as_words() {
        assert_eq!(ExpectedVersion::Any.to_string(), "any version");
        assert_eq!(ExpectedVersion::NoStream.to_string(), "no stream");
        assert_eq!(ExpectedVersion::StreamExists.to_string(), "an existing stream");
        assert_eq!(ExpectedVersion::Exact(3).to_string(), "version 3");
    }
}
