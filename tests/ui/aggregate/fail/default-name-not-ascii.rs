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
pub struct Kontoübersicht { open: bool, balance: i64 }

impl Apply<AccountEvent> for Kontoübersicht {
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened(_) => self.open = true,
            AccountEvent::Deposited(deposited) => self.balance += deposited.amount,
        }
    }
}

#[commands]
impl Kontoübersicht {
    pub fn open(&self, _command: Open) -> Result<Opened, AccountError> {
        Ok(Opened)
    }

    pub fn deposit(&self, command: Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        if !self.open {
            return Err(AccountError::NotOpen);
        }
        Ok(vec![Deposited { amount: command.amount }.into()])
    }
}

fn main() {}
