use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "account.deposited:v/x_y-z", version = 1)]
pub struct Deposited { amount: i64 }

fn main() {
    assert_eq!(<Deposited as es_core::EventVariant>::INFO.name, "account.deposited:v/x_y-z");
}
