//! The lag gauge and late projections, on both backends: `es_projection_lag` shows what arrived
//! since the last pass and falls to 0 when the runner catches up; a projection added after a
//! million events catches up from the beginning.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use es_core::projection::{
    CheckpointStore, DeadLetterStore, OnFailure, ProjectionRunner, RunnerOptions,
};
use es_core::{
    AppendOptions, Event, EventStore, ExpectedVersion, MultiTenantStore, ProjectionError, StreamId,
    TenantId, projection,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "account.deposited")]
pub struct Deposited {
    pub amount: i64,
}

#[derive(Default)]
pub struct Total {
    sum: i64,
    count: u64,
    refuse: Option<i64>,
}

#[projection(name = "total")]
impl Total {
    async fn on_deposited(&mut self, event: &Deposited) -> Result<(), ProjectionError> {
        if self.refuse == Some(event.amount) {
            return Err(ProjectionError::new("refused"));
        }
        self.sum += event.amount;
        self.count += 1;
        Ok(())
    }
}

// ---------------------------------------------------------------- the lag gauge

/// The lag gauge of `projection`, as this test binary's recorder saw it last.
fn lag(projection: &str) -> Option<f64> {
    tests::metrics::Recorded::global()
        .gauge(&format!("es_projection_lag{{projection={projection}}}"))
}

async fn deposit<S: EventStore>(store: &S, amounts: std::ops::Range<i64>) {
    let events = amounts.map(|amount| Deposited { amount }.to_event_data().unwrap()).collect();
    store
        .append(
            &StreamId::new("account-1").unwrap(),
            ExpectedVersion::Any,
            events,
            AppendOptions::default(),
        )
        .await
        .unwrap();
}

// ---------------------------------------------------------------- scenarios

async fn the_lag_gauge_follows_appends_and_catch_up<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
    name: &str,
) {
    tests::metrics::Recorded::global();
    deposit(&store, 1..21).await;
    let options = RunnerOptions::default().batch_size(4).retries(1, std::time::Duration::ZERO);
    let mut runner = ProjectionRunner::new(Total::default(), store.clone())
        .with_options(options.clone())
        .with_name(es_core::ProjectionName::new(name).unwrap());
    runner.catch_up().await.unwrap();
    assert_eq!(lag(name), Some(0.0), "caught up");

    // New events: the next pass sees them; this one stops at the event its handler refuses, and
    // the gauge shows exactly the lag the status reports.
    deposit(&store, 21..31).await;
    let mut stuck =
        ProjectionRunner::new(Total { refuse: Some(25), ..Total::default() }, store.clone())
            .with_options(options.clone().on_failure(OnFailure::Stop))
            .with_name(es_core::ProjectionName::new(name).unwrap());
    stuck.catch_up().await.unwrap_err();
    let status = stuck.status().await.unwrap();
    assert!(status.lag > 0, "{status:?}");
    assert_eq!(lag(name), Some(f64::from(u32::try_from(status.lag).unwrap())));

    // Fixed and restarted (a new process): it resumes at the refused event and catches up.
    let mut fixed = ProjectionRunner::new(Total::default(), store.clone())
        .with_options(options)
        .with_name(es_core::ProjectionName::new(name).unwrap());
    assert_eq!(fixed.catch_up().await.unwrap().handled, 6);
    assert_eq!(lag(name), Some(0.0), "caught up again");
}

async fn a_projection_added_after_a_million_events_catches_up<
    S: EventStore + CheckpointStore + DeadLetterStore,
>(
    store: S,
    name: &str,
) {
    let events = million_events();
    let head = store.head_position().await.unwrap();
    let mut runner = ProjectionRunner::new(Total::default(), store.clone())
        .with_name(es_core::ProjectionName::new(name).unwrap());
    let done = runner.catch_up().await.unwrap();
    assert_eq!(done.handled, events);
    assert_eq!(done.checkpoint, head);
    assert_eq!(runner.projection().count, events);
    assert_eq!(lag(name), Some(0.0));
}

/// `ES_LATE_PROJECTION_EVENTS` (default 1,000,000).
fn million_events() -> u64 {
    std::env::var("ES_LATE_PROJECTION_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

// ---------------------------------------------------------------- backends

mod memory {
    use super::*;

    fn store() -> es_memory::MemoryTenantStore {
        es_memory::MemoryStore::new().tenant(TenantId::default())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lag_gauge_follows_appends_and_catch_up() {
        super::the_lag_gauge_follows_appends_and_catch_up(store(), "lag_memory").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_projection_added_after_a_million_events_catches_up() {
        let store = store();
        let total = i64::try_from(million_events()).unwrap();
        let mut start = 0;
        while start < total {
            let end = (start + 10_000).min(total);
            deposit(&store, start..end).await;
            start = end;
        }
        super::a_projection_added_after_a_million_events_catches_up(store, "late_memory").await;
    }
}

mod postgres {
    use es_postgres::testing::FreshSchema;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lag_gauge_follows_appends_and_catch_up() {
        let fresh = FreshSchema::new().await;
        super::the_lag_gauge_follows_appends_and_catch_up(fresh.default_tenant(), "lag_postgres")
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_projection_added_after_a_million_events_catches_up() {
        let fresh = FreshSchema::new().await;
        // Loaded in one statement (appending a million events one call at a time is the append
        // benchmark's business, not this test's); positions 1..=N, then the sequence moves past.
        let schema = fresh.schema();
        let events = million_events();
        let pool = sqlx::PgPool::connect(&es_postgres::testing::database_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {schema}.events (tenant, position, stream_id, stream_version, event_id, event_type, \
             schema_version, payload, metadata, recorded_at) \
             SELECT 'default', g, 'account-' || (g % 1000), g / 1000 + 1, gen_random_uuid(), \
                    'account.deposited', 1, jsonb_build_object('amount', g % 100), NULL, now() \
             FROM generate_series(1, {events}) AS g"
        )))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval('{schema}.event_position_seq', {events})"
        )))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {schema}.events")))
            .execute(&pool)
            .await
            .unwrap();
        super::a_projection_added_after_a_million_events_catches_up(
            fresh.default_tenant(),
            "late_postgres",
        )
        .await;
    }
}
