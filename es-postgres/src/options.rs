//! Connection and behaviour settings.

use std::sync::Arc;
use std::time::Duration;

use es_core::pii::{KeyProvider, MasterKeys};

use crate::error::ConfigError;

/// How a [`PgStore`](crate::PgStore) connects and behaves.
///
/// ```
/// use std::time::Duration;
/// use es_postgres::PgStoreOptions;
/// let options = PgStoreOptions::new("postgres://app@127.0.0.1/app")
///     .schema("events")?
///     .max_connections(20)
///     .statement_timeout(Duration::from_secs(10));
/// assert_eq!(options.schema_name(), "events");
/// # Ok::<(), es_postgres::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct PgStoreOptions {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) poll_interval: Duration,
    pub(crate) notify_interval: Duration,
    pub(crate) horizon_wait: Duration,
    pub(crate) append_attempts: u32,
    pub(crate) key_provider: Option<KeyProviderHandle>,
    pub(crate) row_level_security: bool,
    pub(crate) tenant_connections: u32,
    pub(crate) quota_sync_interval: Duration,
    pub(crate) group_commit: bool,
    pub(crate) group_commit_batches: u32,
}

/// The master keys of a store, shown by id only.
#[derive(Clone)]
pub(crate) struct KeyProviderHandle(pub(crate) Arc<dyn KeyProvider>);

impl std::fmt::Debug for KeyProviderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyProvider(current: {:?})", self.0.current_key_id())
    }
}

