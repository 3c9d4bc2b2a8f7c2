//! The key store of personal data in `pii_keys` and `pii_audit` (migration `20261201000001`):
//! wrapped data keys, tombstones, the audit trail. A forgetting is one transaction: tombstone,
//! audit record, snapshot removal and its `es.subject_forgotten` event commit together or not at
//! all.

use std::sync::Weak;

use chrono::{DateTime, Utc};
use es_core::pii::{
    AuditEntry, BoxFuture, ForgetOutcome, ForgetRequest, KeyStore, StaleKey, StoredKey,
    SubjectDigest, SubjectForgotten, WrappedKey,
};
use es_core::{AppendOptions, AppendRequest, Event, ExpectedVersion, StoreError, TenantId};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::read_error;
use crate::row::bound_i64;
use crate::sql;
use crate::store::Inner;

/// The [`KeyStore`] of a [`PgStore`](crate::PgStore). It holds the store weakly: the store holds
/// the vault, which holds this.
pub(crate) struct PgKeys {
    pub(crate) inner: Weak<Inner>,
}

impl PgKeys {
    fn inner(&self) -> Result<std::sync::Arc<Inner>, StoreError> {
        self.inner
            .upgrade()
            .ok_or_else(|| StoreError::backend("key store", false, "the store was dropped"))
    }
}

fn digest(row: &PgRow, column: &str) -> Result<SubjectDigest, StoreError> {
    let bytes: Vec<u8> = row.try_get(column).map_err(|e| read_error("key store", e))?;
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::corrupt("a subject digest in pii_keys is not 16 bytes"))?;
    Ok(SubjectDigest::from_bytes(bytes))
}

fn stored_key(row: &PgRow) -> Result<(SubjectDigest, StoredKey), StoreError> {
    let subject = digest(row, "subject")?;
    let master_key: Option<String> =
        row.try_get("master_key").map_err(|e| read_error("key store", e))?;
    let wrapped: Option<Vec<u8>> =
        row.try_get("wrapped").map_err(|e| read_error("key store", e))?;
    Ok(match (master_key, wrapped) {
        (Some(master_key), Some(bytes)) => {
            (subject, StoredKey::Active(WrappedKey { master_key, bytes }))
        }
        _ => (subject, StoredKey::Forgotten),
    })
}

fn audit_entry(row: &PgRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        subject: digest(row, "subject")?,
        actor: row.try_get("actor").map_err(|e| read_error("audit trail", e))?,
        reason: row.try_get("reason").map_err(|e| read_error("audit trail", e))?,
        at: row.try_get("at").map_err(|e| read_error("audit trail", e))?,
    })
}

/// Removes the snapshots of the streams holding a subject's data.
async fn drop_snapshots(
    tx: &mut sqlx::PgConnection,
    tenant: &TenantId,
    digest: SubjectDigest,
) -> Result<u64, StoreError> {
    let done = sqlx::query(sql::PII_DROP_SNAPSHOTS)
        .bind(tenant.as_str())
        .bind(digest.to_string())
        .execute(tx)
        .await
        .map_err(|e| read_error("forget", e))?;
    Ok(done.rows_affected())
}

fn digests(subjects: &[SubjectDigest]) -> Vec<Vec<u8>> {
    subjects.iter().map(|s| s.as_bytes().to_vec()).collect()
}

