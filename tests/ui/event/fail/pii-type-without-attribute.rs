use es_core::{Event, Pii};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "account.opened")]
pub struct AccountOpened {
    owner: String,
    email: Pii<String>,
}

fn main() {}
