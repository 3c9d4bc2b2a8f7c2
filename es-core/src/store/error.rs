//! What a store call can fail with, typed, and which failures are worth retrying.

use std::error::Error as StdError;

use super::ExpectedVersion;
use crate::{EventId, IdempotencyKey, StreamId, TenantId};

/// Why a store call failed. Domain situations (a conflict, a reused key) are variants of their own,
/// never a driver's error; every variant names the tenant or stream it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream's version did not match the expected version; nothing was written. Reload the
    /// stream and decide again.
    #[error(
        "version conflict on stream {stream_id:?} of tenant {tenant}: expected {expected}, the stream is at version {actual}"
    )]
    VersionConflict {
        /// The tenant.
        tenant: TenantId,
        /// The stream.
        stream_id: StreamId,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's version when the append was refused (0: the stream is empty).
        actual: u64,
    },

    /// The idempotency key was used before for a different request; nothing was written. Use a new
    /// key for a new request.
    #[error(
        "idempotency key {key:?} of tenant {tenant} was first used for a different request (on stream {original_stream_id:?})"
    )]
    IdempotencyConflict {
        /// The tenant.
        tenant: TenantId,
        /// The reused key.
        key: IdempotencyKey,
        /// The stream the key's first append wrote to.
        original_stream_id: StreamId,
    },

    /// An event with this id is already stored in the tenant; nothing was written.
    #[error("event id {event_id} is already stored in tenant {tenant}")]
    DuplicateEventId {
        /// The tenant.
        tenant: TenantId,
        /// The id.
        event_id: EventId,
    },

    /// The append was refused before any I/O because its input is malformed; nothing was written.
    #[error("invalid append to stream {stream_id:?}: {reason}")]
    InvalidAppend {
        /// The target stream.
        stream_id: StreamId,
        /// What is wrong.
        reason: InvalidAppend,
    },

    /// The append would take the tenant past one of its limits; nothing was written.
    #[error(transparent)]
    QuotaExceeded(#[from] Box<crate::quota::QuotaExceeded>),

    /// Personal data could not be sealed, opened or forgotten (a forgotten subject, a wrong master
    /// key, an altered value); nothing was written.
    #[error(transparent)]
    PersonalData(#[from] crate::pii::PiiError),

    /// Data read from the store breaks the contract (for example an id that is no longer valid):
    /// the store was changed behind the framework's back. Nothing is skipped; the read stops here.
    #[error("stored data is corrupt: {detail}")]
    Corrupt {
        /// What was found, and where.
        detail: String,
        /// The error that revealed it (a driver's decoding error, a refused id), if any.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },

    /// The backend failed (connection lost, timeout, driver error).
    #[error("{operation} failed in the store backend{}: {source}", if *retryable { " (transient; safe to retry)" } else { "" })]
    Backend {
        /// What the store was doing (`"append"`, `"read_all"`, …).
        operation: &'static str,
        /// Whether retrying the same call can succeed and is safe (it cannot duplicate a write).
        retryable: bool,
        /// The underlying error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// Why an append's input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidAppend {
    /// The batch holds no event.
    #[error("the batch is empty; an append writes at least one event")]
    EmptyBatch,
    /// An event's schema version is 0 or above `i32::MAX`; versions run from 1 to 2³¹−1 (the
    /// range every backend can store).
    #[error(
        "event #{index} has schema version {schema_version}; schema versions run from 1 to 2147483647"
    )]
    SchemaVersionOutOfRange {
        /// The event's index in the batch.
        index: usize,
        /// The refused version.
        schema_version: u32,
    },
    /// Two events of the batch share an id.
    #[error("event id {event_id} appears twice in the batch")]
    DuplicateEventId {
        /// The repeated id.
        event_id: EventId,
    },
    /// An event's payload is not one JSON value every backend can store (not JSON, or a
    /// `\u0000` escape, which PostgreSQL's jsonb refuses).
    #[error("event #{index} has a payload no store can keep: {reason}")]
    InvalidPayload {
        /// The event's index in the batch.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A publication does not name an event of the batch, or names one already published.
    #[error("publication #{index}: {reason}")]
    InvalidPublication {
        /// The publication's index in [`AppendOptions::publications`](crate::AppendOptions::publications).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An event's metadata cannot be stored (a `\u0000` in a custom value or the actor).
    #[error("event #{index} has metadata no store can keep: {reason}")]
    InvalidMetadata {
        /// The event's index in the batch.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// Whether the call may be retried as it is: a transient backend failure of a call that cannot
    /// write twice. A [`StoreError::VersionConflict`] is not retryable as is: decide again first.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backend { retryable: true, .. })
    }

    /// Wraps a backend error.
    pub fn backend(
        operation: &'static str,
        retryable: bool,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::Backend { operation, retryable, source: source.into() }
    }

    /// Stored data that breaks the contract, found without an underlying error.
    pub fn corrupt(detail: impl Into<String>) -> Self {
        Self::Corrupt { detail: detail.into(), source: None }
    }

    /// Stored data that breaks the contract, revealed by `source`.
    pub fn corrupt_because(
        detail: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::Corrupt { detail: detail.into(), source: Some(source.into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::StoreError;

    /// Only a backend failure marked retryable is retryable as is; a conflict needs a new decision.
    #[test]
    fn only_retryable_backend_failures_are_retryable() {
        let io = || std::io::Error::other("connection reset");
        assert!(StoreError::backend("append", true, io()).is_retryable());
        assert!(!StoreError::backend("append", false, io()).is_retryable());
        assert!(!StoreError::corrupt("x").is_retryable());
    }

    /// A corruption found through another error keeps it as its source, for reports that walk
    /// the chain.
    #[test]
    fn corruption_keeps_its_source() {
        use std::error::Error as _;
        let found =
            StoreError::corrupt_because("column position", std::io::Error::other("bad int"));
        assert_eq!(found.to_string(), "stored data is corrupt: column position");
        assert_eq!(found.source().map(ToString::to_string).as_deref(), Some("bad int"));
        assert!(StoreError::corrupt("x").source().is_none());
    }
}
