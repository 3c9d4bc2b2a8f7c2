//! Cost as the log grows: the same measurements with 1,000,000 and 10,000,000 events in the table.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p es-postgres --bench growth`
//!
//! At each size (`BENCH_GROWTH_SIZES`, default `1000000,10000000`; the log is topped up with one
//! `INSERT … SELECT generate_series` per size, 100,000 streams of other tenants' and this tenant's
//! events alike, then analyzed): single-event appends by 1 writer (rate, p50 and p99 latency) and
//! by 8 writers (rate), the load of a 100-event stream written at that size (median of 50), and
//! `read_all` of the last 200,000 events (rate, memory bounded by the page). `BENCH_ROUND_MS`
//! (default 3000) bounds each append round. The table grows by what the rounds append, too.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::time::{Duration, Instant};

use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, Position,
    ReadAllOptions, ReadStreamOptions, StreamId, TenantId,
};
use es_postgres::PgTenantStore;
use futures_util::TryStreamExt;
use sqlx::AssertSqlSafe;
use support::BenchSchema;

mod support;

const TENANT: &str = "default";
const STREAMS: i64 = 100_000;
const TAIL: u64 = 200_000;

fn round() -> Duration {
    Duration::from_millis(
        std::env::var("BENCH_ROUND_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000),
    )
}

fn event(n: u64) -> EventData {
    EventData::json(
        EventType::new("account.deposited").unwrap(),
        &serde_json::json!({ "amount": n % 100, "currency": "EUR" }),
    )
    .unwrap()
}

/// Adds bulk events `from..=to` (of `to` in all).
async fn top_up(bench: &BenchSchema, from: i64, to: i64) {
    let schema = bench.schema;
    // Versions follow from g (stream g % STREAMS holds version g / STREAMS + 1), so each top-up
    // continues the streams of the last; positions come from the store's sequence.
    let load = format!(
        "INSERT INTO {schema}.events (tenant, position, stream_id, stream_version, event_id, event_type, \
         schema_version, payload, metadata, recorded_at) \
         SELECT '{TENANT}', nextval('{schema}.event_position_seq'), 'bulk-' || (g % {STREAMS}), g / {STREAMS} + 1, gen_random_uuid(), \
                'account.deposited', 1, jsonb_build_object('amount', g % 100, 'currency', 'EUR'), NULL, now() \
         FROM generate_series({from}, {to}) AS g"
    );
    sqlx::query(AssertSqlSafe(load)).execute(&bench.admin).await.unwrap();
    bench.vacuum(&format!("{schema}.events")).await;
}

/// Single-event appends to fresh streams by `writers` tasks for one round: events/s and, per
/// append, the p50 and p99 latency.
async fn appends(store: &PgTenantStore, writers: u64, label: &str) -> (f64, Duration, Duration) {
    let deadline = Instant::now() + round();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let store = store.clone();
        let label = label.to_owned();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut step = 0u64;
            while Instant::now() < deadline {
                let stream = StreamId::new(format!("grow-{label}-{writer}-{}", step / 20)).unwrap();
                let expected = ExpectedVersion::Exact(step % 20);
                let began = Instant::now();
                store
                    .append(&stream, expected, vec![event(step)], AppendOptions::default())
                    .await
                    .unwrap();
                latencies.push(began.elapsed());
                step += 1;
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.unwrap());
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    (rate, at(0.5), at(0.99))
}

/// The median time to read a 100-event stream whole, over 50 streams written at this size.
async fn stream_loads(store: &PgTenantStore, label: &str) -> Duration {
    let mut times = Vec::new();
    for n in 0..50u64 {
        let stream = StreamId::new(format!("load-{label}-{n}")).unwrap();
        let events = (0..100).map(event).collect();
        store
            .append(&stream, ExpectedVersion::NoStream, events, AppendOptions::default())
            .await
            .unwrap();
        let began = Instant::now();
        let read: Vec<_> =
            store.read_stream(&stream, ReadStreamOptions::default()).try_collect().await.unwrap();
        times.push(began.elapsed());
        assert_eq!(read.len(), 100);
    }
    times.sort();
    times[times.len() / 2]
}

/// `read_all` of the last `TAIL` events: events/s.
async fn tail_read(store: &PgTenantStore) -> f64 {
    let head = store.head_position().await.unwrap().value();
    let after = Position::new(head.saturating_sub(TAIL));
    let began = Instant::now();
    let mut events = store.read_all(ReadAllOptions::after(after));
    let mut count = 0u64;
    while let Some(event) = events.try_next().await.unwrap() {
        count += 1;
        std::hint::black_box(&event);
    }
    assert!(count > 0);
    count as f64 / began.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<i64> = std::env::var("BENCH_GROWTH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".to_owned())
        .split(',')
        .map(|size| size.trim().parse().expect("BENCH_GROWTH_SIZES: numbers"))
        .collect();
    let bench = BenchSchema::new("es_bench_growth", |options| options.max_connections(10)).await;
    let store = bench.backend.tenant(TenantId::new(TENANT).unwrap());
    println!("es-postgres as the log grows ({:?} append rounds)", round());
    println!(
        "{:>12} {:>10} {:>9} {:>9} {:>12} {:>14} {:>14}",
        "bulk events",
        "1 writer",
        "p50 ms",
        "p99 ms",
        "8 writers",
        "100-ev load ms",
        "read_all ev/s"
    );
    let mut loaded = 0;
    for size in sizes {
        let started = Instant::now();
        top_up(&bench, loaded + 1, size).await;
        loaded = size;
        let load_time = started.elapsed();
        let label = size.to_string();
        let (one, p50, p99) = appends(&store, 1, &format!("{label}-1")).await;
        let (eight, _, _) = appends(&store, 8, &format!("{label}-8")).await;
        let load = stream_loads(&store, &label).await;
        let read = tail_read(&store).await;
        println!(
            "{size:>12} {one:>10.0} {:>9.2} {:>9.2} {eight:>12.0} {:>14.2} {read:>14.0}   (bulk load {:.0?})",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            load.as_secs_f64() * 1e3,
            load_time
        );
    }
    let size: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT pg_size_pretty(pg_total_relation_size('{}.events'))",
        bench.schema
    )))
    .fetch_one(&bench.admin)
    .await
    .unwrap();
    println!("events table with its indexes: {size}");
    bench.finish().await;
}
