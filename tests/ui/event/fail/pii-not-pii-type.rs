use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "account.opened")]
pub struct AccountOpened {
    owner: String,
    #[pii(subject = "owner")]
    email: String,
}

fn main() {}
