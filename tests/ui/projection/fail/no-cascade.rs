//! One malformed handler costs one error: the projection is still generated from the others, so
//! code that runs it does not fail too.
use es_core::{Event, Projection, ProjectionError, projection};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "deposited")]
pub struct Deposited { pub amount: i64 }
#[derive(Serialize, Deserialize, Event)] #[event(name = "withdrawn")]
pub struct Withdrawn { pub amount: i64 }

#[derive(Default)]
pub struct Balances { total: i64 }

#[projection(name = "balances")]
impl Balances {
    async fn on_deposited(&mut self, event: &Deposited) -> Result<(), ProjectionError> { self.total += event.amount; Ok(()) }
    fn on_withdrawn(&mut self, event: &Withdrawn) -> Result<(), ProjectionError> { self.total -= event.amount; Ok(()) }
}

fn run<P: Projection>(_: P) -> &'static str { P::NAME }

fn main() {
    assert_eq!(run(Balances::default()), "balances");
}
