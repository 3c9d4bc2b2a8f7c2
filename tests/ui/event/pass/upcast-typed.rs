use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct DepositedV1 { cents: i64 }
#[derive(Serialize, Deserialize)]
pub struct DepositedV2 { amount: i64 }
impl From<DepositedV1> for DepositedV2 { fn from(v1: DepositedV1) -> Self { Self { amount: v1.cents } } }
impl From<DepositedV2> for Deposited { fn from(v2: DepositedV2) -> Self { Self { amount: v2.amount, currency: "EUR".into() } } }

#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 3, upcast(from = 1, type = DepositedV1), upcast(from = 2, type = DepositedV2))]
pub struct Deposited { amount: i64, currency: String }

fn main() {}
