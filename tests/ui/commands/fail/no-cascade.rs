//! One malformed command method costs one error: the command enum is still generated from the
//! others, so the aggregate and the code that sends its commands do not fail too.
use es_core::{Aggregate, Apply, Event, commands};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)] #[event(name = "opened")]
pub struct Opened;

#[derive(Debug, Event)]
pub enum AccountEvent { Opened(Opened) }

#[derive(Debug)]
pub enum AccountError { AlreadyOpen }

#[derive(Clone, Hash)]
pub struct Open;
#[derive(Clone, Hash)]
pub struct Close;

#[derive(Default, Aggregate)]
#[aggregate(name = "account", event = AccountEvent, error = AccountError)]
pub struct Account { open: bool }

impl Apply<AccountEvent> for Account {
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened(_) => self.open = true,
        }
    }
}

#[commands]
impl Account {
    pub fn open(&self, _command: Open) -> Result<Opened, AccountError> {
        if self.open { Err(AccountError::AlreadyOpen) } else { Ok(Opened) }
    }

    pub async fn close(&self, _command: Close) -> Result<(), AccountError> {
        Ok(())
    }
}

fn main() {
    let _ = AccountCommand::from(Open);
}
