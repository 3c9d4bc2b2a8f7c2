//! The stored name is explicit: without `name`, the error suggests one (and no cascade of
//! follow-up errors: the enum and the version default still work).
use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
pub struct AccountOpened { amount: i64 }

#[derive(Serialize, Deserialize, Event)]
#[event(version = 2)]
pub struct Marker;

#[derive(Event)]
pub enum Events { Opened(AccountOpened), Marker(Marker) }

fn main() {
    assert_eq!(<AccountOpened as es_core::EventVariant>::INFO.version, 1);
}
