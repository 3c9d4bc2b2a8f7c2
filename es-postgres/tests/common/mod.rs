//! Shared test fixtures: a fresh, migrated schema per test, dropped when the test ends.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::missing_panics_doc,
    clippy::expect_used,
    clippy::unwrap_used
)]

use std::sync::Arc;

use es_core::{MultiTenantStore, TenantId};
use es_postgres::{PgStore, PgStoreOptions, PgTenantStore};
use sqlx::AssertSqlSafe;

/// The server the tests use. Missing configuration fails the test: PostgreSQL tests never skip.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: the PostgreSQL tests need a server (scripts/test.sh sets it and starts one)")
    })
}

/// A store on its own schema, which is dropped when the last clone goes.
#[derive(Clone, Debug)]
pub struct FreshSchema {
    pub store: PgStore,
    guard: Arc<SchemaGuard>,
}

#[derive(Debug)]
struct SchemaGuard {
    schema: String,
}

impl FreshSchema {
    pub fn schema(&self) -> &str {
        &self.guard.schema
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // Drop runs inside the test's runtime; a short-lived thread with its own runtime does the I/O.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let pool = sqlx::PgPool::connect(&database_url()).await?;
                sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
                    .execute(&pool)
                    .await?;
                pool.close().await;
                Ok::<(), sqlx::Error>(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop test schema {}: {error}", self.schema);
        }
    }
}

impl MultiTenantStore for FreshSchema {
    type Store = PgTenantStore;

    fn tenant(&self, tenant: TenantId) -> PgTenantStore {
        self.store.tenant(tenant)
    }
}

/// A migrated store on a new schema, with options adjusted by `configure`.
pub async fn fresh_schema_with(
    configure: impl FnOnce(PgStoreOptions) -> PgStoreOptions,
) -> FreshSchema {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let schema = format!("es_test_{}", &unique[unique.len() - 16..]);
    let options = PgStoreOptions::new(database_url())
        .schema(&schema)
        .expect("valid schema name")
        .max_connections(12);
    let store = PgStore::connect_with(configure(options)).await.expect("connect to PostgreSQL");
    let fresh = FreshSchema { store, guard: Arc::new(SchemaGuard { schema }) };
    fresh.store.migrate().await.expect("migrate");
    fresh
}

/// A migrated store on a new schema with default options.
pub async fn fresh_schema() -> FreshSchema {
    fresh_schema_with(|options| options).await
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
