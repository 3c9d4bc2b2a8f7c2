//! Failures and operations: killed connections, repeated migrations, the append-only log, the
//! least-privilege role, configuration errors.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]

mod common;

use std::time::Duration;

use common::{RemoteReader, database_url, fresh_schema, raw_append, tenant};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, IdempotencyKey,
    MultiTenantStore, Payload, Position, ReadAllOptions, RecordedEvent, StoreError, StreamId,
};
use es_postgres::{ConfigError, PgStore, PgStoreOptions};
use futures_util::TryStreamExt;
use sqlx::AssertSqlSafe;

fn batch(count: u64) -> Vec<EventData> {
    (0..count)
        .map(|n| {
            EventData::new(
                EventType::new("test.bulk").unwrap(),
                Payload::from_value(&serde_json::json!({ "n": n, "fill": "x".repeat(200) }))
                    .unwrap(),
            )
        })
        .collect()
}

/// Appends `count` events to a new stream.
async fn append_new<S: EventStore>(store: &S, stream: &str, count: u64) -> es_core::AppendResult {
    let stream = StreamId::new(stream).unwrap();
    store
        .append(&stream, ExpectedVersion::NoStream, batch(count), AppendOptions::default())
        .await
        .unwrap()
}

async fn read_all<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    store.read_all(ReadAllOptions::from_beginning()).try_collect().await.unwrap()
}

/// A session terminated with `pg_terminate_backend` inside an append transaction leaves nothing:
/// no event, no stream row, and readers are not held back afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connection_mid_append_leaves_nothing() {
    let fresh = fresh_schema().await;
    let store = fresh.tenant(tenant("kill"));
    let mut victim = fresh.store.pool().acquire().await.unwrap();
    let pid: i32 =
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *victim).await.unwrap();
    sqlx::query("BEGIN").execute(&mut *victim).await.unwrap();
    raw_append(&mut victim, "kill", "victim-1", 1).await;

    let killer = sqlx::PgPool::connect(&database_url()).await.unwrap();
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&killer)
        .await
        .unwrap();
    assert!(terminated);
    assert!(
        sqlx::query("COMMIT").execute(&mut *victim).await.is_err(),
        "the terminated session cannot commit"
    );
    drop(victim);

    let after = store
        .append(
            &StreamId::new("after-1").unwrap(),
            ExpectedVersion::Any,
            batch(1),
            AppendOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(store.stream_version(&StreamId::new("victim-1").unwrap()).await.unwrap(), 0);
    let events = read_all(&store).await;
    assert_eq!(events.len(), 1, "only the later append may be visible");
    assert_eq!(events[0].position, after.last_position);
}

/// Terminates this fixture's one pooled session (a pool of one connection, so its backend pid is
/// known and no other test's session is touched) as soon as it is active on a query `LIKE`
/// `pattern`. The task answers whether the kill happened.
async fn kill_own_session_while(
    fresh: &es_postgres::testing::FreshSchema,
    pattern: &'static str,
) -> tokio::task::JoinHandle<bool> {
    let pid: i32 =
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(fresh.store.pool()).await.unwrap();
    tokio::spawn(async move {
        let admin = sqlx::PgPool::connect(&database_url()).await.unwrap();
        for _ in 0..5_000 {
            let killed: Option<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid = $1 AND state = 'active' AND query LIKE $2",
            )
            .bind(pid)
            .bind(pattern)
            .fetch_optional(&admin)
            .await
            .unwrap();
            if killed.is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    })
}

/// A large idempotent append whose connection is killed while it runs is retried by the store and
/// lands exactly once, whether the kill hit before or after the commit: on the keyed fast path
/// (`NoStream`: one statement writes the events and the key's record) ...
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_append_survives_a_killed_connection_exactly_once() {
    killed_keyed_append_lands_once(ExpectedVersion::NoStream, "%INSERT INTO idempotency_keys%")
        .await;
}

/// ... and through `append_events()` (`Any`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_append_through_the_function_survives_a_killed_connection_exactly_once() {
    killed_keyed_append_lands_once(ExpectedVersion::Any, "%append_events%").await;
}

