//! Deferred writes (`BatchWrites`): statements a transactional projection's handlers push run in
//! order at the end of the batch, in its transaction; a failing one is found and parked (or
//! stopped at) like any failing event; values reach the table exactly, whatever they hold.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]

mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{FreshSchema, fresh_schema, tenant};
use es_core::projection::{DeadLetterStore, OnFailure, RunnerError, RunnerOptions};
use es_core::{
    AppendOptions, Event, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore,
    Payload, ProjectionError, ProjectionName, RecordedEvent, StreamId, projection,
};
use es_postgres::transactional::{
    BatchWrites, Statement, Through, TransactionalRunner, TransactionalStore, Value,
};
use rand::{Rng, SeedableRng};
use sqlx::PgConnection;

#[derive(serde::Serialize, serde::Deserialize, Event)]
#[event(name = "account.deposited")]
struct Deposited {
    amount: i64,
}

/// Balances and each account's trail of amounts (which shows the order the writes ran in), and
/// every amount in `guard`, whose check refuses one amount chosen by the test: the handler does
/// not know it, only the deferred write fails. `transactions` holds the transaction each amount
/// was applied in (which shows how the runner cut its batches). The handler itself refuses
/// `fail_on`, before pushing anything.
#[derive(Default)]
struct Deferred {
    fail_on: Option<i64>,
}

#[projection(name = "deferred")]
impl Deferred {
    async fn on_deposited(
        &mut self,
        tx: &mut BatchWrites,
        event: &Deposited,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if self.fail_on == Some(event.amount) {
            return Err(ProjectionError::new(format!("refusing amount {}", event.amount)));
        }
        tx.push(
            Statement::new(UPSERT)
                .bind(meta.stream_id.as_str())
                .bind(event.amount)
                .bind(event.amount.to_string()),
        );
        tx.push(Statement::new("INSERT INTO guard (amount) VALUES ($1)").bind(event.amount));
        tx.push(
            Statement::new("INSERT INTO transactions (amount, tx) VALUES ($1, txid_current())")
                .bind(event.amount),
        );
        Ok(())
    }
}

const UPSERT: &str = "INSERT INTO balances (account, cents, trail) VALUES ($1, $2, $3) \
    ON CONFLICT (account) DO UPDATE SET cents = balances.cents + EXCLUDED.cents, \
    trail = balances.trail || ',' || EXCLUDED.trail";

/// Twelve deposits of 1..=12 to three accounts (`account-{n % 3}`), each followed by an event
/// the projection does not handle; `refused` is the amount the guard table refuses.
async fn setup(refused: i64) -> (FreshSchema, es_postgres::PgTenantStore) {
    let fresh = fresh_schema().await;
    for ddl in [
        "CREATE TABLE balances (account text PRIMARY KEY, cents bigint NOT NULL, trail text NOT NULL)"
            .to_owned(),
        format!("CREATE TABLE guard (amount bigint NOT NULL CHECK (amount <> {refused}))"),
        "CREATE TABLE transactions (amount bigint NOT NULL, tx bigint NOT NULL)".to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(fresh.store.pool()).await.unwrap();
    }
    let store = fresh.store.tenant(tenant("deferred"));
    for n in 1..=12i64 {
        let stream = StreamId::new(format!("account-{}", n % 3)).unwrap();
        let events = vec![
            EventData::new(
                EventType::new("account.deposited").unwrap(),
                Payload::from_value(&serde_json::json!({ "amount": n })).unwrap(),
            ),
            EventData::new(
                EventType::new("account.noted").unwrap(),
                Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
            ),
        ];
        store
            .append(&stream, ExpectedVersion::Any, events, AppendOptions::default())
            .await
            .unwrap();
    }
    (fresh, store)
}

/// Every account's balance and trail.
async fn accounts(fresh: &FreshSchema) -> Vec<(String, i64, String)> {
    sqlx::query_as("SELECT account, cents, trail FROM balances ORDER BY account")
        .fetch_all(fresh.store.pool())
        .await
        .unwrap()
}

