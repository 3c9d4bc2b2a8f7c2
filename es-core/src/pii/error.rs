//! Why sealing, opening or forgetting personal data failed.

use super::SubjectDigest;

/// Personal data could not be sealed, opened or forgotten. Nothing is ever written half-sealed, and
/// a value that cannot be opened for any reason but a forgotten subject is an error, never a
/// redaction: a wrong master key or a damaged ciphertext fails loudly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PiiError {
    /// The store has no master key configured, so it can neither seal nor open personal data.
    #[error(
        "this store has no master key configured, so it cannot {action} personal data; configure one (PgStoreOptions::master_keys) before writing events with #[pii] fields"
    )]
    NoMasterKey {
        /// "seal" or "open".
        action: &'static str,
    },
    /// The data subject was forgotten: no new personal data of it can be written.
    #[error(
        "data subject {subject} was forgotten; personal data of a forgotten subject cannot be written (nothing was stored)"
    )]
    SubjectForgotten {
        /// The subject's digest.
        subject: SubjectDigest,
    },
    /// An event's payload does not have the shape its `#[pii]` fields describe.
    #[error("event #{index}: personal-data field `{field}`: {reason}")]
    InvalidField {
        /// The event's index in the batch.
        index: usize,
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A data key is wrapped by a master key the provider does not hold.
    #[error(
        "the data key of subject {subject} is wrapped by master key {master_key:?}, which is not configured; configure it (as a previous key) or restore it"
    )]
    UnknownMasterKey {
        /// The subject.
        subject: SubjectDigest,
        /// The id of the missing master key.
        master_key: String,
    },
    /// A wrapped data key did not authenticate under its master key: the master key configured
    /// under that id is not the one that wrapped it, or the row was altered.
    #[error(
        "the data key of subject {subject} does not open with master key {master_key:?}: the configured key under that id is not the one that wrapped it, or the key row was altered"
    )]
    WrongMasterKey {
        /// The subject.
        subject: SubjectDigest,
        /// The master key id.
        master_key: String,
    },
    /// A sealed field did not authenticate: it was altered, or moved from another field or tenant.
    #[error(
        "a sealed value of subject {subject} in field `{field}` does not authenticate: it was altered or moved"
    )]
    Tampered {
        /// The subject.
        subject: SubjectDigest,
        /// The field.
        field: String,
    },
    /// A sealed field names a subject that has no key row at all (neither a key nor a tombstone).
    #[error(
        "a sealed value names subject {subject}, which has no key in the key store: the key store was changed behind the framework's back"
    )]
    MissingKey {
        /// The subject.
        subject: SubjectDigest,
    },
    /// A sealed field is not in the envelope format.
    #[error("a sealed value in field `{field}` is malformed: {reason}")]
    MalformedEnvelope {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A master key configuration could not be read.
    #[error("invalid master key configuration: {0}")]
    InvalidMasterKeys(String),
    /// A forget request was refused before anything was written.
    #[error("invalid forget request: {0}")]
    InvalidRequest(String),
    /// The key provider (a KMS, for example) failed.
    #[error("the key provider failed: {0}")]
    Provider(String),
}
