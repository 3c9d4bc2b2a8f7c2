//! Aggregate loads and command throughput, beside a hand-written sqlx read-and-fold in the same run.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p es-postgres --bench aggregate_load`
//!
//! Environment: `BENCH_BIG_STREAM` (default 1000000 events), `BENCH_ROUND_MS` (default 3000),
//! `BENCH_ONLY=commands` (only load + decide + append beside hand-written sqlx), `BENCH_ONLY=hot`
//! (only commands per second on one hot stream and on many).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::time::{Duration, Instant};

use es_core::repository::{CommandOptions, Repository};
use es_core::snapshot::{Snapshot, SnapshotStore};
use es_core::{
    Aggregate, Apply, Event, EventStore, ExpectedVersion, MultiTenantStore, Payload, StreamId,
    TenantId, commands,
};
use support::BenchSchema;

mod support;
use serde::{Deserialize, Serialize};
use sqlx::Row;

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(name = "account.deposited")]
pub struct Deposited {
    amount: i64,
}

#[derive(Debug, Event)]
pub enum AccountEvent {
    Deposited(Deposited),
}

#[derive(Debug)]
pub enum AccountError {}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(name = "account", event = AccountEvent, error = AccountError, snapshot(every = 1000))]
pub struct Account {
    balance: i64,
    operations: u64,
}

#[derive(Clone, Hash)]
pub struct Deposit(i64);

#[commands]
impl Account {
    pub fn deposit(&self, command: Deposit) -> Result<Deposited, AccountError> {
        Ok(Deposited { amount: command.0 })
    }
}

impl Apply<AccountEvent> for Account {
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited(deposited) => self.balance += deposited.amount,
        }
        self.operations += 1;
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn fill<S: EventStore>(store: &S, stream: &StreamId, events: u64) {
    let mut version = 0;
    while version < events {
        let batch: Vec<_> = (0..1_000.min(events - version))
            .map(|n| {
                AccountEvent::Deposited(Deposited { amount: i64::try_from(n % 100).unwrap() })
                    .to_event_data()
                    .unwrap()
            })
            .collect();
        let count = batch.len() as u64;
        store
            .append(
                stream,
                ExpectedVersion::Exact(version),
                batch,
                es_core::AppendOptions::default(),
            )
            .await
            .unwrap();
        version += count;
    }
}

/// The best of `runs` timings of `f`.
async fn best<F, Fut, T>(runs: u32, mut f: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..runs {
        let started = Instant::now();
        let value = f().await;
        let elapsed = started.elapsed();
        if best.as_ref().is_none_or(|(time, _)| elapsed < *time) {
            best = Some((elapsed, value));
        }
    }
    best.unwrap()
}

/// Hand-written sqlx reading the whole envelope (what `read_stream` returns), to split the costs.
async fn raw_fold_envelope(pool: &sqlx::PgPool, schema: &str, stream: &str) -> (i64, u64) {
    let sql = format!(
        "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, payload::text AS payload, \
         metadata::text AS metadata, recorded_at FROM {schema}.events \
         WHERE tenant = 'default' AND stream_id = $1 AND stream_version > $2 ORDER BY stream_version LIMIT 1000"
    );
    let (mut balance, mut after) = (0i64, 0i64);
    loop {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(stream)
            .bind(after)
            .fetch_all(pool)
            .await
            .unwrap();
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            after = row.get(2);
            let _: i64 = row.get(0);
            let _: &str = row.get(1);
            let _: uuid::Uuid = row.get(3);
            let _: &str = row.get(4);
            let _: i32 = row.get(5);
            let _: Option<&str> = row.get(7);
            let _: chrono::DateTime<chrono::Utc> = row.get(8);
            let deposited: Deposited = serde_json::from_str(row.get::<&str, _>(6)).unwrap();
            balance += deposited.amount;
        }
    }
    (balance, u64::try_from(after).unwrap())
}

