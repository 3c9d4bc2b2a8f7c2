//! Test support (feature `testing`): a store on a fresh, migrated schema that is dropped when the
//! last handle goes, even when the test panics. PostgreSQL tests never skip: a missing
//! `DATABASE_URL` fails them.
#![allow(
    clippy::expect_used,
    clippy::missing_panics_doc,
    reason = "test support: a failed set-up fails the test"
)]

use std::sync::Arc;

use es_core::{MultiTenantStore, TenantId};
use sqlx::AssertSqlSafe;

use crate::{PgStore, PgStoreOptions, PgTenantStore};

/// The server the tests use, from `DATABASE_URL`.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: the PostgreSQL tests need a server (scripts/test.sh sets it and starts one)")
    })
}

/// A store on its own schema, dropped when the last clone goes.
#[derive(Clone, Debug)]
pub struct FreshSchema {
    /// The store.
    pub store: PgStore,
    guard: Arc<SchemaGuard>,
}

#[derive(Debug)]
struct SchemaGuard {
    schema: String,
}

impl FreshSchema {
    /// A migrated store on a new schema with default options (12 connections).
    pub async fn new() -> Self {
        Self::with(|options| options).await
    }

    /// A migrated store on a new schema, with options adjusted by `configure`.
    pub async fn with(configure: impl FnOnce(PgStoreOptions) -> PgStoreOptions) -> Self {
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let schema = format!("es_test_{}", &unique[unique.len() - 16..]);
        let options = PgStoreOptions::new(database_url())
            .schema(&schema)
            .expect("valid schema name")
            .max_connections(12);
        let store = PgStore::connect_with(configure(options)).await.expect("connect to PostgreSQL");
        let fresh = Self { store, guard: Arc::new(SchemaGuard { schema }) };
        fresh.store.migrate().await.expect("migrate");
        fresh
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.guard.schema
    }

    /// A handle on the default tenant.
    pub fn default_tenant(&self) -> PgTenantStore {
        self.store.tenant(TenantId::default())
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // Drop may run inside the test's runtime: a short-lived thread with its own does the I/O.
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
            tracing::warn!(%error, schema = %self.schema, "could not drop a test schema");
        }
    }
}

impl MultiTenantStore for FreshSchema {
    type Store = PgTenantStore;

    fn tenant(&self, tenant: TenantId) -> PgTenantStore {
        self.store.tenant(tenant)
    }
}
