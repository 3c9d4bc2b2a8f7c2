//! `read_all` over a large log keeps memory bounded: it streams pages, it never collects the log.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p es-postgres --bench read_all_memory`
//!
//! Bulk-loads `BENCH_EVENTS` (default 10,000,000) events with one `INSERT … SELECT generate_series`,
//! then reads them all with `read_all` (deserializing every payload) and prints the process's peak
//! resident memory (`VmHWM`) before and after, and the read rate. Drops its schema at the end.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::time::Instant;

use es_core::{EventStore, MultiTenantStore, ReadAllOptions, TenantId};
use futures_util::StreamExt;
use serde::Deserialize;
use support::BenchSchema;

mod support;

#[derive(Deserialize)]
struct Deposited {
    amount: i64,
}

/// Peak resident set size of this process, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: i64 =
        std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let bench = BenchSchema::new("es_bench_big", |options| options).await;
    let started = Instant::now();
    bench.bulk_load("big", events, 10_000).await;
    println!("bulk-loaded {events} events in {:?}", started.elapsed());

    let store = bench.backend.tenant(TenantId::new("big").unwrap());
    let before = peak_rss_mib();
    let started = Instant::now();
    let mut stream = store.read_all(ReadAllOptions::from_beginning());
    let (mut count, mut sum) = (0i64, 0i64);
    while let Some(event) = stream.next().await {
        let deposited: Deposited = event.unwrap().deserialize_payload().unwrap();
        sum += deposited.amount;
        count += 1;
    }
    let elapsed = started.elapsed();
    assert_eq!(count, events, "read_all must return every event");
    println!(
        "read_all of {count} events (sum {sum}) in {elapsed:?}: {:.0} events/s; peak RSS {before:.1} MiB before, {:.1} MiB after",
        count as f64 / elapsed.as_secs_f64(),
        peak_rss_mib()
    );
    bench.finish().await;
}
