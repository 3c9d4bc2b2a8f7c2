//! The append: one call of `append_events()`, mapped to the contract's results and errors.

use std::sync::Arc;
use std::time::Duration;

use es_core::{
    AppendRequest, AppendResult, EventId, ExpectedVersion, Position, StoreError, StreamId, TenantId,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{
    IDEMPOTENCY_RACE, VERSION_RACE, constraint, has_sqlstate, outcome_unknown, read_error,
    rolled_back_transiently,
};
use es_core::outbox::partition_of;

use crate::row::{bound_i64, corrupt_in, stored_u64};
use crate::sql;
use crate::store::Inner;

const WRITTEN: i16 = 0;
const REPLAYED: i16 = 1;
const VERSION_CONFLICT: i16 = 2;
const IDEMPOTENCY_CONFLICT: i16 = 3;

/// The batch as the columns `append_events()` takes.
pub(crate) struct Columns<'a> {
    pub(crate) event_ids: Vec<Uuid>,
    pub(crate) event_types: Vec<&'a str>,
    pub(crate) schema_versions: Vec<i32>,
    pub(crate) payloads: Vec<&'a str>,
    pub(crate) metadata: Vec<Option<String>>,
}

impl<'a> Columns<'a> {
    pub(crate) fn of(request: &'a AppendRequest) -> Result<Self, StoreError> {
        Ok(Self::with_metadata(request, metadata_of(request)?))
    }

    /// The columns, with each event's metadata already serialized ([`metadata_of`]).
    pub(crate) fn with_metadata(request: &'a AppendRequest, metadata: Vec<Option<String>>) -> Self {
        let events = &request.events;
        Self {
            event_ids: events.iter().map(|event| *event.event_id.as_uuid()).collect(),
            event_types: events.iter().map(|event| event.event_type.as_str()).collect(),
            schema_versions: events.iter().map(schema_version).collect(),
            payloads: events.iter().map(|event| event.payload.as_str()).collect(),
            metadata,
        }
    }
}

/// Each event's metadata as JSON (`None` when empty), the `metadata` column.
pub(crate) fn metadata_of(request: &AppendRequest) -> Result<Vec<Option<String>>, StoreError> {
    request
        .events
        .iter()
        .map(|event| {
            if event.metadata.is_empty() {
                Ok(None)
            } else {
                serde_json::to_string(&event.metadata).map(Some)
            }
        })
        .collect::<Result<_, _>>()
        .map_err(|error| StoreError::backend("append", false, error))
}

/// An event's schema version as the `integer` column takes it.
pub(crate) fn schema_version(event: &es_core::EventData) -> i32 {
    // AppendRequest::new has checked that every schema version fits in an i32.
    i32::try_from(event.schema_version).unwrap_or(i32::MAX)
}

/// The publications as the columns the outbox insert takes (empty when there are none).
pub(crate) struct Published<'a> {
    partition: i16,
    ordinals: Vec<i64>,
    subjects: Vec<&'a str>,
    payloads: Vec<&'a [u8]>,
    headers: Vec<String>,
}

impl<'a> Published<'a> {
    fn of(request: &'a AppendRequest) -> Result<Option<Self>, StoreError> {
        if request.publications.is_empty() {
            return Ok(None);
        }
        let publications = &request.publications;
        let headers = publications
            .iter()
            .map(|publication| {
                let pairs: Vec<(&str, &str)> = publication.headers.iter().collect();
                serde_json::to_string(&pairs)
            })
            .collect::<Result<_, _>>()
            .map_err(|error| StoreError::backend("append", false, error))?;
        Ok(Some(Self {
            // PARTITIONS is far below i16::MAX.
            partition: i16::try_from(partition_of(&request.stream_id)).unwrap_or(0),
            ordinals: publications.iter().map(|p| bound_i64(p.event as u64 + 1)).collect(),
            subjects: publications.iter().map(|p| p.subject.as_str()).collect(),
            payloads: publications.iter().map(|p| &p.payload[..]).collect(),
            headers,
        }))
    }
}

