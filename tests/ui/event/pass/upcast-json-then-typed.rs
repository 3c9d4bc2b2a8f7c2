use es_core::Event;
use serde::{Deserialize, Serialize};

use es_core::upcast::UpcastError;
use serde_json::Value;

fn v1(value: Value) -> Result<Value, UpcastError> { Ok(value) }
#[derive(Deserialize)]
pub struct DepositedV2 { amount: i64 }
impl From<DepositedV2> for Deposited { fn from(v2: DepositedV2) -> Self { Self { amount: v2.amount, note: None } } }

#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 3, upcast(from = 1, with = v1), upcast(from = 2, type = DepositedV2))]
pub struct Deposited { amount: i64, note: Option<String> }

fn main() {}
