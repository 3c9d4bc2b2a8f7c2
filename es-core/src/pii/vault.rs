//! The vault: seals `#[pii]` fields on append, opens them on read, forgets subjects, rotates the
//! master key. Backends hold one and call it; applications reach it through the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use super::envelope::{self, Object, REDACTED_JSON};
use super::keys::SubjectKey;
use super::{
    AuditEntry, DataKey, ForgetOutcome, ForgetRequest, KeyProvider, KeyStore, PiiError, StaleKey,
    StoredKey, SubjectDigest,
};
use crate::event::typed::PiiSubject;
use crate::{EventData, Payload, StoreError, StreamId, TenantId};

/// How long a process trusts a data key it has read before it asks the key store again: after a
/// subject is forgotten, another process may still open its fields for at most this long.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

const CACHE_SIZE: usize = 10_000;

/// Seals personal data with per-subject keys and opens it again; forgets subjects.
///
/// A backend holds one vault (`MemoryStore` always, with a key that lives as long as the process;
/// `PgStore` once a master key is configured) and calls [`Vault::seal`] on every append and
/// [`Vault::open`] on every read, so that the log, snapshots taken from it and every read see
/// the same thing: the value while its subject's key exists, [`Pii::Redacted`](super::Pii) once it
/// is destroyed. Data keys are cached (unwrapped) for [`DEFAULT_CACHE_TTL`]; tombstones for ever.
pub struct Vault {
    keys: Arc<dyn KeyStore>,
    provider: Arc<dyn KeyProvider>,
    /// Keyed by digest alone: a digest already names its tenant.
    cache: Mutex<LruCache<SubjectDigest, Cached, ByDigest>>,
    ttl: Duration,
}

#[derive(Clone)]
enum Cached {
    Active { key: Arc<SubjectKey>, until: Instant },
    Forgotten,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("master_key", &self.provider.current_key_id())
            .field("cache_ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Hashes a subject digest by its first bytes: a digest is uniformly random already, so a keyed
/// hash (the default, `SipHash`) only costs time on every cache lookup.
#[derive(Clone, Copy, Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type ByDigest = std::hash::BuildHasherDefault<DigestHasher>;

/// Keys found for subjects: `None` for a forgotten one.
type Found = HashMap<SubjectDigest, Option<Arc<SubjectKey>>, ByDigest>;

/// One field to seal: which event, which field, where its value is in the payload, whose.
struct Work {
    event: usize,
    field: &'static str,
    start: usize,
    end: usize,
    subject: SubjectDigest,
}

/// The digests of a batch's subjects, each computed once (a digest is a SHA-256).
struct Digests<'a> {
    tenant: &'a TenantId,
    stream: &'a StreamId,
    of_stream: Option<SubjectDigest>,
    by_id: HashMap<String, SubjectDigest>,
}

impl<'a> Digests<'a> {
    fn new(tenant: &'a TenantId, stream: &'a StreamId) -> Self {
        Self { tenant, stream, of_stream: None, by_id: HashMap::new() }
    }

    fn of_stream(&mut self) -> SubjectDigest {
        *self.of_stream.get_or_insert_with(|| SubjectDigest::of(self.tenant, self.stream.as_str()))
    }

    fn of(&mut self, subject: String) -> SubjectDigest {
        let tenant = self.tenant;
        *self.by_id.entry(subject).or_insert_with_key(|subject| SubjectDigest::of(tenant, subject))
    }
}

impl Vault {
    /// A vault over a backend's key store, with master keys from `provider`.
    pub fn new(keys: Arc<dyn KeyStore>, provider: Arc<dyn KeyProvider>) -> Self {
        let size = NonZeroUsize::new(CACHE_SIZE).unwrap_or(NonZeroUsize::MIN);
        let cache = Mutex::new(LruCache::with_hasher(size, ByDigest::default()));
        Self { keys, provider, cache, ttl: DEFAULT_CACHE_TTL }
    }

    /// Sets how long an unwrapped data key is trusted (see [`DEFAULT_CACHE_TTL`]).
    #[must_use]
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The id of the master key new data keys are wrapped with.
    pub fn current_master_key(&self) -> &str {
        self.provider.current_key_id()
    }

    /// Seals the `#[pii]` fields of `events` (those with [`EventData::pii`] set) in place, creating
    /// the subjects' keys on first use. All or nothing: on error the events may be partly sealed
    /// and must not be written (the append fails).
    pub async fn seal(
        &self,
        tenant: &TenantId,
        stream: &StreamId,
        events: &mut [EventData],
    ) -> Result<(), StoreError> {
        self.seal_events(tenant, stream, events).await.map(drop)
    }

