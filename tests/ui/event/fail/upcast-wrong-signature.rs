use es_core::Event;
use serde::{Deserialize, Serialize};

fn f(v: String) -> String { v }
#[derive(Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 2, upcast(from = 1, with = f))]
pub struct Deposited { amount: i64 }

fn main() {}
