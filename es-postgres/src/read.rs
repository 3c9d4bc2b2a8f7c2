//! Reads as streams of keyset-paginated pages.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use es_core::{
    Direction, EventId, EventMetadata, EventStream, EventType, LogEvent, LogEventStream, Payload,
    Position, ReadAllOptions, ReadStreamOptions, RecordedEvent, ReplayStream, ReplayedEvent,
    StoreError, StreamId, TenantId,
};
use futures_util::{StreamExt, TryStreamExt, stream};
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{PgPool, Row, TypeInfo, ValueRef};
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use es_core::pii::open_all;

use crate::error::read_error;
use crate::row::{bound_i64, corrupt_in, get, stored_u32, stored_u64};
use crate::sql;
use crate::store::Inner;

const STREAM_PAGE: u64 = 1_000;

/// The event type names a read has met: a log holds few distinct types, so each is validated and
/// allocated once per read rather than once per row.
#[derive(Default)]
struct TypeNames(Vec<EventType>);

impl TypeNames {
    fn get(&mut self, name: &str) -> Result<EventType, es_core::IdError> {
        if let Some(known) = self.0.iter().find(|known| known.as_str() == name) {
            return Ok(known.clone());
        }
        let parsed = EventType::new(name)?;
        self.0.push(parsed.clone());
        Ok(parsed)
    }
}

/// The most stream ids one read remembers (a log interleaves many streams; each id is validated
/// and allocated once per read rather than once per row, up to this many, then the memory starts
/// over).
const KNOWN_STREAMS: usize = 4_096;

/// Turns rows into envelopes, sharing what repeats between rows (stream ids, type names).
struct Decoder {
    tenant: TenantId,
    streams: HashMap<String, StreamId>,
    types: TypeNames,
    empty_metadata: Arc<EventMetadata>,
}

impl Decoder {
    fn new(tenant: TenantId) -> Self {
        Self {
            tenant,
            streams: HashMap::new(),
            types: TypeNames::default(),
            empty_metadata: Arc::new(EventMetadata::default()),
        }
    }

    /// The envelopes of a page. The columns' types are checked on the first row only: every row
    /// of one result shares its row description, so the check holds for the rest, which are
    /// decoded without it (on long reads the check cost as much as the decoding).
    fn decode_page(&mut self, rows: &[PgRow]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            events.push(self.decode(row, Checked(index == 0))?);
        }
        Ok(events)
    }

    fn stream_id(&mut self, stream_id: &str, position: u64) -> Result<StreamId, StoreError> {
        if let Some(known) = self.streams.get(stream_id) {
            return Ok(known.clone());
        }
        let id = StreamId::new(stream_id)
            .map_err(corrupt_in(format_args!("event at position {position}: stream id")))?;
        if self.streams.len() >= KNOWN_STREAMS {
            self.streams.clear();
        }
        self.streams.insert(stream_id.to_owned(), id.clone());
        Ok(id)
    }

    fn decode(&mut self, row: &PgRow, checked: Checked) -> Result<RecordedEvent, StoreError> {
        let position = stored_u64(checked.get(row, 0, "position")?, "an event's position")?;
        let stream_id = self.stream_id(checked.get(row, 1, "stream_id")?, position)?;
        let event_type = self
            .types
            .get(checked.get(row, 4, "event_type")?)
            .map_err(corrupt_in(format_args!("event at position {position}: event type")))?;
        let metadata = match checked.jsonb(row, 7, "metadata")? {
            None => self.empty_metadata.clone(),
            Some(json) => Arc::new(
                serde_json::from_slice(json)
                    .map_err(corrupt_in(format_args!("event at position {position}: metadata")))?,
            ),
        };
        Ok(RecordedEvent {
            event_id: EventId::from_uuid(checked.get::<Uuid>(row, 3, "event_id")?),
            tenant: self.tenant.clone(),
            stream_id,
            stream_version: stored_u64(
                checked.get(row, 2, "stream_version")?,
                format_args!("event at position {position}: stream version"),
            )?,
            position: Position::new(position),
            event_type,
            schema_version: stored_u32(
                checked.get(row, 5, "schema_version")?,
                format_args!("event at position {position}: schema version"),
            )?,
            payload: Payload::from_stored(checked.payload(row, 6)?),
            metadata,
            recorded_at: checked.get::<DateTime<Utc>>(row, 8, "recorded_at")?,
        })
    }
}