/// Appends 20,000 events with a key and `expected` while the append's own session is killed
/// during the statement whose text matches `pattern`; the store must retry it to exactly one copy.
async fn killed_keyed_append_lands_once(expected: ExpectedVersion, pattern: &'static str) {
    const EVENTS: u64 = 20_000;
    // One connection, whose backend pid is known: the kill hits this test's append and nothing
    // else on the shared server (a server-wide filter on the query text once killed another
    // test's migration, whose SQL creates `append_events`).
    let fresh = es_postgres::testing::FreshSchema::with(|options| options.max_connections(1)).await;
    let store = fresh.tenant(tenant("kill"));
    let killer = kill_own_session_while(&fresh, pattern).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let key = IdempotencyKey::new("bulk-import-1").unwrap();
    let stream = StreamId::new("bulk-1").unwrap();
    let result = store
        .append(
            &stream,
            expected,
            batch(EVENTS),
            AppendOptions::default().idempotency_key(key.clone()),
        )
        .await;
    let kill_landed = killer.await.unwrap();
    let result = result.unwrap_or_else(|error| {
        panic!("the store must retry an idempotent append (killed: {kill_landed}): {error}")
    });
    assert_eq!((result.first_version, result.last_version), (1, EVENTS));
    assert_eq!(store.stream_version(&stream).await.unwrap(), EVENTS);
    assert_eq!(read_all(&store).await.len() as u64, EVENTS, "exactly one copy of the batch");
    assert!(kill_landed, "the test must actually have killed the append's connection");
}

/// Without an idempotency key, a session the server terminates (`pg_terminate_backend`, SQLSTATE
/// 57P01) during the insert has rolled the statement back, so the store may and does retry it:
/// the batch lands exactly once. The kill targets this test's own session (a pool of one
/// connection whose backend pid is known), never another test's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_session_without_key_is_retried_exactly_once() {
    let fresh = es_postgres::testing::FreshSchema::with(|options| options.max_connections(1)).await;
    let store = fresh.tenant(tenant("kill"));
    // Only while our session runs the batch insert (the no-key fast path).
    let killer = kill_own_session_while(&fresh, "WITH appended AS (INSERT INTO events%").await;
    let stream = StreamId::new("bulk-1").unwrap();
    let result = store
        .append(&stream, ExpectedVersion::NoStream, batch(20_000), AppendOptions::default())
        .await;
    assert!(killer.await.unwrap(), "the test must actually have killed the append's session");
    let result = result.expect("a statement the server rolled back is retried");
    assert_eq!((result.first_version, result.last_version), (1, 20_000));
    assert_eq!(read_all(&store).await.len(), 20_000, "exactly one copy of the batch");
}

/// A TCP proxy in front of PostgreSQL that counts the appends passing through and, once armed,
/// cuts the connection right after forwarding one: the server runs (and commits) the statement,
/// the client only sees its connection drop. That is an append of unknown outcome.
struct CuttingProxy {
    address: std::net::SocketAddr,
    appends_seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    async fn start(upstream: String) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let appends_seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = appends_seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let back = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    });
                    let mut buffer = vec![0u8; 1 << 16];
                    while let Ok(read) = client_read.read(&mut buffer).await {
                        if read == 0 || server_write.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                        let chunk = &buffer[..read];
                        let append = chunk.windows(18).any(|w| w == b"INSERT INTO events")
                            || chunk.windows(13).any(|w| w == b"append_events");
                        if append {
                            seen.fetch_add(1, Ordering::SeqCst);
                            // Let the statement reach the server whole, then cut both ways.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            back.abort();
                            return;
                        }
                    }
                    back.abort();
                });
            }
        });
        Self { address, appends_seen }
    }
}

/// Without an idempotency key, an append whose connection drops after the statement was sent
/// (outcome unknown: the server may have committed it) is reported as a non-retryable backend
/// error and never sent again: a blind retry would write a second copy (with `Any`) or answer
/// with a misleading version conflict (with `NoStream`). The proxy sees each statement once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_without_key_is_not_retried() {
    let fresh = fresh_schema().await;
    let options: sqlx::postgres::PgConnectOptions = database_url().parse().unwrap();
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    for (name, expected) in [("any-1", ExpectedVersion::Any), ("new-1", ExpectedVersion::NoStream)]
    {
        let proxy = CuttingProxy::start(upstream.clone()).await;
        let url = format!(
            "postgres://{}@{}/{}",
            options.get_username(),
            proxy.address,
            options.get_database().unwrap_or("postgres")
        );
        let through_proxy = PgStore::connect_with(
            PgStoreOptions::new(url).schema(fresh.schema()).unwrap().max_connections(1),
        )
        .await
        .unwrap();
        let store = through_proxy.tenant(tenant("cut"));
        let stream = StreamId::new(name).unwrap();
        let result = store.append(&stream, expected, batch(200), AppendOptions::default()).await;
        match &result {
            Err(error @ StoreError::Backend { .. }) => assert!(
                !error.is_retryable(),
                "{expected}: an append of unknown outcome without a key is not safe to retry"
            ),
            other => panic!("{expected}: expected a non-retryable backend error, got {other:?}"),
        }
        assert_eq!(
            proxy.appends_seen.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{expected}: the append must not be sent again"
        );
        // Read directly: the server committed the one copy it received (or none), never two.
        let direct = fresh.tenant(tenant("cut"));
        let version = direct.stream_version(&stream).await.unwrap();
        assert!(version == 0 || version == 200, "{expected}: found {version} events");
    }
}

