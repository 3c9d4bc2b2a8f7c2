//! Shared test fixtures: a fresh, migrated schema per test, dropped when the test ends.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::missing_panics_doc,
    clippy::expect_used,
    clippy::unwrap_used
)]

use es_core::TenantId;

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
