//! What counting usage and checking quotas costs: single-event appends by 8 writers with the
//! usage trigger on (and limits set, so the check runs) against the same appends with the
//! trigger disabled, in one run, rounds alternating which side goes first.
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
use sqlx::AssertSqlSafe;
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
    let tenant = TenantId::new("bench").unwrap();
    bench
        .backend
        .set_limits(&tenant, Limits::none().events(u64::MAX >> 2).streams(1 << 40))
        .await
        .unwrap();
    let store = bench.backend.tenant(tenant);
    let trigger = |on: bool| {
        format!(
            "ALTER TABLE {}.events {} TRIGGER events_count_usage",
            bench.schema,
            if on { "ENABLE" } else { "DISABLE" }
        )
    };
    rate(&store, "warm").await;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for on in if round % 2 == 0 { [true, false] } else { [false, true] } {
            sqlx::query(AssertSqlSafe(trigger(on))).execute(&bench.admin).await.unwrap();
            let figure = rate(&store, &format!("r{round}-{on}")).await;
            if on { with.push(figure) } else { without.push(figure) }
        }
    }
    sqlx::query(AssertSqlSafe(trigger(true))).execute(&bench.admin).await.unwrap();
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (on, off) = (median(&mut with), median(&mut without));
    println!(
        "{WRITERS} writers, single-event appends: quotas {on:.0}/s, without the trigger {off:.0}/s, ratio {:.3} (cost {:+.1}%)",
        on / off,
        (off / on - 1.0) * 100.0
    );
    println!("rounds with quotas: {with:.0?}; without: {without:.0?}");
    bench.finish().await;
}
