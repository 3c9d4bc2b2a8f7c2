//! Test support (feature `testing`): a store on a fresh, migrated schema that is dropped when the
//! last handle goes, even when the test panics. PostgreSQL tests never skip: a missing
//! `DATABASE_URL` fails them.
#![allow(
    clippy::expect_used,
    clippy::missing_panics_doc,
    reason = "test support: a failed set-up fails the test"
)]

use std::sync::Arc;

use es_core::pii::MasterKeys;
use es_core::{MultiTenantStore, TenantId};
use sqlx::AssertSqlSafe;

use crate::{PgStore, PgStoreOptions, PgTenantStore};

/// The server the tests use, from `DATABASE_URL`.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: the PostgreSQL tests need a server (scripts/test.sh sets it and starts one)")
    })
}

/// The master keys of test stores ([`FreshSchema`]): a fixed key everyone can read, so that a
/// test's store and the binaries it starts (`BANK_MASTER_KEYS`) open each other's data. Never use
/// it outside tests.
pub const TEST_MASTER_KEYS: &str = "test:ZXMtcG9zdGdyZXMgdGVzdCBrZXk7IG5vdCBzZWNyZXQ=";

/// [`TEST_MASTER_KEYS`], parsed.
pub fn test_master_keys() -> MasterKeys {
    MasterKeys::parse(TEST_MASTER_KEYS).expect("TEST_MASTER_KEYS is a valid configuration")
}

/// A store on its own schema, dropped when the last clone goes. It seals personal data with
/// [`TEST_MASTER_KEYS`].
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
            .max_connections(12)
            .master_keys(test_master_keys());
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

    /// Every row of every table of the schema as text (`bytea` columns decoded as text where
    /// they hold text, then in hex), one row per line, prefixed by its table: for searches of what the
    /// database keeps, personal data above all. Tables added later are searched too.
    pub async fn stored_text(&self) -> String {
        dump_schema(self.store.pool(), self.schema()).await
    }

    /// The payloads of `tenant`'s events as stored, in position order.
    pub async fn stored_payloads(&self, tenant: &TenantId) -> Vec<String> {
        sqlx::query_scalar("SELECT payload::text FROM events WHERE tenant = $1 ORDER BY position")
            .bind(tenant.as_str())
            .fetch_all(self.store.pool())
            .await
            .expect("read payloads")
    }
}

/// Every row of every table of `schema` as text (see [`FreshSchema::stored_text`]).
pub async fn dump_schema(pool: &sqlx::PgPool, schema: &str) -> String {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("list columns");
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for (table, column, data_type) in columns {
        let expression = if data_type == "bytea" {
            format!(
                "coalesce(encode(\"{column}\", 'escape') || ' ' || encode(\"{column}\", 'hex'), '')"
            )
        } else {
            format!("coalesce(\"{column}\"::text, '')")
        };
        match tables.last_mut() {
            Some((name, expressions)) if *name == table => expressions.push(expression),
            _ => tables.push((table, vec![expression])),
        }
    }
    let mut text = String::new();
    for (table, expressions) in tables {
        // Names come from the catalog and are quoted.
        let query = format!(
            "SELECT concat_ws(' | ', {}) FROM \"{schema}\".\"{table}\"",
            expressions.join(", ")
        );
        let rows: Vec<String> =
            sqlx::query_scalar(AssertSqlSafe(query)).fetch_all(pool).await.expect("dump a table");
        for row in rows {
            text.push_str(&table);
            text.push_str(": ");
            text.push_str(&row);
            text.push('\n');
        }
    }
    text
}

/// Ends the sessions (other than this one) holding a lock on a relation of schema $1.
const TERMINATE_SCHEMA_LOCK_HOLDERS: &str = "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
     JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()";

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
                let drop = || async {
                    let mut tx = pool.begin().await?;
                    sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut *tx).await?;
                    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
                    tx.commit().await
                };
                if drop().await.is_err() {
                    // A test that panicked while it held a transaction open on its schema: its
                    // connection waits on the test's runtime, which waits on this drop. End the
                    // sessions holding locks in the schema (only this test's), then drop.
                    sqlx::query(TERMINATE_SCHEMA_LOCK_HOLDERS).bind(&schema).execute(&pool).await?;
                    drop().await?;
                }
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

