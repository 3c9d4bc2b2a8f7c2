//! In a transactional projection every handler takes the transaction.
use es_core::{Event, ProjectionError, projection};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "deposited")]
pub struct Deposited { pub amount: i64 }
#[derive(Serialize, Deserialize, Event)] #[event(name = "withdrawn")]
pub struct Withdrawn { pub amount: i64 }

pub struct Connection;
pub struct Other;

pub struct Balances;

#[projection(name = "balances")]
impl Balances {
    async fn on_deposited(&mut self, _tx: &mut Connection, _event: &Deposited) -> Result<(), ProjectionError> { Ok(()) }
    async fn on_withdrawn(&mut self, _event: &Withdrawn) -> Result<(), ProjectionError> { Ok(()) }
}

pub struct Totals;

#[projection(name = "totals")]
impl Totals {
    async fn on_deposited(&mut self, _tx: &mut Connection, _event: &Deposited) -> Result<(), ProjectionError> { Ok(()) }
    async fn on_withdrawn(&mut self, _tx: &mut Other, _event: &Withdrawn) -> Result<(), ProjectionError> { Ok(()) }
}

fn main() {}