impl KeyStore for PgKeys {
    fn load_keys<'a>(
        &'a self,
        tenant: &'a TenantId,
        subjects: &'a [SubjectDigest],
    ) -> BoxFuture<'a, Result<Vec<(SubjectDigest, StoredKey)>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner()?;
            let rows = sqlx::query(sql::PII_LOAD_KEYS)
                .bind(tenant.as_str())
                .bind(digests(subjects))
                .fetch_all(&inner.pool_for(tenant))
                .await
                .map_err(|e| read_error("load keys", e))?;
            rows.iter().map(stored_key).collect()
        })
    }

    fn insert_keys<'a>(
        &'a self,
        tenant: &'a TenantId,
        keys: &'a [(SubjectDigest, WrappedKey)],
    ) -> BoxFuture<'a, Result<Vec<(SubjectDigest, StoredKey)>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner()?;
            let rows = sqlx::query(sql::PII_INSERT_KEYS)
                .bind(tenant.as_str())
                .bind(keys.iter().map(|(s, _)| s.as_bytes().to_vec()).collect::<Vec<_>>())
                .bind(keys.iter().map(|(_, w)| w.master_key.as_str()).collect::<Vec<_>>())
                .bind(keys.iter().map(|(_, w)| w.bytes.clone()).collect::<Vec<_>>())
                .fetch_all(&inner.pool_for(tenant))
                .await
                .map_err(|e| read_error("insert keys", e))?;
            let mut stored: Vec<_> = rows.iter().map(stored_key).collect::<Result<_, _>>()?;
            // Subjects another writer created first: their rows, read in a new snapshot.
            let lost: Vec<SubjectDigest> = keys
                .iter()
                .map(|(s, _)| *s)
                .filter(|s| !stored.iter().any(|(t, _)| t == s))
                .collect();
            if !lost.is_empty() {
                stored.extend(self.load_keys(tenant, &lost).await?);
            }
            Ok(stored)
        })
    }

    fn forget<'a>(
        &'a self,
        tenant: &'a TenantId,
        request: &'a ForgetRequest,
    ) -> BoxFuture<'a, Result<ForgetOutcome, StoreError>> {
        Box::pin(async move {
            let inner = self.inner()?;
            let failed = |e| read_error("forget", e);
            let mut tx = inner.pool_for(tenant).begin().await.map_err(failed)?;
            let subject = request.digest.as_bytes().to_vec();
            let tombstoned: Option<DateTime<Utc>> = sqlx::query_scalar(sql::PII_TOMBSTONE)
                .bind(tenant.as_str())
                .bind(&subject)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?;
            let Some(at) = tombstoned else {
                let first = sqlx::query(sql::PII_FIRST_AUDIT)
                    .bind(tenant.as_str())
                    .bind(&subject)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed)?
                    .ok_or_else(|| {
                        StoreError::corrupt(format!(
                            "subject {} is forgotten but has no audit record",
                            request.digest
                        ))
                    })?;
                // Snapshots written since (by a process whose key cache still held the key) go too.
                let removed = drop_snapshots(&mut tx, tenant, request.digest).await?;
                tx.commit().await.map_err(failed)?;
                return Ok(ForgetOutcome {
                    first_time: false,
                    entry: audit_entry(&first)?,
                    snapshots_removed: removed,
                });
            };
            let entry = AuditEntry {
                subject: request.digest,
                actor: request.actor.clone(),
                reason: request.reason.clone(),
                at,
            };
            sqlx::query(sql::PII_AUDIT_INSERT)
                .bind(tenant.as_str())
                .bind(&subject)
                .bind(&entry.actor)
                .bind(&entry.reason)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            let removed = drop_snapshots(&mut tx, tenant, request.digest).await?;
            let event = SubjectForgotten { subject: request.subject.clone() }
                .to_event_data()
                .map_err(|e| StoreError::corrupt(e.to_string()))?;
            let stream = SubjectForgotten::stream(request.digest);
            let append = AppendRequest::new(
                &stream,
                ExpectedVersion::NoStream,
                vec![event],
                AppendOptions::default(),
            )?;
            crate::append::append_in(&inner, tenant, &mut tx, append).await?;
            tx.commit().await.map_err(failed)?;
            Ok(ForgetOutcome { first_time: true, entry, snapshots_removed: removed })
        })
    }

    fn audit_trail<'a>(
        &'a self,
        tenant: &'a TenantId,
        subject: Option<SubjectDigest>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner()?;
            let rows = sqlx::query(sql::PII_AUDIT_TRAIL)
                .bind(tenant.as_str())
                .bind(subject.map(|s| s.as_bytes().to_vec()))
                .bind(bound_i64(limit as u64))
                .fetch_all(&inner.pool_for(tenant))
                .await
                .map_err(|e| read_error("audit trail", e))?;
            rows.iter().map(audit_entry).collect()
        })
    }

    fn keys_to_rewrap<'a>(
        &'a self,
        current: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StaleKey>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner()?;
            let rows = sqlx::query(sql::PII_STALE_KEYS)
                .bind(current)
                .bind(bound_i64(limit as u64))
                .fetch_all(&inner.pool)
                .await
                .map_err(|e| read_error("keys to rewrap", e))?;
            rows.iter()
                .map(|row| {
                    let tenant: String =
                        row.try_get("tenant").map_err(|e| read_error("keys to rewrap", e))?;
                    let tenant = TenantId::new(&tenant).map_err(|e| {
                        StoreError::corrupt_because(format!("tenant {tenant:?} in pii_keys"), e)
                    })?;
                    match stored_key(row)? {
                        (subject, StoredKey::Active(wrapped)) => {
                            Ok(StaleKey { tenant, subject, wrapped })
                        }
                        (subject, StoredKey::Forgotten) => {
                            Err(StoreError::corrupt(format!("key of {subject} has no material")))
                        }
                    }
                })
                .collect()
        })
    }

    fn rewrap<'a>(
        &'a self,
        tenant: &'a TenantId,
        subject: SubjectDigest,
        old: &'a WrappedKey,
        new: &'a WrappedKey,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let inner = self.inner()?;
            let done = sqlx::query(sql::PII_REWRAP)
                .bind(tenant.as_str())
                .bind(subject.as_bytes().to_vec())
                .bind(&old.master_key)
                .bind(&old.bytes)
                .bind(&new.master_key)
                .bind(&new.bytes)
                .execute(&inner.pool_for(tenant))
                .await
                .map_err(|e| read_error("rewrap", e))?;
            Ok(done.rows_affected() == 1)
        })
    }
}