/// What a read of the global log turns each row into: whole envelopes (`read_all`) or payloads
/// only (`replay_all`). One cursor serves both, so both keep the same horizon and paging.
trait LogRow: Sized + Send + 'static {
    /// The store operation, as errors name it.
    const OPERATION: &'static str;
    /// The query, without and with the type filter (`$5`).
    const SQL: [&'static str; 2];
    /// The row as this kind of event.
    fn decode(decoder: &mut Decoder, row: &PgRow, checked: Checked) -> Result<Self, StoreError>;
    /// Its position.
    fn position(&self) -> Position;
    /// Its payload, for sealed personal data to be opened in place.
    fn payload_mut(&mut self) -> &mut Payload;
}

impl LogRow for RecordedEvent {
    const OPERATION: &'static str = "read_all";
    const SQL: [&'static str; 2] = [sql::READ_ALL, sql::READ_ALL_TYPES];

    fn decode(decoder: &mut Decoder, row: &PgRow, checked: Checked) -> Result<Self, StoreError> {
        decoder.decode(row, checked)
    }

    fn position(&self) -> Position {
        self.position
    }

    fn payload_mut(&mut self) -> &mut Payload {
        &mut self.payload
    }
}

impl LogRow for LogEvent {
    const OPERATION: &'static str = "replay_all";
    const SQL: [&'static str; 2] = [sql::REPLAY_ALL, sql::REPLAY_ALL_TYPES];

    fn decode(decoder: &mut Decoder, row: &PgRow, checked: Checked) -> Result<Self, StoreError> {
        let position = stored_u64(checked.get(row, 0, "position")?, "an event's position")?;
        let event_type = decoder
            .types
            .get(checked.get(row, 1, "event_type")?)
            .map_err(corrupt_in(format_args!("event at position {position}: event type")))?;
        Ok(LogEvent {
            position: Position::new(position),
            event_type,
            schema_version: stored_u32(
                checked.get(row, 2, "schema_version")?,
                format_args!("event at position {position}: schema version"),
            )?,
            payload: Payload::from_stored(checked.payload(row, 3)?),
        })
    }

    fn position(&self) -> Position {
        self.position
    }

    fn payload_mut(&mut self) -> &mut Payload {
        &mut self.payload
    }
}

/// Whether a row's column types are checked against the Rust types read (see
/// [`Decoder::decode_page`]); a NULL where none may be is an error either way.
#[derive(Clone, Copy)]
struct Checked(bool);

impl Checked {
    fn get<'r, T>(self, row: &'r PgRow, index: usize, column: &str) -> Result<T, StoreError>
    where
        T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        if self.0 {
            get(row, index, column)
        } else {
            row.try_get_unchecked(index)
                .map_err(|error| StoreError::corrupt_because(format!("column {column}"), error))
        }
    }

    /// A `jsonb` column's JSON text, read without a conversion to `text` on the server: in the
    /// binary format it is a format version (1) then the text; in the text format, the text.
    /// `None` for NULL.
    fn jsonb<'r>(
        self,
        row: &'r PgRow,
        index: usize,
        column: &str,
    ) -> Result<Option<&'r [u8]>, StoreError> {
        let corrupt = |detail: &str| StoreError::corrupt(format!("column {column}: {detail}"));
        let value = row
            .try_get_raw(index)
            .map_err(|error| StoreError::corrupt_because(format!("column {column}"), error))?;
        if self.0 && !value.type_info().name().eq_ignore_ascii_case("jsonb") {
            return Err(corrupt(&format!("is {}, not jsonb", value.type_info().name())));
        }
        if value.is_null() {
            return Ok(None);
        }
        let bytes = value
            .as_bytes()
            .map_err(|error| StoreError::corrupt_because(format!("column {column}"), error))?;
        match value.format() {
            PgValueFormat::Text => Ok(Some(bytes)),
            PgValueFormat::Binary => match bytes.split_first() {
                Some((1, json)) => Ok(Some(json)),
                _ => Err(corrupt("not jsonb in binary format version 1")),
            },
        }
    }

    /// The `payload` column (never NULL), as bytes of its own.
    fn payload(self, row: &PgRow, index: usize) -> Result<Vec<u8>, StoreError> {
        match self.jsonb(row, index, "payload")? {
            Some(json) => Ok(json.to_vec()),
            None => Err(StoreError::corrupt("column payload: NULL")),
        }
    }
}

fn clamp(value: u64) -> i64 {
    bound_i64(value)
}

