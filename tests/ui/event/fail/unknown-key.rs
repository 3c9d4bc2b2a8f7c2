use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", nmae = "deposited")]
pub struct Deposited { amount: i64 }

fn main() {}
