//! What a backend stores for personal data: wrapped data keys, tombstones, the subjects' streams
//! and the audit trail.

use chrono::{DateTime, Utc};

use super::{BoxFuture, SubjectDigest, WrappedKey};
use crate::{StoreError, TenantId};

/// A subject's row in the key store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredKey {
    /// The subject's data key, wrapped by a master key.
    Active(WrappedKey),
    /// The subject was forgotten: the key is destroyed and stays so (a tombstone).
    Forgotten,
}

/// A data key wrapped by an older master key, to rewrap ([`Vault::rotate`](super::Vault::rotate)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleKey {
    /// Its tenant.
    pub tenant: TenantId,
    /// Its subject.
    pub subject: SubjectDigest,
    /// The key as stored.
    pub wrapped: WrappedKey,
}

/// A request to forget a data subject (see [`Vault::forget`](super::Vault::forget)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgetRequest {
    /// The subject's id as the events name it. It goes into the `es.subject_forgotten` event (so
    /// that read models can find the rows to scrub), never into the audit trail or the key store.
    pub subject: String,
    /// Its digest in the tenant.
    pub digest: SubjectDigest,
    /// Why (for example a ticket number); kept in the audit trail. Must not hold personal data.
    pub reason: String,
    /// Who asked (an operator's or a system's id); kept in the audit trail.
    pub actor: String,
}

/// One record of the audit trail: a subject was forgotten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// The subject's digest (never its id).
    pub subject: SubjectDigest,
    /// Who asked.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// When the key was destroyed.
    pub at: DateTime<Utc>,
}

/// What [`Vault::forget`](super::Vault::forget) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgetOutcome {
    /// False when the subject had been forgotten before: nothing changed and `entry` is the
    /// first forgetting's record.
    pub first_time: bool,
    /// The audit record.
    pub entry: AuditEntry,
    /// Snapshots removed because they were taken of streams holding the subject's data.
    pub snapshots_removed: u64,
}

/// The key store a backend keeps for a [`Vault`](super::Vault): every method is scoped to a tenant
/// except the two that serve master-key rotation, which walk all tenants.
///
/// Backends implement it; applications use it through the vault. The conformance suite
/// (`pii_tests!`) checks the contract.
pub trait KeyStore: Send + Sync + 'static {
    /// The rows of these subjects; a subject that has none is left out.
    fn load_keys<'a>(
        &'a self,
        tenant: &'a TenantId,
        subjects: &'a [SubjectDigest],
    ) -> BoxFuture<'a, Result<Vec<(SubjectDigest, StoredKey)>, StoreError>>;

    /// Stores each key whose subject has no row yet and returns the row each subject of `keys`
    /// has now: the new key, or the row that was there first (another writer's key, or a
    /// tombstone).
    fn insert_keys<'a>(
        &'a self,
        tenant: &'a TenantId,
        keys: &'a [(SubjectDigest, WrappedKey)],
    ) -> BoxFuture<'a, Result<Vec<(SubjectDigest, StoredKey)>, StoreError>>;

    /// Forgets a subject in one atomic step: its row becomes a tombstone (one is written even if
    /// it had no key), the audit record is written, the snapshots of the streams whose events
    /// hold its sealed data are removed (found by a scan of the tenant's events: forgetting is
    /// rare, appends are not, so no index of streams is kept on the append path) and an [`SubjectForgotten`](super::SubjectForgotten) event is appended to the
    /// stream `es.subject-{digest}`. A second call returns the first record and only removes the
    /// subject's snapshots again (written meanwhile by a process whose key cache held the key).
    fn forget<'a>(
        &'a self,
        tenant: &'a TenantId,
        request: &'a ForgetRequest,
    ) -> BoxFuture<'a, Result<ForgetOutcome, StoreError>>;

    /// The audit trail, oldest first: one subject's records, or the tenant's.
    fn audit_trail<'a>(
        &'a self,
        tenant: &'a TenantId,
        subject: Option<SubjectDigest>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>>;

    /// Up to `limit` active keys, of any tenant, not wrapped by master key `current`.
    fn keys_to_rewrap<'a>(
        &'a self,
        current: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StaleKey>, StoreError>>;

    /// Replaces a wrapped key if it is still `old` (compare and set); false if it changed.
    fn rewrap<'a>(
        &'a self,
        tenant: &'a TenantId,
        subject: SubjectDigest,
        old: &'a WrappedKey,
        new: &'a WrappedKey,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}