fn account(name: &str, amounts: &[i64]) -> (String, i64, String) {
    let trail = amounts.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    (name.to_owned(), amounts.iter().sum(), trail)
}

/// The position of the deposit of `amount`.
async fn position_of(store: &es_postgres::PgTenantStore, amount: i64) -> u64 {
    let events: Vec<RecordedEvent> = futures_util::TryStreamExt::try_collect(
        store.read_all(es_core::ReadAllOptions::from_beginning()),
    )
    .await
    .unwrap();
    events
        .iter()
        .find(|event| {
            event.event_type.as_str() == "account.deposited"
                && event.deserialize_payload::<Deposited>().unwrap().amount == amount
        })
        .unwrap()
        .position
        .value()
}

fn options(batch: usize) -> RunnerOptions {
    RunnerOptions::default().batch_size(batch).retries(2, Duration::from_millis(1))
}

#[tokio::test]
async fn deferred_writes_apply_every_event_once_in_log_order() {
    let (fresh, store) = setup(-1).await;
    let done = TransactionalRunner::new(Deferred::default(), store)
        .with_options(options(5))
        .catch_up()
        .await;
    assert_eq!(done.unwrap().handled, 12);
    assert_eq!(
        accounts(&fresh).await,
        vec![
            account("account-0", &[3, 6, 9, 12]),
            account("account-1", &[1, 4, 7, 10]),
            account("account-2", &[2, 5, 8, 11]),
        ]
    );
}

/// The write that fails cannot say which event pushed it: the batch is redone an event at a
/// time, so the events before it commit, it is parked, and the events after it are applied.
#[tokio::test]
async fn a_failing_deferred_write_parks_the_event_that_pushed_it() {
    let (fresh, store) = setup(8).await;
    let mut runner = TransactionalRunner::new(Deferred::default(), store.clone())
        .with_options(options(5).on_failure(OnFailure::Park));
    assert_eq!(runner.catch_up().await.unwrap().handled, 12, "11 applied and 1 parked");
    assert_eq!(
        accounts(&fresh).await,
        vec![
            account("account-0", &[3, 6, 9, 12]),
            account("account-1", &[1, 4, 7, 10]),
            account("account-2", &[2, 5, 11]),
        ]
    );
    let parked = store.parked(&ProjectionName::new("deferred").unwrap()).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].position.value(), position_of(&store, 8).await);
    assert!(parked[0].error.contains("deferred writes failed"), "{}", parked[0].error);
    let guarded: i64 = sqlx::query_scalar("SELECT count(*) FROM guard")
        .fetch_one(fresh.store.pool())
        .await
        .unwrap();
    assert_eq!(guarded, 11, "each event's writes ran once");
    // The batch of 6..=10 was redone an event per transaction; once past it, the runner goes back
    // to whole batches (11 and 12 are the last, short one).
    assert_eq!(
        batches(&fresh).await,
        [vec![1, 2, 3, 4, 5], vec![6], vec![7], vec![9], vec![10], vec![11, 12]]
    );
}

/// The projection's stored checkpoint.
async fn checkpoint(fresh: &FreshSchema) -> u64 {
    let position: i64 =
        sqlx::query_scalar("SELECT position FROM checkpoints WHERE projection = 'deferred'")
            .fetch_one(fresh.store.pool())
            .await
            .unwrap();
    u64::try_from(position).unwrap()
}

/// The amounts applied in each transaction, in the order they were applied.
async fn batches(fresh: &FreshSchema) -> Vec<Vec<i64>> {
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT amount, tx FROM transactions ORDER BY tx, amount")
            .fetch_all(fresh.store.pool())
            .await
            .unwrap();
    let mut batches: Vec<(i64, Vec<i64>)> = Vec::new();
    for (amount, tx) in rows {
        match batches.last_mut() {
            Some((last, amounts)) if *last == tx => amounts.push(amount),
            _ => batches.push((tx, vec![amount])),
        }
    }
    batches.into_iter().map(|(_, amounts)| amounts).collect()
}

