//! The traits a backend implements: `MultiTenantStore` hands out tenant-scoped `EventStore`s.

use std::future::Future;
use std::time::Duration;

use super::{
    AppendOptions, AppendResult, EventStream, ExpectedVersion, IdempotencyRecord, LogEvent,
    LogEventStream, Position, ReadAllOptions, ReadStreamOptions, ReplayStream, ReplayedEvent,
    StoreError,
};
use crate::{EventData, IdempotencyKey, StreamId, TenantId};

/// A backend: the engine that hands out [`EventStore`] handles, one per tenant.
///
/// Handles are cheap; take one per request or keep one per tenant. Nothing a handle does reaches
/// another tenant's data.
///
/// ```no_run
/// # async fn demo<B: es_core::MultiTenantStore>(backend: B) -> Result<(), es_core::StoreError> {
/// use es_core::{EventStore, TenantId};
/// let acme = backend.tenant(TenantId::new("acme").expect("valid tenant id"));
/// let head = acme.head_position().await?;
/// # Ok(()) }
/// ```
pub trait MultiTenantStore: Clone + Send + Sync + 'static {
    /// The tenant-scoped handle.
    type Store: EventStore;

    /// A handle scoped to `tenant`.
    fn tenant(&self, tenant: TenantId) -> Self::Store;
}

/// The event store, as seen by one tenant: append to streams, read streams and the global log.
///
/// Every backend keeps the same promises, checked by the conformance suite
/// (`es_core::conformance_tests!`, feature `testing`):
/// - a stream's first event has version 1 and versions have no gaps; an empty stream is version 0;
/// - an append writes all its events or none, contiguous in the stream, and only if the
///   [`ExpectedVersion`] holds, else it fails with [`StoreError::VersionConflict`];
/// - every event gets a global [`Position`]; [`read_all`](EventStore::read_all) returns events in
///   position order and never skips one that becomes visible later;
/// - an idempotency key makes an append safe to retry (see [`AppendOptions`]);
/// - nothing crosses tenants.
///
/// The methods return `Send` futures and `'static` streams, so a handle works from any task.
/// Backends are chosen by type (static dispatch), which is why this trait uses
/// `impl Future` returns rather than boxed futures.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// The tenant this handle is scoped to.
    fn tenant(&self) -> &TenantId;

    /// Appends `events` to `stream_id` atomically if the stream's version matches `expected`.
    fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
        options: AppendOptions,
    ) -> impl Future<Output = Result<AppendResult, StoreError>> + Send;

    /// Reads one stream. A stream with no events reads as empty.
    fn read_stream(&self, stream_id: &StreamId, options: ReadStreamOptions) -> EventStream;

    /// Reads a stream oldest first from `from_version` (inclusive), returning only what a fold
    /// needs. The default reads whole envelopes; backends override it with a narrower read (the
    /// repository's loads use it).
    fn replay_stream(&self, stream_id: &StreamId, from_version: u64) -> ReplayStream {
        use futures_util::TryStreamExt;
        let events =
            self.read_stream(stream_id, ReadStreamOptions::forward().from_version(from_version));
        Box::pin(
            events
                .map_ok(ReplayedEvent::from)
                .try_chunks(1_000)
                .map_err(|futures_util::stream::TryChunksError(_, error)| error),
        )
    }

    /// Reads the tenant's global log after a position, in position order, in pages.
    fn read_all(&self, options: ReadAllOptions) -> EventStream;

    /// [`read_all`](EventStore::read_all) returning only what a projection whose handlers take
    /// only the event needs: position, type, schema version and payload, in pages. The same
    /// events in the same order, under the same horizon and with personal data opened the same
    /// way; cheaper to read. The default reads whole envelopes; backends override it with a
    /// narrower read (the projection runner uses it for projections that declare
    /// [`Reads::Payload`](crate::projection::Reads::Payload)). A store that wraps another must
    /// forward it, or lose the narrower read (never correctness).
    fn replay_all(&self, options: ReadAllOptions) -> LogEventStream {
        use futures_util::TryStreamExt;
        let page_size = options.page_size.max(1);
        Box::pin(
            self.read_all(options)
                .map_ok(LogEvent::from)
                .try_chunks(page_size)
                .map_err(|futures_util::stream::TryChunksError(_, error)| error),
        )
    }

    /// The stream's version: that of its last event, 0 if it has none.
    fn stream_version(
        &self,
        stream_id: &StreamId,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The position of the tenant's last event that [`read_all`](EventStore::read_all) can return
    /// now ([`Position::BEGINNING`] if none).
    fn head_position(&self) -> impl Future<Output = Result<Position, StoreError>> + Send;

    /// The log from `options.after` on, then live: catch up, wait for commits, go on (see
    /// [`subscribe`](crate::store::subscribe)).
    ///
    /// ```
    /// # use es_core::{EventStore, store::SubscribeOptions};
    /// # use futures_util::StreamExt;
    /// # async fn demo<S: EventStore>(store: S) -> Result<(), es_core::StoreError> {
    /// let mut events = store.subscribe(SubscribeOptions::from_beginning());
    /// while let Some(event) = events.next().await {
    ///     let event = event?;
    ///     println!("{} {}", event.position, event.event_type);
    /// }
    /// # Ok(()) }
    /// ```
    fn subscribe(&self, options: super::SubscribeOptions) -> EventStream
    where
        Self: Sized,
    {
        super::subscribe(self.clone(), options)
    }

    /// Waits until the head moves past `after` or `timeout` passes, whichever comes first, and
    /// returns the head then. Backends wake waiters when events commit (no busy polling).
    fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> impl Future<Output = Result<Position, StoreError>> + Send;

    /// The record an append with this idempotency key left, if any.
    fn idempotency_record(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send;

    /// Whether `record` was left by a request with this fingerprint (one computed by
    /// [`AppendRequest::new`](crate::AppendRequest::new) or given with
    /// [`AppendOptions::fingerprint`](crate::AppendOptions::fingerprint), as a command pipeline
    /// does to answer a retry from the record). A store that keys the fingerprints of requests
    /// holding personal data (see [`crate::pii`]) compares under the same keys, and fails with
    /// [`PiiError::SubjectForgotten`](crate::pii::PiiError::SubjectForgotten) once they are
    /// destroyed; one that does not compares the bytes. No default: a store wrapping another must
    /// ask the one it wraps.
    fn fingerprint_matches(
        &self,
        record: &IdempotencyRecord,
        fingerprint: &crate::Fingerprint,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
