use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
pub struct Deposited { amount: i64 }

#[derive(Serialize, Deserialize, Event)]
pub struct Marker;

fn main() {
    assert_eq!(<Deposited as es_core::EventVariant>::INFO.name, "Deposited");
    assert_eq!(<Deposited as es_core::EventVariant>::INFO.version, 1);
    assert_eq!(<Marker as es_core::EventVariant>::INFO.name, "Marker");
}
