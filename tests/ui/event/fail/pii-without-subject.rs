use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "opened")]
pub struct Opened {
    owner: String,
    #[pii]
    email: String,
}

fn main() {}
