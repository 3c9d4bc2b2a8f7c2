//! The bank's admin CLI, for operators: migrations, projection status and rebuilds, parked
//! events, snapshot verification, store statistics. It talks to PostgreSQL (`DATABASE_URL`).
//!
//! Exit codes: 0 success; 1 failure (connection, SQL); 2 bad usage; 3 a check found a problem
//! (lag over the limit, events still parked, snapshots that fail verification); 4 the projection
//! is busy (another process holds its lock).
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use es::pii::{MasterKeys, PersonalData};
use es::postgres::{PgStore, PgStoreOptions, PgTenantStore};
use es::projection::{
    CheckpointStore, DeadLetterStore, OnFailure, ProjectionLocks, ProjectionRunner, Rebuild,
    RunnerOptions,
};
use es::quota::{Limits, TenantQuotas};
use es::repository::Repository;
use es::snapshot::SnapshotVerdict;
use es::{EventStore, MultiTenantStore, Projection, ProjectionName, StreamId, TenantId};
use examples::bank::account::Account;
use examples::bank::process::TransferProcess;
use examples::bank::stats::Stats;
use examples::bank::transfer::Transfer;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(name = "bank-admin", version, about = "Operate the bank's PostgreSQL event store")]
struct Cli {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The master keys sealing personal data: `id:base64-key`, current first, then previous ones
    /// (comma-separated). Needed by everything that reads account owners.
    #[arg(long, env = "BANK_MASTER_KEYS", hide_env_values = true)]
    master_keys: Option<String>,
    /// Schema of the event store.
    #[arg(long, env = "BANK_SCHEMA", default_value = "bank")]
    schema: String,
    /// Tenant.
    #[arg(long, env = "BANK_TENANT", default_value = "default")]
    tenant: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the schema if needed and apply pending migrations.
    Migrate,
    /// Events, streams, payload bytes, head and events per type.
    Stats,
    /// Projections: status, rebuild, reset.
    #[command(subcommand)]
    Projections(Projections),
    /// Events a projection parked after its handler kept failing.
    #[command(subcommand)]
    Parked(Parked),
    /// Snapshots.
    #[command(subcommand)]
    Snapshots(Snapshots),
    /// Data subjects (account owners): forget one, read the audit trail.
    #[command(subcommand)]
    Subjects(Subjects),
    /// Master keys: generate one, rotate to the current one.
    #[command(subcommand)]
    Keys(Keys),
    /// Tenants: usage and limits (quotas), across tenants.
    #[command(subcommand)]
    Tenants(Tenants),
}

