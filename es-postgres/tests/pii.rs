//! The personal-data conformance cases against PostgreSQL.
#![allow(clippy::expect_used)]

mod common;

use std::sync::Arc;

use es_core::pii::{KeyProvider, MasterKeys};
use es_core::testing::conformance::PiiBackend;
use es_core::{MultiTenantStore, TenantId};
use es_postgres::PgTenantStore;
use es_postgres::testing::FreshSchema;

/// A fresh schema, with the inspection the cases need.
#[derive(Clone)]
struct Postgres(FreshSchema);

impl MultiTenantStore for Postgres {
    type Store = PgTenantStore;

    fn tenant(&self, tenant: TenantId) -> PgTenantStore {
        self.0.tenant(tenant)
    }
}

impl PiiBackend for Postgres {
    fn reopen_with(&self, provider: Arc<dyn KeyProvider>) -> Self {
        let mut fresh = self.0.clone();
        fresh.store = fresh.store.with_key_provider(provider);
        Self(fresh)
    }

    async fn stored_text(&self, _tenant: &TenantId) -> String {
        // The schema is the test's own: all of it.
        self.0.stored_text().await
    }

    async fn stored_payloads(&self, tenant: &TenantId) -> Vec<String> {
        self.0.stored_payloads(tenant).await
    }
}

async fn fresh_backend() -> Postgres {
    Postgres(
        common::fresh_schema_with(|options| options.master_keys(MasterKeys::ephemeral())).await,
    )
}

es_core::pii_tests!(fresh_backend);
