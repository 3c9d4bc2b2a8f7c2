use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "opened")]
pub struct Opened;

#[derive(Event)]
#[event(prefix = "account.")]
pub enum AccountEvent { Opened(Opened) }

fn main() {}
