//! The paths that take time open spans (DESIGN §7): a command, a load, a snapshot write, a
//! projection's read.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};

use es_core::projection::{ProjectionRunner, VolatileCheckpoints};
use es_core::repository::{CommandOptions, Repository};
use es_core::{
    Aggregate, Apply, Event, MultiTenantStore, ProjectionError, RecordedEvent, StreamId, TenantId,
    commands, projection,
};
use serde::{Deserialize, Serialize};

/// Records the name of every span opened while it is the default subscriber.
#[derive(Clone, Default)]
struct SpanNames(Arc<Mutex<Vec<&'static str>>>);

impl tracing::Subscriber for SpanNames {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut names = self.0.lock().unwrap();
        names.push(span.metadata().name());
        tracing::span::Id::from_u64(names.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(name = "meter.ticked")]
pub struct Ticked {
    by: u64,
}

#[derive(Debug, Event)]
pub enum MeterEvent {
    Ticked(Ticked),
}

#[derive(Debug)]
pub enum MeterError {}

#[derive(Default, Serialize, Deserialize, Aggregate)]
#[aggregate(name = "meter", event = MeterEvent, error = MeterError, snapshot(every = 2))]
pub struct Meter {
    total: u64,
}

#[derive(Clone, Hash)]
pub struct Tick;

#[commands]
impl Meter {
    pub fn tick(&self, _: Tick) -> Result<Ticked, MeterError> {
        Ok(Ticked { by: 1 })
    }
}

impl Apply<MeterEvent> for Meter {
    fn apply(&mut self, event: &MeterEvent) {
        let MeterEvent::Ticked(ticked) = event;
        self.total += ticked.by;
    }
}

#[derive(Clone, Default)]
pub struct Ticks(Arc<Mutex<u64>>);

#[projection(name = "ticks")]
impl Ticks {
    async fn on_ticked(
        &mut self,
        event: &Ticked,
        _: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        *self.0.lock().unwrap() += event.by;
        Ok(())
    }
}

#[test]
fn commands_loads_snapshots_and_projection_reads_open_spans() {
    let names = SpanNames::default();
    tracing::subscriber::with_default(names.clone(), || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store = es_memory::MemoryStore::new().tenant(TenantId::default());
            let meters = Repository::<Meter, _>::new(store.clone()).with_snapshots(store.clone());
            let id = StreamId::in_category(Meter::NAME, "1").unwrap();
            for _ in 0..2 {
                meters.execute(&id, Tick, CommandOptions::default()).await.unwrap();
            }
            meters.flush_snapshots().await;
            meters.load(&id).await.unwrap();
            let ticks = Ticks::default();
            ProjectionRunner::new(ticks.clone(), VolatileCheckpoints::new(store))
                .catch_up()
                .await
                .unwrap();
            assert_eq!(*ticks.0.lock().unwrap(), 2);
        });
    });
    let names = names.0.lock().unwrap().clone();
    for expected in ["es.command", "es.load", "es.snapshot.save", "es.projection.read"] {
        assert!(names.contains(&expected), "no {expected} span among {names:?}");
    }
}