impl PgStoreOptions {
    /// Defaults: schema `es`, 10 connections, 5 s to acquire one, a 30 s statement timeout, a
    /// 500 ms polling fallback for waiting readers, a NOTIFY at most every 5 ms, 3 attempts for safely retryable appends.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "es".to_owned(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
            poll_interval: Duration::from_millis(500),
            notify_interval: Duration::from_millis(5),
            horizon_wait: Duration::from_millis(250),
            append_attempts: 3,
            key_provider: None,
            row_level_security: false,
            tenant_connections: 4,
            quota_sync_interval: Duration::from_millis(250),
            group_commit: false,
            group_commit_batches: 4,
        }
    }

    /// The schema holding the store's tables: lowercase ASCII letters, digits and `_`, starting with
    /// a letter or `_`, at most 63 bytes (PostgreSQL's identifier limit).
    pub fn schema(mut self, schema: &str) -> Result<Self, ConfigError> {
        let valid_start = schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
        let valid_rest =
            schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if schema.is_empty() || schema.len() > 63 || !valid_start || !valid_rest {
            return Err(ConfigError::InvalidSchema { schema: schema.to_owned() });
        }
        schema.clone_into(&mut self.schema);
        Ok(self)
    }

    /// The schema name.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// The most connections the pool opens (the LISTEN connection of waiting readers comes on top).
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Connections the pool keeps open when idle.
    #[must_use]
    pub fn min_connections(mut self, min: u32) -> Self {
        self.min_connections = min;
        self
    }

    /// How long a call waits for a free connection before failing (retryably).
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// PostgreSQL's `statement_timeout` for the store's connections; `None` for the server's default.
    #[must_use]
    pub fn statement_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.statement_timeout = timeout.into();
        self
    }

    /// How often a waiting reader checks for new events when no notification arrives (a fallback:
    /// LISTEN/NOTIFY normally wakes it within milliseconds).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The shortest time between two NOTIFYs this store sends to wake readers in other processes
    /// (default 5 ms). At most one append per interval carries one, in its own statement; the
    /// appends after it are covered by the next carrier or, when the writers go quiet, by a NOTIFY
    /// the store sends within two intervals. So a remote reader's wake-up may lag a commit by up
    /// to two intervals, and writers do not pay one NOTIFY per append. Readers in the same
    /// process are woken at once regardless.
    #[must_use]
    pub fn notify_interval(mut self, interval: Duration) -> Self {
        self.notify_interval = interval;
        self
    }

    /// How long one read waits for in-flight appends to finish before it settles for the horizon it
    /// has (see the crate docs, "Global order").
    #[must_use]
    pub fn horizon_wait(mut self, wait: Duration) -> Self {
        self.horizon_wait = wait;
        self
    }

    /// Attempts for an append that fails transiently where a retry cannot write twice (at least 1).
    #[must_use]
    pub fn append_attempts(mut self, attempts: u32) -> Self {
        self.append_attempts = attempts.max(1);
        self
    }

    /// The master keys that wrap the data keys of personal data (`#[pii]` fields; see
    /// [`es_core::pii`]). Without them the store refuses to write or read sealed fields
    /// ([`PiiError::NoMasterKey`](es_core::pii::PiiError::NoMasterKey)).
    ///
    /// ```
    /// use es_core::pii::MasterKeys;
    /// # let config = MasterKeys::generate_config("2026-12");
    /// // `config` comes from a secret store: "id:base64-key[,previous-id:base64-key…]".
    /// let options = es_postgres::PgStoreOptions::new("postgres://app@127.0.0.1/app")
    ///     .master_keys(MasterKeys::parse(&config)?);
    /// # Ok::<(), es_core::pii::PiiError>(())
    /// ```
    #[must_use]
    pub fn master_keys(self, keys: MasterKeys) -> Self {
        self.key_provider(Arc::new(keys))
    }

    /// Any [`KeyProvider`] (a KMS, for example) in place of [`MasterKeys`].
    #[must_use]
    pub fn key_provider(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.key_provider = Some(KeyProviderHandle(provider));
        self
    }

    /// Row-level security as a second line of defence between tenants (off by default): each
    /// tenant's store then runs on connections of its own whose `es.tenant` setting names the
    /// tenant, and the database's policies keep every query to that tenant's rows, so a query that
    /// forgot its tenant predicate cannot cross tenants. Needs the policies enabled
    /// ([`PgStore::set_row_level_security`](crate::PgStore::set_row_level_security), as the tables'
    /// owner) and a role that does not bypass them (the least-privilege role of
    /// `docs/postgres-app-role.sql`): [`PgStore::connect_with`](crate::PgStore::connect_with)
    /// refuses otherwise. Each tenant in use gets a pool of at most
    /// [`tenant_connections`](Self::tenant_connections) connections, closed after 30 s idle;
    /// suited to tens of tenants active at once per process, not thousands.
    #[must_use]
    pub fn row_level_security(mut self, enabled: bool) -> Self {
        self.row_level_security = enabled;
        self
    }

    /// The most connections one tenant's pool opens under
    /// [`row_level_security`](Self::row_level_security) (default 4, at least 1).
    #[must_use]
    pub fn tenant_connections(mut self, max: u32) -> Self {
        self.tenant_connections = max.max(1);
        self
    }

    /// How often a process refreshes what it knows of a tenant's quotas (default 250 ms): the
    /// tenant's limits, and its usage counted from the log (every committed event, an open
    /// transaction holding the read horizon back or not). Within one
    /// process limits are exact; across processes a tenant can pass a limit by what the other
    /// processes append within one interval, plus what is in flight, and a limit changed
    /// elsewhere holds here within one interval. `Duration::ZERO` refreshes before every append
    /// of a tenant with limits (one more round trip each). Appends of tenants without limits
    /// pay nothing but one refresh per interval.
    #[must_use]
    pub fn quota_sync_interval(mut self, interval: Duration) -> Self {
        self.quota_sync_interval = interval;
        self
    }

    /// Group commit (off by default): concurrent appends without an idempotency key that expect
    /// `NoStream` or an exact version (the command pipeline's appends of commands without a key)
    /// share one statement, one transaction and one WAL flush instead of one each. Each append
    /// keeps its own outcome: a version conflict fails that append alone. A lone writer waits for
    /// nobody; under load, appends that arrive while
    /// [`group_commit_batches`](Self::group_commit_batches) batches are in flight wait for the
    /// next one. Appends with a key or with publications, and appends in a caller's transaction,
    /// are not grouped. Figures: `docs/benchmarks.md`.
    ///
    /// ```
    /// let options = es_postgres::PgStoreOptions::new("postgres://app@127.0.0.1/app")
    ///     .group_commit(true)
    ///     .group_commit_batches(2);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn group_commit(mut self, enabled: bool) -> Self {
        self.group_commit = enabled;
        self
    }

    /// The most group-commit batches in flight at once (default 4, at least 1), each on a
    /// connection of its own: while one batch commits, the next one fills.
    #[must_use]
    pub fn group_commit_batches(mut self, batches: u32) -> Self {
        self.group_commit_batches = batches.max(1);
        self
    }
}