/// A handler that keeps failing at 8 (the third event of the batch 6..=10): 6 and 7 commit
/// together in one transaction, 8 is parked, and the next batch starts after it, whole.
#[tokio::test]
async fn the_events_before_a_failing_one_commit_together() {
    let (fresh, store) = setup(-1).await;
    let mut runner = TransactionalRunner::new(Deferred { fail_on: Some(8) }, store.clone())
        .with_options(options(5).on_failure(OnFailure::Park));
    assert_eq!(runner.catch_up().await.unwrap().handled, 12, "11 applied and 1 parked");
    assert_eq!(batches(&fresh).await, [vec![1, 2, 3, 4, 5], vec![6, 7], vec![9, 10, 11, 12]]);
}

/// Two failures of different kinds in one batch: the handler refuses 9, and 7's deferred write
/// fails. The attempts at the batch fail at 9 before any write runs; the events before 9,
/// committed on their own, then fail at 7's write. The batch is redone one event per
/// transaction: each failing event is parked, every other applied (before, the runner failed
/// every pass at the same batch and parked neither).
#[tokio::test]
async fn a_batch_whose_events_before_the_failing_one_fail_too_is_redone_an_event_at_a_time() {
    let (fresh, store) = setup(7).await;
    let mut runner = TransactionalRunner::new(Deferred { fail_on: Some(9) }, store.clone())
        .with_options(options(5).on_failure(OnFailure::Park));
    assert_eq!(runner.catch_up().await.unwrap().handled, 12, "10 applied and 2 parked");
    assert_eq!(
        accounts(&fresh).await,
        vec![
            account("account-0", &[3, 6, 12]),
            account("account-1", &[1, 4, 10]),
            account("account-2", &[2, 5, 8, 11]),
        ]
    );
    let parked = store.parked(&ProjectionName::new("deferred").unwrap()).await.unwrap();
    let positions: Vec<u64> = parked.iter().map(|dead| dead.position.value()).collect();
    assert_eq!(positions, [position_of(&store, 7).await, position_of(&store, 9).await]);
    assert!(parked[0].error.contains("deferred writes failed"), "{}", parked[0].error);
    assert!(parked[1].error.contains("refusing amount 9"), "{}", parked[1].error);
    assert_eq!(
        batches(&fresh).await,
        [vec![1, 2, 3, 4, 5], vec![6], vec![8], vec![10], vec![11, 12]]
    );

    // Stopping instead: the runner stops right before 7, the first event that fails.
    let (fresh, store) = setup(7).await;
    let stopped = TransactionalRunner::new(Deferred { fail_on: Some(9) }, store.clone())
        .with_options(options(5).on_failure(OnFailure::Stop))
        .catch_up()
        .await;
    let Err(RunnerError::Handler { position, .. }) = stopped else {
        panic!("the runner stops at the failing event: {stopped:?}");
    };
    assert_eq!(position.value(), position_of(&store, 7).await);
    assert_eq!(checkpoint(&fresh).await, position_of(&store, 6).await);
}

#[tokio::test]
async fn a_runner_that_stops_stops_right_before_the_event_whose_deferred_write_failed() {
    let (fresh, store) = setup(8).await;
    let mut runner = TransactionalRunner::new(Deferred::default(), store.clone())
        .with_options(options(5).on_failure(OnFailure::Stop));
    let Err(RunnerError::Handler { position, .. }) = runner.catch_up().await else {
        panic!("the runner stops at the failing event");
    };
    assert_eq!(position.value(), position_of(&store, 8).await);
    assert_eq!(
        accounts(&fresh).await,
        vec![
            account("account-0", &[3, 6]),
            account("account-1", &[1, 4, 7]),
            account("account-2", &[2, 5]),
        ]
    );
    assert_eq!(checkpoint(&fresh).await, position_of(&store, 7).await);
}

/// A batch's transaction, as a transactional runner gets it.
async fn batch(store: &es_postgres::PgTenantStore) -> Box<BatchWrites> {
    store.begin_batch(&ProjectionName::new("values").unwrap()).await.unwrap().0
}

