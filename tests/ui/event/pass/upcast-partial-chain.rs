use es_core::Event;
use serde::{Deserialize, Serialize};

use es_core::upcast::UpcastError;
use serde_json::Value;

fn v2(value: Value) -> Result<Value, UpcastError> { Ok(value) }

// Version 1 was never stored: the chain starts at 2.
#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 3, upcast(from = 2, with = v2))]
pub struct Deposited { amount: i64 }

fn main() {}
