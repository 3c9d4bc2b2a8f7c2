use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "opened")]
pub struct Opened {
    owner: String,
    #[pii(subject = "owner", key = "k")]
    email: String,
}

fn main() {}
