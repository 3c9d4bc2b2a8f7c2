use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
pub struct Deposited<T> { amount: T }

fn main() {}
