//! A small bank on the in-memory store: accounts as an aggregate written with the derives,
//! commands decided against state loaded from the store, an idempotent retry of an append, a
//! refused stale write, and a projection of balances fed from the global log.
//!
//! `cargo run -p examples --bin bank`
//!
//! The load-decide-append loop is written out here; the repository of the aggregates issue takes it
//! over (with retries on conflict and snapshots).
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use es_core::{
    Aggregate, AppendOptions, Apply, Event, EventStore, ExpectedVersion, IdempotencyKey,
    MultiTenantStore, Projection, ProjectionError, ReadAllOptions, ReadStreamOptions,
    RecordedEvent, StoreError, StreamId, TenantId, commands, projection,
};
use es_memory::MemoryStore;
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

#[derive(Debug, Default, Aggregate)]
#[aggregate(name = "account", event = AccountEvent, error = AccountError)]
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

/// Loads the account, decides, appends with the version it loaded (the repository's job, later).
async fn execute<S: EventStore>(
    store: &S,
    stream: &StreamId,
    command: AccountCommand,
    options: AppendOptions,
) -> Result<u64, Failure> {
    let mut account = Account::default();
    let mut version = 0;
    let mut history = store.read_stream(stream, ReadStreamOptions::forward());
    while let Some(recorded) = history.try_next().await? {
        account.evolve(&AccountEvent::decode(&recorded)?);
        version = recorded.stream_version;
    }
    let events = account.handle(command)?;
    let data = events.iter().map(Event::to_event_data).collect::<Result<Vec<_>, _>>()?;
    let written = store.append(stream, ExpectedVersion::Exact(version), data, options).await?;
    Ok(written.last_version)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let bank = MemoryStore::new().tenant(TenantId::new("demo-bank")?);
    let alice = StreamId::in_category(Account::NAME, "alice")?;
    let bob = StreamId::in_category(Account::NAME, "bob")?;

    for (stream, owner) in [(&alice, "Alice"), (&bob, "Bob")] {
        execute(&bank, stream, Open { owner: owner.into() }.into(), AppendOptions::default())
            .await?;
    }
    execute(&bank, &alice, Deposit { cents: 10_000 }.into(), AppendOptions::default()).await?;
    execute(&bank, &bob, Deposit { cents: 2_500 }.into(), AppendOptions::default()).await?;

    // An append retried with the same idempotency key (a client that timed out and sent it again)
    // returns the first result and writes nothing.
    let key = IdempotencyKey::new("withdraw-request-1")?;
    let withdrawal = || AccountEvent::Withdrawn(Withdrawn { cents: 2_500 }).to_event_data();
    let keyed = AppendOptions::default().idempotency_key(key.clone());
    let first =
        bank.append(&alice, ExpectedVersion::Exact(2), vec![withdrawal()?], keyed.clone()).await?;
    let retry = bank.append(&alice, ExpectedVersion::Exact(2), vec![withdrawal()?], keyed).await?;
    assert_eq!(first, retry);
    println!(
        "withdrawal written at version {}; its retry returned the same result, the account stays at version {}",
        first.last_version,
        bank.stream_version(&alice).await?
    );

    // Domain errors come back as the domain's own type.
    if let Err(error) =
        execute(&bank, &bob, Withdraw { cents: 1_000_000 }.into(), AppendOptions::default()).await
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