/// Binds an append's event columns as five arrays, in the order every append statement takes them.
trait BindEvents<'q> {
    fn bind_events(self, columns: &'q Columns<'q>) -> Self;
}

impl<'q, O> BindEvents<'q>
    for sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
{
    fn bind_events(self, columns: &'q Columns<'q>) -> Self {
        self.bind(&columns.event_ids)
            .bind(&columns.event_types)
            .bind(&columns.schema_versions)
            .bind(&columns.payloads)
            .bind(&columns.metadata)
    }
}

fn expected_columns(expected: ExpectedVersion) -> (i16, i64) {
    match expected {
        ExpectedVersion::Any => (0, 0),
        ExpectedVersion::NoStream => (1, 0),
        ExpectedVersion::StreamExists => (2, 0),
        // No stream reaches i64::MAX events, so a larger expectation is a conflict either way.
        ExpectedVersion::Exact(version) => (3, bound_i64(version)),
    }
}

/// What an append answered: its result, and whether it was a replay (an idempotent append
/// written before, whose record answered now: nothing was written this time, which the quota
/// ledger must not count again).
pub(crate) struct Appended {
    pub(crate) result: AppendResult,
    pub(crate) replayed: bool,
}

impl Appended {
    /// An append that wrote its events now.
    fn written(result: AppendResult) -> Self {
        Self { result, replayed: false }
    }
}

/// An append through the store's pool: group commit, a fast path, or `append_events()`.
pub(crate) async fn append(
    inner: &Arc<Inner>,
    pool: &PgPool,
    tenant: &TenantId,
    request: AppendRequest,
) -> Result<Appended, StoreError> {
    let exact = match request.expected {
        ExpectedVersion::NoStream => Some(0),
        ExpectedVersion::Exact(version) => Some(version),
        ExpectedVersion::Any | ExpectedVersion::StreamExists => None,
    };
    if let Some(version) = exact
        && let Some(group) = &inner.group_commit
        && request.idempotency.is_none()
        && request.publications.is_empty()
        && i64::try_from(version).is_ok()
    {
        return group.append(inner, tenant, request, version).await.map(Appended::written);
    }
    let columns = Columns::of(&request)?;
    let published = Published::of(&request)?;
    if let (Some(version), None) = (exact, &request.idempotency) {
        return append_exact(inner, pool, tenant, &request, &columns, published.as_ref(), version)
            .await
            .map(Appended::written);
    }
    if let (Some(version), Some(_), None) = (exact, &request.idempotency, &published)
        && let Some(result) =
            append_keyed_exact(inner, pool, tenant, &request, &columns, version).await
    {
        // The keyed fast path only ever writes (a replay is the function's answer).
        return result.map(Appended::written);
    }
    let key = request.idempotency.as_ref().map(|(key, _)| key.as_str());
    let carrier = inner.wakeups.carrier();
    let mut retries = Retries::new(inner.options.append_attempts);
    loop {
        let call = append_events(tenant, &request, &columns, published.as_ref(), carrier.channel())
            .fetch_one(pool)
            .await;
        let error = match call {
            Ok(row) => {
                let written = row.outcome == WRITTEN;
                let result = outcome(tenant, &request, row);
                if written && result.is_ok() {
                    inner.wakeups.appended(&inner.pool, &carrier);
                } else {
                    // A replay or a conflict sent no notification, though it may have claimed one.
                    inner.wakeups.failed(&inner.pool, &carrier);
                }
                return result;
            }
            Err(error) => error,
        };
        inner.wakeups.failed(&inner.pool, &carrier);
        if constraint(&error) == Some("events_event_id_key") {
            return Err(duplicate_event_id(inner, tenant, &columns.event_ids).await);
        }
        // Another writer took one of the versions: one outside this function's lock (the fast
        // paths take none: an `Exact` append needs none), which committed first. Nothing was
        // written. Deciding again is the caller's business when it expected a version; with Any or
        // StreamExists it is ours, and is never a conflict: each race lost is another append
        // committed, so we try again at once (the stream has moved on), up to `ANY_RACES` times,
        // and then answer a retryable error, never a `VersionConflict` the caller did not ask for.
        if has_sqlstate(&error, VERSION_RACE) {
            if !matches!(request.expected, ExpectedVersion::Any | ExpectedVersion::StreamExists) {
                return Err(version_conflict(inner, tenant, &request).await);
            }
            if retries.after_race() {
                continue;
            }
            tracing::warn!(stream = %request.stream_id, races = ANY_RACES, "es.append: an Any append lost every race to writers expecting versions");
            return Err(StoreError::backend("append", true, error));
        }
        // A statement the server rolled back wrote nothing; a lost connection may have committed,
        // which only an idempotency key makes safe to retry (the retry then replays the record).
        let safe_to_retry = has_sqlstate(&error, IDEMPOTENCY_RACE)
            || rolled_back_transiently(&error)
            || (outcome_unknown(&error) && key.is_some());
        if safe_to_retry && retries.after_failure(&error, &request.stream_id).await {
            continue;
        }
        return Err(StoreError::backend("append", safe_to_retry, error));
    }
}

