//! A hand-written projection's name is checked when the program is built: running one whose name
//! breaks the rules does not compile (it never reaches a store).
use es_core::{EventTypeInfo, Projection, ProjectionError, RecordedEvent};

pub struct Balances;

impl Projection for Balances {
    const NAME: &'static str = "balances; drop";
    const EVENT_TYPES: &'static [&'static EventTypeInfo] = &[];

    async fn handle(&mut self, _event: &RecordedEvent) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {
    let _ = Balances::projection_name();
}
