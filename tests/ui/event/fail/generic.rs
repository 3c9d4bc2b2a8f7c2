use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "deposited")]
pub struct Deposited<T> { amount: T }

fn main() {}