/// Strings a quoting mistake would break on, then random ones drawn from quotes, backslashes,
/// dollars, semicolons, newlines and other scripts.
fn hostile_texts() -> Vec<String> {
    let mut texts: Vec<String> = [
        "",
        "it's",
        "\\",
        "\\'",
        "''",
        "'); DROP TABLE seen; --",
        "$1",
        "$$ dollar $$",
        "U&'\\0041'",
        "\\005c",
        "E'\\n'",
        "line\nbreak\ttab\r",
        "😀 é ß 中",
        "-- comment",
        "/* open",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    texts.push("x'y\\z".repeat(2_000));
    let alphabet: Vec<char> = "'\\\"$;-/*\n\t ab0é😀&U".chars().collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    for _ in 0..200 {
        let len = rng.random_range(0..24);
        texts.push((0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect());
    }
    texts
}

/// A row of `seen`, numeric read as text.
type SeenRow = (
    i32,
    String,
    i64,
    String,
    f64,
    bool,
    Vec<u8>,
    uuid::Uuid,
    chrono::DateTime<Utc>,
    serde_json::Value,
);

#[tokio::test]
async fn values_reach_the_table_exactly() {
    let (fresh, store) = setup(-1).await;
    sqlx::query(
        "CREATE TABLE seen (n integer PRIMARY KEY, t text, i bigint, d numeric, f double precision, \
         b boolean, y bytea, u uuid, at timestamptz, j jsonb)",
    )
    .execute(fresh.store.pool())
    .await
    .unwrap();
    let insert = "INSERT INTO seen (n, t, i, d, f, b, y, u, at, j) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    let texts = hostile_texts();
    let bytes: Vec<u8> = (0..=255).collect();
    let uuid = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let at = Utc.timestamp_opt(1_764_547_200, 123_456_000).unwrap();
    let json = serde_json::json!({ "quote": "it's", "back": "\\", "n": 1 });
    let mut tx = batch(&store).await;
    for (n, text) in texts.iter().enumerate() {
        tx.push(
            Statement::new(insert)
                .bind(i32::try_from(n).unwrap())
                .bind(text.as_str())
                .bind(i64::MIN + i64::try_from(n).unwrap())
                .bind(u64::MAX)
                .bind(-1.5e300_f64)
                .bind(n % 2 == 0)
                .bind(bytes.clone())
                .bind(uuid)
                .bind(at)
                .bind(&json),
        );
    }
    tx.push(Statement::new("INSERT INTO seen (n, t) VALUES ($1, $2)").bind(-1).bind(Value::Null));
    let rows: Vec<SeenRow> = sqlx::query_as(
        "SELECT n, t, i, d::text, f, b, y, u, at, j FROM seen WHERE n >= 0 ORDER BY n",
    )
    .fetch_all(tx.connection().await.unwrap())
    .await
    .unwrap();
    assert_eq!(rows.len(), texts.len());
    for (row, text) in rows.iter().zip(&texts) {
        let n = usize::try_from(row.0).unwrap();
        assert_eq!(&row.1, text, "text {n}");
        assert_eq!(row.2, i64::MIN + i64::try_from(n).unwrap());
        assert_eq!(row.3, u64::MAX.to_string());
        assert!((row.4 - -1.5e300).abs() < 1e285, "{}", row.4);
        assert_eq!(row.5, n % 2 == 0);
        assert_eq!(row.6, bytes);
        assert_eq!((row.7, row.8), (uuid, at));
        assert_eq!(row.9, json);
    }
    let floats = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.1,
        f64::from(1.1_f32),
        -0.0,
        f64::MIN_POSITIVE,
    ];
    for (n, float) in (1..).map(|i| -100 - i).zip(floats) {
        tx.push(Statement::new("INSERT INTO seen (n, f) VALUES ($1, $2)").bind(n).bind(float));
    }
    let read: Vec<f64> = sqlx::query_scalar("SELECT f FROM seen WHERE n < -100 ORDER BY n DESC")
        .fetch_all(tx.connection().await.unwrap())
        .await
        .unwrap();
    let bits = |floats: &[f64]| floats.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&read), bits(&floats), "every float reads back to the same bits");
    let nulls: Option<String> = sqlx::query_scalar("SELECT t FROM seen WHERE n = -1")
        .fetch_one(tx.connection().await.unwrap())
        .await
        .unwrap();
    assert_eq!(nulls, None, "NULL stays NULL");
}