#[derive(Subcommand)]
enum Tenants {
    /// Every tenant with events or limits: usage and limits.
    List,
    /// Set a tenant's limits (live: every instance's next append sees them); a limit left out is
    /// none, and no limit at all removes them.
    SetLimits {
        /// The tenant.
        tenant: TenantId,
        /// Events stored.
        #[arg(long)]
        events: Option<u64>,
        /// Streams.
        #[arg(long)]
        streams: Option<u64>,
        /// Payload bytes stored.
        #[arg(long)]
        bytes: Option<u64>,
        /// Events appended per second.
        #[arg(long)]
        events_per_second: Option<u64>,
    },
    /// Row-level security on the tables (defence in depth between tenants): turn it on (with the
    /// schema owner's credentials; instances then need `BANK_ROW_LEVEL_SECURITY=1` and the
    /// least-privilege role), off, or show whether it is on.
    RowLevelSecurity {
        /// What to do.
        #[arg(value_enum)]
        action: Switch,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Switch {
    On,
    Off,
    Status,
}

#[derive(Subcommand)]
enum Subjects {
    /// Forget the owner of an account: their name and e-mail read as redacted from now on, in
    /// every view and rebuild; an audit record keeps who, when and why. Idempotent.
    Forget {
        /// The account id.
        account: String,
        /// Why (a ticket number; no personal data).
        #[arg(long)]
        reason: String,
        /// Who asks (an operator id).
        #[arg(long)]
        actor: String,
    },
    /// The audit trail of forgotten subjects, oldest first (of one account, or all).
    Audit {
        /// The account id.
        account: Option<String>,
    },
}

#[derive(Subcommand)]
enum Keys {
    /// Print a new master key configuration (`id:base64-key`) for `BANK_MASTER_KEYS`.
    Generate {
        /// The key's id (for example the month it was made).
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Rewrap every data key with the current master key (the first of `BANK_MASTER_KEYS`); then
    /// the previous keys can be removed from the configuration.
    Rotate,
}

#[derive(Subcommand)]
enum Projections {
    /// Checkpoint, head, lag and parked events of every stored projection (one without a
    /// checkpoint lags by the whole log).
    Status {
        /// Exit with 3 if a projection lags by more than this many positions.
        #[arg(long)]
        max_lag: Option<u64>,
    },
    /// Rebuild `transfer_process` side by side, under its lock (the in-memory views rebuild
    /// through the service's `POST /admin/projections/{name}/rebuild`).
    Rebuild {
        /// The projection.
        name: ProjectionName,
    },
    /// Remove a projection's checkpoint: its next run starts from the beginning.
    Reset {
        /// The projection.
        name: ProjectionName,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum Parked {
    /// List a projection's parked events.
    List {
        /// The projection.
        name: ProjectionName,
    },
    /// Hand a projection's parked events to its handler again (`transfer_process` only).
    Replay {
        /// The projection.
        name: ProjectionName,
    },
}

#[derive(Subcommand)]
enum Snapshots {
    /// Check every snapshot: checksum, version within its stream, state readable.
    Verify,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

const USAGE: u8 = 2;
const CHECK_FAILED: u8 = 3;
const BUSY: u8 = 4;

/// The projections whose checkpoints the bank stores (its views are in memory, per process).
const STORED: &[&str] = &["transfer_process"];

/// Refuses a projection name the bank does not store (exit code 2, like any usage error).
fn known(name: &str) -> Option<ExitCode> {
    if STORED.contains(&name) {
        return None;
    }
    eprintln!("bank-admin: unknown projection {name:?}; stored projections: {}", STORED.join(", "));
    Some(ExitCode::from(USAGE))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("bank-admin: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    if let Command::Keys(Keys::Generate { id }) = &cli.command {
        let config = MasterKeys::generate_config(id);
        MasterKeys::parse(&config)?; // checks the id
        println!("{config}");
        return Ok(ExitCode::SUCCESS);
    }
    let url = cli.database_url.as_deref().ok_or("set DATABASE_URL or --database-url")?;
    let mut options = PgStoreOptions::new(url).schema(&cli.schema)?;
    if let Some(keys) = &cli.master_keys {
        options = options.master_keys(MasterKeys::parse(keys)?);
    }
    let backend = PgStore::connect_with(options).await?;
    if matches!(cli.command, Command::Migrate) {
        backend.migrate().await?;
        println!("schema {} is migrated", cli.schema);
        return Ok(ExitCode::SUCCESS);
    }
    let store = backend.tenant(TenantId::new(&cli.tenant)?);
    match cli.command {
        // Handled before the store was opened.
        Command::Migrate | Command::Keys(Keys::Generate { .. }) => Ok(ExitCode::SUCCESS),
        Command::Stats => stats(&store).await,
        Command::Projections(Projections::Status { max_lag }) => status(&store, max_lag).await,
        Command::Projections(Projections::Rebuild { name } | Projections::Reset { name, .. })
        | Command::Parked(Parked::List { name } | Parked::Replay { name })
            if known(name.as_str()).is_some() =>
        {
            Ok(ExitCode::from(USAGE))
        }
        Command::Projections(Projections::Rebuild { name }) => rebuild(&store, &name).await,
        Command::Projections(Projections::Reset { name, yes }) => {
            if !yes {
                eprintln!("bank-admin: resetting {name} makes it start over; add --yes to confirm");
                return Ok(ExitCode::from(2));
            }
            let removed = store.reset_checkpoint(&name).await?;
            println!(
                "{name}: checkpoint {removed:?} removed; it starts from the beginning at its next run"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Parked(Parked::List { name }) => {
            let parked = store.parked(&name).await?;
            for event in &parked {
                println!(
                    "{:>10}  {:<22} {} attempts, parked {}: {}",
                    event.position, event.event_type, event.attempts, event.parked_at, event.error
                );
            }
            println!("{} parked events in {name}", parked.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Parked(Parked::Replay { name }) => {
            let mut runner = ProjectionRunner::new(process(&store, &name)?, store.clone());
            let (replayed, remaining) = runner.replay_parked().await?;
            println!("{name}: {replayed} replayed, {remaining} still parked");
            Ok(if remaining == 0 { ExitCode::SUCCESS } else { ExitCode::from(CHECK_FAILED) })
        }
        Command::Snapshots(Snapshots::Verify) => verify(&store).await,
        Command::Subjects(command) => subjects(&store, command).await,
        Command::Tenants(command) => tenants(&backend, command).await,
        Command::Keys(Keys::Rotate) => rotate(&backend).await,
    }
}

/// `subjects forget|audit`.
async fn subjects(store: &PgTenantStore, command: Subjects) -> Result<ExitCode, Failure> {
    match command {
        Subjects::Forget { account, reason, actor } => {
            let stream = StreamId::in_category("account", &account)?;
            if store.stream_version(&stream).await? == 0 {
                eprintln!("bank-admin: no account {account:?}");
                return Ok(ExitCode::from(USAGE));
            }
            let outcome = store.forget(stream.as_str(), &reason, &actor).await?;
            let when = if outcome.first_time { "now" } else { "before" };
            println!(
                "account {account}: owner forgotten {when} (subject {}, at {}, by {}, reason {:?}); {} snapshots removed",
                outcome.entry.subject,
                outcome.entry.at,
                outcome.entry.actor,
                outcome.entry.reason,
                outcome.snapshots_removed
            );
            Ok(ExitCode::SUCCESS)
        }
        Subjects::Audit { account } => {
            let subject = account.map(|id| format!("account-{id}"));
            let trail = store.audit_trail(subject.as_deref(), 10_000).await?;
            for entry in &trail {
                println!("{}  {}  {:<20} {}", entry.at, entry.subject, entry.actor, entry.reason);
            }
            println!("{} forgotten subjects", trail.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tenants list|set-limits`.
async fn tenants(backend: &PgStore, command: Tenants) -> Result<ExitCode, Failure> {
    match command {
        Tenants::List => {
            let limit =
                |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
            println!(
                "{:<24} {:>12} {:>12} {:>8} {:>8} {:>14} {:>14} {:>10}",
                "tenant", "events", "limit", "streams", "limit", "bytes", "limit", "events/s"
            );
            for tenant in backend.tenants_usage().await? {
                let (usage, limits) = (tenant.usage, tenant.limits);
                println!(
                    "{:<24} {:>12} {:>12} {:>8} {:>8} {:>14} {:>14} {:>10}",
                    tenant.tenant.as_str(),
                    usage.events,
                    limit(limits.events),
                    usage.streams,
                    limit(limits.streams),
                    usage.bytes,
                    limit(limits.bytes),
                    limit(limits.events_per_second)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Tenants::SetLimits { tenant, events, streams, bytes, events_per_second } => {
            let limits = Limits { events, streams, bytes, events_per_second };
            backend.set_limits(&tenant, limits).await?;
            println!("{tenant}: limits {limits:?}");
            Ok(ExitCode::SUCCESS)
        }
        Tenants::RowLevelSecurity { action } => {
            match action {
                Switch::On => backend.set_row_level_security(true).await?,
                Switch::Off => backend.set_row_level_security(false).await?,
                Switch::Status => {}
            }
            let on = backend.row_level_security().await?;
            println!("row-level security: {}", if on { "on" } else { "off" });
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `keys rotate`.
async fn rotate(backend: &PgStore) -> Result<ExitCode, Failure> {
    let vault = backend
        .vault()
        .ok_or("set BANK_MASTER_KEYS: the current key first, then the previous ones")?;
    let rewrapped = vault.rotate(500).await?;
    println!("{rewrapped} data keys rewrapped with master key {}", vault.current_master_key());
    Ok(ExitCode::SUCCESS)
}

fn process(
    store: &PgTenantStore,
    name: &ProjectionName,
) -> Result<TransferProcess<PgTenantStore>, Failure> {
    if name.as_str() != TransferProcess::<PgTenantStore>::NAME {
        return Err(format!("unknown stored projection {name:?} (transfer_process)").into());
    }
    let accounts = Repository::<Account, _>::new(store.clone()).with_snapshots(store.clone());
    let transfers = Repository::<Transfer, _>::new(store.clone());
    Ok(TransferProcess::new(accounts, transfers, Arc::new(Stats::default())))
}

fn bar(length: u64) -> ProgressBar {
    let bar = ProgressBar::new(length);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} positions, eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn stats(store: &PgTenantStore) -> Result<ExitCode, Failure> {
    let stats = store.statistics().await?;
    println!("tenant {}", store.tenant());
    println!("  events         {}", stats.events);
    println!("  streams        {}", stats.streams);
    println!("  payload bytes  {}", stats.payload_bytes);
    println!("  head position  {}", stats.head);
    for (event_type, events) in &stats.event_types {
        println!("  {event_type:<24} {events}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(store: &PgTenantStore, max_lag: Option<u64>) -> Result<ExitCode, Failure> {
    let head = store.head_position().await?.value();
    // Every projection the bank stores, even one without a checkpoint yet (after a reset, or
    // before its first run: its lag is the whole log), and any other name the store knows.
    let mut names = STORED.iter().map(ProjectionName::new).collect::<Result<Vec<_>, _>>()?;
    for name in store.projection_names().await? {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut healthy = true;
    println!(
        "{:<28} {:>12} {:>12} {:>10} {:>7}",
        "projection", "checkpoint", "head", "lag", "parked"
    );
    for name in names {
        let checkpoint = store.load_checkpoint(&name).await?.map_or(0, es::Position::value);
        let lag = head.saturating_sub(checkpoint);
        let parked = store.parked(&name).await?.len();
        println!("{name:<28} {checkpoint:>12} {head:>12} {lag:>10} {parked:>7}");
        if max_lag.is_some_and(|max| lag > max) || parked > 0 {
            healthy = false;
        }
    }
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::from(CHECK_FAILED) })
}

async fn rebuild(store: &PgTenantStore, name: &ProjectionName) -> Result<ExitCode, Failure> {
    let process = process(store, name)?;
    let Some(_lock) = store.try_lock(name).await? else {
        eprintln!(
            "bank-admin: {name} is running elsewhere (its lock is held); stop that process first"
        );
        return Ok(ExitCode::from(BUSY));
    };
    let head = store.head_position().await?.value();
    let progress = bar(head).with_message(format!("rebuilding {name}"));
    let options = RunnerOptions::default().batch_size(500).on_failure(OnFailure::Park);
    let mut next = Rebuild::start(process, store.clone(), options).await?;
    let staging = Rebuild::<TransferProcess<PgTenantStore>, PgTenantStore>::staging_name();
    next.build(|pass| {
        progress.set_position(pass.checkpoint.value().min(head));
    })
    .await?;
    let runner = next.promote().await?;
    progress.finish();
    let checkpoint = store.load_checkpoint(runner.name()).await?;
    println!(
        "{name}: rebuilt (staging checkpoint {staging} removed); checkpoint now {checkpoint:?}"
    );
    Ok(ExitCode::SUCCESS)
}

async fn verify(store: &PgTenantStore) -> Result<ExitCode, Failure> {
    let streams = store.snapshot_streams().await?;
    let progress = bar(streams.len() as u64).with_message("verifying snapshots");
    let accounts = Repository::<Account, _>::new(store.clone()).with_snapshots(store.clone());
    let mut bad = Vec::new();
    for stream_id in &streams {
        // The repository's own judgement, so the check is exactly what a load would do:
        // checksum, aggregate, schema version, readable state, and the stream holding the event
        // the snapshot was taken at.
        let problem = match accounts.verify_snapshot(stream_id).await? {
            SnapshotVerdict::Missing | SnapshotVerdict::Trusted { .. } => None,
            SnapshotVerdict::Rejected { version, reason } => {
                Some(format!("snapshot at version {version}: {reason}"))
            }
        };
        if let Some(problem) = problem {
            bad.push(format!("{stream_id}: {problem}"));
        }
        progress.inc(1);
    }
    progress.finish();
    for line in &bad {
        println!("BAD {line}");
    }
    println!("{} snapshots verified, {} bad", streams.len(), bad.len());
    Ok(if bad.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(CHECK_FAILED) })
}
