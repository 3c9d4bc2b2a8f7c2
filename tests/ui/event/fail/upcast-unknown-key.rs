use es_core::Event;
use serde::{Deserialize, Serialize};

fn f(v: serde_json::Value) -> Result<serde_json::Value, es_core::upcast::UpcastError> { Ok(v) }
#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 2, upcast(from = 1, using = f))]
pub struct Deposited { amount: i64 }

fn main() {}
