//! Quotas across processes (two stores on one schema stand for two processes): limits hold
//! within what the other process appends between refreshes, limits set elsewhere hold within one
//! refresh interval, and the count comes from the log, so nothing is lost with a process.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use es_core::quota::{Limits, TenantQuotas};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, StoreError,
    StreamId, TenantId,
};
use es_postgres::testing::{FreshSchema, database_url, test_master_keys};
use es_postgres::{PgStore, PgStoreOptions};

fn event() -> EventData {
    EventData::json(EventType::new("test.noted").unwrap(), r#"{"n":1}"#).unwrap()
}

/// Another process on the same schema.
async fn other_process(fresh: &FreshSchema, interval: Duration) -> PgStore {
    let options = PgStoreOptions::new(database_url())
        .schema(fresh.schema())
        .unwrap()
        .master_keys(test_master_keys())
        .quota_sync_interval(interval);
    PgStore::connect_with(options).await.unwrap()
}

async fn append_one<S: EventStore>(store: &S, stream: &str) -> Result<(), StoreError> {
    let stream = StreamId::new(stream).unwrap();
    store.append(&stream, ExpectedVersion::Any, vec![event()], AppendOptions::default()).await?;
    Ok(())
}

/// With a refresh before every append, two processes racing for a tenant's last places pass
/// its limit by at most what is in flight at once (one event per writer).
#[tokio::test]
async fn two_processes_pass_a_limit_by_at_most_what_is_in_flight() {
    const LIMIT: u64 = 40;
    const WRITERS: u64 = 4;
    let fresh = FreshSchema::with(|o| o.quota_sync_interval(Duration::ZERO)).await;
    let other = other_process(&fresh, Duration::ZERO).await;
    let tenant = TenantId::new("race").unwrap();
    fresh.store.set_limits(&tenant, Limits::none().events(LIMIT)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for (process, store) in [(0, fresh.store.clone()), (1, other.clone())] {
        for writer in 0..WRITERS {
            let store = store.tenant(tenant.clone());
            tasks.spawn(async move {
                let mut written = 0u64;
                loop {
                    match append_one(&store, &format!("p{process}-w{writer}")).await {
                        Ok(()) => written += 1,
                        Err(StoreError::QuotaExceeded(_)) => return written,
                        Err(other) => panic!("{other}"),
                    }
                }
            });
        }
    }
    let mut written = 0;
    while let Some(done) = tasks.join_next().await {
        written += done.unwrap();
    }
    let stored = fresh.store.tenant_usage(&tenant).await.unwrap().usage.events;
    assert_eq!(stored, written, "usage counts what was written");
    assert!(written >= LIMIT, "writers stop only at the limit: {written}");
    assert!(written < LIMIT + 2 * WRITERS, "at most one event per writer over: {written}");
}

/// A limit set in one process holds in another within its refresh interval; usage written by a
/// process that is gone is counted (the log is the count); a transaction that rolled back its
/// append is not.
#[tokio::test]
async fn limits_set_elsewhere_hold_within_one_interval_and_the_log_is_the_count() {
    let interval = Duration::from_millis(200);
    let fresh = FreshSchema::with(|o| o.quota_sync_interval(interval)).await;
    let tenant = TenantId::new("elsewhere").unwrap();
    let gone = other_process(&fresh, interval).await;
    for n in 0..5 {
        append_one(&gone.tenant(tenant.clone()), &format!("s-{n}")).await.unwrap();
    }
    drop(gone);

    let here = fresh.store.tenant(tenant.clone());
    append_one(&here, "s-here").await.unwrap(); // known here: no limits
    let operator = other_process(&fresh, interval).await;
    operator.set_limits(&tenant, Limits::none().events(7).streams(100)).await.unwrap();
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    append_one(&here, "s-here").await.expect("the 7th event");
    let refused = append_one(&here, "s-here").await;
    match refused {
        Err(StoreError::QuotaExceeded(exceeded)) => {
            assert_eq!((exceeded.limit, exceeded.used, exceeded.requested), (7, 7, 1));
        }
        other => panic!("the limit set elsewhere holds here: {other:?}"),
    }

    // A transaction that appended and rolled back: counted while it ran, not after.
    operator.set_limits(&tenant, Limits::none().events(8)).await.unwrap();
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    let mut tx = here.pool().begin().await.unwrap();
    let stream = StreamId::new("s-tx").unwrap();
    here.append_in(&mut tx, &stream, ExpectedVersion::Any, vec![event()], AppendOptions::default())
        .await
        .expect("the 8th, in a transaction");
    assert!(matches!(append_one(&here, "s-here").await, Err(StoreError::QuotaExceeded(_))));
    tx.rollback().await.unwrap();
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    append_one(&here, "s-here").await.expect("the rolled-back event no longer counts");
    let usage = operator.tenant_usage(&tenant).await.unwrap();
    assert_eq!((usage.usage.events, usage.usage.streams), (8, 6));
}

/// Another process's committed appends count at the next refresh even while a transaction
/// (of any tenant) holds the read horizon below them: the count does not wait for the horizon.
#[tokio::test]
async fn appends_committed_elsewhere_count_while_a_transaction_holds_the_horizon() {
    const LIMIT: u64 = 6;
    let fresh = FreshSchema::with(|o| o.quota_sync_interval(Duration::ZERO)).await;
    let other = other_process(&fresh, Duration::ZERO).await;
    let tenant = TenantId::new("held").unwrap();
    fresh.store.set_limits(&tenant, Limits::none().events(LIMIT)).await.unwrap();
    let here = fresh.store.tenant(tenant.clone());
    append_one(&here, "s-here").await.unwrap(); // known here before the horizon is held

    let blocker = fresh.store.tenant(TenantId::new("blocker").unwrap());
    let mut tx = blocker.pool().begin().await.unwrap();
    let stream = StreamId::new("s-open").unwrap();
    blocker
        .append_in(&mut tx, &stream, ExpectedVersion::Any, vec![event()], AppendOptions::default())
        .await
        .unwrap();
    let there = other.tenant(tenant.clone());
    for n in 1..LIMIT {
        append_one(&there, &format!("s-there-{n}")).await.expect("within the limit");
    }
    let outcome = append_one(&here, "s-here").await;
    let usage = fresh.store.tenant_usage(&tenant).await;
    tx.rollback().await.unwrap();
    match outcome {
        Err(StoreError::QuotaExceeded(exceeded)) => {
            assert_eq!((exceeded.limit, exceeded.used, exceeded.requested), (LIMIT, LIMIT, 1));
        }
        outcome => panic!("the other process's appends count here: {outcome:?}"),
    }
    assert_eq!(usage.unwrap().usage.events, LIMIT);
}
