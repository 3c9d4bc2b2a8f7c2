//! The account aggregate: open, deposit, withdraw, close.

use es::{Aggregate, Apply, Event, Pii, commands};
use serde::{Deserialize, Serialize};

/// An account was opened.
///
/// The owner's name and e-mail address are personal data of the account's owner, whose subject
/// is the account's stream: sealed in the store, and [`Pii::Redacted`] once the owner is
/// forgotten (`POST /admin/accounts/{id}/forget`, `bank-admin subjects forget`).
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "account.opened")]
pub struct Opened {
    /// Who owns it.
    #[pii(stream)]
    pub owner: Pii<String>,
    /// Where to reach them, if given (events written before it existed read as none).
    #[pii(stream)]
    #[serde(default = "no_email")]
    pub email: Pii<Option<String>>,
}

fn no_email() -> Pii<Option<String>> {
    Pii::new(None)
}

/// Money came in.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "account.deposited")]
pub struct Deposited {
    /// How much, in cents (positive).
    pub cents: i64,
    /// The transfer it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
}

/// Money went out.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "account.withdrawn")]
pub struct Withdrawn {
    /// How much, in cents (positive).
    pub cents: i64,
    /// The transfer it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
}

/// The account was closed (with a zero balance).
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "account.closed")]
pub struct Closed {}

/// Everything that happens to an account.
#[derive(Debug, Clone, Event)]
pub enum AccountEvent {
    /// Opened.
    Opened(Opened),
    /// Deposited.
    Deposited(Deposited),
    /// Withdrawn.
    Withdrawn(Withdrawn),
    /// Closed.
    Closed(Closed),
}

/// Why an account refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Opening an account that exists.
    #[error("the account is already open")]
    AlreadyOpen,
    /// The account was never opened.
    #[error("the account does not exist")]
    NotFound,
    /// The account is closed.
    #[error("the account is closed")]
    Closed,
    /// An amount of zero or less.
    #[error("amounts are positive numbers of cents, not {0}")]
    InvalidAmount(i64),
    /// A withdrawal beyond the balance.
    #[error("insufficient funds: {balance} cents available, {asked} asked")]
    InsufficientFunds {
        /// The balance.
        balance: i64,
        /// The amount asked.
        asked: i64,
    },
    /// A deposit that would take the balance past the largest amount an account can hold
    /// (`i64::MAX` cents): refused, so no event can ever make the balance overflow.
    #[error(
        "a deposit of {cents} cents would take the balance of {balance} cents past the largest amount an account can hold"
    )]
    BalanceOverflow {
        /// The balance.
        balance: i64,
        /// The amount asked.
        cents: i64,
    },
    /// Closing an account that still holds money.
    #[error("the account still holds {0} cents; empty it before closing")]
    NotEmpty(i64),
}

/// An account's state, as the write side needs it.
#[derive(Debug, Default, Clone, Serialize, Deserialize, Aggregate)]
#[aggregate(name = "account", event = AccountEvent, error = AccountError, snapshot(every = 50))]
pub struct Account {
    /// Opened and not closed.
    pub open: bool,
    /// Closed.
    pub closed: bool,
    /// Its owner (`None` before it is opened).
    pub owner: Option<Pii<String>>,
    /// Balance in cents.
    pub balance: i64,
}

/// Open an account for `owner`.
#[derive(Debug, Clone, Hash)]
pub struct Open {
    /// Who owns it.
    pub owner: String,
    /// Their e-mail address, if given.
    pub email: Option<String>,
}

/// Put money in.
#[derive(Debug, Clone, Hash)]
pub struct Deposit {
    /// Cents, positive.
    pub cents: i64,
    /// The transfer it belongs to, if any.
    pub transfer: Option<String>,
}

/// Take money out.
#[derive(Debug, Clone, Hash)]
pub struct Withdraw {
    /// Cents, positive.
    pub cents: i64,
    /// The transfer it belongs to, if any.
    pub transfer: Option<String>,
}

/// Close an empty account.
#[derive(Debug, Clone, Hash)]
pub struct Close;

impl Account {
    fn usable(&self) -> Result<(), AccountError> {
        if self.closed {
            Err(AccountError::Closed)
        } else if !self.open {
            Err(AccountError::NotFound)
        } else {
            Ok(())
        }
    }
}

fn positive(cents: i64) -> Result<i64, AccountError> {
    if cents > 0 { Ok(cents) } else { Err(AccountError::InvalidAmount(cents)) }
}

#[commands]
impl Account {
    /// Decides the command.
    pub fn open(&self, command: Open) -> Result<Opened, AccountError> {
        if self.open || self.closed {
            return Err(AccountError::AlreadyOpen);
        }
        Ok(Opened { owner: Pii::new(command.owner), email: Pii::new(command.email) })
    }

    /// Decides the command.
    pub fn deposit(&self, command: Deposit) -> Result<Deposited, AccountError> {
        self.usable()?;
        let cents = positive(command.cents)?;
        if self.balance.checked_add(cents).is_none() {
            return Err(AccountError::BalanceOverflow { balance: self.balance, cents });
        }
        Ok(Deposited { cents, transfer: command.transfer })
    }

    /// Decides the command.
    pub fn withdraw(&self, command: Withdraw) -> Result<Withdrawn, AccountError> {
        self.usable()?;
        let cents = positive(command.cents)?;
        if cents > self.balance {
            return Err(AccountError::InsufficientFunds { balance: self.balance, asked: cents });
        }
        Ok(Withdrawn { cents, transfer: command.transfer })
    }

    /// Decides the command.
    pub fn close(&self, _: Close) -> Result<Closed, AccountError> {
        self.usable()?;
        if self.balance != 0 {
            return Err(AccountError::NotEmpty(self.balance));
        }
        Ok(Closed {})
    }
}

impl Apply<AccountEvent> for Account {
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened(opened) => {
                self.open = true;
                self.owner = Some(opened.owner.clone());
            }
            // `deposit` and `withdraw` refuse what would overflow, so saturation never happens
            // for events this code decided; it keeps the fold total (no panic) for any stored log.
            AccountEvent::Deposited(deposited) => {
                self.balance = self.balance.saturating_add(deposited.cents);
            }
            AccountEvent::Withdrawn(withdrawn) => {
                self.balance = self.balance.saturating_sub(withdrawn.cents);
            }
            AccountEvent::Closed(_) => {
                self.open = false;
                self.closed = true;
            }
        }
    }
}
