//! Appends inside the caller's transaction (`PgTenantStore::append_in`): application rows,
//! events and outbox messages commit or roll back together; a version conflict leaves the
//! transaction usable; an open transaction holds readers back until it ends; a store on the
//! application's own pool (`PgStore::from_pool`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::{FreshSchema, RemoteReader, database_url, fresh_schema};
use es_core::outbox::{OutboxStore, Publication};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, IdempotencyKey,
    MultiTenantStore, Payload, ReadAllOptions, StoreError, StreamId, Subject, TenantId,
};
use es_postgres::{PgStore, PgStoreOptions, PgTenantStore};
use futures_util::TryStreamExt;

fn event(n: i64) -> EventData {
    EventData::new(
        EventType::new("order.placed").unwrap(),
        Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
    )
}

fn stream(id: &str) -> StreamId {
    StreamId::new(id).unwrap()
}

async fn setup() -> (FreshSchema, PgTenantStore) {
    let fresh = fresh_schema().await;
    // An application table, in the store's schema (the first on the pool's search_path).
    sqlx::query("CREATE TABLE orders (id bigint PRIMARY KEY)")
        .execute(fresh.store.pool())
        .await
        .unwrap();
    let store = fresh.tenant(TenantId::new("shop").unwrap());
    (fresh, store)
}

async fn orders(store: &PgTenantStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(store.pool()).await.unwrap()
}

async fn log(store: &PgTenantStore) -> Vec<es_core::RecordedEvent> {
    store.read_all(ReadAllOptions::from_beginning()).try_collect().await.unwrap()
}

fn published() -> AppendOptions {
    AppendOptions::default().publish(Publication::new(
        0,
        Subject::new("shop.order.placed").unwrap(),
        "{}",
    ))
}

#[tokio::test]
async fn rows_events_and_messages_commit_together() {
    let (_fresh, store) = setup().await;
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO orders (id) VALUES (42)").execute(&mut *tx).await.unwrap();
    let appended = store
        .append_in(
            &mut tx,
            &stream("order-42"),
            ExpectedVersion::NoStream,
            vec![event(1)],
            published(),
        )
        .await
        .unwrap();
    assert_eq!(appended.last_version, 1);
    assert!(log(&store).await.is_empty(), "nothing visible before the commit");
    tx.commit().await.unwrap();
    assert_eq!(orders(&store).await, 1);
    assert_eq!(log(&store).await.len(), 1);
    assert_eq!(store.outbox_stats().await.unwrap().pending, 1);
}

#[tokio::test]
async fn rows_events_and_messages_roll_back_together() {
    let (_fresh, store) = setup().await;
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO orders (id) VALUES (42)").execute(&mut *tx).await.unwrap();
    store
        .append_in(
            &mut tx,
            &stream("order-42"),
            ExpectedVersion::NoStream,
            vec![event(1)],
            published(),
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(orders(&store).await, 0);
    assert!(log(&store).await.is_empty());
    assert_eq!(store.outbox_stats().await.unwrap().pending, 0);
    // The stream is still new: the rolled-back append left nothing behind.
    store
        .append(
            &stream("order-42"),
            ExpectedVersion::NoStream,
            vec![event(2)],
            AppendOptions::default(),
        )
        .await
        .unwrap();
}

/// A version conflict is an answer, not an aborted transaction: the caller can go on and commit.
#[tokio::test]
async fn a_version_conflict_leaves_the_transaction_usable() {
    let (_fresh, store) = setup().await;
    store
        .append(
            &stream("order-1"),
            ExpectedVersion::NoStream,
            vec![event(1)],
            AppendOptions::default(),
        )
        .await
        .unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    let conflict = store
        .append_in(
            &mut tx,
            &stream("order-1"),
            ExpectedVersion::NoStream,
            vec![event(2)],
            published(),
        )
        .await;
    assert!(matches!(conflict, Err(StoreError::VersionConflict { actual: 1, .. })), "{conflict:?}");
    sqlx::query("INSERT INTO orders (id) VALUES (1)").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(orders(&store).await, 1);
    assert_eq!(log(&store).await.len(), 1, "the conflicting append wrote nothing");
    assert_eq!(store.outbox_stats().await.unwrap().pending, 0, "nor its message");
}

/// An idempotency key works across transactions: the retry returns the first result.
#[tokio::test]
async fn an_idempotent_retry_in_a_new_transaction_writes_nothing() {
    let (_fresh, store) = setup().await;
    let key =
        AppendOptions::default().idempotency_key(IdempotencyKey::new("order-7-place").unwrap());
    let mut first = store.pool().begin().await.unwrap();
    let written = store
        .append_in(
            &mut first,
            &stream("order-7"),
            ExpectedVersion::NoStream,
            vec![event(7)],
            key.clone(),
        )
        .await
        .unwrap();
    first.commit().await.unwrap();
    let mut retry = store.pool().begin().await.unwrap();
    let replayed = store
        .append_in(&mut retry, &stream("order-7"), ExpectedVersion::NoStream, vec![event(7)], key)
        .await
        .unwrap();
    retry.commit().await.unwrap();
    assert_eq!(written, replayed);
    assert_eq!(log(&store).await.len(), 1);
}

/// While a transaction holding an append is open, readers stop before its events, also for
/// events committed after them; the commit releases both, in position order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_holds_readers_back_until_it_ends() {
    let (fresh, store) = setup().await;
    let mut tx = store.pool().begin().await.unwrap();
    let held = store
        .append_in(
            &mut tx,
            &stream("order-1"),
            ExpectedVersion::NoStream,
            vec![event(1)],
            AppendOptions::default(),
        )
        .await
        .unwrap();
    let later = store
        .append(
            &stream("order-2"),
            ExpectedVersion::NoStream,
            vec![event(2)],
            AppendOptions::default(),
        )
        .await
        .unwrap();
    assert!(later.first_position > held.first_position);
    assert!(log(&store).await.is_empty(), "the later, committed event waits behind the open one");
    let status = fresh.store.horizon_status().await.unwrap();
    assert!(status.horizon < held.first_position, "{status:?}");
    assert!(!status.open_appends.is_empty(), "the session holding readers back is named");
    tx.commit().await.unwrap();
    let events = log(&store).await;
    let positions: Vec<_> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, [held.first_position, later.first_position]);
}

