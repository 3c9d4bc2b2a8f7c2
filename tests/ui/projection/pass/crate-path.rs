extern crate es_core as renamed;
use renamed::{Event, ProjectionError, RecordedEvent, projection};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "deposited")]
pub struct Deposited { pub amount: i64 }
#[derive(Serialize, Deserialize, Event)] #[event(name = "withdrawn")]
pub struct Withdrawn { pub amount: i64 }

#[derive(Default)]
pub struct Balances { total: i64 }

#[projection(name = "balances", crate = "renamed")]
impl Balances {
    async fn on_deposited(&mut self, event: &Deposited, _meta: &RecordedEvent) -> Result<(), ProjectionError> {
        self.total += event.amount;
        Ok(())
    }
}

fn main() {}
