//! Writes a transactional projection's handlers defer to the end of their batch, sent in one round
//! trip instead of one per event.
//!
//! A handler that takes `tx: &mut BatchWrites` [`push`](BatchWrites::push)es its statements; the
//! runner sends them all, in order, just before the batch commits, as one script: each distinct
//! statement text is prepared once (`PREPARE`) and run per event (`EXECUTE` with the values as
//! quoted literals), then deallocated. The writes are in the batch's transaction as before: they
//! commit with the checkpoint's move or not at all. Values never become SQL: each is one quoted
//! literal, escaped, and a text holding a NUL (which PostgreSQL cannot store) is refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use es_core::ProjectionError;
use es_core::projection::Through;
use sqlx::{PgConnection, Postgres, Transaction};
use tracing::Instrument;
use uuid::Uuid;

/// The most bytes of script sent in one round trip; a longer batch is sent in several.
const SCRIPT_BYTES: usize = 4 << 20;

/// Numbers the prepared statements of each flush, so that two flushes never share a name (a
/// flush that fails leaves its statements on the connection until it closes).
static FLUSHES: AtomicU64 = AtomicU64::new(0);

/// A batch's transaction as a transactional handler sees it: statements pushed here run, in
/// order, when the batch ends, in one round trip; [`connection`](Self::connection) reads (or
/// writes at once) after sending what is pending.
///
/// ```no_run
/// use es_core::{Event, ProjectionError, RecordedEvent, projection};
/// use es_postgres::transactional::{BatchWrites, Statement, TransactionalRunner};
///
/// #[derive(serde::Serialize, serde::Deserialize, Event)]
/// #[event(name = "account.deposited")]
/// struct Deposited { amount: i64 }
///
/// struct Balances;
///
/// #[projection(name = "balances")]
/// impl Balances {
///     async fn on_deposited(
///         &mut self,
///         tx: &mut BatchWrites,
///         event: &Deposited,
///         meta: &RecordedEvent,
///     ) -> Result<(), ProjectionError> {
///         tx.push(
///             Statement::new("INSERT INTO balances (account, cents) VALUES ($1, $2) \
///                             ON CONFLICT (account) DO UPDATE SET cents = balances.cents + EXCLUDED.cents")
///                 .bind(meta.stream_id.as_str())
///                 .bind(event.amount),
///         );
///         Ok(())
///     }
/// }
///
/// # async fn run(store: es_postgres::PgTenantStore) -> Result<(), Box<dyn std::error::Error>> {
/// TransactionalRunner::new(Balances, store).catch_up().await?;
/// # Ok(()) }
/// ```
///
/// Handlers that take `tx: &mut sqlx::PgConnection` get the same transaction's connection
/// (through [`Through`]) and write at once, one round trip per statement.
pub struct BatchWrites {
    tx: Transaction<'static, Postgres>,
    /// The distinct statement texts pushed since the last flush, each with its index.
    texts: HashMap<Cow<'static, str>, usize>,
    /// Per pushed statement: the index of its text and its values, rendered `'a', '1'`.
    runs: Vec<(usize, String)>,
    /// Why what is pending cannot be sent (the first reason found).
    refused: Option<String>,
    /// Scripts sent so far.
    round_trips: u64,
}

impl BatchWrites {
    pub(crate) fn new(tx: Transaction<'static, Postgres>) -> Self {
        Self { tx, texts: HashMap::new(), runs: Vec::new(), refused: None, round_trips: 0 }
    }

    /// Defers `statement` to the end of the batch (or the next [`flush`](Self::flush)), after
    /// every statement pushed before it.
    pub fn push(&mut self, statement: Statement) {
        if let Some(reason) = statement.refused {
            self.refuse(format!("statement {:?}: {reason}", statement.sql));
            return;
        }
        let next = self.texts.len();
        let text = *self.texts.entry(statement.sql).or_insert(next);
        self.runs.push((text, statement.values));
    }

    /// How many statements are waiting to be sent.
    pub fn pending(&self) -> usize {
        self.runs.len()
    }

    /// How many round trips flushing has cost this batch so far: one per flush that had
    /// something to send (one more per 4 MiB of script).
    pub fn round_trips(&self) -> u64 {
        self.round_trips
    }

