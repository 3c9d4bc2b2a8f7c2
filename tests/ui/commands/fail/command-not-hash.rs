use es_core::{Aggregate, Apply, Event, commands};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "counter.incremented")]
pub struct Incremented {
    by: i64,
}

#[derive(Debug, Clone, Event)]
pub enum CounterEvent {
    Incremented(Incremented),
}

#[derive(Debug)]
pub enum CounterError {}

#[derive(Default, Aggregate)]
#[aggregate(name = "counter", event = CounterEvent, error = CounterError)]
pub struct Counter {
    value: i64,
}

impl Apply<CounterEvent> for Counter {
    fn apply(&mut self, event: &CounterEvent) {
        let CounterEvent::Incremented(incremented) = event;
        self.value += incremented.by;
    }
}

// A command must be `Hash`: a command run with an idempotency key is fingerprinted.
#[derive(Clone)]
pub struct Increment {
    by: i64,
}

#[commands]
impl Counter {
    pub fn increment(&self, command: Increment) -> Result<Incremented, CounterError> {
        Ok(Incremented { by: command.by })
    }
}

fn main() {}