    /// Seals an append's `#[pii]` fields (see [`seal`](Self::seal)) and keys its idempotency
    /// fingerprint with the keys of the subjects it holds: the fingerprint hashes the plain
    /// values, and a stored hash of a forgotten e-mail address would confirm a guess of it. Keyed,
    /// it matches a retry while the keys exist and means nothing once they are destroyed.
    pub async fn seal_request(
        &self,
        tenant: &TenantId,
        request: &mut crate::AppendRequest,
    ) -> Result<(), StoreError> {
        let keys = self.seal_events(tenant, &request.stream_id, &mut request.events).await?;
        if let Some((_, fingerprint)) = &mut request.idempotency
            && !keys.is_empty()
        {
            *fingerprint = keyed_fingerprint(*fingerprint, &keys);
        }
        Ok(())
    }

    /// Whether `record`, left by an append whose stored payloads are `sealed_payloads`, was made
    /// by a request with `fingerprint` keyed as [`seal_request`](Self::seal_request) keyed it (see
    /// [`EventStore::fingerprint_matches`]; a backend compares the bytes first, and asks this
    /// when they differ). `false` when the payloads hold no sealed field; fails with
    /// [`PiiError::SubjectForgotten`] once one of their subjects is forgotten.
    ///
    /// [`EventStore::fingerprint_matches`]: crate::EventStore::fingerprint_matches
    pub async fn keyed_fingerprint_matches(
        &self,
        tenant: &TenantId,
        record: &crate::IdempotencyRecord,
        fingerprint: &crate::Fingerprint,
        sealed_payloads: &[Payload],
    ) -> Result<bool, StoreError> {
        let mut found = Vec::new();
        for payload in sealed_payloads {
            envelope::find_sealed(payload.as_bytes(), &mut found)?;
        }
        let subjects = distinct(found.iter().map(|f| f.subject));
        if subjects.is_empty() {
            return Ok(false);
        }
        let mut keys = BTreeMap::new();
        for (subject, key) in self.keys_for_read(tenant, &subjects).await? {
            keys.insert(subject, key.ok_or(PiiError::SubjectForgotten { subject })?);
        }
        Ok(keyed_fingerprint(*fingerprint, &keys) == record.fingerprint)
    }

    /// Seals `events`; returns the keys used, by subject (in digest order).
    async fn seal_events(
        &self,
        tenant: &TenantId,
        stream: &StreamId,
        events: &mut [EventData],
    ) -> Result<BTreeMap<SubjectDigest, Arc<SubjectKey>>, StoreError> {
        // The plan borrows the payloads' texts (shared bytes) while the payloads are replaced.
        let texts: Vec<Option<bytes::Bytes>> = events
            .iter()
            .map(|event| (!event.pii.is_empty()).then(|| event.payload.shared_bytes()))
            .collect();
        let mut digests = Digests::new(tenant, stream);
        let mut work = Vec::new();
        for (index, text) in texts.iter().enumerate() {
            if let Some(text) = text {
                plan(index, &events[index], text, &mut digests, &mut work)?;
            }
        }
        let keys = self.keys_for_write(tenant, &distinct(work.iter().map(|w| w.subject))).await?;
        let mut aad = Vec::new();
        // `work` is in event order, each event's fields in text order.
        for items in work.chunk_by(|a, b| a.event == b.event) {
            let index = items[0].event;
            let Some(text) = &texts[index] else { continue };
            let sealed = envelope::splice(
                text,
                items,
                |item| (item.start, item.end),
                |out, item| {
                    envelope::associated_data(&mut aad, tenant, item.field, item.subject);
                    let plaintext = &text[item.start..item.end];
                    envelope::seal_into(
                        out,
                        &keys[&item.subject].cipher,
                        &aad,
                        item.subject,
                        plaintext,
                    )
                },
            )?;
            events[index].payload = Payload::from_sealed(sealed);
        }
        Ok(keys)
    }

