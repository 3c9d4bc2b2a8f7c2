use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
pub struct Einzahlungsbestätigung { amount: i64 }

fn main() {}
