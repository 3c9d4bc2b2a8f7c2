//! What a store handle offers for personal data: forget a subject, read the audit trail.

use std::future::Future;
use std::sync::Arc;

use super::{AuditEntry, ForgetOutcome, PiiError, Vault};
use crate::{EventStore, StoreError};

/// A tenant-scoped store that seals `#[pii]` fields: forget a data subject of its tenant, read the
/// audit trail. Both backends implement it; see [`Vault`] for what each call does.
pub trait PersonalData: EventStore {
    /// The store's vault; `None` when no master key is configured (then personal data can be
    /// neither written nor read, and these calls fail with [`PiiError::NoMasterKey`]).
    fn vault(&self) -> Option<&Arc<Vault>>;

    /// Forgets `subject` (see [`Vault::forget`]).
    fn forget(
        &self,
        subject: &str,
        reason: &str,
        actor: &str,
    ) -> impl Future<Output = Result<ForgetOutcome, StoreError>> + Send {
        async move { self.required_vault("forget")?.forget(self.tenant(), subject, reason, actor).await }
    }

    /// Whether `subject` was forgotten.
    fn is_forgotten(&self, subject: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move { self.required_vault("look up")?.is_forgotten(self.tenant(), subject).await }
    }

    /// The audit trail of the tenant, or of one subject, oldest first.
    fn audit_trail(
        &self,
        subject: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send {
        async move { self.required_vault("audit")?.audit_trail(self.tenant(), subject, limit).await }
    }

    #[doc(hidden)]
    fn required_vault(&self, action: &'static str) -> Result<&Arc<Vault>, StoreError> {
        self.vault().ok_or_else(|| PiiError::NoMasterKey { action }.into())
    }
}
