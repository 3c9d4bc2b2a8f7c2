//! The backend, its tenant-scoped handles, migrations and operator views.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::{
    AppendOptions, AppendRequest, AppendResult, EventData, EventStore, EventStream,
    ExpectedVersion, IdempotencyKey, IdempotencyRecord, MultiTenantStore, Position, ReadAllOptions,
    ReadStreamOptions, StoreError, StreamId, TenantId,
};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, PgPool, Row};

use es_core::pii::{KeyProvider, PersonalData, Vault, open_events, open_replay, seal_request};

use crate::keys::PgKeys;
use crate::row::IdempotencyRow;
use tracing::Instrument;

use crate::error::read_error;
use crate::horizon::Horizon;
use crate::notify::Wakeups;
use crate::row::{bound_i64, stored_u64};
use crate::sql;
use crate::{PgStoreOptions, append, read};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL backend: a connection pool on one schema, handing out a [`PgTenantStore`] per
/// tenant. Clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) options: PgStoreOptions,
    pub(crate) horizon: Horizon,
    pub(crate) wakeups: Wakeups,
    /// Seals and opens personal data; `None` without master keys.
    pub(crate) vault: Option<Arc<Vault>>,
    /// The tenants' own pools under row-level security; `None` without it.
    tenant_pools: Option<crate::rls::TenantPools>,
    /// What this process knows of its tenants' usage and limits.
    pub(crate) quotas: crate::quota::ledger::Ledgers,
    /// The queue of appends sharing statements; `None` without group commit.
    pub(crate) group_commit: Option<crate::group_commit::GroupCommit>,
}

impl Inner {
    fn new(pool: PgPool, options: PgStoreOptions) -> Arc<Self> {
        Arc::new_cyclic(|weak| {
            let vault = options.key_provider.as_ref().map(|provider| {
                let keys = Arc::new(PgKeys { inner: weak.clone() });
                Arc::new(Vault::new(keys, provider.0.clone()))
            });
            let wakeups = Wakeups::new(&options.schema, options.notify_interval);
            let tenant_pools = options.row_level_security.then(|| {
                crate::rls::TenantPools::new(
                    &pool,
                    options.tenant_connections,
                    options.acquire_timeout,
                )
            });
            let quotas = crate::quota::ledger::Ledgers::new(options.quota_sync_interval);
            let group_commit = options
                .group_commit
                .then(|| crate::group_commit::GroupCommit::new(options.group_commit_batches));
            Self {
                pool,
                options,
                horizon: Horizon::default(),
                wakeups,
                vault,
                tenant_pools,
                quotas,
                group_commit,
            }
        })
    }

    /// Whether each tenant has a pool of its own (row-level security).
    pub(crate) fn has_tenant_pools(&self) -> bool {
        self.tenant_pools.is_some()
    }

    /// The pool for `tenant`'s rows: the tenant's own under row-level security, else the store's.
    pub(crate) fn pool_for(&self, tenant: &TenantId) -> PgPool {
        match &self.tenant_pools {
            Some(pools) => pools.pool(tenant),
            None => self.pool.clone(),
        }
    }
}

/// What holds readers back, for operators (see the crate docs, "Global order").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HorizonStatus {
    /// The horizon readers use now: they return no event past it.
    pub horizon: Position,
    /// The highest position any append has taken (committed or not).
    pub last_taken: Position,
    /// Sessions inside an append transaction now; while one stays open, the horizon cannot pass
    /// the positions it took.
    pub open_appends: Vec<OpenAppend>,
}

/// A session inside an append transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenAppend {
    /// Its backend process id (`pg_stat_activity.pid`; `pg_terminate_backend(pid)` ends it).
    pub pid: i32,
    /// When its transaction began.
    pub transaction_start: Option<DateTime<Utc>>,
    /// `pg_stat_activity.state` (`active`, `idle in transaction`, …).
    pub state: Option<String>,
    /// The client's `application_name`.
    pub application_name: Option<String>,
}

