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
use es_postgres::{PgStore, PgStoreOptions};
use futures_util::StreamExt;
use serde::Deserialize;

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
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL must point at PostgreSQL");
    let events: i64 =
        std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let schema = "es_bench_big";
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
    let backend =
        PgStore::connect_with(PgStoreOptions::new(&url).schema(schema).unwrap()).await.unwrap();
    backend.migrate().await.unwrap();

    let started = Instant::now();
    let load = format!(
        "INSERT INTO {schema}.events (tenant, position, stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, recorded_at) \
         SELECT 'big', g, 'account-' || (g % 10000), g / 10000 + 1, gen_random_uuid(), 'account.deposited', 1, \
                jsonb_build_object('amount', g % 100, 'currency', 'EUR'), NULL, now() \
         FROM generate_series(1, {events}) AS g"
    );
    sqlx::query(sqlx::AssertSqlSafe(load)).execute(&admin).await.unwrap();
    // The read horizon follows the sequence: tell it about the positions the bulk load used.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT setval('{schema}.event_position_seq', {events})"
    )))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {schema}.events")))
        .execute(&admin)
        .await
        .unwrap();
    println!("bulk-loaded {events} events in {:?}", started.elapsed());

    let store = backend.tenant(TenantId::new("big").unwrap());
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
    drop(backend);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
}
