//! Throughput of the in-memory store on one core (a current-thread runtime).
//!
//! `cargo bench -p es-memory --bench memory_store`
//!
//! - `append/batch_100`: appends of 100 pre-built events to streams of 10 appends each; the
//!   events are built outside the timed region (building them is the caller's cost, not the store's).
//! - `read_all/1M`: `read_all` over a 1,000,000-event log, every event cloned out of the store.
//! - `read_stream/10k`: a forward read of one 10,000-event stream.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, Payload,
    ReadAllOptions, ReadStreamOptions, StreamId, TenantId,
};
use es_memory::{MemoryStore, MemoryTenantStore};
use futures_util::StreamExt;
use tokio::runtime::Runtime;

const BATCH: u64 = 100;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn deposited(n: u64) -> EventData {
    let payload = Payload::from_value(
        &serde_json::json!({ "account": "acc-42", "amount": n % 1_000, "currency": "EUR" }),
    )
    .unwrap();
    EventData::new(EventType::new("account.deposited").unwrap(), payload)
}

fn store() -> MemoryTenantStore {
    MemoryStore::new().tenant(TenantId::default())
}

async fn fill(store: &MemoryTenantStore, events: u64) {
    for batch in 0..events / BATCH {
        let stream = StreamId::new(format!("account-{}", batch / 10)).unwrap();
        let events = (0..BATCH).map(|n| deposited(batch * BATCH + n)).collect();
        store
            .append(&stream, ExpectedVersion::Any, events, AppendOptions::default())
            .await
            .unwrap();
    }
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("batch_100", |b| {
        b.iter_custom(|iters| {
            // Build the batches in chunks outside the timed region; a fresh store per chunk keeps
            // memory bounded however many iterations criterion asks for.
            const CHUNK: u64 = 1_000;
            let mut elapsed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = CHUNK.min(iters - done);
                let store = store();
                let batches: Vec<(StreamId, Vec<EventData>)> = (0..n)
                    .map(|i| {
                        (
                            StreamId::new(format!("account-{}", i / 10)).unwrap(),
                            (0..BATCH).map(|e| deposited(i * BATCH + e)).collect(),
                        )
                    })
                    .collect();
                let started = Instant::now();
                rt.block_on(async {
                    for (stream, events) in batches {
                        store
                            .append(&stream, ExpectedVersion::Any, events, AppendOptions::default())
                            .await
                            .unwrap();
                    }
                });
                elapsed += started.elapsed();
                done += n;
            }
            elapsed
        });
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    const LOG: u64 = 1_000_000;
    let rt = runtime();
    let store = store();
    rt.block_on(fill(&store, LOG));

    let mut group = c.benchmark_group("read_all");
    group.throughput(Throughput::Elements(LOG));
    group.sample_size(10);
    group.bench_function("1M", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut events = store.read_all(ReadAllOptions::from_beginning());
                let mut count = 0u64;
                while let Some(event) = events.next().await {
                    count += event.unwrap().stream_version & 1;
                }
                count
            })
        });
    });
    group.finish();

    let stream_store = self::store();
    let stream = StreamId::new("account-long").unwrap();
    rt.block_on(async {
        for batch in 0..100 {
            let events = (0..BATCH).map(|n| deposited(batch * BATCH + n)).collect();
            stream_store
                .append(&stream, ExpectedVersion::Any, events, AppendOptions::default())
                .await
                .unwrap();
        }
    });
    let mut group = c.benchmark_group("read_stream");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10k", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut events = stream_store.read_stream(&stream, ReadStreamOptions::forward());
                let mut count = 0u64;
                while let Some(event) = events.next().await {
                    count += event.unwrap().stream_version & 1;
                }
                count
            })
        });
    });
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
