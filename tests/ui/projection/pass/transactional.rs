//! Handlers that take the transaction first (`tx: &mut Connection`) make the projection a
//! `TransactionalProjection<Connection>`: typed events, the envelope optional, per handler.
use es_core::projection::TransactionalProjection;
use es_core::{Event, ProjectionError, RecordedEvent, projection};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "deposited")]
pub struct Deposited { pub amount: i64 }
#[derive(Serialize, Deserialize, Event)] #[event(name = "withdrawn")]
pub struct Withdrawn { pub amount: i64 }

/// Stands for a backend's connection (es-postgres: `sqlx::PgConnection`).
#[derive(Default)]
pub struct Connection { pub total: i64 }

pub struct Balances;

#[projection(name = "balances")]
impl Balances {
    async fn on_deposited(&mut self, tx: &mut Connection, event: &Deposited) -> Result<(), ProjectionError> {
        tx.total += event.amount;
        Ok(())
    }

    async fn on_withdrawn(&mut self, tx: &mut Connection, event: &Withdrawn, meta: &RecordedEvent) -> Result<(), ProjectionError> {
        let _ = meta.position;
        tx.total -= event.amount;
        Ok(())
    }
}

fn main() {
    assert_eq!(<Balances as TransactionalProjection<Connection>>::NAME, "balances");
    assert_eq!(<Balances as TransactionalProjection<Connection>>::event_types().len(), 2);
}
