//! The transfer process manager: for every requested transfer, debit the source, credit the
//! target, and if the target refuses, put the money back (compensation).
//!
//! It is a projection over `transfer.requested`, run by a checkpointed runner that holds the
//! projection's lock (one owner across service instances). Delivery is at least once, so every
//! step is safe to repeat: the account commands carry idempotency keys derived from the transfer
//! id, and the transfer's own state says which step is next.

use std::sync::Arc;

use es::repository::{CommandOptions, Repository, RepositoryError};
use es::{IdempotencyKey, ProjectionError, RecordedEvent, StreamId, projection};

use super::account::{Account, AccountError, Deposit, Withdraw};
use super::stats::Stats;
use super::store::BankStore;
use super::transfer::{
    Compensate, Complete, Fail, RecordDebit, Transfer, TransferRequested, TransferStatus,
};

/// Moves transfers from requested to a final state. Clones share the repositories and the
/// counters, so the runner can drive many transfers at once (`with_concurrency`).
pub struct TransferProcess<S> {
    accounts: Repository<Account, S, S>,
    transfers: Repository<Transfer, S>,
    stats: Arc<Stats>,
}

impl<S: BankStore> Clone for TransferProcess<S> {
    fn clone(&self) -> Self {
        Self {
            accounts: self.accounts.clone(),
            transfers: self.transfers.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<S: BankStore> TransferProcess<S> {
    /// A process manager writing through these repositories.
    pub fn new(
        accounts: Repository<Account, S, S>,
        transfers: Repository<Transfer, S>,
        stats: Arc<Stats>,
    ) -> Self {
        Self { accounts, transfers, stats }
    }
}

fn failed<E: std::fmt::Debug + Send + Sync + 'static>(
    step: &str,
    error: RepositoryError<E>,
) -> ProjectionError
where
    RepositoryError<E>: std::error::Error,
{
    ProjectionError::with_source(format!("transfer step {step} failed"), error)
}

fn key(transfer: &StreamId, step: &str) -> Result<IdempotencyKey, ProjectionError> {
    IdempotencyKey::new(format!("{transfer}.{step}"))
        .map_err(|error| ProjectionError::with_source("transfer id unusable as a key", error))
}

fn account(id: &str) -> Result<StreamId, ProjectionError> {
    StreamId::in_category("account", id)
        .map_err(|error| ProjectionError::with_source("bad account id in a transfer", error))
}

#[projection(name = "transfer_process")]
impl<S: BankStore> TransferProcess<S> {
    async fn on_requested(
        &mut self,
        _: &TransferRequested,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        // The steps' events carry the request's correlation id and name the event that caused
        // them, so a transfer's whole trail can be followed across streams.
        let origin = CommandOptions::default()
            .correlation_id(meta.metadata.correlation_id.unwrap_or(*meta.event_id.as_uuid()))
            .causation_id(*meta.event_id.as_uuid())
            .actor("transfer-process");
        self.drive_with(&meta.stream_id, &origin).await
    }
}

impl<S: BankStore> TransferProcess<S> {
    /// Runs the transfer's remaining steps, each decided by its current state.
    pub async fn drive(&self, id: &StreamId) -> Result<(), ProjectionError> {
        self.drive_with(id, &CommandOptions::default().actor("transfer-process")).await
    }

    /// [`drive`](Self::drive), with the metadata (correlation, causation, actor) every step's
    /// command carries.
    async fn drive_with(
        &self,
        id: &StreamId,
        origin: &CommandOptions,
    ) -> Result<(), ProjectionError> {
        loop {
            let transfer = self.transfers.load(id).await.map_err(|e| failed("load", e))?.state;
            match transfer.status {
                TransferStatus::None => {
                    return Err(ProjectionError::new(format!("transfer {id} does not exist")));
                }
                TransferStatus::Requested => self.debit(id, &transfer, origin).await?,
                TransferStatus::Debited => self.credit(id, &transfer, origin).await?,
                TransferStatus::Completed
                | TransferStatus::Failed
                | TransferStatus::Compensated => {
                    return Ok(());
                }
            }
        }
    }

    async fn account_command(
        &self,
        account_id: &str,
        command: impl Into<<Account as es::Aggregate>::Command>,
        key: IdempotencyKey,
        origin: &CommandOptions,
    ) -> Result<Result<(), AccountError>, ProjectionError> {
        let options = origin.clone().idempotency_key(key);
        match self.accounts.execute(&account(account_id)?, command, options).await {
            Ok(outcome) => {
                self.stats.command(outcome.attempts);
                Ok(Ok(()))
            }
            Err(RepositoryError::Domain(refused)) => Ok(Err(refused)),
            Err(error) => Err(failed("account command", error)),
        }
    }

    async fn transfer_command(
        &self,
        id: &StreamId,
        command: impl Into<<Transfer as es::Aggregate>::Command>,
        origin: &CommandOptions,
    ) -> Result<(), ProjectionError> {
        let outcome = self
            .transfers
            .execute(id, command, origin.clone())
            .await
            .map_err(|error| failed("transfer command", error))?;
        self.stats.command(outcome.attempts);
        Ok(())
    }

    async fn debit(
        &self,
        id: &StreamId,
        transfer: &Transfer,
        origin: &CommandOptions,
    ) -> Result<(), ProjectionError> {
        let withdraw = Withdraw { cents: transfer.cents, transfer: Some(id.to_string()) };
        match self.account_command(&transfer.from, withdraw, key(id, "debit")?, origin).await? {
            Ok(()) => self.transfer_command(id, RecordDebit, origin).await,
            Err(refused) => {
                tracing::debug!(transfer = %id, reason = %refused, "bank.transfer: debit refused");
                self.transfer_command(id, Fail { reason: refused.to_string() }, origin).await
            }
        }
    }

    async fn credit(
        &self,
        id: &StreamId,
        transfer: &Transfer,
        origin: &CommandOptions,
    ) -> Result<(), ProjectionError> {
        let deposit = Deposit { cents: transfer.cents, transfer: Some(id.to_string()) };
        match self.account_command(&transfer.to, deposit, key(id, "credit")?, origin).await? {
            Ok(()) => self.transfer_command(id, Complete, origin).await,
            Err(refused) => {
                tracing::debug!(transfer = %id, reason = %refused, "bank.transfer: credit refused; refunding");
                let refund = Deposit { cents: transfer.cents, transfer: Some(id.to_string()) };
                if let Err(stuck) =
                    self.account_command(&transfer.from, refund, key(id, "refund")?, origin).await?
                {
                    // The source closed meanwhile: the money cannot go back automatically. The
                    // runner retries, then parks the event for an operator.
                    return Err(ProjectionError::new(format!(
                        "transfer {id}: the credit was refused ({refused}) and the refund too ({stuck})"
                    )));
                }
                self.transfer_command(id, Compensate { reason: refused.to_string() }, origin).await
            }
        }
    }
}