/// Hand-written sqlx: keyset pages of the stream, deserialize each payload, fold.
async fn raw_fold(pool: &sqlx::PgPool, schema: &str, stream: &str) -> (i64, u64) {
    let sql = format!(
        "SELECT stream_version, payload::text AS payload FROM {schema}.events \
         WHERE tenant = 'default' AND stream_id = $1 AND stream_version > $2 ORDER BY stream_version LIMIT 1000"
    );
    let (mut balance, mut after) = (0i64, 0i64);
    loop {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(stream)
            .bind(after)
            .fetch_all(pool)
            .await
            .unwrap();
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            after = row.get(0);
            let deposited: Deposited = serde_json::from_str(row.get::<&str, _>(1)).unwrap();
            balance += deposited.amount;
        }
    }
    (balance, u64::try_from(after).unwrap())
}

/// How a process's concurrent commands for one stream run.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Queued commands decided together (the default).
    Together,
    /// Taking turns, one command per append (`decide_together(1)`).
    Turns,
    /// Racing to version conflicts and retries (`take_turns(false)`).
    Racing,
}

/// Commands per second, and how many ended in an error (contention after the default 8 attempts).
async fn commands_per_second<S: EventStore + SnapshotStore>(
    store: &S,
    clients: u64,
    streams: u64,
    mode: Mode,
) -> (f64, u64) {
    let round = Duration::from_millis(env("BENCH_ROUND_MS", 3_000));
    let options = es_core::repository::RepositoryOptions::default();
    let options = match mode {
        Mode::Together => options,
        Mode::Turns => options.decide_together(1),
        Mode::Racing => options.take_turns(false),
    };
    let take_turns = !matches!(mode, Mode::Racing);
    let accounts = Repository::<Account, _>::new(store.clone())
        .with_snapshots(store.clone())
        .with_cache(20_000)
        .with_options(options);
    let deadline = Instant::now() + round;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let accounts = accounts.clone();
        tasks.spawn(async move {
            let (mut done, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                let id = StreamId::in_category(
                    "account",
                    format!(
                        "c{clients}-s{streams}-t{take_turns}-{mode:?}-{}",
                        (client * 7_919 + done * 104_729) % streams
                    ),
                )
                .unwrap();
                match accounts.execute(&id, Deposit(1), CommandOptions::default()).await {
                    Ok(_) => done += 1,
                    Err(_) => failed += 1,
                }
            }
            (done, failed)
        });
    }
    let (mut done, mut failed) = (0, 0);
    while let Some(counts) = tasks.join_next().await {
        let (ok, errors) = counts.unwrap();
        done += ok;
        failed += errors;
    }
    (done as f64 / started.elapsed().as_secs_f64(), failed)
}

/// Load + decide + append of one event by `clients` clients on streams of their own (20
/// commands each, so a load reads at most 19 events), alternating rounds of hand-written sqlx
/// (one query reading the stream, a fold, one insert) and the repository without a cache:
/// (raw commands/s, es commands/s).
async fn commands_vs_raw(
    pg: &es_postgres::PgTenantStore,
    pool: &sqlx::PgPool,
    schema: &'static str,
    clients: u64,
) -> (f64, f64) {
    let round = Duration::from_millis(env("BENCH_ROUND_MS", 3_000));
    let accounts = Repository::<Account, _>::new(pg.clone());
    // Built once, as an application would hold its statements.
    let raw_sql = std::sync::Arc::new(RawCommandSql::new(schema));
    let (mut raw_total, mut es_total) = (0.0, 0.0);
    for round_no in 0..4u64 {
        let raw_side = round_no % 2 == 0;
        let deadline = Instant::now() + round;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for client in 0..clients {
            let (accounts, pool, raw_sql) = (accounts.clone(), pool.clone(), raw_sql.clone());
            tasks.spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let name = format!("cmd-{clients}-{round_no}-{client}-{}", done / 20);
                    if raw_side {
                        raw_command(&pool, &raw_sql, &name, 1).await;
                    } else {
                        let id = StreamId::in_category("account", name).unwrap();
                        accounts.execute(&id, Deposit(1), CommandOptions::default()).await.unwrap();
                    }
                    done += 1;
                }
                done
            });
        }
        let mut done = 0;
        while let Some(count) = tasks.join_next().await {
            done += count.unwrap();
        }
        let rate = done as f64 / started.elapsed().as_secs_f64();
        if raw_side {
            raw_total += rate;
        } else {
            es_total += rate;
        }
    }
    (raw_total / 2.0, es_total / 2.0)
}

