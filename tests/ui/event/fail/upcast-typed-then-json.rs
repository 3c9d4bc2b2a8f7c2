use es_core::Event;
use serde::{Deserialize, Serialize};

fn f(v: serde_json::Value) -> Result<serde_json::Value, es_core::upcast::UpcastError> { Ok(v) }
#[derive(Deserialize)]
pub struct V1 { amount: i64 }
#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 3, upcast(from = 1, type = V1), upcast(from = 2, with = f))]
pub struct Deposited { amount: i64 }

fn main() {}
