//! What checking quotas costs: single-event appends by 8 writers for a tenant with limits (every
//! append checked against the process's ledger, refreshed from the log every 250 ms) against the
//! same appends for a tenant without limits, on one schema in one run, rounds rotating which side
//! goes first.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p es-postgres --bench quota`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::time::{Duration, Instant};

use es_core::quota::{Limits, TenantQuotas};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, StreamId,
    TenantId,
};
use es_postgres::PgTenantStore;
use support::BenchSchema;

mod support;

const ROUNDS: usize = 5;
const WRITERS: u64 = 8;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn event(n: u64) -> EventData {
    let payload =
        format!(r#"{{"account":"acc-{}","amount":{},"currency":"EUR"}}"#, n % 1_000, n % 997);
    EventData::json(EventType::new("account.deposited").unwrap(), &payload).unwrap()
}

/// One event per append, `Exact(version)`, each writer on its own stream; returns events/s.
async fn rate(store: &PgTenantStore, label: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_millis(env("BENCH_ROUND_MS", 3_000));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        let stream = StreamId::new(format!("{label}-{writer}")).unwrap();
        tasks.spawn(async move {
            let mut version = 0;
            while Instant::now() < deadline {
                store
                    .append(
                        &stream,
                        ExpectedVersion::Exact(version),
                        vec![event(version)],
                        AppendOptions::default(),
                    )
                    .await
                    .unwrap();
                version += 1;
            }
            version
        });
    }
    let mut events = 0;
    while let Some(done) = tasks.join_next().await {
        events += done.unwrap();
    }
    events as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let bench = BenchSchema::new("es_bench_quota", |options| options.max_connections(10)).await;
    let limited = TenantId::new("limited").unwrap();
    bench
        .backend
        .set_limits(&limited, Limits::none().events(u64::MAX >> 2).streams(1 << 40))
        .await
        .unwrap();
    let limited = bench.backend.tenant(limited);
    let unlimited = bench.backend.tenant(TenantId::new("unlimited").unwrap());
    rate(&limited, "warm").await;
    rate(&unlimited, "warm").await;
    // Sides: 0 limits set (checked), 1 no limits; the order alternates every round.
    let mut figures = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for offset in 0..2 {
            let side = (round + offset) % 2;
            let store = if side == 0 { &limited } else { &unlimited };
            figures[side].push(rate(store, &format!("r{round}-{side}")).await);
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let [mut with, mut without] = figures;
    let (with_m, without_m) = (median(&mut with), median(&mut without));
    println!("{WRITERS} writers, single-event appends, medians of {ROUNDS} rounds:");
    println!(
        "  limits set (checked): {with_m:.0}/s, ratio to no limits {:.3} (cost {:+.1}%)",
        with_m / without_m,
        (without_m / with_m - 1.0) * 100.0
    );
    println!("  no limits:            {without_m:.0}/s");
    println!("rounds: limits {with:.0?}; none {without:.0?}");
    bench.finish().await;
}
