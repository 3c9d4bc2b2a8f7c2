//! The transfer aggregate: the state of one transfer between two accounts, as the process
//! manager ([`super::process`]) moves it along: requested → debited → completed, or requested →
//! failed, or debited → compensated (the money went back).

use es::{Aggregate, Apply, Event, commands};
use serde::{Deserialize, Serialize};

/// A transfer was asked for.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "transfer.requested")]
pub struct TransferRequested {
    /// The account debited.
    pub from: String,
    /// The account credited.
    pub to: String,
    /// Cents, positive.
    pub cents: i64,
}

/// The money left the source account.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "transfer.debited")]
pub struct TransferDebited {}

/// The money reached the target account.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "transfer.completed")]
pub struct TransferCompleted {}

/// The source account refused the debit; nothing moved.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "transfer.failed")]
pub struct TransferFailed {
    /// Why.
    pub reason: String,
}

/// The target account refused the credit; the money went back to the source.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "transfer.compensated")]
pub struct TransferCompensated {
    /// Why.
    pub reason: String,
}

/// Everything that happens to a transfer.
#[derive(Debug, Clone, Event)]
pub enum TransferEvent {
    /// Requested.
    Requested(TransferRequested),
    /// Debited.
    Debited(TransferDebited),
    /// Completed.
    Completed(TransferCompleted),
    /// Failed.
    Failed(TransferFailed),
    /// Compensated.
    Compensated(TransferCompensated),
}

/// Where a transfer stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Not requested.
    #[default]
    None,
    /// Requested; the debit is next.
    Requested,
    /// Debited; the credit is next.
    Debited,
    /// Done.
    Completed,
    /// Refused by the source account.
    Failed,
    /// Refused by the target account and refunded.
    Compensated,
}

impl TransferStatus {
    /// Whether the transfer is over (completed, failed or compensated).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Compensated)
    }
}

/// Why a transfer refused a step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The id is taken.
    #[error("a transfer with this id exists")]
    AlreadyRequested,
    /// A step out of order.
    #[error("a transfer that is {0:?} cannot do that")]
    InvalidState(TransferStatus),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// A transfer's state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Aggregate)]
#[aggregate(name = "transfer", event = TransferEvent, error = TransferError)]
pub struct Transfer {
    /// Where it stands.
    pub status: TransferStatus,
    /// The account debited.
    pub from: String,
    /// The account credited.
    pub to: String,
    /// Cents.
    pub cents: i64,
    /// Why it failed or was compensated.
    pub reason: Option<String>,
}

/// Ask for a transfer.
#[derive(Debug, Clone, Hash)]
pub struct RequestTransfer {
    /// The account debited.
    pub from: String,
    /// The account credited.
    pub to: String,
    /// Cents, positive.
    pub cents: i64,
}

/// Record that the debit happened (idempotent).
#[derive(Debug, Clone, Hash)]
pub struct RecordDebit;

/// Record that the credit happened (idempotent).
#[derive(Debug, Clone, Hash)]
pub struct Complete;

/// Record that the debit was refused (idempotent).
#[derive(Debug, Clone, Hash)]
pub struct Fail {
    /// Why.
    pub reason: String,
}

/// Record that the credit was refused and the debit refunded (idempotent).
#[derive(Debug, Clone, Hash)]
pub struct Compensate {
    /// Why.
    pub reason: String,
}

#[commands]
impl Transfer {
    /// Decides the command.
    pub fn request(&self, command: RequestTransfer) -> Result<TransferRequested, TransferError> {
        if self.status != TransferStatus::None {
            return Err(TransferError::AlreadyRequested);
        }
        if command.cents <= 0 {
            return Err(TransferError::Invalid(format!(
                "amounts are positive numbers of cents, not {}",
                command.cents
            )));
        }
        if command.from == command.to {
            return Err(TransferError::Invalid("a transfer needs two different accounts".into()));
        }
        Ok(TransferRequested { from: command.from, to: command.to, cents: command.cents })
    }

    /// Decides the command.
    pub fn record_debit(&self, _: RecordDebit) -> Result<Option<TransferDebited>, TransferError> {
        match self.status {
            TransferStatus::Requested => Ok(Some(TransferDebited {})),
            TransferStatus::Debited | TransferStatus::Completed | TransferStatus::Compensated => {
                Ok(None)
            }
            other => Err(TransferError::InvalidState(other)),
        }
    }

    /// Decides the command.
    pub fn complete(&self, _: Complete) -> Result<Option<TransferCompleted>, TransferError> {
        match self.status {
            TransferStatus::Debited => Ok(Some(TransferCompleted {})),
            TransferStatus::Completed => Ok(None),
            other => Err(TransferError::InvalidState(other)),
        }
    }

    /// Decides the command.
    pub fn fail(&self, command: Fail) -> Result<Option<TransferFailed>, TransferError> {
        match self.status {
            TransferStatus::Requested => Ok(Some(TransferFailed { reason: command.reason })),
            TransferStatus::Failed => Ok(None),
            other => Err(TransferError::InvalidState(other)),
        }
    }

    /// Decides the command.
    pub fn compensate(
        &self,
        command: Compensate,
    ) -> Result<Option<TransferCompensated>, TransferError> {
        match self.status {
            TransferStatus::Debited => Ok(Some(TransferCompensated { reason: command.reason })),
            TransferStatus::Compensated => Ok(None),
            other => Err(TransferError::InvalidState(other)),
        }
    }
}

impl Apply<TransferEvent> for Transfer {
    fn apply(&mut self, event: &TransferEvent) {
        match event {
            TransferEvent::Requested(requested) => {
                self.status = TransferStatus::Requested;
                self.from.clone_from(&requested.from);
                self.to.clone_from(&requested.to);
                self.cents = requested.cents;
            }
            TransferEvent::Debited(_) => self.status = TransferStatus::Debited,
            TransferEvent::Completed(_) => self.status = TransferStatus::Completed,
            TransferEvent::Failed(failed) => {
                self.status = TransferStatus::Failed;
                self.reason = Some(failed.reason.clone());
            }
            TransferEvent::Compensated(compensated) => {
                self.status = TransferStatus::Compensated;
                self.reason = Some(compensated.reason.clone());
            }
        }
    }
}
