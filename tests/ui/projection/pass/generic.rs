use es_core::{Event, Projection, ProjectionError, projection};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)] #[event(name = "deposited")]
pub struct Deposited { pub amount: i64 }

/// A process manager generic over where it sends its commands.
pub struct Notifier<S> { sink: S, seen: i64 }

pub trait Sink: Send + 'static {
    fn send(&mut self, amount: i64);
}

#[projection(name = "notifier")]
impl<S: Sink> Notifier<S>
where
    S: Sync,
{
    async fn on_deposited(&mut self, event: &Deposited) -> Result<(), ProjectionError> {
        self.seen += event.amount;
        self.sink.send(event.amount);
        Ok(())
    }
}

struct Printer;
impl Sink for Printer {
    fn send(&mut self, _: i64) {}
}

fn main() {
    assert_eq!(<Notifier<Printer> as Projection>::NAME, "notifier");
    assert_eq!(Notifier::<Printer>::EVENT_TYPES.len(), 1);
    let _ = Notifier { sink: Printer, seen: 0 }.seen;
}