    /// Opens the sealed fields of `payloads` in place: the value while the subject's key exists,
    /// `{"$redacted":true}` once it was forgotten. Any other failure (a wrong master key, an altered
    /// value, a missing key row) is an error: nothing is ever returned half-opened or garbled.
    pub async fn open(
        &self,
        tenant: &TenantId,
        payloads: Vec<&mut Payload>,
    ) -> Result<(), StoreError> {
        let sealed: Vec<&mut Payload> = payloads
            .into_iter()
            .filter(|payload| envelope::contains_sealed(payload.as_bytes()))
            .collect();
        if sealed.is_empty() {
            return Ok(());
        }
        // The texts are shared bytes: what is found in them borrows them while the payloads are
        // replaced below.
        let texts: Vec<bytes::Bytes> =
            sealed.iter().map(|payload| payload.shared_bytes()).collect();
        let mut found = Vec::with_capacity(texts.len());
        let mut ends = Vec::with_capacity(texts.len());
        for text in &texts {
            envelope::find_sealed(text, &mut found)?;
            ends.push(found.len());
        }
        let keys = self.keys_for_read(tenant, &distinct(found.iter().map(|f| f.subject))).await?;
        let (mut aad, mut scratch) = (Vec::new(), Vec::new());
        let mut first = 0;
        for ((text, payload), end) in texts.iter().zip(sealed).zip(ends) {
            let items = &found[first..end];
            let opened = envelope::splice(
                text,
                items,
                |item| (item.start, item.end),
                |out, item| {
                    match &keys[&item.subject] {
                        None => out.extend_from_slice(REDACTED_JSON.as_bytes()),
                        Some(key) => {
                            envelope::associated_data(&mut aad, tenant, &item.field, item.subject);
                            envelope::open_into(out, &mut scratch, &key.cipher, &aad, item)?;
                        }
                    }
                    Ok::<_, PiiError>(())
                },
            )?;
            first = end;
            *payload = Payload::from_stored(opened);
        }
        Ok(())
    }

    /// Forgets `subject` in `tenant`: destroys its key (a tombstone stays, so nothing new is
    /// sealed for it), writes the audit record, removes snapshots of the streams holding its data
    /// and appends [`SubjectForgotten`](super::SubjectForgotten), all at once. Idempotent: a second
    /// call returns the first record with `first_time: false`, writes nothing else, and removes
    /// again any snapshot of the subject's streams taken meanwhile (by a process whose key
    /// cache still held the key, see [`DEFAULT_CACHE_TTL`]).
    ///
    /// `reason` and `actor` go into the audit trail and must not hold personal data (a ticket
    /// number and an operator id, not a name); both are 1 to 500 characters without control
    /// characters.
    pub async fn forget(
        &self,
        tenant: &TenantId,
        subject: &str,
        reason: &str,
        actor: &str,
    ) -> Result<ForgetOutcome, StoreError> {
        check_text("subject", subject, 1_000)?;
        check_text("reason", reason, 500)?;
        check_text("actor", actor, 500)?;
        let digest = SubjectDigest::of(tenant, subject);
        let request = ForgetRequest {
            subject: subject.to_owned(),
            digest,
            reason: reason.to_owned(),
            actor: actor.to_owned(),
        };
        let outcome = self.keys.forget(tenant, &request).await?;
        self.cache.lock().put(digest, Cached::Forgotten);
        tracing::info!(%tenant, subject = %digest, first_time = outcome.first_time, "data subject forgotten");
        Ok(outcome)
    }

    /// Whether `subject` was forgotten, as the key store says now (no cache).
    pub async fn is_forgotten(&self, tenant: &TenantId, subject: &str) -> Result<bool, StoreError> {
        let digest = SubjectDigest::of(tenant, subject);
        let rows = self.keys.load_keys(tenant, &[digest]).await?;
        Ok(rows.iter().any(|(_, row)| *row == StoredKey::Forgotten))
    }

    /// The audit trail of the tenant, or of one subject (by id), oldest first.
    pub async fn audit_trail(
        &self,
        tenant: &TenantId,
        subject: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let digest = subject.map(|subject| SubjectDigest::of(tenant, subject));
        self.keys.audit_trail(tenant, digest, limit).await
    }