struct AllCursor<R> {
    inner: Arc<Inner>,
    /// The tenant's connections.
    pool: PgPool,
    decoder: Decoder,
    after: i64,
    horizon: Option<i64>,
    /// Set once the read has asked for a newer horizon after reaching the first one.
    refreshed: bool,
    exhausted: bool,
    remaining: u64,
    page_size: u64,
    types: Option<Vec<String>>,
    rows: std::marker::PhantomData<fn() -> R>,
}

impl<R: LogRow> AllCursor<R> {
    async fn horizon(&self) -> Result<i64, StoreError> {
        let horizon =
            self.inner.horizon.advance(&self.inner.pool, self.inner.options.horizon_wait).await?;
        Ok(clamp(horizon))
    }

    /// Reads page after page into `pages` until the read ends, fails (the error is the last
    /// item) or the reader goes away.
    async fn send_pages(mut self, pages: mpsc::Sender<Page<R>>) {
        loop {
            match self.next_page().await {
                Ok(Some((mut page, next))) => {
                    // Sealed personal data is opened here too, a page at a time, off the reader
                    // (`None` for a store without master keys: a sealed value is refused).
                    let payloads = page.iter_mut().map(LogRow::payload_mut).collect();
                    if let Err(error) =
                        open_all(next.inner.vault.as_deref(), &next.decoder.tenant, payloads).await
                    {
                        let _ = pages.send(Err(error)).await;
                        return;
                    }
                    if pages.send(Ok(page)).await.is_err() {
                        return; // the reader dropped the stream
                    }
                    self = next;
                }
                Ok(None) => return,
                Err(error) => {
                    // Whether the reader is still there to be told makes no difference here.
                    let _ = pages.send(Err(error)).await;
                    return;
                }
            }
        }
    }

    /// The next page: events after `after`, never past the horizon. When a page comes back short
    /// (the horizon is reached) the read asks once for a newer horizon, so events that committed
    /// while it read are included; then it ends.
    async fn next_page(mut self) -> Result<Option<(Vec<R>, Self)>, StoreError> {
        loop {
            if self.exhausted || self.remaining == 0 {
                return Ok(None);
            }
            let horizon = if let Some(horizon) = self.horizon {
                horizon
            } else {
                // Below the horizon another read already published, every event is settled: a
                // read that starts there (a projection's batches over a backlog) needs no probe
                // until a page comes back short, which asks for a newer horizon as below.
                let published = clamp(self.inner.horizon.published());
                let horizon =
                    if published > self.after { published } else { self.horizon().await? };
                self.horizon = Some(horizon);
                horizon
            };
            let limit = self.page_size.min(self.remaining);
            let query = sqlx::query(R::SQL[usize::from(self.types.is_some())])
                // Owned: the decoder, which holds the tenant, is borrowed mutably below.
                .bind(self.decoder.tenant.as_str().to_owned())
                .bind(self.after)
                .bind(horizon)
                .bind(clamp(limit));
            let query = match &self.types {
                Some(types) => query.bind(types),
                None => query,
            };
            // Streamed, not collected: each row is decoded while the server sends the next.
            let mut rows = query.fetch(&self.pool);
            let mut events = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(8_192));
            while let Some(row) =
                rows.try_next().await.map_err(|error| read_error(R::OPERATION, error))?
            {
                events.push(R::decode(&mut self.decoder, &row, Checked(events.is_empty()))?);
            }
            drop(rows);
            let short = (events.len() as u64) < limit;
            if let Some(last) = events.last() {
                self.after = clamp(last.position().value());
                self.remaining -= events.len() as u64;
            }
            if short {
                if self.refreshed {
                    self.exhausted = true;
                } else {
                    self.refreshed = true;
                    let newer = self.horizon().await?;
                    if newer > horizon {
                        self.horizon = Some(newer);
                    } else {
                        self.exhausted = true;
                    }
                }
            }
            if !events.is_empty() {
                return Ok(Some((events, self)));
            }
        }
    }
}

/// The tenant's global log, personal data opened with the store's vault.
pub(crate) fn read_all(
    inner: Arc<Inner>,
    pool: PgPool,
    tenant: TenantId,
    options: ReadAllOptions,
) -> EventStream {
    let pages = read_log::<RecordedEvent>(inner, pool, tenant, options);
    Box::pin(pages.map_ok(|page| stream::iter(page.into_iter().map(Ok))).try_flatten())
}

