use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 2, upcast(from = 1))]
pub struct Deposited { amount: i64 }

fn main() {}
