//! Mapping driver errors to the contract's typed errors.

use es_core::StoreError;

/// A configuration value was refused before connecting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The schema name is not a plain lowercase identifier.
    #[error(
        "schema name {schema:?} is invalid: use 1 to 63 lowercase ASCII letters, digits and '_', not starting with a digit"
    )]
    InvalidSchema {
        /// The refused name.
        schema: String,
    },
}

/// SQLSTATE of the append function's "idempotency key recorded concurrently".
pub(crate) const IDEMPOTENCY_RACE: &str = "ESI01";
/// SQLSTATE of the append function's "a concurrent append took one of the versions".
pub(crate) const VERSION_RACE: &str = "ESV01";
/// `serialization_failure`, `deadlock_detected`: the statement was rolled back, nothing written.
const ROLLED_BACK: [&str; 2] = ["40001", "40P01"];
/// `query_canceled` (statement timeout), `admin_shutdown`, `cannot_connect_now`: rolled back too.
const CANCELLED: [&str; 3] = ["57014", "57P01", "57P03"];

/// Whether a database error carries this SQLSTATE.
pub(crate) fn has_sqlstate(error: &sqlx::Error, code: &str) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(code))
}

/// The constraint a database error names, if any.
pub(crate) fn constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// Whether the server answered that the statement failed as a whole (so it wrote nothing) for a
/// reason that may pass: retrying cannot duplicate anything.
pub(crate) fn rolled_back_transiently(error: &sqlx::Error) -> bool {
    let code = match error {
        sqlx::Error::Database(db) => db.code(),
        _ => None,
    };
    code.is_some_and(|code| {
        ROLLED_BACK.contains(&code.as_ref()) || CANCELLED.contains(&code.as_ref())
    }) || matches!(error, sqlx::Error::PoolTimedOut)
}

/// Whether the connection failed so that the outcome of a write is unknown (it may have committed).
pub(crate) fn outcome_unknown(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolClosed
    )
}

/// Wraps a driver error from a call that writes nothing (reads), where any transient failure is
/// safe to retry.
/// A row that does not decode (a column missing or of another type, a value out of range) is
/// stored data that breaks the contract: [`StoreError::Corrupt`], never a retryable failure.
pub(crate) fn read_error(operation: &'static str, error: sqlx::Error) -> StoreError {
    if matches!(
        error,
        sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::Decode(_)
    ) {
        return StoreError::corrupt_because(format!("a row read by {operation}"), error);
    }
    let retryable = rolled_back_transiently(&error) || outcome_unknown(&error);
    StoreError::backend(operation, retryable, error)
}