/// Migrations are idempotent: running them again changes nothing.
#[tokio::test]
async fn migrations_run_twice() {
    let fresh = fresh_schema().await;
    fresh.store.migrate().await.unwrap();
    fresh.store.migrate().await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(fresh.store.pool())
        .await
        .unwrap();
    let files = std::fs::read_dir("migrations").unwrap().count();
    assert_eq!(usize::try_from(applied).unwrap(), files, "each migration applied once");
    let store = fresh.tenant(tenant("m"));
    append_new(&store, "s-1", 1).await;
}

/// The database refuses UPDATE, DELETE and TRUNCATE on the log, whoever asks.
#[tokio::test]
async fn the_log_is_append_only() {
    let fresh = fresh_schema().await;
    let store = fresh.tenant(tenant("ao"));
    append_new(&store, "s-1", 2).await;
    for statement in ["UPDATE events SET payload = '{}'", "DELETE FROM events", "TRUNCATE events"] {
        let error = sqlx::query(statement).execute(fresh.store.pool()).await.expect_err(statement);
        let code =
            error.as_database_error().and_then(|db| db.code().map(std::borrow::Cow::into_owned));
        assert_eq!(code.as_deref(), Some("ESA01"), "{statement}: {error}");
        assert!(error.to_string().contains("append-only"), "{error}");
    }
    assert_eq!(read_all(&store).await.len(), 2);
}

/// The least-privilege application role of docs/postgres.md can append and read, and cannot
/// change or delete events.
#[tokio::test]
async fn least_privilege_role_can_append_but_not_rewrite() {
    let fresh = fresh_schema().await;
    let schema = fresh.schema().to_owned();
    let role = format!("{schema}_app");
    let admin = fresh.store.pool();
    let grants = include_str!("../../docs/postgres-app-role.sql")
        .replace("es_app", &role)
        .replace("es.", &format!("{schema}."))
        .replace("SCHEMA es ", &format!("SCHEMA {schema} "));
    sqlx::raw_sql(AssertSqlSafe(grants)).execute(admin).await.unwrap();

    let mut tx = admin.begin().await.unwrap();
    sqlx::query(AssertSqlSafe(format!("SET LOCAL ROLE {role}"))).execute(&mut *tx).await.unwrap();
    raw_append(&mut tx, "app", "s-1", 1).await;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(count, 1);
    let position: (i64, Vec<String>) =
        sqlx::query_as("SELECT * FROM horizon_probe()").fetch_one(&mut *tx).await.unwrap();
    assert!(position.0 >= 1);
    // What sealing and forgetting do, the role may do.
    for statement in [
        "INSERT INTO pii_keys (tenant, subject, master_key, wrapped) VALUES ('app', '\\x000102030405060708090a0b0c0d0e0f', 'k', '\\x00')",
        "UPDATE pii_keys SET master_key = NULL, wrapped = NULL, forgotten_at = now()",
        "INSERT INTO pii_audit (tenant, subject, actor, reason) VALUES ('app', '\\x00', 'a', 'r')",
        "DELETE FROM snapshots WHERE tenant = 'app'",
    ] {
        sqlx::query(statement).execute(&mut *tx).await.expect(statement);
    }
    for statement in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
        "DELETE FROM idempotency_keys",
        "DELETE FROM pii_keys",
        "DELETE FROM pii_audit",
        "UPDATE pii_audit SET reason = ''",
    ] {
        sqlx::query("SAVEPOINT attempt").execute(&mut *tx).await.unwrap();
        let error = sqlx::query(statement).execute(&mut *tx).await.expect_err(statement);
        let code =
            error.as_database_error().and_then(|db| db.code().map(std::borrow::Cow::into_owned));
        assert_eq!(
            code.as_deref(),
            Some("42501"),
            "{statement} must be refused by privileges: {error}"
        );
        sqlx::query("ROLLBACK TO SAVEPOINT attempt").execute(&mut *tx).await.unwrap();
    }
    tx.rollback().await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP OWNED BY {role}; DROP ROLE {role}")))
        .execute(admin)
        .await
        .unwrap();
}

