use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "account.opened")]
pub struct AccountOpened {
    owner: String,
    #[pii(subject = "owner")]
    email: String,
    #[pii(subject = "owner")]
    phone: String,
}

fn main() {
    assert_eq!(<AccountOpened as es_core::EventVariant>::INFO.pii.len(), 2);
}
