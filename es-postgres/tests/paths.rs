//! Which statement each kind of append runs: the fast paths are one plain statement each, and
//! `append_events()` (PL/pgSQL, six statements of its own) answers only what they leave to it.
//! Outcomes alone cannot tell (the function answers the same), so these tests count the
//! function's calls, with PostgreSQL's function statistics switched on for the store's own
//! session (`track_functions`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{database_url, fresh_schema, tenant};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, IdempotencyKey,
    MultiTenantStore, Payload, StreamId,
};
use es_postgres::{PgStore, PgStoreOptions, PgTenantStore};

fn event(n: u64) -> EventData {
    EventData::new(
        EventType::new("test.path").unwrap(),
        Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
    )
}

fn keyed(key: &str) -> AppendOptions {
    AppendOptions::default().idempotency_key(IdempotencyKey::new(key).unwrap())
}

/// A store of one connection on `schema` whose session counts calls of PL/pgSQL functions.
async fn counting_store(schema: &str) -> PgStore {
    let url = database_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options=-c%20track_functions%3Dpl");
    PgStore::connect_with(
        PgStoreOptions::new(url).schema(schema).unwrap().max_connections(1).notify_interval(
            // No background NOTIFY transaction in the counts' way.
            std::time::Duration::from_mins(1),
        ),
    )
    .await
    .unwrap()
}

/// How many times `append_events()` of `schema` has been called, once the store's session has
/// flushed its statistics.
async fn function_calls(store: &PgStore, schema: &str) -> i64 {
    // The flush happens when the session next goes idle, before it answers this query.
    sqlx::query("SELECT pg_stat_force_next_flush()").execute(store.pool()).await.unwrap();
    let admin = sqlx::PgPool::connect(&database_url()).await.unwrap();
    let calls: Option<i64> = sqlx::query_scalar(
        "SELECT calls FROM pg_stat_user_functions WHERE schemaname = $1 AND funcname = 'append_events'",
    )
    .bind(schema)
    .fetch_optional(&admin)
    .await
    .unwrap();
    admin.close().await;
    calls.unwrap_or(0)
}

async fn append(
    store: &PgTenantStore,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<EventData>,
    options: AppendOptions,
) -> es_core::AppendResult {
    store.append(&StreamId::new(stream).unwrap(), expected, events, options).await.unwrap()
}

/// A first keyed append expecting `NoStream` or `Exact(n)`, of one event or several, is written by
/// the keyed fast path alone; its replay is answered by `append_events()`, once, with the first
/// result.
#[tokio::test]
async fn a_first_keyed_append_never_calls_the_function_and_its_replay_does() {
    let fresh = fresh_schema().await;
    let store = counting_store(fresh.schema()).await;
    let writer = store.tenant(tenant("paths"));
    let first =
        append(&writer, "s-1", ExpectedVersion::NoStream, vec![event(1)], keyed("k-1")).await;
    let events = vec![event(2), event(3)];
    let second =
        append(&writer, "s-1", ExpectedVersion::Exact(1), events.clone(), keyed("k-2")).await;
    assert_eq!((second.first_version, second.last_version), (2, 3));
    assert_eq!(function_calls(&store, fresh.schema()).await, 0, "the fast path wrote both");
    let replayed = append(&writer, "s-1", ExpectedVersion::Exact(1), events, keyed("k-2")).await;
    assert_eq!(replayed, second, "a replay of the record");
    assert_eq!(function_calls(&store, fresh.schema()).await, 1, "the function answered the replay");
    assert_eq!((first.first_version, first.last_version), (1, 1));
}

/// Appends without a key that expect a version never call the function; `Any` does.
#[tokio::test]
async fn only_appends_without_an_expected_version_call_the_function() {
    let fresh = fresh_schema().await;
    let store = counting_store(fresh.schema()).await;
    let writer = store.tenant(tenant("paths"));
    let plain = AppendOptions::default;
    append(&writer, "s-1", ExpectedVersion::NoStream, vec![event(1)], plain()).await;
    append(&writer, "s-1", ExpectedVersion::Exact(1), vec![event(2), event(3)], plain()).await;
    assert_eq!(function_calls(&store, fresh.schema()).await, 0);
    append(&writer, "s-1", ExpectedVersion::Any, vec![event(4)], plain()).await;
    assert_eq!(function_calls(&store, fresh.schema()).await, 1);
}

/// An `Any` append through `append_events()` that loses the race for its version to a writer
/// outside the function's lock (as the fast paths are: an `Exact` append takes none) tries again
/// at once and lands after it: never a `VersionConflict` it did not ask for, never an error. The
/// race is made to happen: a transaction holds version 2 uncommitted while the append, having
/// read version 1 as the head, waits on it; the transaction then commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_any_append_that_loses_its_version_to_a_writer_outside_the_lock_lands_after_it() {
    let fresh = fresh_schema().await;
    let store = fresh.tenant(tenant("race"));
    let stream = StreamId::new("raced").unwrap();
    store
        .append(&stream, ExpectedVersion::NoStream, vec![event(1)], AppendOptions::default())
        .await
        .unwrap();
    let mut holder = fresh.store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (tenant, position, stream_id, stream_version, event_id, event_type, \
         schema_version, payload, metadata, recorded_at) \
         VALUES ('race', nextval('event_position_seq'), 'raced', 2, $1, 'test.path', 1, '{}'::jsonb, NULL, now())",
    )
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *holder)
    .await
    .unwrap();

    let racing = tokio::spawn({
        let (store, stream) = (store.clone(), stream.clone());
        async move {
            store
                .append(&stream, ExpectedVersion::Any, vec![event(3)], AppendOptions::default())
                .await
        }
    });
    // Until the append waits for the holder's transaction (on the unique key of version 2).
    let holder_pid: i32 =
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *holder).await.unwrap();
    let admin = sqlx::PgPool::connect(&database_url()).await.unwrap();
    let mut waited = false;
    for _ in 0..1_000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%append_events%'",
        )
        .bind(holder_pid)
        .fetch_one(&admin)
        .await
        .unwrap();
        if waiting > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(waited, "the Any append never waited on the version the transaction holds");
    holder.commit().await.unwrap();

    let result = racing.await.unwrap().expect("a lost race is tried again, not answered");
    assert_eq!((result.first_version, result.last_version), (3, 3));
    assert_eq!(store.stream_version(&stream).await.unwrap(), 3);
}
