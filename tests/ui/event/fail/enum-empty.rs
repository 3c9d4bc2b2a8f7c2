use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event)]
pub enum AccountEvent {}

fn main() {}