/// The call of `append_events()` (with the outbox insert when there are publications), bound.
fn append_events<'q>(
    tenant: &'q TenantId,
    request: &'q AppendRequest,
    columns: &'q Columns<'q>,
    published: Option<&'q Published<'q>>,
    channel: Option<&'q str>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, AppendRow, sqlx::postgres::PgArguments> {
    let (expected_kind, expected_version) = expected_columns(request.expected);
    let (key, fingerprint) = match &request.idempotency {
        Some((key, fingerprint)) => (Some(key.as_str()), Some(&fingerprint.0[..])),
        None => (None, None),
    };
    let sql = if published.is_some() { sql::APPEND_PUBLISHING } else { sql::APPEND };
    let call = sqlx::query_as::<_, AppendRow>(sql)
        .bind(tenant.as_str())
        .bind(request.stream_id.as_str())
        .bind(expected_kind)
        .bind(expected_version)
        .bind_events(columns)
        .bind(key)
        .bind(fingerprint);
    match published {
        Some(published) => call
            .bind(published.partition)
            .bind(&published.ordinals)
            .bind(&published.subjects)
            .bind(&published.payloads)
            .bind(&published.headers)
            .bind(channel),
        None => call.bind(channel),
    }
}

/// An append on the caller's connection, inside the caller's transaction: always through
/// `append_events()` (a version conflict is an outcome there, not an error that would abort the
/// caller's transaction), never retried (a failed statement aborts the caller's transaction; the
/// caller rolls back and decides), and the wake-up is a `pg_notify` in the same statement (so in
/// the same transaction, with no round trip of its own), so readers elsewhere hear of the events
/// when, and only if, they commit.
pub(crate) async fn append_in(
    inner: &Inner,
    tenant: &TenantId,
    connection: &mut sqlx::PgConnection,
    request: AppendRequest,
) -> Result<Appended, StoreError> {
    let columns = Columns::of(&request)?;
    let published = Published::of(&request)?;
    let channel = Some(inner.wakeups.channel());
    match append_events(tenant, &request, &columns, published.as_ref(), channel)
        .fetch_one(&mut *connection)
        .await
    {
        Ok(row) => outcome(tenant, &request, row),
        Err(error) => Err(if constraint(&error) == Some("events_event_id_key") {
            duplicate_event_id(inner, tenant, &columns.event_ids).await
        } else if has_sqlstate(&error, VERSION_RACE) {
            version_conflict(inner, tenant, &request).await
        } else {
            // The caller's transaction is aborted: nothing of it will commit.
            StoreError::backend("append", false, error)
        }),
    }
}