/// The tenant's global log as payloads only (`replay_all`): `read_all`'s events, four columns of
/// each row instead of nine, a page per item.
pub(crate) fn replay_all(
    inner: Arc<Inner>,
    pool: PgPool,
    tenant: TenantId,
    options: ReadAllOptions,
) -> LogEventStream {
    Box::pin(read_log::<LogEvent>(inner, pool, tenant, options))
}

/// The pages of a read of the global log (never an empty one).
fn read_log<R: LogRow>(
    inner: Arc<Inner>,
    pool: PgPool,
    tenant: TenantId,
    options: ReadAllOptions,
) -> impl futures_core::Stream<Item = Page<R>> + Send + 'static {
    let cursor = AllCursor::<R> {
        inner,
        pool,
        decoder: Decoder::new(tenant),
        after: clamp(options.after.value()),
        horizon: None,
        refreshed: false,
        exhausted: false,
        remaining: options.limit.unwrap_or(u64::MAX),
        page_size: options.page_size.max(1) as u64,
        types: options
            .event_types
            .map(|types| types.iter().map(|t| t.as_str().to_owned()).collect()),
        rows: std::marker::PhantomData,
    };
    // Pages are read in a task of their own, one page ahead of the reader: the next page's query
    // and decoding run while the reader handles this one (a projection's catch-up, a long
    // `read_all`). A query never waits for the reader (it would hold its connection, and could
    // meet the statement timeout, behind a slow handler): a page is read whole, then handed over.
    // Started at the first poll, inside the reader's runtime; it ends when the read does or when
    // the reader drops the stream.
    pages_of(|sender| cursor.send_pages(sender))
}

/// A page a read task hands over, or the error that ended the read.
type Page<R> = Result<Vec<R>, StoreError>;

/// The pages `produce` sends, from a task of its own started at the first poll (inside the
/// reader's runtime) and holding at most one page ahead. A task that ends without finishing its
/// read (it panicked) is reported as a backend error of the read (`read_all`, `replay_all`),
/// never as a quiet end: a reader would take a quiet end for the end of the log.
fn pages_of<R: LogRow, F>(
    produce: impl FnOnce(mpsc::Sender<Page<R>>) -> F + Send + 'static,
) -> impl futures_core::Stream<Item = Page<R>> + Send + 'static
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    stream::once(async move {
        let (sender, receiver) = mpsc::channel(1);
        let task = tokio::spawn(produce(sender).in_current_span());
        stream::unfold((receiver, Some(task)), |(mut receiver, task)| async move {
            if let Some(page) = receiver.recv().await {
                return Some((page, (receiver, task)));
            }
            // The task dropped its sender: it has ended, normally or not.
            match task?.await {
                Ok(()) => None,
                Err(error) => {
                    Some((Err(StoreError::backend(R::OPERATION, false, error)), (receiver, None)))
                }
            }
        })
    })
    .flatten()
}

struct StreamCursor {
    /// The tenant's connections.
    pool: PgPool,
    decoder: Decoder,
    stream_id: StreamId,
    direction: Direction,
    /// The next version to read (inclusive), in the read's direction.
    next_version: u64,
    remaining: u64,
    exhausted: bool,
}

