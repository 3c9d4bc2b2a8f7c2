//! What sealing personal data costs, in one run: the same events with and without a `#[pii]`
//! field, on PostgreSQL and in memory (the CPU cost alone).
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p es-postgres --bench pii`
//!
//! 1. **Batched append**: batches of 100 events (one e-mail per event, 1,000 data subjects, so the
//!    key cache is warm after the first round) to fresh streams for `BENCH_ROUND_MS` (default
//!    2,000) per side; rounds alternate which side goes first; prints events/s and the ratio.
//! 2. **`read_all` + decode**: `BENCH_EVENTS` (default 20,000) events of each kind, read through
//!    the global log and decoded into their types (the sealed ones opened, cache warm).
//!
//! `BENCH_BACKEND=memory` or `postgres` runs one side only (`memory` under callgrind compares the
//! CPU paths: `valgrind --tool=callgrind target/release/deps/pii-…`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::time::{Duration, Instant};

use es_core::pii::MasterKeys;
use es_core::{
    AppendOptions, Event, EventData, EventStore, ExpectedVersion, MultiTenantStore, Pii,
    ReadAllOptions, StreamId, TenantId,
};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use support::BenchSchema;

mod support;

const ROUNDS: usize = 3;
const BATCH: u64 = 100;

#[derive(Serialize, Deserialize, Event)]
#[event(name = "customer.contacted")]
struct Plain {
    customer: String,
    email: String,
    channel: String,
}

#[derive(Serialize, Deserialize, Event)]
#[event(name = "customer.contacted_sealed")]
struct Sealed {
    customer: String,
    #[pii(subject = "customer")]
    email: Pii<String>,
    channel: String,
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn event(n: u64, sealed: bool) -> EventData {
    let customer = format!("customer-{}", n % 1_000);
    let email = format!("person.{n}@example.com");
    let channel = "email".to_owned();
    if sealed {
        Sealed { customer, email: Pii::new(email), channel }.to_event_data().unwrap()
    } else {
        Plain { customer, email, channel }.to_event_data().unwrap()
    }
}

/// Appends batches of 100 to fresh streams for one round; returns events/s.
async fn append_rate<S: EventStore>(store: &S, sealed: bool, label: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_millis(env("BENCH_ROUND_MS", 2_000));
    let started = Instant::now();
    let mut written = 0;
    let mut stream = 0;
    while Instant::now() < deadline {
        let events = (0..BATCH).map(|i| event(written + i, sealed)).collect();
        let id = StreamId::new(format!("{label}-{sealed}-{stream}")).unwrap();
        store
            .append(&id, ExpectedVersion::NoStream, events, AppendOptions::default())
            .await
            .unwrap();
        written += BATCH;
        stream += 1;
    }
    written as f64 / started.elapsed().as_secs_f64()
}

/// Reads the tenant's whole log and decodes every event; returns events/s.
async fn read_rate<S: EventStore>(store: &S, sealed: bool) -> f64 {
    let started = Instant::now();
    let events: Vec<_> =
        store.read_all(ReadAllOptions::from_beginning()).try_collect().await.unwrap();
    let mut decoded = 0u64;
    for recorded in &events {
        if sealed {
            let event = Sealed::decode(recorded).unwrap();
            decoded += u64::from(event.email.known().is_some());
        } else {
            let event = Plain::decode(recorded).unwrap();
            decoded += u64::from(!event.email.is_empty());
        }
    }
    assert_eq!(decoded, events.len() as u64);
    decoded as f64 / started.elapsed().as_secs_f64()
}

async fn fill<S: EventStore>(store: &S, sealed: bool, events: u64) {
    for batch in 0..events / 1_000 {
        let data = (0..1_000).map(|i| event(batch * 1_000 + i, sealed)).collect();
        let id = StreamId::new(format!("fill-{batch}")).unwrap();
        store.append(&id, ExpectedVersion::NoStream, data, AppendOptions::default()).await.unwrap();
    }
}

fn ratio_line(what: &str, plain: &[f64], sealed: &[f64]) {
    let median = |values: &[f64]| {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let (p, s) = (median(plain), median(sealed));
    println!(
        "{what:<40} plain {p:>10.0}/s  sealed {s:>10.0}/s  sealed/plain {:.3} (cost {:+.1}%)",
        s / p,
        (p / s - 1.0) * 100.0
    );
}

async fn compare<B: MultiTenantStore>(backend: &B, name: &str) {
    let append_store = backend.tenant(TenantId::new("bench-append").unwrap());
    // Warm-up: creates the 1,000 subjects' keys, fills the cache.
    append_rate(&append_store, true, "warm").await;
    append_rate(&append_store, false, "warm").await;
    let (mut plain, mut sealed) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let label = format!("r{round}");
        if round % 2 == 0 {
            plain.push(append_rate(&append_store, false, &label).await);
            sealed.push(append_rate(&append_store, true, &label).await);
        } else {
            sealed.push(append_rate(&append_store, true, &label).await);
            plain.push(append_rate(&append_store, false, &label).await);
        }
    }
    ratio_line(&format!("{name}: append, batches of {BATCH}"), &plain, &sealed);

    let events = env("BENCH_EVENTS", 20_000);
    let plain_store = backend.tenant(TenantId::new("bench-plain").unwrap());
    let sealed_store = backend.tenant(TenantId::new("bench-sealed").unwrap());
    fill(&plain_store, false, events).await;
    fill(&sealed_store, true, events).await;
    read_rate(&sealed_store, true).await; // warm the key cache
    let (mut plain, mut sealed) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            plain.push(read_rate(&plain_store, false).await);
            sealed.push(read_rate(&sealed_store, true).await);
        } else {
            sealed.push(read_rate(&sealed_store, true).await);
            plain.push(read_rate(&plain_store, false).await);
        }
    }
    ratio_line(&format!("{name}: read_all + decode ({events} events)"), &plain, &sealed);
}

#[tokio::main]
async fn main() {
    let only = std::env::var("BENCH_BACKEND").ok();
    if only.as_deref() != Some("postgres") {
        let memory = es_memory::MemoryStore::new();
        compare(&memory, "memory").await;
    }
    if only.as_deref() == Some("memory") {
        return;
    }
    let bench =
        BenchSchema::new("es_bench_pii", |options| options.master_keys(MasterKeys::ephemeral()))
            .await;
    compare(&bench.backend, "postgres").await;
    bench.finish().await;
}