/// The fast path (see [`insert_batch!`]); retries only what the server rolled back.
pub(crate) async fn append_exact(
    inner: &Inner,
    pool: &PgPool,
    tenant: &TenantId,
    request: &AppendRequest,
    columns: &Columns<'_>,
    published: Option<&Published<'_>>,
    version: u64,
) -> Result<AppendResult, StoreError> {
    let Ok(expected) = i64::try_from(version) else {
        // No stream reaches i64::MAX events.
        return Err(version_conflict(inner, tenant, request).await);
    };
    let carrier = inner.wakeups.carrier();
    let mut retries = Retries::new(inner.options.append_attempts);
    let result = loop {
        let single = columns.event_ids.len() == 1;
        // A single event without publications has a statement without the NOTIFY, for when it
        // carries none; every other statement takes the channel or NULL.
        let plain = single && published.is_none() && carrier.channel().is_none();
        let sql = match (single, expected == 0, published.is_some()) {
            (true, true, false) if plain => sql::APPEND_ONE_NEW,
            (true, false, false) if plain => sql::APPEND_ONE_AFTER,
            (true, true, false) => sql::APPEND_ONE_NEW_NOTIFYING,
            (true, false, false) => sql::APPEND_ONE_AFTER_NOTIFYING,
            (false, true, false) => sql::APPEND_NEW,
            (false, false, false) => sql::APPEND_AFTER,
            (true, true, true) => sql::APPEND_ONE_NEW_PUBLISHING,
            (true, false, true) => sql::APPEND_ONE_AFTER_PUBLISHING,
            (false, true, true) => sql::APPEND_NEW_PUBLISHING,
            (false, false, true) => sql::APPEND_AFTER_PUBLISHING,
        };
        let query = sqlx::query_as::<_, (i64, Option<i64>, Option<i64>)>(sql)
            .bind(tenant.as_str())
            .bind(request.stream_id.as_str())
            .bind(expected);
        let query = if single {
            query
                .bind(columns.event_ids[0])
                .bind(columns.event_types[0])
                .bind(columns.schema_versions[0])
                .bind(columns.payloads[0])
                .bind(columns.metadata[0].as_deref())
        } else {
            query.bind_events(columns)
        };
        let query = match published {
            // One event has one publication at the most (checked by `AppendRequest::new`).
            Some(published) if single => query
                .bind(published.partition)
                .bind(published.subjects[0])
                .bind(published.payloads[0])
                .bind(&published.headers[0]),
            Some(published) => query
                .bind(published.partition)
                .bind(&published.ordinals)
                .bind(&published.subjects)
                .bind(&published.payloads)
                .bind(&published.headers),
            None => query,
        };
        let query = if plain { query } else { query.bind(carrier.channel()) };
        let error = match query.fetch_optional(pool).await {
            Ok(None | Some((0, _, _))) => break Err(version_conflict(inner, tenant, request).await),
            Ok(Some((count, first, last))) => break written(version, count, first, last),
            Err(error) => error,
        };
        match constraint(&error) {
            Some("events_event_id_key") => {
                break Err(duplicate_event_id(inner, tenant, &columns.event_ids).await);
            }
            Some("events_stream_version_key") => {
                break Err(version_conflict(inner, tenant, request).await);
            }
            _ => {}
        }
        // Without an idempotency key only a statement the server rolled back is safe to repeat.
        let safe_to_retry = rolled_back_transiently(&error);
        if safe_to_retry && retries.after_failure(&error, &request.stream_id).await {
            continue;
        }
        break Err(StoreError::backend("append", safe_to_retry, error));
    };
    match &result {
        Ok(_) => inner.wakeups.appended(&inner.pool, &carrier),
        Err(_) => inner.wakeups.failed(&inner.pool, &carrier),
    }
    result
}

