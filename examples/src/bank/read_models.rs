//! The query side: balances and statements, built by `#[projection]`s from the global log and
//! held in memory (shared handles: the runner writes, the HTTP handlers read).
//!
//! Each view remembers the last position it applied per account, so an event delivered twice
//! changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use es::pii::SubjectForgotten;
use es::{ProjectionError, RecordedEvent, projection};
use parking_lot::RwLock;
use serde::Serialize;

use super::account::{Closed, Deposited, Opened, Withdrawn};

fn account_id(meta: &RecordedEvent) -> String {
    let stream = meta.stream_id.as_str();
    stream.strip_prefix("account-").unwrap_or(stream).to_owned()
}

/// One account as the balances view shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// The account id.
    pub id: String,
    /// Its owner; `None` once the owner was forgotten.
    pub owner: Option<String>,
    /// The owner's e-mail address, if given and not forgotten.
    pub email: Option<String>,
    /// The owner was forgotten: their personal data is gone for good.
    pub forgotten: bool,
    /// Balance in cents.
    pub balance: i64,
    /// `open` or `closed`.
    pub status: &'static str,
    /// The position of the last event applied.
    pub position: u64,
}

/// Every account's balance.
#[derive(Clone, Default)]
pub struct Balances {
    accounts: Arc<RwLock<BTreeMap<String, AccountView>>>,
}

impl Balances {
    /// One account.
    pub fn get(&self, id: &str) -> Option<AccountView> {
        self.accounts.read().get(id).cloned()
    }

    /// The number of accounts and the sum of their balances (an `i128`: any set of `i64`
    /// balances adds up without overflow).
    pub fn totals(&self) -> (usize, i128) {
        let accounts = self.accounts.read();
        (accounts.len(), accounts.values().map(|account| i128::from(account.balance)).sum())
    }

    /// Every account (for comparisons and exports).
    pub fn all(&self) -> BTreeMap<String, AccountView> {
        self.accounts.read().clone()
    }

    fn update(&self, meta: &RecordedEvent, change: impl FnOnce(&mut AccountView)) {
        let id = account_id(meta);
        let mut accounts = self.accounts.write();
        let view = accounts.entry(id.clone()).or_insert_with(|| AccountView {
            id,
            status: "open",
            ..AccountView::default()
        });
        if meta.position.value() > view.position {
            change(view);
            view.position = meta.position.value();
        }
    }
}

#[projection(name = "balances")]
impl Balances {
    async fn on_opened(
        &mut self,
        event: &Opened,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.update(meta, |view| {
            view.owner = event.owner.known().cloned();
            view.email = event.email.known().cloned().flatten();
            view.forgotten = event.owner.is_redacted();
        });
        Ok(())
    }

    /// The owner of an account was forgotten: drop the copies of their personal data at once
    /// (a rebuild would read the sealed fields as redacted anyway).
    async fn on_forgotten(&mut self, event: &SubjectForgotten) -> Result<(), ProjectionError> {
        let Some(id) = event.subject.strip_prefix("account-") else { return Ok(()) };
        if let Some(view) = self.accounts.write().get_mut(id) {
            view.owner = None;
            view.email = None;
            view.forgotten = true;
        }
        Ok(())
    }

    async fn on_deposited(
        &mut self,
        event: &Deposited,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        // Saturating: the account refuses overflowing deposits, and a view must never panic on
        // whatever the log holds (a panicking handler would stop the view).
        self.update(meta, |view| view.balance = view.balance.saturating_add(event.cents));
        Ok(())
    }

    async fn on_withdrawn(
        &mut self,
        event: &Withdrawn,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.update(meta, |view| view.balance = view.balance.saturating_sub(event.cents));
        Ok(())
    }

    async fn on_closed(&mut self, _: &Closed, meta: &RecordedEvent) -> Result<(), ProjectionError> {
        self.update(meta, |view| view.status = "closed");
        Ok(())
    }
}

/// One line of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementLine {
    /// The event's global position.
    pub position: u64,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// `deposit` or `withdrawal`.
    pub kind: &'static str,
    /// Cents moved (positive).
    pub cents: i64,
    /// The balance after it.
    pub balance: i64,
    /// The transfer it belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
}

#[derive(Default)]
struct Statement {
    balance: i64,
    lines: Vec<StatementLine>,
}

/// Every account's statement: its movements with running balances.
#[derive(Clone, Default)]
pub struct Statements {
    statements: Arc<RwLock<HashMap<String, Statement>>>,
}

impl Statements {
    /// The last `limit` lines of an account's statement, oldest first (`None`: no movement yet).
    pub fn lines(&self, id: &str, limit: usize) -> Option<Vec<StatementLine>> {
        let statements = self.statements.read();
        let lines = &statements.get(id)?.lines;
        Some(lines[lines.len().saturating_sub(limit)..].to_vec())
    }

    fn add(&self, meta: &RecordedEvent, kind: &'static str, delta: i64, transfer: Option<&String>) {
        let mut statements = self.statements.write();
        let statement = statements.entry(account_id(meta)).or_default();
        if statement.lines.last().is_some_and(|last| last.position >= meta.position.value()) {
            return; // delivered twice
        }
        statement.balance = statement.balance.saturating_add(delta);
        statement.lines.push(StatementLine {
            position: meta.position.value(),
            at: meta.recorded_at,
            kind,
            cents: delta.saturating_abs(),
            balance: statement.balance,
            transfer: transfer.cloned(),
        });
    }
}

#[projection(name = "statements")]
impl Statements {
    async fn on_deposited(
        &mut self,
        event: &Deposited,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.add(meta, "deposit", event.cents, event.transfer.as_ref());
        Ok(())
    }

    async fn on_withdrawn(
        &mut self,
        event: &Withdrawn,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.add(meta, "withdrawal", -event.cents, event.transfer.as_ref());
        Ok(())
    }
}