/// Bad configuration is refused before connecting; an unreachable server is a retryable error.
#[tokio::test]
async fn configuration_errors_are_typed() {
    for bad in ["", "Upper", "1starts_with_digit", "has-dash", "spaces here", &"x".repeat(64)] {
        assert!(
            matches!(
                PgStoreOptions::new(database_url()).schema(bad),
                Err(ConfigError::InvalidSchema { .. })
            ),
            "{bad:?}"
        );
    }
    let unreachable = PgStoreOptions::new("postgres://postgres@127.0.0.1:1/postgres")
        .acquire_timeout(Duration::from_millis(500));
    let error = PgStore::connect_with(unreachable).await.expect_err("port 1 is closed");
    assert!(error.is_retryable(), "connection failures are transient: {error}");
    assert!(matches!(
        PgStore::connect("not a url").await,
        Err(StoreError::Backend { operation: "connect", .. })
    ));
}

/// Each tenant's head ignores positions taken by other tenants, and the horizon status reports
/// positions taken.
#[tokio::test]
async fn horizon_status_reports_positions() {
    let fresh = fresh_schema().await;
    let store = fresh.tenant(tenant("hs"));
    let other = fresh.tenant(tenant("hs-other"));
    let written = append_new(&store, "s-1", 3).await;
    // Positions are global across the tenants of a schema: the horizon and the last position
    // taken are the schema's, whichever tenant wrote last.
    let later = append_new(&other, "s-1", 2).await;
    assert!(later.first_position > written.last_position);
    let status = fresh.store.horizon_status().await.unwrap();
    assert_eq!(status.last_taken, later.last_position);
    assert_eq!(status.horizon, later.last_position);
    assert!(status.open_appends.is_empty());
    // Each tenant's head is its own.
    assert_eq!(store.head_position().await.unwrap(), written.last_position);
    assert_eq!(other.head_position().await.unwrap(), later.last_position);
    // An append transaction left open in one tenant holds the horizon for all, and shows.
    let mut open = fresh.store.pool().acquire().await.unwrap();
    sqlx::query("BEGIN").execute(&mut *open).await.unwrap();
    let held = raw_append(&mut open, "hs-other", "s-2", 1).await;
    let status = fresh.store.horizon_status().await.unwrap();
    assert_eq!(status.last_taken.value(), u64::try_from(held).unwrap());
    assert!(status.horizon < status.last_taken, "the open append holds the horizon back");
    assert_eq!(status.open_appends.len(), 1, "{:?}", status.open_appends);
    sqlx::query("ROLLBACK").execute(&mut *open).await.unwrap();
}

/// A reader in another process (another `PgStore` on the same schema, polling only every minute) is
/// woken by LISTEN/NOTIFY within a fraction of a second of a commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_a_reader_in_another_process() {
    let fresh = fresh_schema().await;
    let remote = RemoteReader::listening(&fresh, "n").await;
    let writer = fresh.tenant(tenant("n"));
    let waiting = remote.wait(Position::BEGINNING);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let written = append_new(&writer, "s-1", 1).await;
    let (head, waited) = waiting.await.unwrap();
    assert_eq!(head, written.last_position);
    assert!(
        waited < Duration::from_secs(2),
        "NOTIFY must wake the remote reader long before its poll ({waited:?})"
    );
}

/// Two appends 100 ms apart on a store that lets one append per second carry the NOTIFY, so the
/// second carries none, with a remote reader waiting for events after the first.
struct UncoveredAppend {
    fresh: es_postgres::testing::FreshSchema,
    _remote: RemoteReader,
    /// The remote reader's wait: the head it saw and how long it waited.
    waiting: tokio::task::JoinHandle<(Position, Duration)>,
    /// The second append (stream `s-2`; the first wrote `s-1`).
    second: es_core::AppendResult,
}

