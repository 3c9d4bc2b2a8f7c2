use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event)]
pub union Bits { a: u32, b: f32 }

fn main() {}