    /// Rewraps every data key not wrapped by the current master key (all tenants), in batches of
    /// `batch`, and returns how many it rewrapped. Events are not touched: they are sealed with the
    /// data keys, which stay the same. Safe to run while the application runs, and to run again.
    /// Once it returns, previous master keys can be removed from the configuration.
    pub async fn rotate(&self, batch: usize) -> Result<u64, StoreError> {
        let current = self.provider.current_key_id().to_owned();
        let mut rewrapped = 0;
        let mut refused = BTreeSet::new();
        loop {
            let stale = self.keys.keys_to_rewrap(&current, batch.max(1) + refused.len()).await?;
            let todo: Vec<_> = stale
                .into_iter()
                .filter(|k| !refused.contains(&(k.tenant.clone(), k.subject)))
                .collect();
            if todo.is_empty() {
                return Ok(rewrapped);
            }
            for StaleKey { tenant, subject, wrapped: old } in todo {
                let context = key_context(&tenant, subject);
                let key = self
                    .provider
                    .unwrap(&context, &old)
                    .await
                    .map_err(|e| name_subject(e, subject))?;
                let new = self.provider.wrap(&context, &key).await?;
                if self.keys.rewrap(&tenant, subject, &old, &new).await? {
                    rewrapped += 1;
                } else {
                    // Changed meanwhile (forgotten, or rewrapped by another process): look again
                    // next round, but never loop on it.
                    refused.insert((tenant, subject));
                }
            }
        }
    }

    /// The keys of `subjects` for reading: `None` for a forgotten subject.
    async fn keys_for_read(
        &self,
        tenant: &TenantId,
        subjects: &[SubjectDigest],
    ) -> Result<Found, StoreError> {
        let (mut found, missing) = self.cached(subjects);
        if !missing.is_empty() {
            let rows = self.keys.load_keys(tenant, &missing).await?;
            for (subject, row) in rows {
                found.insert(subject, self.remember(tenant, subject, row).await?);
            }
            if let Some(subject) = missing.iter().find(|s| !found.contains_key(s)) {
                return Err(PiiError::MissingKey { subject: *subject }.into());
            }
        }
        Ok(found)
    }

    /// The keys of `subjects` for writing, created when new; a forgotten subject is an error.
    async fn keys_for_write(
        &self,
        tenant: &TenantId,
        subjects: &[SubjectDigest],
    ) -> Result<BTreeMap<SubjectDigest, Arc<SubjectKey>>, StoreError> {
        let (mut found, mut missing) = self.cached(subjects);
        if !missing.is_empty() {
            for (subject, row) in self.keys.load_keys(tenant, &missing).await? {
                found.insert(subject, self.remember(tenant, subject, row).await?);
            }
            missing.retain(|subject| !found.contains_key(subject));
        }
        if !missing.is_empty() {
            let mut new = Vec::with_capacity(missing.len());
            for subject in &missing {
                let key = DataKey::generate();
                let wrapped = self.provider.wrap(&key_context(tenant, *subject), &key).await?;
                new.push((*subject, wrapped));
            }
            for (subject, row) in self.keys.insert_keys(tenant, &new).await? {
                found.insert(subject, self.remember(tenant, subject, row).await?);
            }
        }
        subjects
            .iter()
            .map(|subject| match found.get(subject) {
                Some(Some(key)) => Ok((*subject, Arc::clone(key))),
                Some(None) => Err(PiiError::SubjectForgotten { subject: *subject }.into()),
                None => Err(PiiError::MissingKey { subject: *subject }.into()),
            })
            .collect()
    }

    /// Splits `subjects` into those the cache answers and those it does not.
    #[allow(clippy::type_complexity)]
    fn cached(&self, subjects: &[SubjectDigest]) -> (Found, Vec<SubjectDigest>) {
        let now = Instant::now();
        let mut cache = self.cache.lock();
        let mut found = Found::with_capacity_and_hasher(subjects.len(), ByDigest::default());
        let mut missing = Vec::new();
        for subject in subjects {
            match cache.get(subject) {
                Some(Cached::Forgotten) => {
                    found.insert(*subject, None);
                }
                Some(Cached::Active { key, until }) if *until > now => {
                    found.insert(*subject, Some(Arc::clone(key)));
                }
                _ => missing.push(*subject),
            }
        }
        (found, missing)
    }