/// The fast path of a keyed append that expects an exact version ([`sql::APPEND_KEYED_NEW`],
/// [`sql::APPEND_KEYED_AFTER`]): one statement writes the events and their idempotency record
/// when the key is new and the stream is at `version`. `None` when it wrote nothing or failed in
/// any way: the caller then asks `append_events()`, which answers a replay, a key used for other
/// events, a conflict or a duplicate event id under the stream's lock, and retries what is safe
/// to retry (with a key, an outcome left unknown is: a retry finds the record and replays it).
async fn append_keyed_exact(
    inner: &Inner,
    pool: &PgPool,
    tenant: &TenantId,
    request: &AppendRequest,
    columns: &Columns<'_>,
    version: u64,
) -> Option<Result<AppendResult, StoreError>> {
    let (key, fingerprint) = request.idempotency.as_ref()?;
    let expected = i64::try_from(version).ok()?;
    let carrier = inner.wakeups.carrier();
    let sql = if expected == 0 { sql::APPEND_KEYED_NEW } else { sql::APPEND_KEYED_AFTER };
    let answer = sqlx::query_as::<_, (i64, Option<i64>, Option<i64>)>(sql)
        .bind(tenant.as_str())
        .bind(request.stream_id.as_str())
        .bind(expected)
        .bind_events(columns)
        .bind(key.as_str())
        .bind(&fingerprint.0[..])
        .bind(carrier.channel())
        .fetch_one(pool)
        .await;
    match answer {
        Ok((count, first, last)) if count > 0 => {
            inner.wakeups.appended(&inner.pool, &carrier);
            return Some(written(version, count, first, last));
        }
        Ok(_) => {}
        Err(error) => {
            tracing::debug!(%error, stream = %request.stream_id, "es.append: keyed fast path failed, asking append_events()");
        }
    }
    inner.wakeups.failed(&inner.pool, &carrier);
    None
}

/// The result of a fast-path append that wrote `count` events after `version`, from the lowest and
/// highest positions the statement reported.
fn written(
    version: u64,
    count: i64,
    first: Option<i64>,
    last: Option<i64>,
) -> Result<AppendResult, StoreError> {
    let position = |value: Option<i64>| {
        stored_u64(value.unwrap_or(0), "an appended event's position").map(Position::new)
    };
    let count = stored_u64(count, "the count of appended events")?;
    Ok(AppendResult {
        first_version: version + 1,
        last_version: version + count,
        first_position: position(first)?,
        last_position: position(last)?,
    })
}

/// How many races for a version an `Any` or `StreamExists` append may lose to writers outside
/// `append_events()`'s lock before it gives up with a retryable error. Each lost race is another
/// append committed; in the conformance case that provokes them, none lost more than one in a row.
const ANY_RACES: u32 = 64;

/// The attempts left for one append, shared by every kind of retry it makes; races for a version
/// lost by an `Any` append are counted apart ([`ANY_RACES`]): each is progress, not a failure.
struct Retries {
    attempt: u32,
    attempts: u32,
    races: u32,
}

impl Retries {
    fn new(attempts: u32) -> Self {
        Self { attempt: 1, attempts, races: 0 }
    }

    /// After a race for a version lost to another writer: true while fewer than [`ANY_RACES`]
    /// were lost, to try again at once (the stream has moved on; no pause is needed).
    fn after_race(&mut self) -> bool {
        self.races += 1;
        self.races < ANY_RACES
    }

    /// After a failure the caller found safe to repeat: waits an exponential pause (5 ms, 10 ms, …
    /// up to 320 ms) and uses up an attempt; false when none is left.
    async fn after_failure(&mut self, error: &sqlx::Error, stream_id: &StreamId) -> bool {
        if self.attempt >= self.attempts {
            return false;
        }
        tracing::debug!(%error, attempt = self.attempt, stream = %stream_id, "es.append: transient failure, retrying");
        tokio::time::sleep(Duration::from_millis(5 << self.attempt.min(6))).await;
        self.attempt += 1;
        true
    }
}

