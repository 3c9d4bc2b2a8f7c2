//! The command pipeline: load (snapshot + tail), decide, append with the loaded version, and on a
//! version conflict reload and decide again, a bounded number of times with jittered backoff.
//!
//! ```
//! # use es_core::{Aggregate, Apply, Event, commands};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Serialize, Deserialize, Event, Hash)] #[event(name = "counter.incremented")]
//! # pub struct Incremented { by: i64 }
//! # #[derive(Debug, Event)] pub enum CounterEvent { Incremented(Incremented) }
//! # #[derive(Debug)] pub enum CounterError { TooBig }
//! # #[derive(Default, Serialize, Deserialize, Aggregate)]
//! # #[aggregate(name = "counter", event = CounterEvent, error = CounterError)]
//! # pub struct Counter { value: i64 }
//! # #[derive(Clone, Hash)] pub struct Increment { by: i64 }
//! # #[commands] impl Counter {
//! #     pub fn increment(&self, c: Increment) -> Result<Incremented, CounterError> {
//! #         if self.value + c.by > 100 { Err(CounterError::TooBig) } else { Ok(Incremented { by: c.by }) }
//! #     }
//! # }
//! # impl Apply<CounterEvent> for Counter {
//! #     fn apply(&mut self, e: &CounterEvent) { match e { CounterEvent::Incremented(i) => self.value += i.by } }
//! # }
//! use es_core::repository::{CommandOptions, Repository, RepositoryError};
//! use es_core::StreamId;
//!
//! async fn demo<S: es_core::EventStore>(store: S) -> Result<(), RepositoryError<CounterError>> {
//!     let counters = Repository::<Counter, _>::new(store);
//!     let id = StreamId::in_category(Counter::NAME, "7").expect("valid id");
//!     let outcome = counters.execute(&id, Increment { by: 5 }, CommandOptions::default()).await?;
//!     assert_eq!(outcome.version, 1);
//!     let refused = counters.execute(&id, Increment { by: 500 }, CommandOptions::default()).await;
//!     assert!(matches!(refused, Err(RepositoryError::Domain(CounterError::TooBig))));
//!     Ok(())
//! }
//! ```

mod cache;
mod execute;
mod fingerprint;
mod load;
mod options;
mod outcome;
mod queue;
mod snapshots;
mod together;
mod write_behind;

use std::num::NonZeroUsize;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use self::cache::Cache;
pub use self::options::{CommandOptions, RepositoryOptions};
pub use self::outcome::{CommandOutcome, Loaded, RepositoryError};
pub use self::snapshots::SnapshotsOf;
use self::write_behind::Writes;
use crate::outbox::Publisher;
use crate::snapshot::{NoSnapshots, SnapshotStore};
use crate::{Aggregate, EventStore};

/// Loads aggregates of type `A` from an event store, runs commands on them, appends their events.
/// Clones share the cache (if any).
pub struct Repository<A: Aggregate, S, N = NoSnapshots> {
    store: S,
    snapshots: N,
    options: RepositoryOptions,
    cache: Option<Arc<Cache<A>>>,
    /// Snapshot writes in flight (shared by clones), so they can be awaited.
    writes: Writes,
    /// Maps decided events to integration messages enqueued with them.
    publisher: Option<Arc<dyn Publisher<A::Event>>>,
    /// Commands for one stream take turns (shared by clones).
    queue: Arc<queue::StreamQueue>,
    /// Commands queued for one stream, decided together (shared by clones).
    together: Arc<together::Together<A>>,
}

impl<A: Aggregate, S: Clone, N: Clone> Clone for Repository<A, S, N> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            snapshots: self.snapshots.clone(),
            options: self.options.clone(),
            cache: self.cache.clone(),
            writes: self.writes.clone(),
            publisher: self.publisher.clone(),
            queue: self.queue.clone(),
            together: self.together.clone(),
        }
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S, NoSnapshots> {
    /// A repository without snapshots or cache.
    pub fn new(store: S) -> Self {
        Self {
            store,
            snapshots: NoSnapshots,
            options: RepositoryOptions::default(),
            cache: None,
            writes: Arc::default(),
            publisher: None,
            queue: Arc::default(),
            together: Arc::default(),
        }
    }
}

impl<A, S, N> Repository<A, S, N>
where
    A: Aggregate,
    S: EventStore,
    N: SnapshotsOf<A>,
{
    /// Uses `snapshots` (usually the same store handle) to load from and write snapshots, by the
    /// aggregate's [`SnapshotPolicy`](crate::SnapshotPolicy). Snapshots store the state as JSON,
    /// so this (and only this) needs the aggregate to be `Serialize + DeserializeOwned`.
    pub fn with_snapshots<M>(self, snapshots: M) -> Repository<A, S, M>
    where
        M: SnapshotStore,
        A: Serialize + DeserializeOwned,
    {
        Repository {
            store: self.store,
            snapshots,
            options: self.options,
            cache: self.cache,
            writes: self.writes,
            publisher: self.publisher,
            queue: self.queue,
            together: self.together,
        }
    }

    /// Publishes the aggregate's events as integration messages: for each decided event that
    /// `publisher` maps to a message, the message is enqueued in the outbox in the same append
    /// as the events (see [`crate::outbox`]), so it goes out if and only if they are stored. The
    /// store must keep an outbox ([`OutboxStore`](crate::outbox::OutboxStore)); one that does not
    /// refuses such appends.
    #[must_use]
    pub fn with_publisher(mut self, publisher: impl Publisher<A::Event>) -> Self {
        self.publisher = Some(Arc::new(publisher));
        self
    }

    /// Keeps the state of up to `capacity` recently used aggregates in memory (least recently
    /// used evicted first), so a hot stream is not replayed for every command. An entry made stale
    /// by another process costs a version conflict and a reload, never a wrong decision. A
    /// capacity of 0 turns the cache off.
    #[must_use]
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = NonZeroUsize::new(capacity).map(|capacity| Arc::new(Cache::new(capacity)));
        self
    }

    /// Sets the retry options.
    #[must_use]
    pub fn with_options(mut self, options: RepositoryOptions) -> Self {
        self.options = options;
        self
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// How many commands for `stream_id` are queued in this process (the repository and its
    /// clones) waiting to be decided together: a measure of how hot the stream is here (see
    /// [`RepositoryOptions::decide_together`]).
    pub fn queued_commands(&self, stream_id: &crate::StreamId) -> usize {
        self.together.queued(stream_id)
    }
}
