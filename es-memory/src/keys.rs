//! The in-memory key store: wrapped data keys, tombstones and the audit trail, beside the tenants' logs (a forgetting removes snapshots and appends its event there).

use std::collections::HashMap;
use std::sync::Arc;

use es_core::pii::{
    AuditEntry, BoxFuture, ForgetOutcome, ForgetRequest, KeyStore, StaleKey, StoredKey,
    SubjectDigest, SubjectForgotten, WrappedKey,
};
use es_core::{
    AppendOptions, AppendRequest, Event, ExpectedVersion, StoreError, StreamId, TenantId,
};
use parking_lot::Mutex;

use crate::store::Inner;

/// What the key store holds.
#[derive(Default)]
pub(crate) struct KeyState {
    rows: HashMap<(TenantId, SubjectDigest), Row>,
    audit: Vec<(TenantId, AuditEntry)>,
}

enum Row {
    Active(WrappedKey),
    /// The first forgetting's record.
    Forgotten(AuditEntry),
}

impl Row {
    fn stored(&self) -> StoredKey {
        match self {
            Self::Active(wrapped) => StoredKey::Active(wrapped.clone()),
            Self::Forgotten(_) => StoredKey::Forgotten,
        }
    }
}

impl KeyState {
    /// The tenant's key rows, links and audit trail as text.
    pub(crate) fn dump(&self, tenant: &TenantId) -> String {
        use std::fmt::Write as _;
        let mut text = String::new();
        for ((t, subject), row) in &self.rows {
            if t == tenant {
                let _ = writeln!(text, "{subject} {:?}", row.stored());
            }
        }
        for (t, entry) in &self.audit {
            if t == tenant {
                let _ = writeln!(text, "{entry:?}");
            }
        }
        text
    }
}

/// The [`KeyStore`] of a [`MemoryStore`](crate::MemoryStore).
pub(crate) struct MemoryKeys {
    pub(crate) inner: Arc<Inner>,
}

impl MemoryKeys {
    fn state(&self) -> &Mutex<KeyState> {
        &self.inner.keys
    }
}

impl KeyStore for MemoryKeys {
    fn load_keys<'a>(
        &'a self,
        tenant: &'a TenantId,
        subjects: &'a [SubjectDigest],
    ) -> BoxFuture<'a, Result<Vec<(SubjectDigest, StoredKey)>, StoreError>> {
        let state = self.state().lock();
        let rows = subjects
            .iter()
            .filter_map(|s| state.rows.get(&(tenant.clone(), *s)).map(|row| (*s, row.stored())))
            .collect();
        Box::pin(std::future::ready(Ok(rows)))
    }

    fn insert_keys<'a>(
        &'a self,
        tenant: &'a TenantId,
        keys: &'a [(SubjectDigest, WrappedKey)],
    ) -> BoxFuture<'a, Result<Vec<(SubjectDigest, StoredKey)>, StoreError>> {
        let mut state = self.state().lock();
        let rows = keys
            .iter()
            .map(|(subject, wrapped)| {
                let row = state
                    .rows
                    .entry((tenant.clone(), *subject))
                    .or_insert_with(|| Row::Active(wrapped.clone()));
                (*subject, row.stored())
            })
            .collect();
        Box::pin(std::future::ready(Ok(rows)))
    }

    fn forget<'a>(
        &'a self,
        tenant: &'a TenantId,
        request: &'a ForgetRequest,
    ) -> BoxFuture<'a, Result<ForgetOutcome, StoreError>> {
        Box::pin(std::future::ready(self.forget_now(tenant, request)))
    }

    fn audit_trail<'a>(
        &'a self,
        tenant: &'a TenantId,
        subject: Option<SubjectDigest>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>> {
        let state = self.state().lock();
        let entries = state
            .audit
            .iter()
            .filter(|(t, entry)| t == tenant && subject.is_none_or(|s| s == entry.subject))
            .take(limit)
            .map(|(_, entry)| entry.clone())
            .collect();
        Box::pin(std::future::ready(Ok(entries)))
    }

    fn keys_to_rewrap<'a>(
        &'a self,
        current: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StaleKey>, StoreError>> {
        let state = self.state().lock();
        let mut found: Vec<_> = state
            .rows
            .iter()
            .filter_map(|((tenant, subject), row)| match row {
                Row::Active(wrapped) if wrapped.master_key != current => Some(StaleKey {
                    tenant: tenant.clone(),
                    subject: *subject,
                    wrapped: wrapped.clone(),
                }),
                _ => None,
            })
            .collect();
        found.sort_by(|a, b| (&a.tenant, a.subject).cmp(&(&b.tenant, b.subject)));
        found.truncate(limit);
        Box::pin(std::future::ready(Ok(found)))
    }

    fn rewrap<'a>(
        &'a self,
        tenant: &'a TenantId,
        subject: SubjectDigest,
        old: &'a WrappedKey,
        new: &'a WrappedKey,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut state = self.state().lock();
        let swapped = match state.rows.get_mut(&(tenant.clone(), subject)) {
            Some(Row::Active(wrapped)) if wrapped == old => {
                *wrapped = new.clone();
                true
            }
            _ => false,
        };
        Box::pin(std::future::ready(Ok(swapped)))
    }
}

impl MemoryKeys {
    /// Under the key store's lock: nothing else seals, opens or forgets meanwhile, so the
    /// tombstone, the audit record, the snapshot removal and the event land together.
    fn forget_now(
        &self,
        tenant: &TenantId,
        request: &ForgetRequest,
    ) -> Result<ForgetOutcome, StoreError> {
        let mut state = self.state().lock();
        let key = (tenant.clone(), request.digest);
        let log = self.inner.log(tenant.clone());
        if let Some(Row::Forgotten(entry)) = state.rows.get(&key) {
            // Snapshots written since (by a process whose key cache still held the key) go too.
            let snapshots_removed = drop_snapshots(&key, &log);
            return Ok(ForgetOutcome {
                first_time: false,
                entry: entry.clone(),
                snapshots_removed,
            });
        }
        let forgotten = SubjectForgotten { subject: request.subject.clone() };
        let event = forgotten.to_event_data().map_err(|e| StoreError::corrupt(e.to_string()))?;
        let stream = SubjectForgotten::stream(request.digest);
        let append = AppendRequest::new(
            &stream,
            ExpectedVersion::NoStream,
            vec![event],
            AppendOptions::default(),
        )?;
        log.append(append, &self.inner.positions)?;
        let entry = AuditEntry {
            subject: request.digest,
            actor: request.actor.clone(),
            reason: request.reason.clone(),
            at: es_core::event::recorded_now(),
        };
        let snapshots_removed = drop_snapshots(&key, &log);
        state.rows.insert(key, Row::Forgotten(entry.clone()));
        state.audit.push((tenant.clone(), entry.clone()));
        Ok(ForgetOutcome { first_time: true, entry, snapshots_removed })
    }
}

/// Removes the snapshots of the streams whose events hold the subject's sealed data (a scan:
/// forgetting is rare, and appends keep no index for it).
fn drop_snapshots(key: &(TenantId, SubjectDigest), log: &crate::tenant_log::TenantLog) -> u64 {
    let digest = key.1.to_string();
    let mut log_state = log.state.write();
    let streams: std::collections::HashSet<StreamId> = log_state
        .events
        .iter()
        .filter(|event| event.payload.as_str().contains(digest.as_str()))
        .map(|event| event.stream_id.clone())
        .collect();
    let mut removed = 0;
    for stream in &streams {
        removed += u64::from(log_state.snapshots.remove(stream).is_some());
    }
    removed
}
