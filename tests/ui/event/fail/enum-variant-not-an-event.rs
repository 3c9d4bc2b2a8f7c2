use es_core::Event;
use serde::{Deserialize, Serialize};

pub struct Opened;

#[derive(Event)]
pub enum AccountEvent {
    Opened(Opened),
}

fn main() {}
