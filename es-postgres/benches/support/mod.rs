//! Set-up shared by the benchmarks: a schema of their own, dropped first and last, and a bulk load
//! that fills the log in one statement.
#![allow(dead_code, unreachable_pub, reason = "each bench binary uses part of this module")]

use std::time::Duration;

use es_postgres::{PgStore, PgStoreOptions};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgPool};

/// A pool for the hand-written SQL side, checking connections as the store's pools do: a ping
/// only for a connection idle for a second or more (sqlx's default pings on every acquire, one
/// round trip more per statement, which the store does not pay: the comparison would flatter it).
pub async fn raw_pool(url: &str, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= Duration::from_secs(1) {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect(url)
        .await
        .unwrap()
}

/// A benchmark's schema: an admin pool, and a migrated store on the schema.
pub struct BenchSchema {
    pub url: String,
    pub schema: &'static str,
    pub admin: PgPool,
    pub backend: PgStore,
}

impl BenchSchema {
    /// Drops `schema` if a previous run left it, then connects a store on it (options adjusted by
    /// `configure`) and migrates.
    pub async fn new(
        schema: &'static str,
        configure: impl FnOnce(PgStoreOptions) -> PgStoreOptions,
    ) -> Self {
        let url = std::env::var("DATABASE_URL").expect("DATABASE_URL must point at PostgreSQL");
        let admin = raw_pool(&url, 10).await;
        drop_schema(&admin, schema).await;
        let options = configure(PgStoreOptions::new(&url).schema(schema).unwrap());
        let backend = PgStore::connect_with(options).await.unwrap();
        backend.migrate().await.unwrap();
        Self { url, schema, admin, backend }
    }

    /// Inserts `events` deposits for `tenant` spread over `streams` streams with one
    /// `INSERT … SELECT generate_series`, moves the position sequence past them (the read horizon
    /// follows it) and analyzes the table.
    pub async fn bulk_load(&self, tenant: &str, events: i64, streams: i64) {
        let schema = self.schema;
        let load = format!(
            "INSERT INTO {schema}.events (tenant, position, stream_id, stream_version, event_id, event_type, \
             schema_version, payload, metadata, recorded_at) \
             SELECT '{tenant}', g, 'account-' || (g % {streams}), g / {streams} + 1, gen_random_uuid(), \
                    'account.deposited', 1, jsonb_build_object('amount', g % 100, 'currency', 'EUR'), NULL, now() \
             FROM generate_series(1, {events}) AS g"
        );
        sqlx::query(AssertSqlSafe(load)).execute(&self.admin).await.unwrap();
        let setval = format!("SELECT setval('{schema}.event_position_seq', {events})");
        sqlx::query(AssertSqlSafe(setval)).execute(&self.admin).await.unwrap();
        self.vacuum(&format!("{schema}.events")).await;
    }

    /// `VACUUM ANALYZE` a table (outside any transaction block).
    pub async fn vacuum(&self, table: &str) {
        sqlx::query(AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(&self.admin)
            .await
            .unwrap();
    }

    /// Closes the store and drops the schema.
    pub async fn finish(self) {
        drop(self.backend);
        drop_schema(&self.admin, self.schema).await;
    }
}

/// Drops a schema and everything in it, if it exists.
pub async fn drop_schema(admin: &PgPool, schema: &str) {
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
        .execute(admin)
        .await
        .unwrap();
}