impl PgStore {
    /// Connects with default [`PgStoreOptions`] (schema `es`). Call [`PgStore::migrate`] before the
    /// first use of a new database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(PgStoreOptions::new(url)).await
    }

    /// Connects with the given options.
    pub async fn connect_with(options: PgStoreOptions) -> Result<Self, StoreError> {
        // The store's schema first, then `public`: application tables there can be used
        // unqualified in a transaction that also appends (`PgTenantStore::append_in`).
        let mut server_options = vec![("search_path", format!("{},public", options.schema))];
        if let Some(timeout) = options.statement_timeout {
            server_options.push(("statement_timeout", timeout.as_millis().to_string()));
        }
        let connect = PgConnectOptions::from_str(&options.url)
            .map_err(|error| StoreError::backend("connect", false, error))?
            .application_name("es-postgres")
            .options(server_options);
        let mut pool = crate::pool::options()
            .max_connections(options.max_connections)
            .min_connections(options.min_connections)
            .acquire_timeout(options.acquire_timeout);
        if options.row_level_security {
            // The store's own pool serves cross-tenant work: every tenant's rows.
            pool = pool.after_connect(|connection, _| {
                Box::pin(crate::rls::bind_connection(connection, crate::rls::ALL_TENANTS))
            });
        }
        let pool =
            pool.connect_with(connect).await.map_err(|error| read_error("connect", error))?;
        if options.row_level_security {
            crate::rls::check_enforced(&pool).await?;
        }
        Ok(Self { inner: Inner::new(pool, options) })
    }

    /// A store on a pool the application already has (its own connection settings, its own
    /// size), so its tables and the events can share transactions
    /// ([`PgTenantStore::append_in`]). The pool's connections must have the store's schema on
    /// their `search_path` (for example `options=-c search_path=es,public` in the URL, or
    /// `PgConnectOptions::options([("search_path", "es,public")])`); that is checked here, and
    /// a pool without it is refused. `options` gives the schema and the store's other settings;
    /// its URL is used only by [`migrate`](Self::migrate).
    ///
    /// Row-level security needs connections the store opens itself: with
    /// [`PgStoreOptions::row_level_security`] this is refused; use [`connect_with`](Self::connect_with).
    pub async fn from_pool(pool: PgPool, options: PgStoreOptions) -> Result<Self, StoreError> {
        if options.row_level_security {
            return Err(StoreError::backend(
                "from_pool",
                false,
                "row-level security needs connections the store opens itself (connect_with)",
            ));
        }
        // The setting itself, not `current_schemas()`: that lists only schemas that exist, and
        // the store's may not exist before `migrate`.
        let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
            .fetch_one(&pool)
            .await
            .map_err(|error| read_error("from_pool", error))?;
        let named = path.split(',').any(|part| part.trim().trim_matches('"') == options.schema);
        if !named {
            return Err(StoreError::backend(
                "from_pool",
                false,
                format!(
                    "the pool's connections have search_path {path:?}, without the store's schema {:?}; \
                     connect them with search_path {},public",
                    options.schema, options.schema
                ),
            ));
        }
        Ok(Self { inner: Inner::new(pool, options) })
    }

    /// A store on the same pool and schema with other master keys (see
    /// [`PgStoreOptions::key_provider`]): for a tool that rotates keys, or a test of what a
    /// process with the wrong key would see.
    #[must_use]
    pub fn with_key_provider(&self, provider: Arc<dyn KeyProvider>) -> Self {
        let options = self.inner.options.clone().key_provider(provider);
        Self { inner: Inner::new(self.inner.pool.clone(), options) }
    }

    /// The vault sealing personal data, if master keys are configured (master-key rotation:
    /// [`Vault::rotate`]).
    pub fn vault(&self) -> Option<&Arc<Vault>> {
        self.inner.vault.as_ref()
    }

    /// Creates the schema if needed and applies the embedded migrations that have not run yet.
    /// Idempotent, and safe to run from several processes at once (sqlx serialises migrators with an
    /// advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let schema = &self.inner.options.schema;
        let span = tracing::info_span!("es.migrate", schema = %schema);
        async {
            // A connection of its own, opened without the store's statement timeout: migrations
            // may run longer than it allows its queries. (Lifting it with `SET` afterwards would run
            // that `SET` under the timeout itself, which a tiny timeout on a loaded server cancels.)
            let connect = PgConnectOptions::from_str(&self.inner.options.url)
                .map_err(|error| StoreError::backend("migrate", false, error))?
                .application_name("es-postgres")
                .options([("search_path", schema.as_str())]);
            let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect_with(&connect)
                .await
                .map_err(|error| read_error("migrate", error))?;
            // The name was validated (lowercase identifier) by PgStoreOptions::schema.
            let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            if let Err(error) = sqlx::query(AssertSqlSafe(create)).execute(&mut connection).await {
                // Two processes creating the schema at once: one of them sees a duplicate; once is enough.
                if !crate::error::has_sqlstate(&error, "23505")
                    && !crate::error::has_sqlstate(&error, "42P06")
                {
                    return Err(StoreError::backend("migrate", false, error));
                }
            }
            let migrated = MIGRATOR.run(&mut connection).await;
            let _ = sqlx::Connection::close(connection).await;
            migrated.map_err(|error| StoreError::backend("migrate", false, error))
        }
        .instrument(span)
        .await
    }

    /// The connection pool (for transactional read models and admin queries in the same schema).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The options the store was built with.
    pub fn options(&self) -> &PgStoreOptions {
        &self.inner.options
    }

    /// What group commit has done since this store was created; `None` without it
    /// ([`PgStoreOptions::group_commit`]).
    pub fn group_commit_stats(&self) -> Option<crate::GroupCommitStats> {
        self.inner.group_commit.as_ref().map(crate::group_commit::GroupCommit::stats)
    }

    /// What holds readers back now: the horizon, the last position taken, and the sessions inside
    /// append transactions (an operator's first look when projections stop advancing).
    pub async fn horizon_status(&self) -> Result<HorizonStatus, StoreError> {
        let pool = &self.inner.pool;
        let horizon = self.inner.horizon.advance(pool, Duration::ZERO).await?;
        let last_taken: i64 = sqlx::query_scalar(sql::LAST_POSITION_TAKEN)
            .fetch_one(pool)
            .await
            .map_err(|error| read_error("horizon_status", error))?;
        let rows = sqlx::query(sql::HORIZON_HOLDERS)
            .fetch_all(pool)
            .await
            .map_err(|error| read_error("horizon_status", error))?;
        let open_appends = rows
            .iter()
            .map(|row| {
                Ok(OpenAppend {
                    pid: row.try_get("pid")?,
                    transaction_start: row.try_get("xact_start")?,
                    state: row.try_get("state")?,
                    application_name: row.try_get("application_name")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|error| read_error("horizon_status", error))?;
        Ok(HorizonStatus {
            horizon: Position::new(horizon),
            last_taken: Position::new(stored_u64(last_taken, "the last position taken")?),
            open_appends,
        })
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.inner.options.schema)
            .finish_non_exhaustive()
    }
}

impl MultiTenantStore for PgStore {
    type Store = PgTenantStore;

    fn tenant(&self, tenant: TenantId) -> PgTenantStore {
        PgTenantStore { pool: self.inner.pool_for(&tenant), inner: self.inner.clone(), tenant }
    }
}

/// One tenant's view of a [`PgStore`]; implements [`EventStore`].
#[derive(Clone)]
pub struct PgTenantStore {
    inner: Arc<Inner>,
    /// The tenant's connections: the store's pool, or the tenant's own under row-level security.
    pool: PgPool,
    tenant: TenantId,
}

impl fmt::Debug for PgTenantStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTenantStore")
            .field("schema", &self.inner.options.schema)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl PgTenantStore {
    pub(crate) fn tenant_id(&self) -> &TenantId {
        &self.tenant
    }

    /// Changes whenever events may have been appended (here, or elsewhere as NOTIFY tells).
    pub(crate) fn wakeups(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.wakeups.subscribe(&self.inner.pool)
    }

    /// The tenant's connection pool (the store's, or the tenant's own under row-level
    /// security): begin a transaction on it to append with [`append_in`](Self::append_in) beside
    /// the application's own writes.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn head(&self, horizon: u64) -> Result<Position, StoreError> {
        let head: Option<i64> = sqlx::query_scalar(sql::HEAD_POSITION)
            .bind(self.tenant.as_str())
            .bind(bound_i64(horizon))
            .fetch_one(&self.pool)
            .await
            .map_err(|error| read_error("head_position", error))?;
        Ok(Position::new(head.map_or(Ok(0), |head| stored_u64(head, "the head position"))?))
    }
}

