//! The bank service.
//!
//! ```text
//! cargo run -p examples --bin bank                      # serve on 127.0.0.1:8080, in memory
//! DATABASE_URL=postgres://… cargo run -p examples --bin bank   # serve on PostgreSQL
//! cargo run -p examples --bin bank -- demo              # drive a workload, print the figures
//! BANK_NATS_URL=nats://127.0.0.1:4222 cargo run -p examples --bin bank   # and publish to JetStream
//! ```
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use es::console::{ConsoleConfig, HealthCheck, Role};
use es::nats::{JetStreamSink, StreamConfig};
use es::outbox::{Relay, RelayOptions};
use es::pii::MasterKeys;
use es::postgres::{PgStore, PgStoreOptions};
use es::{MultiTenantStore, TenantId};
use examples::bank::console::BackendHealth;
use examples::bank::demo::{self, DemoOptions};
use examples::bank::publish::PublicEvents;
use examples::bank::{Bank, BankStore, http};

#[derive(Parser)]
#[command(name = "bank", version, about = "The bank example: an event-sourced service over HTTP")]
struct Cli {
    /// Where events live; `auto` is PostgreSQL when `DATABASE_URL` is set, memory otherwise.
    #[arg(long, value_enum, default_value_t = StoreKind::Auto, global = true)]
    store: StoreKind,
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    /// PostgreSQL schema of the event store.
    #[arg(long, env = "BANK_SCHEMA", default_value = "bank", global = true)]
    schema: String,
    /// The master keys sealing personal data on PostgreSQL: `id:base64-key`, current first, then
    /// previous ones (comma-separated); `bank-admin keys generate` makes one.
    #[arg(long, env = "BANK_MASTER_KEYS", hide_env_values = true, global = true)]
    master_keys: Option<String>,
    /// Row-level security between tenants on PostgreSQL (`bank-admin tenants row-level-security
    /// on` first; connect as the least-privilege role of docs/postgres-app-role.sql).
    #[arg(long, env = "BANK_ROW_LEVEL_SECURITY", global = true)]
    row_level_security: bool,
    /// Group commit on PostgreSQL: concurrent commands without an idempotency key share one
    /// transaction and one WAL flush (docs/postgres.md, "Appends").
    #[arg(long, env = "BANK_GROUP_COMMIT", global = true)]
    group_commit: bool,
    /// The tenant this instance serves.
    #[arg(long, env = "BANK_TENANT", default_value = "default", global = true)]
    tenant: String,
    /// Log format.
    #[arg(long, value_enum, env = "BANK_LOG_FORMAT", default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Auto,
    Memory,
    Postgres,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Parser)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BANK_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Do not apply migrations at start (run `bank-admin migrate` in your deploy instead).
    #[arg(long)]
    no_migrate: bool,
    /// Seconds a client may take to send a request's headers.
    #[arg(long, env = "BANK_HEADER_TIMEOUT", default_value_t = 10)]
    header_timeout: u64,
    /// Seconds in-flight requests get to finish on SIGTERM/SIGINT before their connections close.
    #[arg(long, env = "BANK_SHUTDOWN_DEADLINE", default_value_t = 10)]
    shutdown_deadline: u64,
    /// Publish account and transfer outcomes to this NATS server (JetStream), through the
    /// outbox and a relay in this process. Off when unset.
    #[arg(long, env = "BANK_NATS_URL")]
    nats_url: Option<String>,
    /// The JetStream stream the messages go to (created if missing).
    #[arg(long, env = "BANK_NATS_STREAM", default_value = "BANK")]
    nats_stream: String,
    /// The first token of the subjects (`bank.account.deposited`, …).
    #[arg(long, env = "BANK_SUBJECT_PREFIX", default_value = "bank")]
    subject_prefix: String,
    /// Mount the operations console at /console and admit this admin token (at least 24
    /// visible characters). The console is off unless a token is set.
    #[arg(long, env = "BANK_CONSOLE_ADMIN_TOKEN", hide_env_values = true)]
    console_admin_token: Option<String>,
    /// Admit this read-only token to the console too.
    #[arg(long, env = "BANK_CONSOLE_VIEWER_TOKEN", hide_env_values = true)]
    console_viewer_token: Option<String>,
    /// Send the console's session cookie over plain HTTP (loopback and tests only; behind TLS,
    /// leave it off so the cookie is `Secure`).
    #[arg(long, env = "BANK_CONSOLE_INSECURE_COOKIE")]
    console_insecure_cookie: bool,
}

