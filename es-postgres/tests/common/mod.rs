//! Shared test fixtures: a fresh, migrated schema per test, dropped when the test ends.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::missing_panics_doc,
    clippy::expect_used,
    clippy::unwrap_used
)]

use std::time::Duration;

use es_core::{EventStore, MultiTenantStore, Position, TenantId};

#[allow(unused_imports, reason = "each test binary uses part of this module")]
pub use es_postgres::testing::{FreshSchema, database_url};

/// A migrated store on a new schema with default options.
pub async fn fresh_schema() -> FreshSchema {
    FreshSchema::new().await
}

/// A migrated store on a new schema, with options adjusted by `configure`.
pub async fn fresh_schema_with(
    configure: impl FnOnce(es_postgres::PgStoreOptions) -> es_postgres::PgStoreOptions,
) -> FreshSchema {
    FreshSchema::with(configure).await
}

/// Calls `append_events()` inside `tx` (so the caller decides when it commits), with one event of
/// type `test.raw` and payload `{"n": n}`. Returns the position it took.
pub async fn raw_append(tx: &mut sqlx::PgConnection, tenant: &str, stream: &str, n: u64) -> i64 {
    let row: (i16, Option<i64>) = sqlx::query_as(
        "SELECT o_outcome, o_first_position FROM append_events($1, $2, 0::smallint, 0, ARRAY[$3::uuid], \
         ARRAY['test.raw'], ARRAY[1], ARRAY[$4], ARRAY[NULL::text], NULL, NULL)",
    )
    .bind(tenant)
    .bind(stream)
    .bind(uuid::Uuid::now_v7())
    .bind(format!("{{\"n\":{n}}}"))
    .fetch_one(tx)
    .await
    .expect("append_events");
    assert_eq!(row.0, 0, "raw append must write");
    row.1.expect("a position")
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("valid tenant")
}

/// A reader in another process (a `PgStore` of its own on `fresh`'s schema) that polls only every
/// 60 s, so only a NOTIFY wakes it in time; listening already. `wait` starts a wait for events after
/// `after` and answers how long it took to wake.
pub struct RemoteReader {
    _store: es_postgres::PgStore,
    reader: es_postgres::PgTenantStore,
}

impl RemoteReader {
    pub async fn listening(fresh: &FreshSchema, name: &str) -> Self {
        let store = es_postgres::PgStore::connect_with(
            es_postgres::PgStoreOptions::new(database_url())
                .schema(fresh.schema())
                .unwrap()
                .poll_interval(Duration::from_mins(1)),
        )
        .await
        .unwrap();
        let reader = store.tenant(tenant(name));
        // Start listening, then let the LISTEN connection settle.
        reader.wait_for_events(Position::BEGINNING, Duration::from_millis(300)).await.unwrap();
        Self { _store: store, reader }
    }

    pub fn wait(&self, after: Position) -> tokio::task::JoinHandle<(Position, Duration)> {
        let reader = self.reader.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let head = reader.wait_for_events(after, Duration::from_secs(20)).await.unwrap();
            (head, started.elapsed())
        })
    }
}
