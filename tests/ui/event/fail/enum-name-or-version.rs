use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "opened")]
pub struct Opened;

#[derive(Event)]
#[event(name = "account", version = 2)]
pub enum AccountEvent { Opened(Opened) }

fn main() {}