/// The two statements of a hand-written command.
struct RawCommandSql {
    read: String,
    insert: String,
}

impl RawCommandSql {
    fn new(schema: &str) -> Self {
        Self {
            read: format!(
                "SELECT stream_version, payload::text FROM {schema}.events \
                 WHERE tenant = 'default' AND stream_id = $1 ORDER BY stream_version"
            ),
            insert: format!(
                "INSERT INTO {schema}.events (tenant, position, stream_id, stream_version, event_id, event_type, \
                 schema_version, payload, metadata, recorded_at) VALUES ('default', nextval('{schema}.event_position_seq'), \
                 $1, $2, $3, 'account.deposited', 1, $4::jsonb, NULL, now())"
            ),
        }
    }
}

/// Hand-written sqlx: read the stream, fold, insert the next version.
async fn raw_command(pool: &sqlx::PgPool, sql: &RawCommandSql, stream: &str, amount: i64) {
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.read.as_str()))
        .bind(stream)
        .fetch_all(pool)
        .await
        .unwrap();
    let (mut balance, mut version) = (0i64, 0i64);
    for row in &rows {
        version = row.get(0);
        let deposited: Deposited = serde_json::from_str(row.get::<&str, _>(1)).unwrap();
        balance += deposited.amount;
    }
    assert!(balance >= 0);
    sqlx::query(sqlx::AssertSqlSafe(sql.insert.as_str()))
        .bind(stream)
        .bind(version + 1)
        .bind(uuid::Uuid::now_v7())
        .bind(format!(r#"{{"amount":{amount}}}"#))
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bench = BenchSchema::new("es_bench_agg", |options| options.max_connections(10)).await;
    let (schema, admin) = (bench.schema, bench.admin.clone());
    let pg = bench.backend.tenant(TenantId::default());
    let memory = es_memory::MemoryStore::new().tenant(TenantId::default());

    // --- load + decide + append beside hand-written sqlx
    for clients in [1, 8] {
        let (raw, es) = commands_vs_raw(&pg, &admin, schema, clients).await;
        println!(
            "load + decide + append, {clients} client(s), no cache: raw {raw:.0}/s, repository {es:.0}/s: {:.1}% (target >= 95% at 1 client)",
            100.0 * es / raw
        );
    }
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only == "commands" {
        bench.finish().await;
        return;
    }
    if only != "hot" {
        loads(&bench, &pg, &memory).await;
    }
    hot_streams(&pg, &memory).await;
    bench.finish().await;
}

/// Aggregate loads: a big stream with and without its snapshot, and a 10,000-event one.
async fn loads(
    bench: &BenchSchema,
    pg: &es_postgres::PgTenantStore,
    memory: &es_memory::MemoryTenantStore,
) {
    let (schema, admin) = (bench.schema, &bench.admin);
    // --- loads
    let big: u64 = env("BENCH_BIG_STREAM", 1_000_000);
    let big_stream = StreamId::in_category("account", "big").unwrap();
    let small_stream = StreamId::in_category("account", "small").unwrap();
    let started = Instant::now();
    fill(pg, &big_stream, big).await;
    fill(pg, &small_stream, 10_000).await;
    fill(memory, &small_stream, 10_000).await;
    println!("filled {big} + 10000 events on PostgreSQL in {:?}", started.elapsed());
    bench.vacuum(&format!("{schema}.events")).await;

    let plain = Repository::<Account, _>::new(pg.clone());
    let (raw_time, (raw_balance, raw_version)) =
        best(3, || raw_fold(admin, schema, big_stream.as_str())).await;
    let (envelope_time, _) =
        best(3, || raw_fold_envelope(admin, schema, big_stream.as_str())).await;
    println!("  (raw read-and-fold of the whole envelope: {envelope_time:?})");
    let (fold_time, loaded) = best(3, || async { plain.load(&big_stream).await.unwrap() }).await;
    assert_eq!((loaded.state.balance, loaded.version), (raw_balance, raw_version));
    let raw_rate = big as f64 / raw_time.as_secs_f64();
    let fold_rate = big as f64 / fold_time.as_secs_f64();
    println!(
        "PostgreSQL {big}-event aggregate, no snapshot: repository {fold_time:?} ({fold_rate:.0} ev/s) vs raw sqlx read-and-fold {raw_time:?} ({raw_rate:.0} ev/s): {:.1}% (target >= 80%)",
        100.0 * fold_rate / raw_rate
    );

    // The snapshot the policy (every 1000) leaves at the last multiple of 1000.
    let state = Payload::from_value(&loaded.state).unwrap();
    let last = {
        use futures_util::TryStreamExt;
        let mut newest =
            pg.read_stream(&big_stream, es_core::ReadStreamOptions::backward().limit(1));
        newest.try_next().await.unwrap().expect("the stream has events")
    };
    pg.save_snapshot(Snapshot::new(
        Account::NAME,
        big_stream.clone(),
        loaded.version,
        last.event_id,
        1,
        state,
    ))
    .await
    .unwrap();
    let with_snapshots = Repository::<Account, _>::new(pg.clone()).with_snapshots(pg.clone());
    let (snap_time, loaded) =
        best(5, || async { with_snapshots.load(&big_stream).await.unwrap() }).await;
    assert_eq!(loaded.from_snapshot, Some(big));
    println!("PostgreSQL {big}-event aggregate, snapshot at {big}: {snap_time:?} (target < 20 ms)");

    let (pg_small, _) = best(5, || async { plain.load(&small_stream).await.unwrap() }).await;
    let memory_plain = Repository::<Account, _>::new(memory.clone());
    let (memory_small, loaded) =
        best(5, || async { memory_plain.load(&small_stream).await.unwrap() }).await;
    assert_eq!(loaded.version, 10_000);
    println!(
        "10000-event aggregate, no snapshot: es-memory {memory_small:?} (target < 2 ms), PostgreSQL {pg_small:?}"
    );
}

/// Commands per second on one hot stream (decided together, the default; taking turns one by
/// one; racing) and on many streams.
async fn hot_streams(pg: &es_postgres::PgTenantStore, memory: &es_memory::MemoryTenantStore) {
    for (name, store_is_pg) in [("es-memory", false), ("PostgreSQL", true)] {
        for (clients, streams, mode) in [
            (1, 1, Mode::Together),
            (8, 1, Mode::Together),
            (64, 1, Mode::Together),
            (8, 1, Mode::Turns),
            (64, 1, Mode::Turns),
            (8, 1, Mode::Racing),
            (64, 1, Mode::Racing),
            (1, 10_000, Mode::Together),
            (8, 10_000, Mode::Together),
        ] {
            let (rate, failed) = if store_is_pg {
                commands_per_second(pg, clients, streams, mode).await
            } else {
                commands_per_second(memory, clients, streams, mode).await
            };
            println!(
                "{name:<10} commands/s, {clients:>2} client(s), {streams:>5} stream(s), {:<8}: {rate:>9.0} ({failed} failed)",
                format!("{mode:?}")
            );
        }
    }
}
