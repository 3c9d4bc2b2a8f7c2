//! From rows to the contract's types: typed row structs, one checked conversion for every stored
//! integer, and every failure a [`StoreError::Corrupt`] that says what was read and keeps the
//! driver's error as its source.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use es_core::{
    AppendResult, Fingerprint, IdempotencyKey, IdempotencyRecord, Position, StoreError, StreamId,
};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// A stored number that must not be negative (a version, a position, a count), as `u64`; a
/// negative one is reported as corruption of `what`, never silently read as 0.
pub(crate) fn stored_u64(value: i64, what: impl Display) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|error| {
        StoreError::corrupt_because(
            format!("{what} is {value}: a stored version, position or count is never negative"),
            error,
        )
    })
}

/// A stored schema version or attempt count, as `u32` (never negative).
pub(crate) fn stored_u32(value: i32, what: impl Display) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|error| {
        StoreError::corrupt_because(
            format!("{what} is {value}: a stored schema version or count is never negative"),
            error,
        )
    })
}

/// A number to bind to a `bigint` column. Versions and positions never reach `i64::MAX`; a value
/// beyond it (only from a caller's arithmetic) is bound as `i64::MAX`, which matches nothing
/// stored, rather than wrapping to a negative number.
pub(crate) fn bound_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A count to bind to an `integer` column, saturating like [`bound_i64`].
pub(crate) fn bound_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Column `index` (named `column` in errors) of a row read by position: a lookup by name per
/// column per row costs measurably on large reads.
pub(crate) fn get<'r, T>(row: &'r PgRow, index: usize, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(index)
        .map_err(|error| StoreError::corrupt_because(format!("column {column}"), error))
}

/// A `map_err` for a value read from a row of `what` ("snapshot of account-1"): the failure
/// becomes corruption of that row, with the error as its source.
pub(crate) fn corrupt_in<E>(what: impl Display) -> impl FnOnce(E) -> StoreError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    move |error| StoreError::corrupt_because(what.to_string(), error)
}

/// A row of `idempotency_keys`, as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    stream_id: String,
    fingerprint: Vec<u8>,
    first_version: i64,
    last_version: i64,
    first_position: i64,
    last_position: i64,
    recorded_at: DateTime<Utc>,
}

impl IdempotencyRow {
    /// The record of `key`.
    pub(crate) fn record(self, key: &IdempotencyKey) -> Result<IdempotencyRecord, StoreError> {
        let what = format!("idempotency record {key:?}");
        Ok(IdempotencyRecord {
            key: key.clone(),
            stream_id: StreamId::new(&self.stream_id)
                .map_err(corrupt_in(format_args!("{what}: stream id")))?,
            fingerprint: Fingerprint(self.fingerprint.try_into().map_err(|_| {
                StoreError::corrupt(format!("{what}: fingerprint is not 32 bytes"))
            })?),
            result: AppendResult {
                first_version: stored_u64(
                    self.first_version,
                    format_args!("{what}: first_version"),
                )?,
                last_version: stored_u64(self.last_version, format_args!("{what}: last_version"))?,
                first_position: Position::new(stored_u64(
                    self.first_position,
                    format_args!("{what}: first_position"),
                )?),
                last_position: Position::new(stored_u64(
                    self.last_position,
                    format_args!("{what}: last_position"),
                )?),
            },
            recorded_at: self.recorded_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn negative_stored_numbers_are_corruption_with_a_source() {
        assert_eq!(stored_u64(7, "x").ok(), Some(7));
        let negative = stored_u64(-3, "checkpoint of balances");
        assert!(matches!(&negative, Err(StoreError::Corrupt { detail, .. })
            if detail.contains("checkpoint of balances") && detail.contains("-3")));
        assert!(negative.err().and_then(|error| error.source().map(ToString::to_string)).is_some());
        assert_eq!(stored_u32(2, "x").ok(), Some(2));
        assert!(stored_u32(-1, "attempts").is_err());
    }

    #[test]
    fn bound_numbers_saturate_instead_of_wrapping() {
        assert_eq!(bound_i64(5), 5);
        assert_eq!(bound_i64(u64::MAX), i64::MAX);
        assert_eq!(bound_i32(u32::MAX), i32::MAX);
    }
}