    /// Sends every pending statement now, in one round trip (more for scripts over 4 MiB). A
    /// failing statement fails the flush and leaves the transaction aborted: the batch rolls back.
    pub async fn flush(&mut self) -> Result<(), ProjectionError> {
        if let Some(reason) = self.refused.take() {
            self.clear();
            return Err(ProjectionError::new(format!("deferred writes refused: {reason}")));
        }
        if self.runs.is_empty() {
            return Ok(());
        }
        let scripts = self.scripts();
        let statements = self.runs.len();
        self.clear();
        // The span is entered only while the flush is polled (a guard held across `.await`
        // would leak it into whatever the task's thread runs meanwhile).
        let span = tracing::debug_span!("es.projection.flush", statements);
        async {
            for script in scripts {
                self.round_trips += 1;
                sqlx::raw_sql(sqlx::AssertSqlSafe(script)).execute(&mut *self.tx).await.map_err(
                    |error| ProjectionError::with_source("deferred writes failed", error),
                )?;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// The transaction's connection, for reads and immediate writes, once every pending statement
    /// is sent (so a read sees them).
    pub async fn connection(&mut self) -> Result<&mut PgConnection, ProjectionError> {
        self.flush().await?;
        Ok(&mut self.tx)
    }

    /// The transaction, for the store to move the checkpoint in and commit.
    pub(crate) fn into_transaction(self) -> Transaction<'static, Postgres> {
        self.tx
    }

    fn refuse(&mut self, reason: String) {
        self.refused.get_or_insert(reason);
    }

    fn clear(&mut self) {
        self.texts.clear();
        self.runs.clear();
    }

    /// The pending statements as scripts of at most about [`SCRIPT_BYTES`]: the prepares open
    /// the first, the deallocations close the last.
    fn scripts(&self) -> Vec<String> {
        let flush = FLUSHES.fetch_add(1, Ordering::Relaxed);
        let mut texts: Vec<_> = self.texts.iter().map(|(text, index)| (*index, text)).collect();
        texts.sort_unstable_by_key(|(index, _)| *index);
        let mut script = String::new();
        for (index, text) in &texts {
            // The `;` on a line of its own: a statement that ends in a `--` comment stays whole.
            let _ = writeln!(script, "PREPARE es_w{flush}_{index} AS {text}\n;");
        }
        let mut scripts = Vec::new();
        for (index, values) in &self.runs {
            if script.len() >= SCRIPT_BYTES {
                scripts.push(std::mem::take(&mut script));
            }
            let _ = if values.is_empty() {
                writeln!(script, "EXECUTE es_w{flush}_{index};")
            } else {
                writeln!(script, "EXECUTE es_w{flush}_{index} ({values});")
            };
        }
        for (index, _) in &texts {
            let _ = writeln!(script, "DEALLOCATE es_w{flush}_{index};");
        }
        scripts.push(script);
        scripts
    }
}

impl Through<PgConnection> for BatchWrites {
    /// The connection, for handlers that write at once. Writes pushed before and not yet sent
    /// would then run after this handler's: the batch is refused instead (its flush fails).
    fn through(&mut self) -> &mut PgConnection {
        if !self.runs.is_empty() {
            self.refuse(
                "a handler wrote through the connection while deferred writes were pending \
                 (they would have run after it): flush them first"
                    .to_owned(),
            );
        }
        &mut self.tx
    }
}

impl fmt::Debug for BatchWrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchWrites")
            .field("pending", &self.runs.len())
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

/// One statement with its values, to [`push`](BatchWrites::push): the SQL text with `$1`, `$2`,
/// … for the values bound in order. One statement, without a trailing `;`. Values are sent as
/// untyped literals, so each parameter's type comes from the statement: one PostgreSQL cannot
/// infer (`SELECT $1`), or one used as two types, needs a cast (`$1::bigint`) or two parameters.
#[derive(Clone, Debug)]
pub struct Statement {
    sql: Cow<'static, str>,
    /// The values bound so far, rendered as `'a', '1'` (empty for none).
    values: String,
    /// Why the statement cannot be sent, if it cannot.
    refused: Option<String>,
}

impl Statement {
    /// A statement of `sql`, no values bound yet.
    pub fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        let sql = match sql.into() {
            Cow::Borrowed(text) => Cow::Borrowed(text.trim_end().trim_end_matches(';')),
            Cow::Owned(text) => Cow::Owned(text.trim_end().trim_end_matches(';').to_owned()),
        };
        let refused = sql.contains('\0').then(|| "the SQL text holds a NUL character".to_owned());
        Self { sql, values: String::new(), refused }
    }

    /// Binds the next parameter (`$1` first).
    #[must_use]
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        if !self.values.is_empty() {
            self.values.push_str(", ");
        }
        if let Err(reason) = value.into().render(&mut self.values) {
            self.refused.get_or_insert(reason);
        }
        self
    }
}

/// A value bound to a [`Statement`], converted from the usual Rust types (`Option` for NULL).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (for `smallint`, `integer`, `bigint` and `numeric` parameters).
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// Text (also for `jsonb` parameters given JSON text).
    Text(String),
    /// Bytes, for `bytea`.
    Bytes(Vec<u8>),
    /// A UUID.
    Uuid(Uuid),
    /// A timestamp, for `timestamptz`.
    Timestamp(DateTime<Utc>),
}