impl UncoveredAppend {
    async fn new() -> Self {
        let fresh =
            common::fresh_schema_with(|options| options.notify_interval(Duration::from_secs(1)))
                .await;
        let remote = RemoteReader::listening(&fresh, "n").await;
        let writer = fresh.tenant(tenant("n"));
        let first = append_new(&writer, "s-1", 1).await;
        let waiting = remote.wait(first.last_position);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Within the interval of the first: this one carries no NOTIFY.
        let second = append_new(&writer, "s-2", 1).await;
        Self { fresh, _remote: remote, waiting, second }
    }
}

/// At most one append per `notify_interval` carries the NOTIFY; an append right after it carries
/// none. When nothing follows (the burst is over), the store sends one NOTIFY of its own within
/// two intervals, so the last append still wakes a remote reader long before its poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_append_of_a_burst_wakes_a_remote_reader() {
    let burst = UncoveredAppend::new().await;
    let (head, waited) = burst.waiting.await.unwrap();
    assert_eq!(head, burst.second.last_position);
    assert!(
        waited < Duration::from_secs(8),
        "the store's own NOTIFY must wake the remote reader within about two intervals ({waited:?})"
    );
}

/// An append that claimed the NOTIFY but failed (here `NoStream` on a stream that exists: the
/// unique key refuses the statement, and its NOTIFY goes with it) sends none; the appends its
/// claim was to cover are then covered by the store's own NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifying_append_that_fails_leaves_no_reader_asleep() {
    let burst = UncoveredAppend::new().await;
    // Past the interval: the next append claims the NOTIFY, and fails.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let stale = burst
        .fresh
        .tenant(tenant("n"))
        .append(
            &StreamId::new("s-1").unwrap(),
            ExpectedVersion::NoStream,
            batch(1),
            AppendOptions::default(),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::VersionConflict { .. })), "{stale:?}");
    let (head, waited) = burst.waiting.await.unwrap();
    assert_eq!(head, burst.second.last_position);
    assert!(
        waited < Duration::from_secs(10),
        "a NOTIFY must still wake the remote reader for the append before the failed one ({waited:?})"
    );
}

/// A keyed append goes through `append_events()`, which carries the NOTIFY it claims in its own
/// statement like the fast path: the only append of a store whose interval is a minute long
/// claims it and wakes a remote reader at once (the store's own NOTIFY would come a minute or
/// more later, and the reader's poll after a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_append_carries_the_notify_it_claims() {
    let fresh =
        common::fresh_schema_with(|options| options.notify_interval(Duration::from_mins(1))).await;
    let remote = RemoteReader::listening(&fresh, "k").await;
    let waiting = remote.wait(Position::BEGINNING);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let written = fresh
        .tenant(tenant("k"))
        .append(
            &StreamId::new("s-1").unwrap(),
            ExpectedVersion::Any,
            batch(1),
            AppendOptions::default().idempotency_key(IdempotencyKey::new("k-1").unwrap()),
        )
        .await
        .unwrap();
    let (head, waited) = waiting.await.unwrap();
    assert_eq!(head, written.last_position);
    assert!(
        waited < Duration::from_secs(10),
        "the keyed append's own NOTIFY must wake the remote reader ({waited:?})"
    );
}

/// A keyed append replayed from its record writes nothing and sends no NOTIFY, though it may have
/// claimed the interval's: the appends that claim was to cover are then covered by the store's
/// own NOTIFY, not left to the reader's poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_keyed_append_that_claimed_the_notify_leaves_no_reader_asleep() {
    let burst = UncoveredAppend::new().await;
    let writer = burst.fresh.tenant(tenant("n"));
    let (stream, key, events) =
        (StreamId::new("s-3").unwrap(), IdempotencyKey::new("k-3").unwrap(), batch(1));
    let keyed = || AppendOptions::default().idempotency_key(key.clone());
    // Within the first append's interval: carries nothing, covered by the next claim.
    let written =
        writer.append(&stream, ExpectedVersion::Any, events.clone(), keyed()).await.unwrap();
    // Past the interval: the replay claims the NOTIFY, and writes nothing.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let replayed = writer.append(&stream, ExpectedVersion::Any, events, keyed()).await.unwrap();
    assert_eq!(replayed.last_position, written.last_position, "a replay of the record");
    let (head, waited) = burst.waiting.await.unwrap();
    assert_eq!(head, written.last_position);
    assert!(
        waited < Duration::from_secs(10),
        "a NOTIFY must still wake the remote reader for the appends before the replay ({waited:?})"
    );
}

