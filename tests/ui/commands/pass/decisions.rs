use es_core::{Aggregate, Apply, Event, commands};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)] #[event(name = "opened")]
pub struct Opened;
#[derive(Debug, Serialize, Deserialize, Event)] #[event(name = "deposited")]
pub struct Deposited { pub amount: i64 }

#[derive(Debug, Event)]
pub enum AccountEvent { Opened(Opened), Deposited(Deposited) }

#[derive(Debug)]
pub enum AccountError { NotOpen }

#[derive(Clone, Hash)]
pub struct Open;
#[derive(Clone, Hash)]
pub struct Deposit { pub amount: i64 }

#[derive(Default, Aggregate)]
#[aggregate(event = AccountEvent, error = AccountError)]
pub struct Account { open: bool, balance: i64 }

impl Apply<AccountEvent> for Account {
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened(_) => self.open = true,
            AccountEvent::Deposited(deposited) => self.balance += deposited.amount,
        }
    }
}

#[derive(Clone, Hash)]
pub struct Noop;
#[derive(Clone, Hash)]
pub struct Maybe;

#[derive(Debug)]
pub struct OtherError;
impl From<OtherError> for AccountError { fn from(_: OtherError) -> Self { AccountError::NotOpen } }

#[commands]
impl Account {
    /// One event struct.
    pub fn open(&self, _command: Open) -> Result<Opened, AccountError> { Ok(Opened) }
    /// A vector of the enum.
    pub fn deposit(&self, command: Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Deposited { amount: command.amount }.into()])
    }
    /// Nothing to do.
    pub fn noop(&self, _command: Noop) -> Result<(), AccountError> { Ok(()) }
    /// Maybe an event, with an error that converts into the aggregate's.
    pub fn maybe(&self, _command: Maybe) -> Result<Option<AccountEvent>, OtherError> { Ok(None) }
}

fn main() {
    let account = Account::default();
    assert!(account.handle(Noop.into()).unwrap().is_empty());
    assert!(account.handle(AccountCommand::Maybe(Maybe)).unwrap().is_empty());
    assert_eq!(account.handle(Deposit { amount: 1 }.into()).unwrap().len(), 1);
}