impl Value {
    /// Appends the value as one SQL literal; a text with a NUL is refused.
    fn render(&self, out: &mut String) -> Result<(), String> {
        match self {
            Self::Null => out.push_str("NULL"),
            Self::Bool(value) => out.push_str(if *value { "'true'" } else { "'false'" }),
            Self::Int(value) => {
                let _ = write!(out, "'{value}'");
            }
            Self::Float(value) => {
                // `Debug` writes the shortest text that reads back to the same number (and `NaN`
                // as PostgreSQL spells it); infinities are spelled PostgreSQL's way.
                let _ = match value {
                    v if v.is_infinite() && v.is_sign_positive() => write!(out, "'Infinity'"),
                    v if v.is_infinite() => write!(out, "'-Infinity'"),
                    v => write!(out, "'{v:?}'"),
                };
            }
            Self::Text(text) => quote(text, out)?,
            Self::Bytes(bytes) => {
                out.push_str("'\\x");
                for byte in bytes {
                    let _ = write!(out, "{byte:02x}");
                }
                out.push('\'');
            }
            Self::Uuid(uuid) => {
                let _ = write!(out, "'{uuid}'");
            }
            Self::Timestamp(at) => {
                let _ = write!(out, "'{}'", at.to_rfc3339_opts(SecondsFormat::Micros, true));
            }
        }
        Ok(())
    }
}

/// `text` as a Unicode-escape string literal: `'` doubled, a backslash (its escape character)
/// written as `\005c`. Such literals need `standard_conforming_strings` (on unless a server is
/// configured otherwise); without it the server refuses them, so a value can never end its
/// literal early. A NUL is refused.
fn quote(text: &str, out: &mut String) -> Result<(), String> {
    if text.contains('\0') {
        return Err("a text value holds a NUL character, which PostgreSQL cannot store".to_owned());
    }
    out.push_str("U&'");
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\005c"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(())
}

macro_rules! value_from {
    ($($ty:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$ty> for Value {
            fn from($v: $ty) -> Self {
                $e
            }
        })*
    };
}

value_from! {
    bool => |v| Self::Bool(v),
    i8 => |v| Self::Int(v.into()),
    i16 => |v| Self::Int(v.into()),
    i32 => |v| Self::Int(v.into()),
    i64 => |v| Self::Int(v.into()),
    u8 => |v| Self::Int(v.into()),
    u16 => |v| Self::Int(v.into()),
    u32 => |v| Self::Int(v.into()),
    u64 => |v| Self::Int(v.into()),
    f32 => |v| Self::Float(v.into()),
    f64 => |v| Self::Float(v),
    &str => |v| Self::Text(v.to_owned()),
    String => |v| Self::Text(v),
    &String => |v| Self::Text(v.clone()),
    Vec<u8> => |v| Self::Bytes(v),
    &[u8] => |v| Self::Bytes(v.to_vec()),
    Uuid => |v| Self::Uuid(v),
    DateTime<Utc> => |v| Self::Timestamp(v),
    serde_json::Value => |v| Self::Text(v.to_string()),
    &serde_json::Value => |v| Self::Text(v.to_string()),
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(value: impl Into<Value>) -> String {
        let mut out = String::new();
        value.into().render(&mut out).map_or_else(|reason| reason, |()| out)
    }

    #[test]
    fn values_render_as_single_quoted_literals() {
        assert_eq!(rendered(42_i64), "'42'");
        assert_eq!(rendered(-7_i32), "'-7'");
        assert_eq!(rendered(u64::MAX), "'18446744073709551615'");
        assert_eq!(rendered(true), "'true'");
        assert_eq!(rendered(None::<i64>), "NULL");
        assert_eq!(rendered(1.5_f64), "'1.5'");
        assert_eq!(rendered(f64::NAN), "'NaN'");
        assert_eq!(rendered(f64::NEG_INFINITY), "'-Infinity'");
        assert_eq!(rendered(vec![0_u8, 255]), "'\\x00ff'");
        assert_eq!(rendered("it's"), "U&'it''s'");
        assert_eq!(rendered("a\\b"), "U&'a\\005cb'");
        assert_eq!(rendered("é\n"), "U&'é\n'");
        assert!(rendered("a\0b").contains("NUL"));
    }

    #[test]
    fn a_statement_renders_its_values_in_order() {
        let statement = Statement::new("INSERT INTO t VALUES ($1, $2);  ").bind("x").bind(3_i64);
        assert_eq!(statement.sql, "INSERT INTO t VALUES ($1, $2)");
        assert_eq!(statement.values, "U&'x', '3'");
        assert_eq!(Statement::new("SELECT 1").values, "");
        assert!(Statement::new("SELECT 1").bind("\0").refused.is_some());
    }
}
