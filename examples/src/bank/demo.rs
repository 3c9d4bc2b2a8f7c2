//! The demo workload: thousands of accounts, concurrent transfers (some refused, some
//! compensated) and deposits racing the transfer process on hot accounts; then it checks that
//! no money appeared or vanished and reports the figures that matter.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::error::BankError;
use super::served::ProjectionReport;
use super::service::Bank;
use super::store::BankStore;
use super::transfer::TransferStatus;

/// The size of the workload.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Accounts opened, each with 1,000.00.
    pub accounts: usize,
    /// Transfers requested.
    pub transfers: usize,
    /// Concurrent clients.
    pub concurrency: usize,
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Accounts opened.
    pub accounts: usize,
    /// Transfers by final status: completed, failed (refused by the source), compensated.
    pub transfers: (u64, u64, u64),
    /// Commands run (by clients and by the transfer process).
    pub commands: u64,
    /// Version conflicts retried by the command pipeline.
    pub conflicts: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Money in the balances view at the end, and what it must be.
    pub money: (i128, i128),
    /// The projections at the end.
    pub projections: Vec<ProjectionReport>,
    /// Events in the log.
    pub head: u64,
}

impl DemoReport {
    /// Whether the money adds up.
    pub fn balanced(&self) -> bool {
        self.money.0 == self.money.1
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let (completed, failed, compensated) = self.transfers;
        writeln!(f, "accounts opened          {}", self.accounts)?;
        writeln!(
            f,
            "transfers                {completed} completed, {failed} refused by the source, {compensated} compensated"
        )?;
        // Counts far below 2^52: the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let rate = self.commands as f64 / seconds;
        writeln!(
            f,
            "commands                 {} in {seconds:.2} s = {rate:.0} commands/s",
            self.commands
        )?;
        writeln!(f, "conflicts retried        {}", self.conflicts)?;
        writeln!(f, "events in the log        head position {}", self.head)?;
        writeln!(
            f,
            "money                    {} cents in the balances view, {} expected: {}",
            self.money.0,
            self.money.1,
            if self.balanced() { "balanced" } else { "MISMATCH" }
        )?;
        for projection in &self.projections {
            writeln!(
                f,
                "projection {:<17} {}, checkpoint {}, lag {}",
                projection.name, projection.state, projection.checkpoint, projection.lag
            )?;
        }
        Ok(())
    }
}

fn bar(length: usize, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(length as u64).with_message(message);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:<22} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs `jobs` jobs on `concurrency` workers.
async fn parallel<F, Fut>(
    jobs: usize,
    concurrency: usize,
    progress: &ProgressBar,
    job: F,
) -> Result<(), BankError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), BankError>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let job = Arc::new(job);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (next, job, progress) = (next.clone(), job.clone(), progress.clone());
        workers.spawn(async move {
            loop {
                let index =
                    usize::try_from(next.fetch_add(1, Ordering::Relaxed)).unwrap_or(usize::MAX);
                if index >= jobs {
                    return Ok::<(), BankError>(());
                }
                job(index).await?;
                progress.inc(1);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|error| BankError::Internal(format!("a demo worker panicked: {error}")))??;
    }
    progress.finish();
    Ok(())
}

const START: i64 = 100_000;

/// Runs the workload against `bank` and reports (printing each phase as it ends: the demo talks
/// to a person at a terminal).
#[allow(clippy::print_stdout)]
pub async fn run<S: BankStore>(
    bank: Arc<Bank<S>>,
    options: DemoOptions,
) -> Result<DemoReport, BankError> {
    let started = Instant::now();
    let accounts = options.accounts.max(2);
    let closed = (accounts / 100).max(1);
    let deposited = Arc::new(AtomicI64::new(0));

    let opening = bar(accounts + closed, "opening accounts");
    {
        let bank = bank.clone();
        parallel(accounts + closed, options.concurrency, &opening, move |index| {
            let bank = bank.clone();
            async move {
                if index < accounts {
                    let (id, email) = (format!("acct-{index}"), format!("c{index}@example.com"));
                    bank.open(&id, &format!("Customer {index}"), Some(&email), None).await?;
                    bank.deposit(&id, START, None).await?;
                } else {
                    // Accounts that close at once: transfers to them are compensated.
                    let id = format!("closed-{}", index - accounts);
                    bank.open(&id, "Former customer", None, None).await?;
                    bank.close(&id, None).await?;
                }
                Ok(())
            }
        })
        .await?;
    }
    println!(
        "opened {accounts} accounts with {START} cents each, and {closed} closed ones, in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let phase = Instant::now();

    let transferring = bar(options.transfers, "requesting transfers");
    {
        let (bank, deposited) = (bank.clone(), deposited.clone());
        parallel(options.transfers, options.concurrency, &transferring, move |index| {
            let (bank, deposited) = (bank.clone(), deposited.clone());
            async move {
                let from = fastrand::usize(..accounts);
                let to = if index % 50 == 7 {
                    format!("closed-{}", fastrand::usize(..closed))
                } else {
                    format!("acct-{}", (from + 1 + fastrand::usize(..accounts - 1)) % accounts)
                };
                // Up to 1.5 times the starting balance: some are refused for lack of funds.
                let cents = fastrand::i64(1..=START * 3 / 2);
                let id = format!("demo-{index}");
                bank.request_transfer(&id, &format!("acct-{from}"), &to, cents, None).await?;
                if index % 3 == 0 {
                    // A deposit racing the transfer process on a hot account: version conflicts.
                    let hot = format!("acct-{}", fastrand::usize(..accounts.min(8)));
                    bank.deposit(&hot, 100, None).await?;
                    deposited.fetch_add(100, Ordering::Relaxed);
                }
                Ok(())
            }
        })
        .await?;
    }
    println!(
        "requested {} transfers from {} concurrent clients in {:.2} s",
        options.transfers,
        options.concurrency,
        phase.elapsed().as_secs_f64()
    );
    let phase = Instant::now();

    let settling =
        ProgressBar::new_spinner().with_message("waiting for the transfer process and the views");
    settling.enable_steady_tick(Duration::from_millis(100));
    bank.settle(Duration::from_mins(10)).await?;
    settling.finish_and_clear();
    println!(
        "the transfer process and the views settled {:.2} s later",
        phase.elapsed().as_secs_f64()
    );

    let mut transfers = (0, 0, 0);
    for index in 0..options.transfers {
        match bank.transfer(&format!("demo-{index}")).await?.state.status {
            TransferStatus::Completed => transfers.0 += 1,
            TransferStatus::Failed => transfers.1 += 1,
            TransferStatus::Compensated => transfers.2 += 1,
            other => {
                return Err(BankError::Internal(format!(
                    "transfer demo-{index} is still {other:?}"
                )));
            }
        }
    }
    let expected = i128::from(START) * i128::try_from(accounts).unwrap_or(i128::MAX)
        + i128::from(deposited.load(Ordering::Relaxed));
    let (_, money) = bank.totals(None).await?;
    let projections = bank.projections().await?;
    let head = bank.store().head_position().await?.value();
    Ok(DemoReport {
        accounts,
        transfers,
        commands: bank.stats().commands(),
        conflicts: bank.stats().conflicts(),
        elapsed: started.elapsed(),
        money: (money, expected),
        projections,
        head,
    })
}
