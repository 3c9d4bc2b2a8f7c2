//! What the bank's operations can fail with; the HTTP layer maps each to a status and a JSON body.

use es::StoreError;
use es::repository::RepositoryError;

use super::account::AccountError;
use super::transfer::TransferError;

/// Why an operation failed. Nothing is half-applied in any case: a refused command appends
/// nothing, and a transfer moves money only through its process.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// The request is malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No such thing.
    #[error("{0} not found")]
    NotFound(String),
    /// The account refused the command.
    #[error(transparent)]
    Account(AccountError),
    /// The transfer refused the command.
    #[error(transparent)]
    Transfer(TransferError),
    /// Too many concurrent writers on one stream: retry later.
    #[error("the {0} is busy; retry")]
    Contention(String),
    /// A read model has not reached the position asked for in time.
    #[error("the {0} view has not caught up yet; retry")]
    Stale(&'static str),
    /// The service is not ready (readiness probe): what is not ready, in words fit for a client.
    #[error("not ready: {0}")]
    NotReady(String),
    /// A value the store cannot keep (such as a NUL character or a non-finite number): refused,
    /// nothing written.
    #[error("{0}")]
    Unstorable(String),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl BankError {
    /// A malformed field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { field, message: message.into() }
    }
}

fn repository<E: std::fmt::Debug>(
    error: RepositoryError<E>,
    domain: impl FnOnce(E) -> BankError,
    what: &str,
) -> BankError
where
    RepositoryError<E>: std::error::Error,
{
    match error {
        RepositoryError::Domain(refused) => domain(refused),
        RepositoryError::Contention { .. } => BankError::Contention(what.to_owned()),
        RepositoryError::Store(StoreError::IdempotencyConflict { .. }) => {
            BankError::invalid("idempotency-key", "this key was used for a different request")
        }
        RepositoryError::Store(store) => BankError::Store(store),
        RepositoryError::Encode(refused) => BankError::Unstorable(refused.to_string()),
        other => BankError::Internal(other.to_string()),
    }
}

impl From<RepositoryError<AccountError>> for BankError {
    fn from(error: RepositoryError<AccountError>) -> Self {
        repository(error, BankError::Account, "account")
    }
}

impl From<RepositoryError<TransferError>> for BankError {
    fn from(error: RepositoryError<TransferError>) -> Self {
        repository(error, BankError::Transfer, "transfer")
    }
}
