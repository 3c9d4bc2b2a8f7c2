//! What publishing costs, and how fast the relay delivers, in one run.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres NATS_URL=nats://127.0.0.1:4222 cargo bench -p es-postgres --bench outbox`
//!
//! 1. **Append with and without a publication** (one message per event), and the raw-SQL
//!    equivalents (an `INSERT` of the event, and a statement that also inserts the outbox row):
//!    rounds alternate, the plain side first in odd rounds; prints events/s and the ratios.
//! 2. **Relay throughput**: `BENCH_RELAY_MESSAGES` (default 50,000) messages over 1,000 streams,
//!    bulk-loaded into the outbox, drained by one relay (batches of 1,000) into a JetStream stream,
//!    and into the in-memory sink (the relay's own cost).
//! 3. **End-to-end latency** at `BENCH_RATE` appends/s (default 1,000) for `BENCH_LATENCY_SECS`
//!    (default 5): from before the append to the message arriving at a NATS subscriber, with the
//!    relay running; prints p50, p99 and max.
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

use es_core::outbox::{MemorySink, Publication, Relay, RelayOptions, Sink};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, StreamId,
    Subject, TenantId,
};
use es_nats::{JetStreamSink, StreamConfig};
use es_postgres::PgTenantStore;
use futures_util::StreamExt;
use sqlx::{AssertSqlSafe, PgPool};
use support::BenchSchema;
use uuid::Uuid;

mod support;

const ROUNDS: usize = 3;
const TENANT: &str = "bench";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn round() -> Duration {
    Duration::from_millis(env("BENCH_ROUND_MS", 2_000))
}