    /// Unwraps a stored row and caches the result.
    async fn remember(
        &self,
        tenant: &TenantId,
        subject: SubjectDigest,
        row: StoredKey,
    ) -> Result<Option<Arc<SubjectKey>>, StoreError> {
        let cached = match row {
            StoredKey::Forgotten => Cached::Forgotten,
            StoredKey::Active(wrapped) => {
                let key = self
                    .provider
                    .unwrap(&key_context(tenant, subject), &wrapped)
                    .await
                    .map_err(|error| name_subject(error, subject))?;
                Cached::Active {
                    key: Arc::new(key.subject_key()),
                    until: Instant::now() + self.ttl,
                }
            }
        };
        self.cache.lock().put(subject, cached.clone());
        Ok(match cached {
            Cached::Active { key, .. } => Some(key),
            Cached::Forgotten => None,
        })
    }
}

/// `fingerprint` keyed with each subject's fingerprint key in turn (HMAC-SHA-256, subjects in
/// digest order).
fn keyed_fingerprint(
    fingerprint: crate::Fingerprint,
    keys: &BTreeMap<SubjectDigest, Arc<SubjectKey>>,
) -> crate::Fingerprint {
    use hmac::{Hmac, Mac};
    let mut bytes = fingerprint.0;
    for key in keys.values() {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.fingerprint_key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"es.idempotency.fingerprint\0");
        mac.update(&bytes);
        bytes = mac.finalize().into_bytes().into();
    }
    crate::Fingerprint(bytes)
}

/// The authenticated context of a wrapped data key: its tenant and subject.
fn key_context(tenant: &TenantId, subject: SubjectDigest) -> Vec<u8> {
    let mut context = b"es.pii.key\0".to_vec();
    context.extend_from_slice(tenant.as_str().as_bytes());
    context.push(0);
    context.extend_from_slice(subject.as_bytes());
    context
}

/// Provider errors do not know the subject; the vault does.
fn name_subject(error: PiiError, subject: SubjectDigest) -> PiiError {
    match error {
        PiiError::UnknownMasterKey { master_key, .. } => {
            PiiError::UnknownMasterKey { subject, master_key }
        }
        PiiError::WrongMasterKey { master_key, .. } => {
            PiiError::WrongMasterKey { subject, master_key }
        }
        other => other,
    }
}

/// Finds the fields of one event to seal, where their values are and their subjects.
fn plan(
    index: usize,
    event: &EventData,
    text: &[u8],
    digests: &mut Digests<'_>,
    work: &mut Vec<Work>,
) -> Result<(), StoreError> {
    let field0 = event.pii[0].field;
    let object = Object::parse(text)
        .map_err(|e| invalid(index, field0, &e.to_string()))?
        .ok_or_else(|| invalid(index, field0, "the payload is not a JSON object"))?;
    let first = work.len();
    for pii in event.pii {
        let Some(value) = object.get(pii.field) else {
            continue; // skipped by the serializer: nothing to seal
        };
        if envelope::is_redacted(value) {
            continue; // a redacted value holds nothing to seal
        }
        let subject = match pii.subject {
            PiiSubject::Stream => digests.of_stream(),
            PiiSubject::Field(name) => {
                let raw = object.get(name).ok_or_else(|| {
                    invalid(index, pii.field, &format!("its subject field `{name}` is missing"))
                })?;
                let id = subject_text(raw.get()).ok_or_else(|| {
                    invalid(
                        index,
                        pii.field,
                        &format!(
                            "its subject field `{name}` must hold a non-empty string or an integer"
                        ),
                    )
                })?;
                digests.of(id)
            }
        };
        let start = value.get().as_ptr() as usize - text.as_ptr() as usize;
        let end = start + value.get().len();
        work.push(Work { event: index, field: pii.field, start, end, subject });
    }
    // Spliced in the order of the text.
    work[first..].sort_unstable_by_key(|item| item.start);
    Ok(())
}

/// A subject id from JSON: a non-empty string, or an integer's digits.
fn subject_text(json: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(json).ok()? {
        serde_json::Value::String(text) if !text.is_empty() => Some(text),
        serde_json::Value::Number(number) if number.is_i64() || number.is_u64() => {
            Some(number.to_string())
        }
        _ => None,
    }
}

fn invalid(index: usize, field: &str, reason: &str) -> StoreError {
    PiiError::InvalidField { index, field: field.to_owned(), reason: reason.to_owned() }.into()
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), StoreError> {
    let chars = text.chars().count();
    if chars == 0 || chars > max || text.chars().any(char::is_control) {
        return Err(PiiError::InvalidRequest(format!(
            "{what} must be 1 to {max} characters without control characters"
        ))
        .into());
    }
    Ok(())
}

/// The subjects, each once, in digest order.
fn distinct(subjects: impl Iterator<Item = SubjectDigest>) -> Vec<SubjectDigest> {
    let mut subjects: Vec<SubjectDigest> = subjects.collect();
    subjects.sort_unstable();
    subjects.dedup();
    subjects
}
