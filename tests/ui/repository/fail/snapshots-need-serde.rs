//! Snapshots store the state as JSON: asking for them on an aggregate that does not serialize
//! is refused at compile time, at the call that asks.
use es_core::repository::Repository;
use es_core::{Aggregate, Apply, Event, EventStore, commands};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event, Hash)]
#[event(name = "tally.counted")]
pub struct Counted;

#[derive(Debug, Event)]
pub enum TallyEvent { Counted(Counted) }

#[derive(Debug)]
pub enum TallyError {}

/// Not `Serialize`: a handle, say, that only lives in memory.
pub struct NotSerializable(std::sync::Arc<()>);

impl Default for NotSerializable {
    fn default() -> Self {
        Self(std::sync::Arc::new(()))
    }
}

#[derive(Default, Aggregate)]
#[aggregate(name = "tally", event = TallyEvent, error = TallyError)]
pub struct Tally { count: u64, _handle: NotSerializable }

#[derive(Clone, Hash)]
pub struct Count;

#[commands]
impl Tally {
    pub fn count(&self, _command: Count) -> Result<Counted, TallyError> {
        Ok(Counted)
    }
}

impl Apply<TallyEvent> for Tally {
    fn apply(&mut self, event: &TallyEvent) {
        match event {
            TallyEvent::Counted(_) => self.count += 1,
        }
    }
}

#[allow(dead_code)]
async fn count<S: EventStore + es_core::snapshot::SnapshotStore>(store: S) {
    let tallies = Repository::<Tally, _>::new(store.clone()).with_snapshots(store);
    let _ = tallies;
}

fn main() {}