/// A statement timeout aborts the append as a whole; the error says it is safe to retry.
#[tokio::test]
async fn statement_timeout_is_a_retryable_error_and_writes_nothing() {
    let fresh = common::fresh_schema_with(|options| {
        options.statement_timeout(Duration::from_millis(1)).append_attempts(2)
    })
    .await;
    let store = fresh.tenant(tenant("t"));
    let stream = StreamId::new("big-1").unwrap();
    let error = store
        .append(&stream, ExpectedVersion::NoStream, batch(50_000), AppendOptions::default())
        .await
        .expect_err("1 ms is too short");
    assert!(matches!(error, StoreError::Backend { operation: "append", .. }), "{error:?}");
    assert!(error.is_retryable(), "a statement the server cancelled wrote nothing: {error}");
    // Checked through a store without the 1 ms timeout, which a loaded machine can hit even on a
    // one-row read.
    let checker = es_postgres::PgStore::connect_with(
        es_postgres::PgStoreOptions::new(es_postgres::testing::database_url())
            .schema(fresh.schema())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(checker.tenant(tenant("t")).stream_version(&stream).await.unwrap(), 0);
}

/// A stored number that is negative where it never can be (an edited or damaged row) is reported
/// as corruption, naming what, never read as 0.
#[tokio::test]
async fn negative_stored_numbers_are_corruption_not_zero() {
    use es_core::projection::DeadLetterStore;
    let fresh = fresh_schema().await;
    let store = fresh.tenant(tenant("neg"));
    let key = IdempotencyKey::new("k-neg").unwrap();
    store
        .append(
            &StreamId::new("s-1").unwrap(),
            ExpectedVersion::Any,
            batch(1),
            AppendOptions::default().idempotency_key(key.clone()),
        )
        .await
        .unwrap();
    sqlx::query("UPDATE idempotency_keys SET last_version = -3 WHERE tenant = 'neg'")
        .execute(fresh.store.pool())
        .await
        .unwrap();
    let read = store.idempotency_record(&key).await;
    assert!(
        matches!(&read, Err(StoreError::Corrupt { detail, .. }) if detail.contains("last_version") && detail.contains("-3")),
        "{read:?}"
    );
    sqlx::query(
        "INSERT INTO dead_letters (tenant, projection, position, event_type, error, attempts, parked_at) \
         VALUES ('neg', 'p', 5, 'test.bulk', 'boom', -1, now())",
    )
    .execute(fresh.store.pool())
    .await
    .unwrap();
    let parked = store.parked(&es_core::ProjectionName::new("p").unwrap()).await;
    assert!(
        matches!(&parked, Err(StoreError::Corrupt { detail, .. }) if detail.contains("attempts")),
        "{parked:?}"
    );
    // The conversion's own error stays attached, for reports that walk the chain.
    let source =
        read.err().and_then(|error| std::error::Error::source(&error).map(ToString::to_string));
    assert!(
        source.is_some_and(|source| source.contains("out of range")),
        "the corruption keeps its source"
    );
}

/// A damaged event in the log (here a stream id the contract refuses, written past the store)
/// ends a read with a corruption error after the events before it, never with a quiet end: a
/// projection would take a quiet end for the head and move its checkpoint over events it never
/// saw. With small pages the damaged row is in a later page than the first, so the error crosses
/// the read task after pages were handed over.
#[tokio::test]
async fn a_damaged_event_ends_a_read_with_an_error_never_early() {
    let fresh = fresh_schema().await;
    let store = fresh.tenant(tenant("damaged"));
    append_new(&store, "s-1", 3).await;
    let mut connection = fresh.store.pool().acquire().await.unwrap();
    raw_append(&mut connection, "damaged", "bad\nid", 1).await;
    drop(connection);
    append_new(&store, "s-2", 2).await;
    for page_size in [1, 2, 1_000] {
        let mut events = store.read_all(ReadAllOptions::from_beginning().page_size(page_size));
        let mut seen = 0;
        let error = loop {
            match events.try_next().await {
                Ok(Some(_)) => seen += 1,
                Ok(None) => panic!("pages of {page_size}: the read ended after {seen} events"),
                Err(error) => break error,
            }
        };
        // Whole pages before the damaged row's page come; that page fails as a whole.
        assert_eq!(seen, 3 - 3 % page_size, "pages of {page_size}");
        assert!(
            matches!(&error, StoreError::Corrupt { detail, .. } if detail.contains("stream id")),
            "pages of {page_size}: {error:?}"
        );
    }
}
