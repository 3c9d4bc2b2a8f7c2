//! The bank's operations, whatever calls them (the HTTP API, the demo): commands through the
//! repositories, queries from the read models, the process manager and the projections running
//! in the background.

use std::sync::Arc;
use std::time::Duration;

use es::projection::{OnFailure, RunnerOptions, VolatileCheckpoints};
use es::repository::{CommandOptions, CommandOutcome, Repository};
use es::{IdempotencyKey, Position, StoreError, StreamId};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::account::{Account, Close, Deposit, Open, Withdraw};
use super::error::BankError;
use super::process::TransferProcess;
use super::publish::PublicEvents;
use super::read_models::{AccountView, Balances, StatementLine, Statements};
use super::served::{ProjectionReport, Served};
use super::stats::Stats;
use super::store::BankStore;
use super::transfer::{RequestTransfer, Transfer};

/// What a command wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    /// The stream written.
    pub stream: String,
    /// Its version after the command.
    pub version: u64,
    /// The global position of the last event written: pass it as `after` to read your write.
    pub position: Option<u64>,
    /// Whether this answers a retry of an earlier request with the same idempotency key.
    pub replayed: bool,
}

impl Written {
    fn new(stream: &StreamId, outcome: &CommandOutcome) -> Self {
        Self {
            stream: stream.to_string(),
            version: outcome.version,
            position: outcome.appended.as_ref().map(|appended| appended.last_position.value()),
            replayed: outcome.replayed,
        }
    }
}

/// A transfer as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferView {
    /// Its id.
    pub id: String,
    /// Its state.
    #[serde(flatten)]
    pub state: Transfer,
}

/// How long a query waits for a read model to reach the position it was asked for.
const READ_YOUR_WRITES: Duration = Duration::from_secs(5);

/// The bank over one tenant's store.
pub struct Bank<S: BankStore> {
    store: S,
    accounts: Repository<Account, S, S>,
    transfers: Repository<Transfer, S>,
    stats: Arc<Stats>,
    balances: Arc<Served<Balances, VolatileCheckpoints<S>>>,
    statements: Arc<Served<Statements, VolatileCheckpoints<S>>>,
    shutdown: watch::Sender<bool>,
    process: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

fn valid_id(field: &'static str, id: &str) -> Result<(), BankError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BankError::invalid(field, "1 to 64 characters among a-z, A-Z, 0-9, '_' and '-'"))
    }
}

fn account_stream(id: &str) -> Result<StreamId, BankError> {
    valid_id("account", id)?;
    StreamId::in_category("account", id)
        .map_err(|error| BankError::invalid("account", error.to_string()))
}

fn transfer_stream(id: &str) -> Result<StreamId, BankError> {
    valid_id("transfer", id)?;
    StreamId::in_category("transfer", id)
        .map_err(|error| BankError::invalid("transfer", error.to_string()))
}

fn positive(field: &'static str, cents: i64) -> Result<i64, BankError> {
    if cents > 0 { Ok(cents) } else { Err(BankError::invalid(field, "a positive number of cents")) }
}

fn options(key: Option<&str>) -> Result<CommandOptions, BankError> {
    let mut options = CommandOptions::default();
    if let Some(key) = key {
        let key = IdempotencyKey::new(key)
            .map_err(|error| BankError::invalid("idempotency-key", error.to_string()))?;
        options = options.idempotency_key(key);
    }
    Ok(options)
}

impl<S: BankStore> Bank<S> {
    /// Starts the bank: the read models rebuild from the log (their checkpoints live in this
    /// process, like the models), and the transfer process resumes from its stored checkpoint
    /// whenever this process holds its lock.
    pub async fn start(store: S) -> Arc<Self> {
        Self::start_publishing(store, None).await
    }

