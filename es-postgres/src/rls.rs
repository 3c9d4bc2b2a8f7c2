//! Row-level security (migration `20261202000001`): with
//! [`PgStoreOptions::row_level_security`](crate::PgStoreOptions::row_level_security), each tenant's
//! store runs on connections whose `es.tenant` setting names that tenant, so the database itself
//! keeps a query to that tenant's rows, whatever the query says; the store's own pool, which
//! serves cross-tenant work (the outbox relay, operator listings, key rotation), sets `*`.

use std::collections::HashMap;
use std::time::Duration;

use es_core::{StoreError, TenantId};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, PgPool};
use std::sync::Mutex;

use crate::PgStore;
use crate::error::read_error;

/// The tables with a `tenant` column, each with the `tenant_isolation` policy.
pub(crate) const TENANT_TABLES: [&str; 12] = [
    "events",
    "idempotency_keys",
    "snapshots",
    "checkpoints",
    "dead_letters",
    "outbox",
    "outbox_leases",
    "outbox_relays",
    "pii_keys",
    "pii_audit",
    "tenant_limits",
    "tenant_usage",
];

/// What the store's own pool sets: every tenant's rows (cross-tenant work).
pub(crate) const ALL_TENANTS: &str = "*";

/// How long a tenant's idle connection stays open.
const IDLE: Duration = Duration::from_secs(30);

const SET_TENANT: &str = "SELECT set_config('es.tenant', $1, false)";

/// Sets `es.tenant` on a new connection.
pub(crate) async fn bind_connection(
    connection: &mut sqlx::PgConnection,
    tenant: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(SET_TENANT).bind(tenant).execute(connection).await.map(drop)
}

/// One small pool per tenant, its connections bound to the tenant; opened lazily, closed when
/// idle.
pub(crate) struct TenantPools {
    connect: PgConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
    pools: Mutex<HashMap<TenantId, PgPool>>,
}

impl TenantPools {
    /// Pools connecting as `pool` does, at most `max_connections` each.
    pub(crate) fn new(pool: &PgPool, max_connections: u32, acquire_timeout: Duration) -> Self {
        let connect = (*pool.connect_options()).clone();
        Self { connect, max_connections, acquire_timeout, pools: Mutex::default() }
    }

    /// The tenant's pool (a handle: clones share it).
    pub(crate) fn pool(&self, tenant: &TenantId) -> PgPool {
        // A poisoned map still holds valid pools: a panic elsewhere cannot leave one half-made.
        let mut pools = self.pools.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pool) = pools.get(tenant) {
            return pool.clone();
        }
        let name = tenant.as_str().to_owned();
        let pool = crate::pool::options()
            .max_connections(self.max_connections)
            .min_connections(0)
            .idle_timeout(IDLE)
            .acquire_timeout(self.acquire_timeout)
            .after_connect(move |connection, _| {
                let name = name.clone();
                Box::pin(async move { bind_connection(connection, &name).await })
            })
            .connect_lazy_with(self.connect.clone());
        pools.insert(tenant.clone(), pool.clone());
        pool
    }
}

/// Refuses a store that asks for row-level security where it would not hold: the tables do not
/// enforce it, or the store's role bypasses it (a superuser, `BYPASSRLS`, or the tables' owner).
pub(crate) async fn check_enforced(pool: &PgPool) -> Result<(), StoreError> {
    let (enabled, bypassed, role): (bool, bool, String) = sqlx::query_as(
        "SELECT c.relrowsecurity, \
                r.rolsuper OR r.rolbypassrls \
                OR (pg_has_role(current_user, c.relowner, 'MEMBER') AND NOT c.relforcerowsecurity), \
                current_user::text \
         FROM pg_class c, pg_roles r \
         WHERE c.oid = 'events'::regclass AND r.rolname = current_user",
    )
    .fetch_one(pool)
    .await
    .map_err(|error| read_error("row_level_security", error))?;
    let refuse = |reason: String| Err(StoreError::backend("row_level_security", false, reason));
    if !enabled {
        return refuse(
            "row-level security is asked for but not enabled on the tables: run \
             PgStore::set_row_level_security(true) as their owner (after migrate)"
                .to_owned(),
        );
    }
    if bypassed {
        return refuse(format!(
            "row-level security is asked for, but role {role:?} bypasses it (a superuser, BYPASSRLS, \
             or the tables' owner): connect as the least-privilege role of docs/postgres-app-role.sql"
        ));
    }
    Ok(())
}

impl PgStore {
    /// Enables (or disables) row-level security on every table keyed by tenant. Needs the
    /// tables' owner (the credentials that ran [`migrate`](Self::migrate)); stores then connect
    /// as a least-privilege role with
    /// [`PgStoreOptions::row_level_security`](crate::PgStoreOptions::row_level_security). While
    /// it is enabled, a store without that option sees no rows (it fails closed).
    pub async fn set_row_level_security(&self, enabled: bool) -> Result<(), StoreError> {
        let verb = if enabled { "ENABLE" } else { "DISABLE" };
        let mut tx = self.pool().begin().await.map_err(|e| read_error("row_level_security", e))?;
        for table in TENANT_TABLES {
            let statement = format!("ALTER TABLE {table} {verb} ROW LEVEL SECURITY");
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(|error| StoreError::backend("row_level_security", false, error))?;
        }
        tx.commit().await.map_err(|error| StoreError::backend("row_level_security", false, error))
    }

    /// Whether row-level security is enabled on the store's tables.
    pub async fn row_level_security(&self) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT relrowsecurity FROM pg_class WHERE oid = 'events'::regclass")
            .fetch_one(self.pool())
            .await
            .map_err(|error| read_error("row_level_security", error))
    }
}