impl PgTenantStore {
    /// Appends on `connection`, inside the caller's transaction, with the same expected-version,
    /// idempotency and publication rules as [`EventStore::append`]: application rows, events and
    /// outbox messages then commit or roll back together.
    ///
    /// ```no_run
    /// # use es_core::{AppendOptions, EventData, ExpectedVersion, StreamId};
    /// # async fn demo(store: es_postgres::PgTenantStore, events: Vec<EventData>) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = store.pool().begin().await?;
    /// sqlx::query("INSERT INTO public.orders (id) VALUES ($1)").bind(42).execute(&mut *tx).await?;
    /// store
    ///     .append_in(&mut tx, &StreamId::new("order-42")?, ExpectedVersion::NoStream, events, AppendOptions::default())
    ///     .await?;
    /// tx.commit().await?; // or roll back: neither the row nor the events are kept
    /// # Ok(()) }
    /// ```
    ///
    /// - **The connection** must see the store's schema on its `search_path`: a connection of
    ///   [`pool`](Self::pool) does (its `search_path` is the store's schema, then `public`), and so
    ///   does one of a pool given to [`PgStore::from_pool`].
    /// - **No retry.** A failed statement aborts the caller's transaction, so nothing is retried
    ///   here: a version conflict comes back as [`StoreError::VersionConflict`] with the
    ///   transaction still usable (the check is an outcome, not an error); any other failure
    ///   leaves it aborted, to be rolled back.
    /// - **The read horizon.** The events take their positions now and become visible when the
    ///   transaction commits. Until then readers stop before the first of them, also for events
    ///   other sessions appended and committed after it (global order has no gaps that close
    ///   later): keep such transactions short. `PgStore::horizon_status` names the session
    ///   holding readers back. A rollback frees the horizon at once.
    /// - **Wake-ups** are a `NOTIFY` in the transaction: readers hear of the events at commit.
    pub async fn append_in(
        &self,
        connection: &mut sqlx::PgConnection,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
        options: AppendOptions,
    ) -> Result<AppendResult, StoreError> {
        let mut request = AppendRequest::new(stream_id, expected, events, options)?;
        seal_request(self.inner.vault.as_deref(), &self.tenant, &mut request).await?;
        let span = tracing::debug_span!(
            "es.append", tenant = %self.tenant, stream = %stream_id, %expected,
            count = request.events.len(), in_transaction = true
        );
        // Counted as written when it returns; if the transaction rolls back, the next refresh of
        // the ledger drops it (the log count passes its positions without finding it).
        self.within_quota(request, false, |request| {
            append::append_in(&self.inner, &self.tenant, connection, request).instrument(span)
        })
        .await
    }

