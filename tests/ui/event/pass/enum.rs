use es_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "opened")]
pub struct Opened { owner: String }
#[derive(Serialize, Deserialize, Event)] #[event(name = "closed")]
pub struct Closed;

#[derive(Event)]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
}

fn main() {
    let event: AccountEvent = Closed.into();
    assert_eq!(es_core::Event::type_info(&event).name, "closed");
    assert_eq!(<AccountEvent as es_core::Event>::TYPES.len(), 2);
}