    /// [`start`](Self::start), and with `publish` each account and transfer outcome is
    /// enqueued as a public message with its events (see [`PublicEvents`]); run a relay
    /// (`es::outbox::Relay`) to deliver them.
    pub async fn start_publishing(store: S, publish: Option<PublicEvents>) -> Arc<Self> {
        let stats = Arc::new(Stats::default());
        let mut accounts = Repository::<Account, _>::new(store.clone())
            .with_snapshots(store.clone())
            .with_cache(10_000);
        let mut transfers = Repository::<Transfer, _>::new(store.clone()).with_cache(10_000);
        if let Some(publish) = publish {
            accounts = accounts.with_publisher(publish.clone());
            transfers = transfers.with_publisher(publish);
        }
        let views = VolatileCheckpoints::new(store.clone());
        let view_options = RunnerOptions::default().idle_wait(Duration::from_millis(500));
        let balances =
            Served::start(Balances::default(), views.clone(), view_options.clone()).await;
        let statements = Served::start(Statements::default(), views, view_options).await;
        let (shutdown, _) = watch::channel(false);
        let bank = Arc::new(Self {
            store,
            accounts,
            transfers,
            stats,
            balances,
            statements,
            shutdown,
            process: parking_lot::Mutex::new(None),
        });
        // Counters an alert watches exist from the start, at 0: an alert on their increase
        // cannot fire on a series that appears only with its first event.
        for name in ["balances", "statements", <TransferProcess<S> as es::Projection>::NAME] {
            metrics::counter!("es_projection_parked_total", "projection" => name).increment(0);
        }
        let process = bank.spawn_process();
        *bank.process.lock() = Some(process);
        bank
    }