    /// Runs `append` if the tenant's quotas admit `request`, and settles its reservation with
    /// the outcome (`committed`: whether a written append is committed when it returns).
    async fn within_quota<F, Fut>(
        &self,
        request: AppendRequest,
        committed: bool,
        append: F,
    ) -> Result<AppendResult, StoreError>
    where
        F: FnOnce(AppendRequest) -> Fut,
        Fut: std::future::Future<Output = Result<append::Appended, StoreError>>,
    {
        let ticket = self.admit(&request).await?;
        let appended = append(request).await;
        if let Some(ticket) = ticket {
            ticket.settle(&appended, committed);
        }
        appended.map(|appended| appended.result)
    }

    /// Checks an append against the tenant's quotas (see [`crate::quota::ledger`]). A keyed
    /// append refused by a quota that was already written is let through: it replays.
    async fn admit(
        &self,
        request: &AppendRequest,
    ) -> Result<Option<crate::quota::ledger::Ticket>, StoreError> {
        let admitted =
            self.inner.quotas.admit(&self.inner, &self.pool, &self.tenant, request).await;
        match (admitted, &request.idempotency) {
            (Err(StoreError::QuotaExceeded(exceeded)), Some((key, _))) => {
                match self.idempotency_record(key).await? {
                    Some(_) => Ok(None),
                    None => Err(StoreError::QuotaExceeded(exceeded)),
                }
            }
            (admitted, _) => admitted,
        }
    }
}

impl PersonalData for PgTenantStore {
    fn vault(&self) -> Option<&Arc<Vault>> {
        self.inner.vault.as_ref()
    }
}

