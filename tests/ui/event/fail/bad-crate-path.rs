use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", crate = "not a path")]
pub struct Deposited { amount: i64 }

fn main() {}