/// The row `append_events()` returns: an outcome code and the columns that outcome fills.
#[derive(sqlx::FromRow)]
struct AppendRow {
    outcome: i16,
    first_version: Option<i64>,
    last_version: Option<i64>,
    first_position: Option<i64>,
    last_position: Option<i64>,
    actual_version: Option<i64>,
    original_stream_id: Option<String>,
}

/// A number `append_events()` must have returned for its outcome.
fn returned(value: Option<i64>, column: &str) -> Result<u64, StoreError> {
    let value = value.ok_or_else(|| {
        StoreError::corrupt(format!("append_events() returned no {column} for its outcome"))
    })?;
    stored_u64(value, format_args!("append_events() column {column}"))
}

fn outcome(
    tenant: &TenantId,
    request: &AppendRequest,
    row: AppendRow,
) -> Result<Appended, StoreError> {
    match row.outcome {
        WRITTEN | REPLAYED => Ok(Appended {
            result: AppendResult {
                first_version: returned(row.first_version, "first_version")?,
                last_version: returned(row.last_version, "last_version")?,
                first_position: Position::new(returned(row.first_position, "first_position")?),
                last_position: Position::new(returned(row.last_position, "last_position")?),
            },
            replayed: row.outcome == REPLAYED,
        }),
        VERSION_CONFLICT => Err(StoreError::VersionConflict {
            tenant: tenant.clone(),
            stream_id: request.stream_id.clone(),
            expected: request.expected,
            actual: returned(row.actual_version, "actual_version")?,
        }),
        IDEMPOTENCY_CONFLICT => {
            let original = row.original_stream_id.unwrap_or_default();
            let original_stream_id = StreamId::new(&original).map_err(corrupt_in(format_args!(
                "stored idempotency record names stream {original:?}"
            )))?;
            let key = request.idempotency.as_ref().map(|(key, _)| key.clone());
            let key = key.ok_or_else(|| {
                StoreError::corrupt(
                    "append_events() reported an idempotency conflict without a key",
                )
            })?;
            Err(StoreError::IdempotencyConflict { tenant: tenant.clone(), key, original_stream_id })
        }
        other => {
            Err(StoreError::corrupt(format!("append_events() returned unknown outcome {other}")))
        }
    }
}

/// A conflict detected by the unique key rather than the version check: report the version now.
pub(crate) async fn version_conflict(
    inner: &Inner,
    tenant: &TenantId,
    request: &AppendRequest,
) -> StoreError {
    let actual: Result<Option<i64>, _> = sqlx::query_scalar(sql::STREAM_VERSION)
        .bind(tenant.as_str())
        .bind(request.stream_id.as_str())
        .fetch_one(&inner.pool_for(tenant))
        .await;
    match actual {
        Ok(actual) => StoreError::VersionConflict {
            tenant: tenant.clone(),
            stream_id: request.stream_id.clone(),
            expected: request.expected,
            actual: match actual
                .map_or(Ok(0), |version| stored_u64(version, "the stream's version"))
            {
                Ok(actual) => actual,
                Err(corrupt) => return corrupt,
            },
        },
        Err(error) => read_error("append", error),
    }
}

/// Finds which of the batch's ids is already stored (the unique violation names only the constraint).
async fn duplicate_event_id(inner: &Inner, tenant: &TenantId, event_ids: &[Uuid]) -> StoreError {
    let found: Result<Option<Uuid>, _> = sqlx::query_scalar(sql::STORED_EVENT_ID)
        .bind(tenant.as_str())
        .bind(event_ids)
        .fetch_optional(&inner.pool_for(tenant))
        .await;
    match found {
        Ok(Some(id)) => StoreError::DuplicateEventId {
            tenant: tenant.clone(),
            event_id: EventId::from_uuid(id),
        },
        Ok(None) => StoreError::corrupt("unique violation on an event id that is not stored"),
        Err(error) => read_error("append", error),
    }
}