impl EventStore for PgTenantStore {
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
        options: AppendOptions,
    ) -> Result<AppendResult, StoreError> {
        let mut request = AppendRequest::new(stream_id, expected, events, options)?;
        seal_request(self.inner.vault.as_deref(), &self.tenant, &mut request).await?;
        let span = tracing::debug_span!(
            "es.append", tenant = %self.tenant, stream = %stream_id, %expected, count = request.events.len()
        );
        self.within_quota(request, true, |request| {
            append::append(&self.inner, &self.pool, &self.tenant, request).instrument(span)
        })
        .await
    }

    fn read_stream(&self, stream_id: &StreamId, options: ReadStreamOptions) -> EventStream {
        let events =
            read::read_stream(self.pool.clone(), self.tenant.clone(), stream_id.clone(), options);
        open_events(self.inner.vault.clone(), self.tenant.clone(), events)
    }

    fn read_all(&self, options: ReadAllOptions) -> EventStream {
        // Personal data is opened by the read itself, a page at a time.
        read::read_all(self.inner.clone(), self.pool.clone(), self.tenant.clone(), options)
    }

    fn replay_all(&self, options: ReadAllOptions) -> es_core::LogEventStream {
        // `read_all`'s read, four columns of each row: personal data opened the same way.
        read::replay_all(self.inner.clone(), self.pool.clone(), self.tenant.clone(), options)
    }

    fn replay_stream(&self, stream_id: &StreamId, from_version: u64) -> es_core::ReplayStream {
        let pages = read::replay_stream(
            self.pool.clone(),
            self.tenant.clone(),
            stream_id.clone(),
            from_version,
        );
        open_replay(self.inner.vault.clone(), self.tenant.clone(), pages)
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, StoreError> {
        let version: Option<i64> = sqlx::query_scalar(sql::STREAM_VERSION)
            .bind(self.tenant.as_str())
            .bind(stream_id.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(|error| read_error("stream_version", error))?;
        version.map_or(Ok(0), |version| {
            stored_u64(version, format_args!("the version of {stream_id}"))
        })
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let horizon =
            self.inner.horizon.advance(&self.inner.pool, self.inner.options.horizon_wait).await?;
        self.head(horizon).await
    }

    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<Position, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribe before looking, so an append between the look and the wait still wakes us.
        let mut wakeups = self.inner.wakeups.subscribe(&self.inner.pool);
        loop {
            wakeups.borrow_and_update();
            let now = tokio::time::Instant::now();
            let wait = deadline.saturating_duration_since(now).min(self.inner.options.horizon_wait);
            let horizon = self.inner.horizon.advance(&self.inner.pool, wait).await?;
            let head = self.head(horizon).await?;
            if head > after || tokio::time::Instant::now() >= deadline {
                return Ok(head);
            }
            let next_poll =
                (tokio::time::Instant::now() + self.inner.options.poll_interval).min(deadline);
            // A notification, the polling fallback or the deadline, whichever comes first.
            let _ = tokio::time::timeout_at(next_poll, wakeups.changed()).await;
        }
    }

    async fn idempotency_record(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row: Option<IdempotencyRow> = sqlx::query_as(sql::IDEMPOTENCY_RECORD)
            .bind(self.tenant.as_str())
            .bind(key.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| read_error("idempotency_record", error))?;
        row.map(|row| row.record(key)).transpose()
    }

    async fn fingerprint_matches(
        &self,
        record: &es_core::IdempotencyRecord,
        fingerprint: &es_core::Fingerprint,
    ) -> Result<bool, StoreError> {
        if record.fingerprint == *fingerprint {
            return Ok(true);
        }
        let Some(vault) = &self.inner.vault else { return Ok(false) };
        // The recorded events as stored (sealed): whose keys keyed the record's fingerprint.
        let sealed: Vec<String> = sqlx::query_scalar(sql::SEALED_PAYLOADS)
            .bind(self.tenant.as_str())
            .bind(record.stream_id.as_str())
            .bind(crate::row::bound_i64(record.result.first_version))
            .bind(crate::row::bound_i64(record.result.last_version))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| read_error("fingerprint_matches", error))?;
        let sealed: Vec<_> = sealed.into_iter().map(es_core::Payload::from_stored).collect();
        vault.keyed_fingerprint_matches(&self.tenant, record, fingerprint, &sealed).await
    }
}