fn payload(n: u64) -> String {
    format!(r#"{{"account":"acc-{}","amount":{},"currency":"EUR"}}"#, n % 1_000, n % 997)
}

fn event(n: u64) -> EventData {
    EventData::json(EventType::new("account.deposited").unwrap(), &payload(n)).unwrap()
}

fn subject() -> Subject {
    Subject::new("bench.account.deposited").unwrap()
}

/// Appends one event per call to the writer's own stream, `Exact(version)`; returns events/s.
async fn store_rate(store: &PgTenantStore, writers: u64, publish: bool, run: u64) -> f64 {
    let deadline = Instant::now() + round();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let store = store.clone();
        tasks.spawn(async move {
            let stream = StreamId::new(format!("s{run}-{publish}-{writers}-{writer}")).unwrap();
            let mut version = 0;
            while Instant::now() < deadline {
                let options = if publish {
                    AppendOptions::default().publish(Publication::new(
                        0,
                        subject(),
                        payload(version).into_bytes(),
                    ))
                } else {
                    AppendOptions::default()
                };
                store
                    .append(&stream, ExpectedVersion::Exact(version), vec![event(version)], options)
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

/// The raw equivalents: the event alone, or the event and its outbox row in one statement.
async fn raw_rate(pool: &PgPool, schema: &str, writers: u64, publish: bool, run: u64) -> f64 {
    let insert_event = format!(
        "INSERT INTO {schema}.events (tenant, position, stream_id, stream_version, event_id, event_type, \
         schema_version, payload, metadata, recorded_at) \
         VALUES ($1, nextval('{schema}.event_position_seq'), $2, $3, $4, 'account.deposited', 1, $5::jsonb, NULL, now())"
    );
    let insert_both = format!(
        "WITH e AS ({insert_event} RETURNING stream_version, event_id) \
         INSERT INTO {schema}.outbox (tenant, partition, stream_id, stream_version, event_id, event_type, subject, payload, headers, enqueued_at) \
         SELECT $1, 0, $2, e.stream_version, e.event_id, 'account.deposited', 'bench.account.deposited', convert_to($5, 'UTF8'), '[]', now() FROM e"
    );
    let sql: &'static str =
        Box::leak(if publish { insert_both } else { insert_event }.into_boxed_str());
    let deadline = Instant::now() + round();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let pool = pool.clone();
        tasks.spawn(async move {
            let stream = format!("raw{run}-{publish}-{writers}-{writer}");
            let mut version = 0i64;
            while Instant::now() < deadline {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(TENANT)
                    .bind(&stream)
                    .bind(version + 1)
                    .bind(Uuid::now_v7())
                    .bind(payload(version as u64))
                    .execute(&pool)
                    .await
                    .unwrap();
                version += 1;
            }
            version as u64
        });
    }
    let mut events = 0;
    while let Some(done) = tasks.join_next().await {
        events += done.unwrap();
    }
    events as f64 / started.elapsed().as_secs_f64()
}

async fn append_cost(bench: &BenchSchema, store: &PgTenantStore) {
    println!("append, one event per call, Exact(n): with a publication against without");
    for writers in [1, 8] {
        let (mut plain, mut published, mut raw_plain, mut raw_published) = (0.0, 0.0, 0.0, 0.0);
        for run in 0..ROUNDS as u64 {
            let order = if run % 2 == 0 { [false, true] } else { [true, false] };
            for publish in order {
                let es = store_rate(store, writers, publish, run).await;
                let raw = raw_rate(&bench.admin, bench.schema, writers, publish, run).await;
                if publish {
                    published += es;
                    raw_published += raw;
                } else {
                    plain += es;
                    raw_plain += raw;
                }
            }
        }
        let n = ROUNDS as f64;
        let (plain, published, raw_plain, raw_published) =
            (plain / n, published / n, raw_plain / n, raw_published / n);
        println!(
            "  {writers} writer(s): es {plain:>8.0} ev/s plain, {published:>8.0} published: publication costs {:>5.1}% (target <= 15%)   \
             raw {raw_plain:>8.0} plain, {raw_published:>8.0} published: {:>5.1}%   es/raw published {:>5.1}%",
            (1.0 - published / plain) * 100.0,
            (1.0 - raw_published / raw_plain) * 100.0,
            published / raw_published * 100.0
        );
    }
}

/// Bulk-loads `count` pending messages over 1,000 streams, interleaved.
async fn fill_outbox(bench: &BenchSchema, count: u64) {
    let schema = bench.schema;
    sqlx::query(AssertSqlSafe(format!("TRUNCATE {schema}.outbox")))
        .execute(&bench.admin)
        .await
        .unwrap();
    let partition = "mod(abs(hashtext('account-' || (g % 1000))), 16)";
    let fill = format!(
        "INSERT INTO {schema}.outbox (tenant, partition, stream_id, stream_version, event_id, event_type, subject, payload, headers, enqueued_at) \
         SELECT '{TENANT}', {partition}, 'account-' || (g % 1000), g / 1000 + 1, gen_random_uuid(), 'account.deposited', \
                'bench.account.deposited', convert_to('{{\"account\":\"acc-' || (g % 1000) || '\",\"amount\":42,\"currency\":\"EUR\"}}', 'UTF8'), '[]', now() \
         FROM generate_series(1, {count}) AS g"
    );
    sqlx::query(AssertSqlSafe(fill)).execute(&bench.admin).await.unwrap();
    bench.vacuum(&format!("{schema}.outbox")).await;
}

async fn drain<K: Sink>(store: &PgTenantStore, sink: K) -> (u64, Duration) {
    let mut relay =
        Relay::with_options(store.clone(), sink, RelayOptions::default().batch_size(1000));
    let started = Instant::now();
    let mut delivered = 0;
    loop {
        let pass = relay.relay_once().await.unwrap();
        delivered += pass.delivered;
        assert_eq!(pass.failed, 0, "no failure while benchmarking");
        if pass.delivered == 0 {
            break;
        }
    }
    let took = started.elapsed();
    relay.leave().await.unwrap();
    (delivered, took)
}

async fn relay_throughput(bench: &BenchSchema, store: &PgTenantStore, nats: &str) {
    let count = env("BENCH_RELAY_MESSAGES", 50_000);
    println!("relay: {count} messages over 1,000 streams, batches of 1,000");
    fill_outbox(bench, count).await;
    let (delivered, took) = drain(store, MemorySink::new()).await;
    println!(
        "  to the in-memory sink: {delivered} in {took:?}: {:>8.0} msg/s",
        delivered as f64 / took.as_secs_f64()
    );
    fill_outbox(bench, count).await;
    let name = format!("ES_BENCH_{}", &Uuid::now_v7().simple().to_string()[20..]);
    let sink = JetStreamSink::connect(nats, StreamConfig::new(&name, ["bench.>"])).await.unwrap();
    let (delivered, took) = drain(store, sink).await;
    println!(
        "  to JetStream:          {delivered} in {took:?}: {:>8.0} msg/s (target >= 20,000)",
        delivered as f64 / took.as_secs_f64()
    );
    let client = async_nats::connect(nats).await.unwrap();
    async_nats::jetstream::new(client).delete_stream(&name).await.unwrap();
}

async fn latency(store: &PgTenantStore, nats: &str) {
    let rate = env("BENCH_RATE", 1_000);
    let seconds = env("BENCH_LATENCY_SECS", 5);
    println!(
        "end to end at {rate} appends/s for {seconds} s: append → relay → JetStream → subscriber"
    );
    let name = format!("ES_BENCH_{}", &Uuid::now_v7().simple().to_string()[20..]);
    let subject_prefix = format!("lat{}", &Uuid::now_v7().simple().to_string()[20..]);
    let sink =
        JetStreamSink::connect(nats, StreamConfig::new(&name, [format!("{subject_prefix}.>")]))
            .await
            .unwrap();
    let client = async_nats::connect(nats).await.unwrap();
    let mut subscriber = client.subscribe(format!("{subject_prefix}.>")).await.unwrap();
    let origin = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = {
        let mut stopped = stopped.clone();
        let options = RelayOptions::default().idle_wait(Duration::from_millis(200));
        tokio::spawn(Relay::with_options(store.clone(), sink, options).run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    };
    let total = rate * seconds;
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(total as usize);
        while latencies.len() < total as usize {
            let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_secs(10), subscriber.next()).await
            else {
                break;
            };
            let sent: u64 = std::str::from_utf8(&message.payload).unwrap().parse().unwrap();
            latencies.push(origin.elapsed().as_micros() as u64 - sent);
        }
        latencies
    });
    let subject = Subject::new(format!("{subject_prefix}.deposited")).unwrap();
    let writers = 8;
    let per_writer = total / writers;
    let interval = Duration::from_secs_f64(writers as f64 / rate as f64);
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let (store, subject) = (store.clone(), subject.clone());
        tasks.spawn(async move {
            let stream = StreamId::new(format!("lat-{writer}")).unwrap();
            let mut ticks = tokio::time::interval(interval);
            for version in 0..per_writer {
                ticks.tick().await;
                let sent = origin.elapsed().as_micros() as u64;
                let message = Publication::new(0, subject.clone(), sent.to_string());
                store
                    .append(
                        &stream,
                        ExpectedVersion::Exact(version),
                        vec![event(version)],
                        AppendOptions::default().publish(message),
                    )
                    .await
                    .unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut latencies = receiver.await.unwrap();
    stop.send_replace(true);
    relay.await.unwrap();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)] as f64 / 1000.0
    };
    println!(
        "  {} of {} received: p50 {:.1} ms, p99 {:.1} ms (target <= 50 ms), max {:.1} ms",
        latencies.len(),
        per_writer * writers,
        at(0.5),
        at(0.99),
        at(1.0)
    );
    async_nats::jetstream::new(client).delete_stream(&name).await.unwrap();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let nats = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        let bench =
            BenchSchema::new("es_bench_outbox", |options| options.max_connections(16)).await;
        let store = bench.backend.tenant(TenantId::new(TENANT).unwrap());
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        if only.is_empty() || only == "append" {
            append_cost(&bench, &store).await;
        }
        if only.is_empty() || only == "relay" {
            relay_throughput(&bench, &store, &nats).await;
        }
        if only.is_empty() || only == "latency" {
            latency(&store, &nats).await;
        }
        bench.finish().await;
    });
}
