//! An aggregate whose state does not serialize runs commands through a repository without
//! snapshots: serde is required only where snapshots are kept.
use es_core::repository::{CommandOptions, Repository};
use es_core::{Aggregate, Apply, Event, EventStore, StreamId, commands};
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
async fn count<S: EventStore>(store: S) {
    let tallies = Repository::<Tally, _>::new(store).with_cache(16);
    let id = StreamId::in_category(Tally::NAME, "1").unwrap();
    let _ = tallies.execute(&id, Count, CommandOptions::default()).await;
    let _ = tallies.load(&id).await;
}

fn main() {}