#[tokio::test]
async fn a_text_with_a_nul_is_refused_and_nothing_pending_is_sent() {
    let (_fresh, store) = setup(-1).await;
    let mut tx = batch(&store).await;
    tx.push(Statement::new("INSERT INTO guard (amount) VALUES ($1)").bind(1));
    tx.push(
        Statement::new("INSERT INTO balances (account, cents, trail) VALUES ($1, 0, '')")
            .bind("a\0b"),
    );
    let refused = tx.flush().await.unwrap_err().to_string();
    assert!(refused.contains("NUL"), "{refused}");
    assert_eq!(tx.pending(), 0);
    let guarded: i64 = sqlx::query_scalar("SELECT count(*) FROM guard")
        .fetch_one(tx.connection().await.unwrap())
        .await
        .unwrap();
    assert_eq!(guarded, 0, "a refused flush sends nothing");
}

#[tokio::test]
async fn reads_see_the_writes_pushed_before_them() {
    let (_fresh, store) = setup(-1).await;
    let mut tx = batch(&store).await;
    for amount in [1, 2, 3] {
        let sql = "INSERT INTO guard (amount) VALUES ($1) -- a statement may end in a comment";
        tx.push(Statement::new(sql).bind(amount));
    }
    assert_eq!(tx.pending(), 3);
    let sum: i64 = sqlx::query_scalar("SELECT sum(amount)::bigint FROM guard")
        .fetch_one(tx.connection().await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        (sum, tx.pending(), tx.round_trips()),
        (6, 0, 1),
        "three statements, one round trip"
    );
}

#[tokio::test]
async fn writing_at_once_while_writes_are_pending_is_refused() {
    let (_fresh, store) = setup(-1).await;
    let mut tx = batch(&store).await;
    tx.push(Statement::new("INSERT INTO guard (amount) VALUES ($1)").bind(1));
    let connection: &mut PgConnection = Through::<PgConnection>::through(&mut *tx);
    sqlx::query("INSERT INTO guard (amount) VALUES (2)").execute(connection).await.unwrap();
    let refused = tx.flush().await.unwrap_err().to_string();
    assert!(refused.contains("pending"), "{refused}");
}

/// More than one script's worth of statements (over 4 MiB): every one runs, in order.
#[tokio::test]
async fn a_batch_longer_than_one_script_runs_whole_and_in_order() {
    let (fresh, store) = setup(-1).await;
    sqlx::query(
        "CREATE TABLE long (id bigserial PRIMARY KEY, n integer NOT NULL, t text NOT NULL)",
    )
    .execute(fresh.store.pool())
    .await
    .unwrap();
    let text = "it's \\ long ".repeat(700);
    let mut tx = batch(&store).await;
    for n in 0..600 {
        tx.push(Statement::new("INSERT INTO long (n, t) VALUES ($1, $2)").bind(n).bind(&text));
    }
    let rows: Vec<(i32, String)> = sqlx::query_as("SELECT n, t FROM long ORDER BY id")
        .fetch_all(tx.connection().await.unwrap())
        .await
        .unwrap();
    assert!(text.len() * rows.len() > 4 << 20, "the statements span more than one script");
    assert_eq!(tx.round_trips(), 2, "about 5 MiB of script: two round trips");
    assert_eq!(rows.iter().map(|(n, _)| *n).collect::<Vec<_>>(), (0..600).collect::<Vec<_>>());
    assert!(rows.iter().all(|(_, t)| *t == text));
}
