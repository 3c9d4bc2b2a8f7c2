//! A small bank: accounts as an aggregate written with the derives, commands run through the
//! repository (load with snapshots, decide, append, retry on conflict), an idempotent retry, a
//! refused stale write, concurrent deposits, and a projection of balances fed from the global log.
//!
//! `cargo run -p examples --bin bank` runs on the in-memory store (nothing to install);
//! `cargo run -p examples --bin bank -- --postgres` runs on PostgreSQL at `DATABASE_URL`, in a
//! fresh schema it drops afterwards.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use es_core::repository::{CommandOptions, Repository, RepositoryError};
use es_core::snapshot::SnapshotStore;
use es_core::{
    Aggregate, AppendOptions, Apply, Event, EventStore, ExpectedVersion, IdempotencyKey,
    MultiTenantStore, Projection, ProjectionError, ReadAllOptions, RecordedEvent, StoreError,
    StreamId, TenantId, commands, projection,
};
use es_memory::MemoryStore;
use es_postgres::{PgStore, PgStoreOptions};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(name = "account.opened")]
struct Opened {
    owner: String,
}

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(name = "account.deposited")]
struct Deposited {
    cents: i64,
}

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(name = "account.withdrawn")]
struct Withdrawn {
    cents: i64,
}

#[derive(Debug, Event)]
enum AccountEvent {
    Opened(Opened),
    Deposited(Deposited),
    Withdrawn(Withdrawn),
}

#[derive(Debug, thiserror::Error)]
enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("insufficient funds: {balance} cents available, {asked} asked")]
    InsufficientFunds { balance: i64, asked: i64 },
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(name = "account", event = AccountEvent, error = AccountError, snapshot(every = 10))]
struct Account {
    open: bool,
    balance: i64,
}

#[derive(Clone)]
struct Open {
    owner: String,
}
#[derive(Clone)]
struct Deposit {
    cents: i64,
}
#[derive(Clone)]
struct Withdraw {
    cents: i64,
}

#[commands]
impl Account {
    fn open(&self, command: Open) -> Result<Opened, AccountError> {
        if self.open {
            return Err(AccountError::AlreadyOpen);
        }
        Ok(Opened { owner: command.owner })
    }

    fn deposit(&self, command: Deposit) -> Result<Deposited, AccountError> {
        if !self.open {
            return Err(AccountError::NotOpen);
        }
        Ok(Deposited { cents: command.cents })
    }

    fn withdraw(&self, command: Withdraw) -> Result<Withdrawn, AccountError> {
        if command.cents > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                asked: command.cents,
            });
        }
        Ok(Withdrawn { cents: command.cents })
    }
}

impl Apply<AccountEvent> for Account {
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened(_) => self.open = true,
            AccountEvent::Deposited(deposited) => self.balance += deposited.cents,
            AccountEvent::Withdrawn(withdrawn) => self.balance -= withdrawn.cents,
        }
    }
}

#[derive(Default)]
struct Balances {
    cents: BTreeMap<String, i64>,
}

#[projection(name = "balances")]
impl Balances {
    async fn on_deposited(
        &mut self,
        event: &Deposited,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        *self.cents.entry(meta.stream_id.to_string()).or_default() += event.cents;
        Ok(())
    }

    async fn on_withdrawn(
        &mut self,
        event: &Withdrawn,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        *self.cents.entry(meta.stream_id.to_string()).or_default() -= event.cents;
        Ok(())
    }
}

type Failure = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    if std::env::args().any(|arg| arg == "--postgres") {
        let url = std::env::var("DATABASE_URL").map_err(|_| "--postgres needs DATABASE_URL")?;
        let schema = format!("bank_demo_{}", std::process::id());
        let backend = PgStore::connect_with(PgStoreOptions::new(&url).schema(&schema)?).await?;
        backend.migrate().await?;
        println!("backend: PostgreSQL (schema {schema})");
        let outcome = run(backend.tenant(TenantId::new("demo-bank")?)).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(backend.pool())
            .await?;
        outcome
    } else {
        println!("backend: in memory");
        run(MemoryStore::new().tenant(TenantId::new("demo-bank")?)).await
    }
}

async fn run<S: EventStore + SnapshotStore>(bank: S) -> Result<(), Failure> {
    let accounts = Repository::<Account, _>::new(bank.clone()).with_snapshots(bank.clone());
    let alice = StreamId::in_category(Account::NAME, "alice")?;
    let bob = StreamId::in_category(Account::NAME, "bob")?;

    for (stream, owner) in [(&alice, "Alice"), (&bob, "Bob")] {
        accounts.execute(stream, Open { owner: owner.into() }, CommandOptions::default()).await?;
    }
    accounts.execute(&alice, Deposit { cents: 10_000 }, CommandOptions::default()).await?;

    // 20 deposits to Bob's account at once: conflicts are retried, each lands exactly once.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (accounts, bob) = (accounts.clone(), bob.clone());
        tasks.spawn(async move {
            accounts.execute(&bob, Deposit { cents: 125 }, CommandOptions::default()).await
        });
    }
    let mut attempts = 0;
    while let Some(outcome) = tasks.join_next().await {
        attempts += outcome??.attempts;
    }
    let loaded = accounts.load(&bob).await?;
    println!(
        "20 concurrent deposits to bob: {attempts} attempts in all, balance {} cents at version {} (loaded from snapshot at {:?})",
        loaded.state.balance, loaded.version, loaded.from_snapshot
    );

    // A command retried with the same idempotency key (a client that timed out and sent it again)
    // returns the first result and decides nothing again.
    let key = IdempotencyKey::new("withdraw-request-1")?;
    let first = accounts
        .execute(
            &alice,
            Withdraw { cents: 2_500 },
            CommandOptions::default().idempotency_key(key.clone()),
        )
        .await?;
    let retry = accounts
        .execute(&alice, Withdraw { cents: 2_500 }, CommandOptions::default().idempotency_key(key))
        .await?;
    println!(
        "withdrawal at version {}; its retry replayed = {}, the account stays at version {}",
        first.version,
        retry.replayed,
        bank.stream_version(&alice).await?
    );

    // Domain errors come back as the domain's own type, and nothing is appended.
    if let Err(RepositoryError::Domain(error)) =
        accounts.execute(&bob, Withdraw { cents: 1_000_000 }, CommandOptions::default()).await
    {
        println!("refused: {error}");
    }

    // A writer with a stale view of the account is refused by the store.
    let late = AccountEvent::Withdrawn(Withdrawn { cents: 1 }).to_event_data()?;
    if let Err(StoreError::VersionConflict { expected, actual, .. }) =
        bank.append(&alice, ExpectedVersion::Exact(1), vec![late], AppendOptions::default()).await
    {
        println!("stale write refused: expected {expected}, the account is at version {actual}");
    }

    // The balances projection reads only the event types it handles, filtered by the store.
    let mut balances = Balances::default();
    let log: Vec<RecordedEvent> = bank
        .read_all(ReadAllOptions::from_beginning().event_types(Balances::event_types()))
        .try_collect()
        .await?;
    for recorded in &log {
        balances.handle(recorded).await?;
    }
    println!(
        "log head at position {}; {} events handled by `{}`",
        bank.head_position().await?,
        log.len(),
        Balances::NAME
    );
    for (account, cents) in balances.cents {
        println!("  {account:<14} {:>6}.{:02}", cents / 100, cents % 100);
    }
    Ok(())
}