/// A store on the application's own pool: refused without the schema on its `search_path`,
/// working with it.
#[tokio::test]
async fn a_store_on_the_applications_pool() {
    let fresh = fresh_schema().await;
    let schema = fresh.schema().to_owned();
    let options = PgStoreOptions::new(database_url()).schema(&schema).unwrap();
    let plain = sqlx::PgPool::connect(&database_url()).await.unwrap();
    let refused = PgStore::from_pool(plain, options.clone()).await;
    assert!(
        refused.as_ref().is_err_and(|error| error.to_string().contains("search_path")),
        "{:?}",
        refused.map(|_| ())
    );
    let connect = sqlx::postgres::PgConnectOptions::from_str(&database_url())
        .unwrap()
        .options([("search_path", format!("{schema},public"))]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(connect)
        .await
        .unwrap();
    let store = PgStore::from_pool(pool, options).await.unwrap().tenant(TenantId::default());
    let mut tx = store.pool().begin().await.unwrap();
    store
        .append_in(
            &mut tx,
            &stream("order-9"),
            ExpectedVersion::NoStream,
            vec![event(9)],
            AppendOptions::default(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(log(&store).await.len(), 1);
    assert_eq!(log(&fresh.default_tenant()).await.len(), 1, "the same schema");
}

/// An event id already in the log is refused inside the caller's transaction as the typed error,
/// naming the id, like any other append.
#[tokio::test]
async fn a_stored_event_id_is_refused_as_a_duplicate() {
    let (_fresh, store) = setup().await;
    let first = event(1);
    let id = first.event_id;
    store
        .append(
            &stream("order-1"),
            ExpectedVersion::NoStream,
            vec![first],
            AppendOptions::default(),
        )
        .await
        .unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    let again = store
        .append_in(
            &mut tx,
            &stream("order-2"),
            ExpectedVersion::NoStream,
            vec![event(2).with_event_id(id)],
            AppendOptions::default(),
        )
        .await;
    match again {
        Err(StoreError::DuplicateEventId { event_id, .. }) => assert_eq!(event_id, id),
        other => panic!("expected the duplicate event id {id}, got {other:?}"),
    }
    tx.rollback().await.unwrap();
    assert_eq!(log(&store).await.len(), 1);
}

/// The NOTIFY of an append in the caller's transaction leaves with its commit: a reader in another
/// process (a store of its own that polls only every minute) wakes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_append_wakes_a_reader_in_another_process() {
    let (fresh, store) = setup().await;
    let remote = RemoteReader::listening(&fresh, "shop").await;
    let waiting = remote.wait(es_core::Position::BEGINNING);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut tx = store.pool().begin().await.unwrap();
    let written = store
        .append_in(
            &mut tx,
            &stream("order-1"),
            ExpectedVersion::NoStream,
            vec![event(1)],
            AppendOptions::default(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (head, waited) = waiting.await.unwrap();
    assert_eq!(head, written.last_position);
    assert!(
        waited < Duration::from_secs(5),
        "the commit's NOTIFY must wake the reader ({waited:?})"
    );
}
