use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 2)]
#[event(version = 3)]
pub struct Deposited { amount: i64 }

fn main() {}