impl StreamCursor {
    /// The next page of the stream. No horizon is needed here: appends to one stream are
    /// serialised by its row lock, so version n is visible only after every version before it.
    async fn next_page(mut self) -> Result<Option<(Vec<RecordedEvent>, Self)>, StoreError> {
        if self.exhausted
            || self.remaining == 0
            || (self.direction == Direction::Backward && self.next_version == 0)
        {
            return Ok(None);
        }
        let limit = STREAM_PAGE.min(self.remaining);
        let sql = match self.direction {
            Direction::Forward => sql::READ_FORWARD,
            Direction::Backward => sql::READ_BACKWARD,
        };
        let rows = sqlx::query(sql)
            .bind(self.decoder.tenant.as_str())
            .bind(self.stream_id.as_str())
            .bind(clamp(self.next_version))
            .bind(clamp(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| read_error("read_stream", error))?;
        self.exhausted = (rows.len() as u64) < limit;
        let events = self.decoder.decode_page(&rows)?;
        let Some(last) = events.last() else { return Ok(None) };
        self.next_version = match self.direction {
            Direction::Forward => last.stream_version + 1,
            Direction::Backward => last.stream_version - 1,
        };
        self.remaining -= events.len() as u64;
        Ok(Some((events, self)))
    }
}

pub(crate) fn read_stream(
    pool: PgPool,
    tenant: TenantId,
    stream_id: StreamId,
    options: ReadStreamOptions,
) -> EventStream {
    let next_version = match (options.direction, options.from_version) {
        (Direction::Forward, from) => from.unwrap_or(1).max(1),
        (Direction::Backward, from) => from.unwrap_or(u64::MAX),
    };
    let cursor = StreamCursor {
        pool,
        decoder: Decoder::new(tenant),
        stream_id,
        direction: options.direction,
        next_version,
        remaining: options.limit.unwrap_or(u64::MAX),
        exhausted: false,
    };
    let pages = stream::try_unfold(cursor, StreamCursor::next_page);
    Box::pin(pages.map_ok(|page| stream::iter(page.into_iter().map(Ok))).try_flatten())
}

/// A fold's read: only version, id, type, schema version and payload (half the columns of an
/// envelope, which roughly halves the time of a long replay).
struct ReplayCursor {
    /// The tenant's connections.
    pool: PgPool,
    tenant: TenantId,
    stream_id: StreamId,
    next_version: u64,
    types: TypeNames,
    exhausted: bool,
}

impl ReplayCursor {
    async fn next_page(mut self) -> Result<Option<(Vec<ReplayedEvent>, Self)>, StoreError> {
        if self.exhausted {
            return Ok(None);
        }
        let rows = sqlx::query(sql::REPLAY)
            .bind(self.tenant.as_str())
            .bind(self.stream_id.as_str())
            .bind(clamp(self.next_version))
            .bind(clamp(STREAM_PAGE))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| read_error("replay_stream", error))?;
        self.exhausted = (rows.len() as u64) < STREAM_PAGE;
        let mut page = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            // Column types checked on the first row only (see `Decoder::decode_page`).
            let checked = Checked(index == 0);
            let version = stored_u64(checked.get(row, 0, "stream_version")?, "a stream version")?;
            let event_type = self.types.get(checked.get(row, 1, "event_type")?).map_err(
                corrupt_in(format_args!("event {version} of {}: event type", self.stream_id)),
            )?;
            page.push(ReplayedEvent {
                stream_version: version,
                event_type,
                schema_version: stored_u32(
                    checked.get(row, 2, "schema_version")?,
                    format_args!("event {version} of {}: schema version", self.stream_id),
                )?,
                payload: Payload::from_stored(checked.payload(row, 3)?),
                event_id: EventId::from_uuid(checked.get(row, 4, "event_id")?),
            });
        }
        let Some(last) = page.last() else { return Ok(None) };
        self.next_version = last.stream_version + 1;
        Ok(Some((page, self)))
    }
}

pub(crate) fn replay_stream(
    pool: PgPool,
    tenant: TenantId,
    stream_id: StreamId,
    from_version: u64,
) -> ReplayStream {
    let cursor = ReplayCursor {
        pool,
        tenant,
        stream_id,
        next_version: from_version.max(1),
        types: TypeNames::default(),
        exhausted: false,
    };
    Box::pin(stream::try_unfold(cursor, ReplayCursor::next_page))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// A read task that panics after handing over a page ends the read with an error after that
    /// page, not with a quiet end that a projection would take for the head of the log.
    #[tokio::test]
    async fn a_read_task_that_panics_ends_the_read_with_an_error() {
        let mut pages = Box::pin(pages_of(|sender| async move {
            // The reader polls until the error: it holds the receiver, so the send succeeds.
            let _ = sender.send(Ok(Vec::<RecordedEvent>::new())).await;
            panic!("the read task breaks"); // the failure under test
        }));
        assert!(matches!(pages.next().await, Some(Ok(page)) if page.is_empty()));
        let error = pages.next().await;
        assert!(
            matches!(
                &error,
                Some(Err(StoreError::Backend { operation: "read_all", retryable: false, .. }))
            ),
            "{error:?}"
        );
        assert!(pages.next().await.is_none());
    }

    /// A read task that finishes ends the read after its pages.
    #[tokio::test]
    async fn a_read_task_that_finishes_ends_the_read() {
        let mut pages = Box::pin(pages_of(|sender| async move {
            // The reader asserts the page arrives: a failed send fails the test there.
            let _ = sender.send(Ok(Vec::<RecordedEvent>::new())).await;
        }));
        assert!(matches!(pages.next().await, Some(Ok(_))));
        assert!(pages.next().await.is_none());
    }
}