impl es_core::quota::TenantQuotas for FreshSchema {
    async fn set_limits(
        &self,
        tenant: &TenantId,
        limits: es_core::quota::Limits,
    ) -> Result<(), es_core::StoreError> {
        self.store.set_limits(tenant, limits).await
    }

    async fn tenant_usage(
        &self,
        tenant: &TenantId,
    ) -> Result<es_core::quota::TenantUsage, es_core::StoreError> {
        self.store.tenant_usage(tenant).await
    }

    async fn tenants_usage(&self) -> Result<Vec<es_core::quota::TenantUsage>, es_core::StoreError> {
        self.store.tenants_usage().await
    }
}

impl MultiTenantStore for FreshSchema {
    type Store = PgTenantStore;

    fn tenant(&self, tenant: TenantId) -> PgTenantStore {
        self.store.tenant(tenant)
    }
}

/// A PostgreSQL server of the test's own, on a free loopback port, with a temporary data
/// directory: for fault tests that stop, restart or crash the server (never the shared one).
/// The server is stopped (immediately) and its directory removed when the value drops.
///
/// Needs the server binaries (`initdb`, `pg_ctl`; found under `/usr/lib/postgresql/*/bin` or on
/// `PATH`). As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
#[derive(Debug)]
pub struct PrivateCluster {
    directory: std::path::PathBuf,
    port: u16,
    bin: std::path::PathBuf,
    as_postgres: bool,
}

impl PrivateCluster {
    /// Creates and starts a cluster (trust authentication, user `postgres`).
    pub fn start() -> Self {
        let bin = server_binaries();
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let directory =
            std::env::temp_dir().join(format!("es-fault-{}", &unique[unique.len() - 12..]));
        std::fs::create_dir_all(&directory).expect("create the cluster's directory");
        let as_postgres = running_as_root();
        if as_postgres {
            let status = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&directory)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of the cluster directory to postgres failed");
        }
        let port = {
            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
            listener.local_addr().expect("its address").port()
        };
        let cluster = Self { directory, port, bin, as_postgres };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
        );
        cluster.start_server();
        cluster
    }

    /// The connection string of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A migrated store on `schema` of this cluster, tuned for fault tests: a small pool that
    /// gives up acquiring after 2 s (so an outage surfaces as an error, not a hang) and polls for
    /// new events every 100 ms.
    pub async fn store(&self, schema: &str) -> PgStore {
        let options = PgStoreOptions::new(self.url())
            .schema(schema)
            .expect("a valid schema name")
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(2))
            .poll_interval(std::time::Duration::from_millis(100))
            .master_keys(test_master_keys());
        let store = PgStore::connect_with(options).await.expect("connect to the private cluster");
        store.migrate().await.expect("migrate");
        store
    }

    /// Stops the server at once (like a crash: no shutdown checkpoint, connections cut).
    pub fn crash(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    /// Starts the server again (after [`PrivateCluster::crash`]); waits until it accepts
    /// connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=100",
            self.port,
            self.directory.display()
        );
        let log = self.directory.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Crashes the server and starts it again.
    pub fn restart(&self) {
        self.crash();
        self.start_server();
    }

    fn data(&self) -> String {
        self.directory.join("data").to_string_lossy().into_owned()
    }

    /// A server binary, run as `postgres` when the tests run as root.
    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            std::process::Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("could not run {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// The directory holding `initdb` and `pg_ctl`: the newest under `/usr/lib/postgresql`, else
/// the one on `PATH`.
fn server_binaries() -> std::path::PathBuf {
    let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries.filter_map(Result::ok).map(|entry| entry.path().join("bin")).collect()
        })
        .unwrap_or_default();
    versions.retain(|bin| bin.join("initdb").exists());
    versions.sort();
    if let Some(bin) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").exists());
    on_path.unwrap_or_else(|| {
        panic!("the PostgreSQL server binaries (initdb, pg_ctl) are not installed; the fault tests need them (apt install postgresql)")
    })
}