/// The console's configuration from the serve options; `None` when no token is set.
fn console_config(
    admin: Option<&str>,
    viewer: Option<&str>,
    insecure_cookie: bool,
) -> Result<Option<ConsoleConfig>, Failure> {
    let mut config = ConsoleConfig::new();
    if let Some(token) = admin {
        config = config.token(token, Role::Admin)?;
    }
    if let Some(token) = viewer {
        config = config.token(token, Role::ReadOnly)?;
    }
    if insecure_cookie {
        config = config.insecure_cookie();
    }
    Ok(config.is_enabled().then_some(config))
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve(ServeArgs),
    /// Drive a realistic workload and print what happened. On PostgreSQL it runs in a fresh
    /// schema that it drops afterwards.
    Demo {
        /// Accounts to open.
        #[arg(long, default_value_t = 2_000)]
        accounts: usize,
        /// Transfers to request.
        #[arg(long, default_value_t = 5_000)]
        transfers: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("bank: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let postgres = match cli.store {
        StoreKind::Memory => false,
        StoreKind::Postgres => true,
        StoreKind::Auto => cli.database_url.is_some(),
    };
    let tenant = TenantId::new(&cli.tenant)?;
    // No subcommand: serve, with the serve options from the environment and their defaults.
    let command =
        cli.command.unwrap_or_else(|| Command::Serve(ServeArgs::parse_from(["bank serve"])));
    if !postgres {
        println!("store: in memory (nothing is kept when the process stops)");
        let backend = es::memory::MemoryStore::new();
        return dispatch(backend.tenant(tenant), backend, None, command).await;
    }
    let url = cli.database_url.ok_or("--store postgres needs DATABASE_URL or --database-url")?;
    let demo_schema = matches!(command, Command::Demo { .. })
        .then(|| format!("bank_demo_{}", std::process::id()));
    let schema = demo_schema.clone().unwrap_or(cli.schema);
    let keys = match (&cli.master_keys, &demo_schema) {
        (Some(config), _) => MasterKeys::parse(config)?,
        // The demo's schema is dropped when it ends: a key of its own is enough.
        (None, Some(_)) => MasterKeys::ephemeral(),
        (None, None) => {
            return Err(
                "account owners are personal data, sealed with a master key: set BANK_MASTER_KEYS \
                        (generate one with `bank-admin keys generate`) and keep it safe"
                    .into(),
            );
        }
    };
    let options = PgStoreOptions::new(&url)
        .schema(&schema)?
        .master_keys(keys)
        .row_level_security(cli.row_level_security)
        .group_commit(cli.group_commit);
    let backend = PgStore::connect_with(options).await?;
    if !matches!(command, Command::Serve(ServeArgs { no_migrate: true, .. })) {
        backend.migrate().await?;
    }
    println!("store: PostgreSQL, schema {schema}, tenant {tenant}");
    let horizon = horizon_health(backend.clone());
    let outcome = dispatch(backend.tenant(tenant), backend.clone(), Some(horizon), command).await;
    if let Some(schema) = demo_schema {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(backend.pool())
            .await?;
    }
    outcome
}

/// Waits for SIGTERM (what orchestrators send) or SIGINT (Ctrl-C); names the one that came.
async fn termination() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        } else {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}