    fn spawn_process(self: &Arc<Self>) -> JoinHandle<()> {
        let process =
            TransferProcess::new(self.accounts.clone(), self.transfers.clone(), self.stats.clone());
        let store = self.store.clone();
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            let options = RunnerOptions::default()
                .batch_size(500)
                .idle_wait(Duration::from_millis(500))
                .retries(5, Duration::from_millis(50))
                .on_failure(OnFailure::Park);
            // Transfers are independent streams: up to 16 run at once (each in its own order);
            // the accounts they share are guarded by optimistic concurrency and retries.
            let mut runner = es::projection::ProjectionRunner::new(process, store.clone())
                .with_options(options)
                .with_concurrency(16);
            // One active worker across processes (the lock), restarted after failures (from
            // `retry_delay`, doubling, at most 30 s) until shutdown.
            runner
                .follow_exclusive(
                    &store,
                    async move {
                        let _ = shutdown.wait_for(|stop| *stop).await;
                    },
                    |pass| {
                        if let Err(error) = pass {
                            tracing::error!(%error, "bank.transfer: process pass failed; retrying");
                        }
                    },
                )
                .await;
        })
    }

    /// Stops the background work (each runner finishes its pass and saves).
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let process = self.process.lock().take();
        if let Some(process) = process {
            let _ = process.await;
        }
        self.balances.stop().await;
        self.statements.stop().await;
        // Snapshot writes still in flight finish rather than die with the process.
        self.accounts.flush_snapshots().await;
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    async fn account_command(
        &self,
        id: &str,
        command: impl Into<<Account as es::Aggregate>::Command>,
        key: Option<&str>,
    ) -> Result<Written, BankError> {
        let stream = account_stream(id)?;
        // A key reused with another command is refused by the repository (it fingerprints the
        // command): an idempotency conflict, answered as a bad request.
        let outcome = self.accounts.execute(&stream, command, options(key)?).await?;
        self.stats.command(outcome.attempts);
        Ok(Written::new(&stream, &outcome))
    }

    /// Opens an account.
    pub async fn open(
        &self,
        id: &str,
        owner: &str,
        email: Option<&str>,
        key: Option<&str>,
    ) -> Result<Written, BankError> {
        let email = email.map(str::trim);
        if let Some(email) = email {
            let valid = email.len() <= 254
                && !email.chars().any(|c| c.is_control() || c.is_whitespace())
                && email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
            if !valid {
                return Err(BankError::invalid(
                    "email",
                    "an address like name@example.com, at most 254 characters",
                ));
            }
        }
        let owner = owner.trim();
        if owner.is_empty() || owner.len() > 200 {
            return Err(BankError::invalid("owner", "1 to 200 characters"));
        }
        if owner.chars().any(char::is_control) {
            return Err(BankError::invalid(
                "owner",
                "no control characters (such as NUL or newlines)",
            ));
        }
        let open = Open { owner: owner.to_owned(), email: email.map(str::to_owned) };
        self.account_command(id, open, key).await
    }

    /// Forgets the owner of account `id`: their name and e-mail address read as redacted from
    /// now on, everywhere (see `es::pii`). `reason` (a ticket number) and `actor` (an operator
    /// id) go into the audit trail and must not hold personal data. Idempotent.
    pub async fn forget(
        &self,
        id: &str,
        reason: &str,
        actor: &str,
    ) -> Result<es::pii::ForgetOutcome, BankError> {
        let stream = account_stream(id)?;
        if self.store.stream_version(&stream).await? == 0 {
            return Err(BankError::NotFound(format!("account {id}")));
        }
        self.store.forget(stream.as_str(), reason, actor).await.map_err(|error| match error {
            StoreError::PersonalData(es::pii::PiiError::InvalidRequest(message)) => {
                BankError::invalid("forget", message)
            }
            other => other.into(),
        })
    }

    /// Deposits money.
    pub async fn deposit(
        &self,
        id: &str,
        cents: i64,
        key: Option<&str>,
    ) -> Result<Written, BankError> {
        let cents = positive("cents", cents)?;
        self.account_command(id, Deposit { cents, transfer: None }, key).await
    }

    /// Withdraws money.
    pub async fn withdraw(
        &self,
        id: &str,
        cents: i64,
        key: Option<&str>,
    ) -> Result<Written, BankError> {
        let cents = positive("cents", cents)?;
        self.account_command(id, Withdraw { cents, transfer: None }, key).await
    }

    /// Closes an empty account.
    pub async fn close(&self, id: &str, key: Option<&str>) -> Result<Written, BankError> {
        self.account_command(id, Close, key).await
    }

    /// Asks for a transfer; the process manager carries it out. Both accounts must exist.
    pub async fn request_transfer(
        &self,
        id: &str,
        from: &str,
        to: &str,
        cents: i64,
        key: Option<&str>,
    ) -> Result<Written, BankError> {
        let stream = transfer_stream(id)?;
        let cents = positive("cents", cents)?;
        for (field, account) in [("from", from), ("to", to)] {
            let loaded = self.accounts.load(&account_stream(account)?).await?;
            if loaded.version == 0 {
                return Err(BankError::NotFound(format!("{field} account {account}")));
            }
        }
        let command = RequestTransfer { from: from.to_owned(), to: to.to_owned(), cents };
        let outcome = self.transfers.execute(&stream, command, options(key)?).await?;
        self.stats.command(outcome.attempts);
        Ok(Written::new(&stream, &outcome))
    }

    /// A transfer's state, read from its stream (always current).
    pub async fn transfer(&self, id: &str) -> Result<TransferView, BankError> {
        let loaded = self.transfers.load(&transfer_stream(id)?).await?;
        if loaded.version == 0 {
            return Err(BankError::NotFound(format!("transfer {id}")));
        }
        Ok(TransferView { id: id.to_owned(), state: loaded.state })
    }

    /// An account from the balances view, once it has applied `after` (read-your-writes).
    pub async fn account(&self, id: &str, after: Option<u64>) -> Result<AccountView, BankError> {
        valid_id("account", id)?;
        self.caught_up(&self.balances, after, "balances").await?;
        self.balances.model().get(id).ok_or_else(|| BankError::NotFound(format!("account {id}")))
    }

    /// The last `limit` lines of an account's statement, once the view has applied `after`.
    pub async fn statement(
        &self,
        id: &str,
        limit: usize,
        after: Option<u64>,
    ) -> Result<Vec<StatementLine>, BankError> {
        valid_id("account", id)?;
        self.caught_up(&self.statements, after, "statements").await?;
        if let Some(lines) = self.statements.model().lines(id, limit) {
            return Ok(lines);
        }
        // An account with no movement has an empty statement; an unknown one is not found.
        self.account(id, after).await.map(|_| Vec::new())
    }

    /// Number of accounts and the sum of their balances, from the balances view.
    pub async fn totals(&self, after: Option<u64>) -> Result<(usize, i128), BankError> {
        self.caught_up(&self.balances, after, "balances").await?;
        Ok(self.balances.model().totals())
    }

    /// Every account in the balances view.
    pub fn balances(&self) -> Balances {
        self.balances.model()
    }

    async fn caught_up<P>(
        &self,
        served: &Served<P, VolatileCheckpoints<S>>,
        after: Option<u64>,
        view: &'static str,
    ) -> Result<(), BankError>
    where
        P: es::Projection + Clone + Sync,
    {
        match after {
            Some(position) if !served.wait_for(Position::new(position), READ_YOUR_WRITES).await => {
                Err(BankError::Stale(view))
            }
            _ => Ok(()),
        }
    }

    /// Every projection's state and lag.
    pub async fn projections(&self) -> Result<Vec<ProjectionReport>, BankError> {
        let mut reports = vec![self.balances.report().await?, self.statements.report().await?];
        let head = self.store.head_position().await?.value();
        let name = <TransferProcess<S> as es::Projection>::projection_name();
        let checkpoint = self.store.load_checkpoint(&name).await?.map_or(0, Position::value);
        let parked = es::projection::DeadLetterStore::parked(&self.store, &name).await?.len();
        let state = self.process_state();
        reports.push(ProjectionReport {
            name: name.to_string(),
            state,
            checkpoint,
            head,
            lag: head.saturating_sub(checkpoint),
            last_error: (parked > 0).then(|| format!("{parked} parked events")),
        });
        for report in &reports {
            // Precision loss past 2^52 positions is moot.
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!("bank_projection_lag", "projection" => report.name.clone())
                .set(report.lag as f64);
        }
        Ok(reports)
    }

    /// The transfer process's state: `running`, `stopped` (at shutdown) or `dead`. Its task
    /// restarts the runner after failures and returns only at shutdown, so a task that ended
    /// before is dead.
    fn process_state(&self) -> &'static str {
        let ended = self.process.lock().as_ref().is_none_or(JoinHandle::is_finished);
        match (ended, *self.shutdown.borrow()) {
            (false, _) => "running",
            (true, true) => "stopped",
            (true, false) => "dead",
        }
    }

    /// Rebuilds an in-memory view side by side and switches to it; returns the events handled.
    pub async fn rebuild(&self, name: &str) -> Result<u64, BankError> {
        let rebuilt = match name {
            "balances" => self.balances.rebuild(Balances::default()).await,
            "statements" => self.statements.rebuild(Statements::default()).await,
            other => {
                return Err(BankError::NotFound(format!(
                    "rebuildable projection {other} (balances, statements)"
                )));
            }
        };
        rebuilt.map_err(|error| BankError::Internal(error.to_string()))
    }

    /// A view's state, checkpoint and last error (no store read); `None` for another name.
    pub fn view_state(&self, name: &str) -> Option<(&'static str, Position, Option<String>)> {
        let (state, checkpoint) = match name {
            "balances" => (self.balances.state(), self.balances.checkpoint()),
            "statements" => (self.statements.state(), self.statements.checkpoint()),
            _ => return None,
        };
        Some((state.0, checkpoint, state.1))
    }

    /// Replays a view's parked events (all, or the one at `position`); returns how many were
    /// replayed and how many remain parked.
    pub async fn replay_parked(
        &self,
        name: &str,
        position: Option<Position>,
    ) -> Result<(u64, u64), BankError> {
        let replayed = match name {
            "balances" => self.balances.replay_parked(position).await,
            "statements" => self.statements.replay_parked(position).await,
            other => {
                return Err(BankError::NotFound(format!("view {other} (balances, statements)")));
            }
        };
        replayed.map_err(BankError::Internal)
    }

    /// Whether the store answers and the views have finished their first catch-up.
    pub async fn ready(&self) -> Result<(), BankError> {
        // The reasons name what is not ready, never the store's own error text (that goes to the
        // log): a readiness answer is public.
        match tokio::time::timeout(Duration::from_secs(2), self.store.head_position()).await {
            Err(_) => {
                return Err(BankError::NotReady("the store did not answer within 2 s".into()));
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "bank.ready: the store failed");
                return Err(BankError::NotReady("the store is unavailable".into()));
            }
            Ok(Ok(_)) => {}
        }
        for (name, served) in
            [("balances", self.balances.health()), ("statements", self.statements.health())]
        {
            if let Some(problem) = served {
                return Err(BankError::NotReady(format!("the {name} view {problem}")));
            }
        }
        if self.process_state() == "dead" {
            return Err(BankError::NotReady("the transfer process has stopped".into()));
        }
        Ok(())
    }

    /// Waits until every transfer requested so far is final and the views have caught up.
    pub async fn settle(&self, timeout: Duration) -> Result<(), BankError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let name = <TransferProcess<S> as es::Projection>::projection_name();
        loop {
            let head = self.store.head_position().await?;
            let process = self.store.load_checkpoint(&name).await?.unwrap_or(Position::BEGINNING);
            if process >= head
                && self.balances.checkpoint() >= head
                && self.statements.checkpoint() >= head
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BankError::Stale("transfer process"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
