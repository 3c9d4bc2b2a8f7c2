//! What loading and running a command give back: the loaded state, the outcome, the error.

use std::fmt::Debug;

use crate::{AppendResult, DecodeError, EncodeError, StoreError, StreamId};

/// An aggregate as loaded: its state and the version it includes.
#[derive(Debug)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The stream version the state includes (0: no event yet).
    pub version: u64,
    /// The version of the snapshot the load started from, if one was used.
    pub from_snapshot: Option<u64>,
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The stream's version after the command.
    pub version: u64,
    /// What was appended (`None`: the command decided no event). For a command decided together
    /// with others ([`RepositoryOptions::decide_together`](super::RepositoryOptions::decide_together)),
    /// the versions are its own and the positions span the shared append.
    pub appended: Option<AppendResult>,
    /// Attempts it took (1 without conflicts).
    pub attempts: u32,
    /// Whether the result came from the idempotency record of an earlier run of this command.
    pub replayed: bool,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError<E: Debug> {
    /// The aggregate refused the command; nothing was appended.
    #[error("the command was refused: {0:?}")]
    Domain(E),
    /// Other writers kept changing the stream; nothing was appended.
    #[error(
        "gave up on stream {stream_id} after {attempts} attempts: other writers kept changing it"
    )]
    Contention {
        /// The stream.
        stream_id: StreamId,
        /// The attempts made.
        attempts: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be read as the aggregate's event type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A decided event could not be serialized.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}