/// The console's health lines of PostgreSQL's read horizon: where it stands, and the sessions
/// holding it back (appends still open).
fn horizon_health(backend: PgStore) -> BackendHealth {
    Arc::new(move || {
        let backend = backend.clone();
        Box::pin(async move {
            match backend.horizon_status().await {
                Ok(status) => {
                    let behind = status.last_taken.value().saturating_sub(status.horizon.value());
                    let oldest = status
                        .open_appends
                        .iter()
                        .filter_map(|open| open.transaction_start)
                        .min()
                        .map(|start| (chrono::Utc::now() - start).num_seconds().max(0));
                    vec![
                        HealthCheck::new(
                            "read horizon",
                            format!(
                                "{} ({behind} positions taken beyond it)",
                                status.horizon.value()
                            ),
                            true,
                        ),
                        HealthCheck::new(
                            "sessions holding the horizon back",
                            match oldest {
                                Some(age) => format!(
                                    "{} open appends, the oldest {age} s",
                                    status.open_appends.len()
                                ),
                                None => "none".to_owned(),
                            },
                            oldest.is_none_or(|age| age < 10),
                        ),
                    ]
                }
                Err(error) => {
                    vec![HealthCheck::new("read horizon", format!("unreadable: {error}"), false)]
                }
            }
        })
    })
}

/// Runs `command` on `store`; `quotas` is the backend it comes from (the console's tenants page),
/// `backend_health` the backend's own lines of the console's health page.
async fn dispatch<S, Q>(
    store: S,
    quotas: Q,
    backend_health: Option<BackendHealth>,
    command: Command,
) -> Result<ExitCode, Failure>
where
    S: BankStore,
    Q: es::quota::TenantQuotas + Clone + 'static,
{
    let _ = http::prometheus();
    match command {
        Command::Serve(ServeArgs {
            listen,
            header_timeout,
            shutdown_deadline,
            nats_url,
            nats_stream,
            subject_prefix,
            console_admin_token,
            console_viewer_token,
            console_insecure_cookie,
            ..
        }) => {
            let console = console_config(
                console_admin_token.as_deref(),
                console_viewer_token.as_deref(),
                console_insecure_cookie,
            )?;
            // Publishing: the messages are enqueued with the events; a relay delivers them.
            let (publish, relay) = match nats_url {
                Some(url) => {
                    let public = PublicEvents::new(subject_prefix)?;
                    let sink = JetStreamSink::connect(
                        &url,
                        StreamConfig::new(nats_stream.clone(), [public.subjects()]),
                    )
                    .await?;
                    println!(
                        "publishing to NATS at {url}, stream {nats_stream}, subjects {}",
                        public.subjects()
                    );
                    (Some(public), Some(sink))
                }
                None => (None, None),
            };
            let bank: Arc<Bank<S>> = Bank::start_publishing(store.clone(), publish).await;
            let (stop_relay, relay_stopped) = tokio::sync::watch::channel(false);
            let relay = relay.map(|sink| {
                let mut stopped = relay_stopped;
                tokio::spawn(Relay::with_options(store, sink, RelayOptions::default()).run(
                    async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    },
                ))
            });
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("listening on http://{}", listener.local_addr()?);
            let limits = http::ServeLimits {
                header_timeout: std::time::Duration::from_secs(header_timeout.max(1)),
                shutdown_deadline: std::time::Duration::from_secs(shutdown_deadline),
            };
            // The console's live tails end when shutdown starts, so draining need not wait for
            // the browsers that follow the log.
            let (closing, closed) = tokio::sync::watch::channel(false);
            let shutdown = async move {
                let signal = termination().await;
                tracing::info!(signal, "bank: shutting down");
                closing.send_replace(true);
            };
            let mut app = http::router(bank.clone());
            if let Some(config) = console {
                let mut closed = closed.clone();
                let live_until = async move {
                    let _ = closed.wait_for(|closing| *closing).await;
                };
                let console = examples::bank::console::router(
                    &bank,
                    config,
                    quotas,
                    backend_health,
                    live_until,
                );
                app = app.nest("/console", console);
                println!("console: http://{}/console", listener.local_addr()?);
            }
            http::serve_app(bank, app, listener, shutdown, limits).await?;
            // The relay goes last: what the last requests enqueued is delivered, or waits in
            // the outbox for the next instance.
            stop_relay.send_replace(true);
            if let Some(relay) = relay {
                let _ = relay.await;
            }
            println!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { accounts, transfers, concurrency } => {
            let bank: Arc<Bank<S>> = Bank::start(store).await;
            let report =
                demo::run(bank.clone(), DemoOptions { accounts, transfers, concurrency }).await;
            bank.shutdown().await;
            let report = report?;
            println!("{report}");
            Ok(if report.balanced() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
