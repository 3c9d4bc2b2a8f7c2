use es_core::{Event, Projection, ProjectionError, RecordedEvent, projection};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "deposited")]
pub struct Deposited { pub amount: i64 }
#[derive(Serialize, Deserialize, Event)] #[event(name = "withdrawn")]
pub struct Withdrawn { pub amount: i64 }

#[derive(Default)]
pub struct Balances { total: i64 }

#[projection(name = "account balances")]
impl Balances {
    async fn on_deposited(&mut self, event: &Deposited) -> Result<(), ProjectionError> { self.total += event.amount; Ok(()) }
}

fn main() {}
