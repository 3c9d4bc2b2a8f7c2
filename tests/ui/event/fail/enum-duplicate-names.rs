use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "account.opened")]
pub struct Opened;
#[derive(Serialize, Deserialize, Event)]
#[event(name = "account.opened")]
pub struct OpenedAgain;

#[derive(Event)]
pub enum AccountEvent {
    Opened(Opened),
    OpenedAgain(OpenedAgain),
}

fn main() {}
