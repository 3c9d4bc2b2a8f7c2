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
#[derive(Clone)]
pub struct Deposit { pub amount: i64 }

#[derive(Default, Aggregate)]
#[aggregate(name = "account", event = AccountEvent, error = AccountError)]
pub struct Account { open: bool, balance: i64 }

impl Apply<AccountEvent> for Account {
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened(_) => self.open = true,
            AccountEvent::Deposited(deposited) => self.balance += deposited.amount,
        }
    }
}

pub trait Opener { fn open(&self, command: Open) -> Result<Opened, AccountError>; }
#[commands]
impl Opener for Account {
    fn open(&self, _command: Open) -> Result<Opened, AccountError> { Ok(Opened) }
}

fn main() {}
