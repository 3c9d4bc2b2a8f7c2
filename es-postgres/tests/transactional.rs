//! Transactional projections: the read model and the checkpoint commit together.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]

mod common;

use common::{FreshSchema, fresh_schema, tenant};
use es_core::projection::RunnerError;
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, Payload,
    ProjectionError, RecordedEvent, StreamId,
};
use es_postgres::transactional::{TransactionalProjection, TransactionalRunner};
use sqlx::PgConnection;

struct Balances {
    fail_on: Option<i64>,
}

impl TransactionalProjection for Balances {
    const NAME: &'static str = "balances";

    fn event_types() -> Vec<EventType> {
        vec![EventType::new("account.deposited").unwrap()]
    }

    async fn handle(
        &mut self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let amount = event.payload.to_value().unwrap()["amount"].as_i64().unwrap();
        sqlx::query("INSERT INTO balances (account, cents, deposits) VALUES ($1, $2, 1) ON CONFLICT (account) DO UPDATE SET cents = balances.cents + EXCLUDED.cents, deposits = balances.deposits + 1")
            .bind(event.stream_id.as_str())
            .bind(amount)
            .execute(tx)
            .await
            .map_err(|error| ProjectionError::with_source("upsert failed", error))?;
        if self.fail_on == Some(amount) {
            return Err(ProjectionError::new(format!("refusing amount {amount}")));
        }
        Ok(())
    }
}

async fn setup() -> (FreshSchema, es_postgres::PgTenantStore) {
    let fresh = fresh_schema().await;
    sqlx::query("CREATE TABLE balances (account text PRIMARY KEY, cents bigint NOT NULL, deposits integer NOT NULL)")
        .execute(fresh.store.pool())
        .await
        .unwrap();
    let store = fresh.tenant(tenant("tx"));
    for n in 1..=12i64 {
        let stream = StreamId::new(format!("account-{}", n % 3)).unwrap();
        let deposited = EventData::new(
            EventType::new("account.deposited").unwrap(),
            Payload::from_value(&serde_json::json!({ "amount": n })).unwrap(),
        );
        let noted = EventData::new(
            EventType::new("account.noted").unwrap(),
            Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
        );
        store
            .append(&stream, ExpectedVersion::Any, vec![deposited, noted], AppendOptions::default())
            .await
            .unwrap();
    }
    (fresh, store)
}

async fn balances(fresh: &FreshSchema) -> (i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(sum(cents), 0)::bigint, coalesce(sum(deposits), 0)::bigint FROM balances",
    )
    .fetch_one(fresh.store.pool())
    .await
    .unwrap()
}

async fn checkpoint(fresh: &FreshSchema) -> Option<i64> {
    sqlx::query_scalar("SELECT position FROM checkpoints WHERE projection = 'balances'")
        .fetch_optional(fresh.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn catches_up_with_the_read_model_and_checkpoint_in_step() {
    let (fresh, store) = setup().await;
    let done = TransactionalRunner::new(Balances { fail_on: None }, store.clone())
        .batch_size(5)
        .catch_up()
        .await
        .unwrap();
    assert_eq!(done.handled, 12);
    assert_eq!(balances(&fresh).await, ((1..=12).sum(), 12));
    assert_eq!(
        checkpoint(&fresh).await.map(|p| u64::try_from(p).unwrap()),
        Some(store.head_position().await.unwrap().value())
    );
}

/// A handler failing in the second batch rolls that whole batch back (its writes included) and
/// leaves the checkpoint after the first; the next run applies every event exactly once.
#[tokio::test]
async fn a_failing_batch_leaves_nothing_half_applied() {
    let (fresh, store) = setup().await;
    let failed = TransactionalRunner::new(Balances { fail_on: Some(8) }, store.clone())
        .batch_size(5)
        .catch_up()
        .await;
    assert!(matches!(failed, Err(RunnerError::Handler { .. })), "{failed:?}");
    assert_eq!(balances(&fresh).await, ((1..=5).sum(), 5), "only the first batch is applied");
    let after_first: Vec<RecordedEvent> = futures_util::TryStreamExt::try_collect(
        store.read_all(
            es_core::ReadAllOptions::from_beginning()
                .event_types([EventType::new("account.deposited").unwrap()])
                .limit(5),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        checkpoint(&fresh).await,
        Some(i64::try_from(after_first[4].position.value()).unwrap())
    );

    TransactionalRunner::new(Balances { fail_on: None }, store.clone())
        .batch_size(5)
        .catch_up()
        .await
        .unwrap();
    assert_eq!(balances(&fresh).await, ((1..=12).sum(), 12), "every event applied exactly once");
}

/// The balances projection, slowed down, telling which connection runs its batch.
struct Slow {
    inner: Balances,
    running: std::sync::Arc<std::sync::Mutex<Option<(i32, i64)>>>,
}

impl TransactionalProjection for Slow {
    const NAME: &'static str = "balances";

    fn event_types() -> Vec<EventType> {
        Balances::event_types()
    }

    async fn handle(
        &mut self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .map_err(|error| ProjectionError::with_source("pid", error))?;
        let position = i64::try_from(event.position.value()).unwrap();
        *self.running.lock().unwrap() = Some((pid, position));
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        self.inner.handle(tx, event).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_batch_rolls_back_and_the_rerun_applies_each_event_once() {
    let (fresh, store) = setup().await;
    let running = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slow = Slow { inner: Balances { fail_on: None }, running: running.clone() };
    let task = {
        let store = store.clone();
        tokio::spawn(
            async move { TransactionalRunner::new(slow, store).batch_size(4).catch_up().await },
        )
    };
    // Wait until a batch has committed and the next one is half-way, then kill its connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    let pid = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never reached a batch past its first committed checkpoint"
        );
        let committed = checkpoint(&fresh).await.unwrap_or(0);
        let current = *running.lock().unwrap();
        if let Some((pid, position)) = current
            && committed > 0
            && position > committed
        {
            break pid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(fresh.store.pool())
        .await
        .unwrap();
    assert!(killed);
    let outcome = task.await.unwrap();
    assert!(outcome.is_err(), "the runner saw its connection die: {outcome:?}");
    let (_, partial) = balances(&fresh).await;
    assert!(partial > 0 && partial < 12 && partial % 4 == 0, "whole batches only: {partial}");

    let done = TransactionalRunner::new(Balances { fail_on: None }, store.clone())
        .batch_size(4)
        .catch_up()
        .await
        .unwrap();
    assert_eq!(done.handled, 12 - u64::try_from(partial).unwrap());
    assert_eq!(balances(&fresh).await, ((1..=12).sum(), 12), "each deposit applied exactly once");
}
