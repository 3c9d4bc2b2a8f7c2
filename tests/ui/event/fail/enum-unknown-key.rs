use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
pub struct Opened;

#[derive(Event)]
#[event(prefix = "account.")]
pub enum AccountEvent { Opened(Opened) }

fn main() {}
