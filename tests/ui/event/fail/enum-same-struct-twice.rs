use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "opened")]
pub struct Opened;

#[derive(Event)]
pub enum AccountEvent {
    Opened(Opened),
    Reopened(Opened),
}

fn main() {}
