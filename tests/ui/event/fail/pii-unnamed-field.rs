use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "opened")]
pub struct Opened(String, #[pii(subject = "0")] String);

fn main() {}
