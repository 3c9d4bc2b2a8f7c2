extern crate es_core as renamed_core;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, renamed_core::Event)]
#[event(crate = "renamed_core", name = "renamed")]
pub struct Deposited { amount: i64 }

#[derive(renamed_core::Event)]
#[event(crate = "renamed_core")]
pub enum Events { Deposited(Deposited) }

fn main() {}
