//! Why an identifier was refused, and which kind of identifier it was.

use std::fmt;

/// Which kind of identifier failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A [`TenantId`](crate::TenantId).
    Tenant,
    /// A [`StreamId`](crate::StreamId).
    Stream,
    /// A stream category (the part of a [`StreamId`](crate::StreamId) before the first `-`).
    Category,
    /// An [`EventType`](crate::EventType).
    EventType,
    /// An [`IdempotencyKey`](crate::IdempotencyKey).
    IdempotencyKey,
    /// A [`ProjectionName`](crate::ProjectionName).
    Projection,
    /// A [`Subject`](crate::Subject).
    Subject,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tenant => "tenant id",
            Self::Stream => "stream id",
            Self::Category => "stream category",
            Self::EventType => "event type name",
            Self::IdempotencyKey => "idempotency key",
            Self::Projection => "projection name",
            Self::Subject => "subject",
        })
    }
}

/// An identifier was rejected; the message says which rule it broke and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The identifier is the empty string.
    #[error("{kind} must not be empty")]
    Empty {
        /// The kind of identifier.
        kind: IdKind,
    },
    /// The identifier is longer than its limit, in bytes of UTF-8.
    #[error("{kind} is {len} bytes long; at most {max} bytes are allowed")]
    TooLong {
        /// The kind of identifier.
        kind: IdKind,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The identifier holds a character its kind does not allow.
    #[error("{kind} {value:?} contains {found:?} at byte {at}; {allowed}")]
    InvalidChar {
        /// The kind of identifier.
        kind: IdKind,
        /// The rejected value.
        value: String,
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
        /// What the kind allows, in words.
        allowed: &'static str,
    },
}
