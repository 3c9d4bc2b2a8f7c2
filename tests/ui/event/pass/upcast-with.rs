use es_core::Event;
use serde::{Deserialize, Serialize};

use es_core::upcast::UpcastError;
use serde_json::Value;

fn v1(value: Value) -> Result<Value, UpcastError> { Ok(value) }
fn v2(value: Value) -> Result<Value, UpcastError> { Ok(value) }

#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 3, upcast(from = 1, with = v1), upcast(from = 2, with = v2))]
pub struct Deposited { amount: i64 }

fn main() {}
