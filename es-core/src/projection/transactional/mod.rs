//! Transactional projections: the read model lives in the store's own database, and each batch's
//! handler writes commit in one transaction with the checkpoint's move. A failure rolls the batch
//! back, so each event's effect happens exactly once, even across crashes.
//!
//! A capability: a backend that can do this implements [`TransactionalStore`] (es-postgres does;
//! its transactions hand handlers a `BatchWrites`, which is also a `sqlx::PgConnection`).
//! [`TransactionalRunner`] runs a [`TransactionalProjection`] with everything
//! [`ProjectionRunner`](super::ProjectionRunner) has: live mode, the exclusive lock, the lag
//! gauge, retries, parking, restarts.
//! `#[projection]` generates the trait when its handlers take the transaction first:
//!
//! ```
//! use es_core::{Event, ProjectionError, RecordedEvent, projection};
//! use es_core::projection::TransactionalProjection;
//!
//! #[derive(serde::Serialize, serde::Deserialize, Event)]
//! #[event(name = "account.deposited")]
//! pub struct Deposited { pub amount: i64 }
//!
//! /// What a backend's transaction hands handlers (es-postgres: `BatchWrites`, or the
//! /// `sqlx::PgConnection` inside it).
//! pub struct Connection { pub writes: Vec<(String, i64)> }
//!
//! pub struct Balances;
//!
//! #[projection(name = "balances")]
//! impl Balances {
//!     async fn on_deposited(
//!         &mut self,
//!         tx: &mut Connection,
//!         event: &Deposited,
//!         meta: &RecordedEvent,
//!     ) -> Result<(), ProjectionError> {
//!         tx.writes.push((meta.stream_id.to_string(), event.amount));
//!         Ok(())
//!     }
//! }
//!
//! fn handled<P: TransactionalProjection<Connection>>() -> &'static str { P::NAME }
//! assert_eq!(handled::<Balances>(), "balances");
//! ```

mod runner;

use std::future::Future;
use std::ops::DerefMut;

pub use self::runner::TransactionalRunner;
use super::{CheckpointError, CheckpointStore, ProjectionError};
use crate::event::typed::EventTypeInfo;
use crate::{EventType, Position, ProjectionName, RecordedEvent, StoreError};

/// A store that commits a projection's batch of handler writes together with its checkpoint.
pub trait TransactionalStore: CheckpointStore {
    /// What handlers write through (es-postgres: `BatchWrites`, which handlers may also take as
    /// its `sqlx::PgConnection`, see [`Through`]).
    type Connection: Send;
    /// An open batch transaction; dropping it rolls everything back.
    type Transaction: DerefMut<Target = Self::Connection> + Send;

    /// Begins a batch of `projection`: a transaction that holds its checkpoint against other
    /// runners until it ends. Returns the checkpoint as stored.
    fn begin_batch(
        &self,
        projection: &ProjectionName,
    ) -> impl Future<Output = Result<(Self::Transaction, Option<Position>), StoreError>> + Send;

    /// Moves the checkpoint from `from` to `to` inside `transaction` and commits it with the
    /// handlers' writes. A checkpoint no longer at `from` is a [`CheckpointError::Conflict`] and
    /// nothing commits.
    fn commit_batch(
        &self,
        transaction: Self::Transaction,
        projection: &ProjectionName,
        from: Option<Position>,
        to: Position,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;

    /// Does the writes handlers deferred in `transaction` (a backend whose connection buffers
    /// them, as es-postgres's `BatchWrites`, sends them in one round trip here); the runner calls
    /// it after a batch's handlers and before [`commit_batch`](Self::commit_batch). A failure
    /// cannot name the event whose write failed: the runner then redoes that batch one event per
    /// transaction, which finds it. The default, for connections that write at once, does
    /// nothing.
    fn flush_batch(
        &self,
        transaction: &mut Self::Transaction,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        let _ = transaction;
        async { Ok(()) }
    }
}

/// What a batch's connection is seen as by handlers that take a `&mut C`: the connection itself
/// (every type is `Through<Self>`), or a view a backend offers besides (es-postgres's
/// `BatchWrites` is also a `sqlx::PgConnection`). `#[projection]` implements
/// [`TransactionalProjection`] for every connection that is `Through` its handlers' type.
pub trait Through<C> {
    /// The connection as a `C`.
    fn through(&mut self) -> &mut C;
}

impl<C> Through<C> for C {
    fn through(&mut self) -> &mut C {
        self
    }
}

/// A read model whose handlers write through the batch's transaction (a connection `C`).
///
/// `#[projection]` implements it for handlers that take `tx: &mut C` before the event; handlers
/// then receive decoded, upcast events, like those of [`Projection`](super::Projection).
pub trait TransactionalProjection<C: Send>: Send + 'static {
    /// The stable name its checkpoint is stored under.
    const NAME: &'static str;
    /// The event types it handles; the store delivers only these.
    const EVENT_TYPES: &'static [&'static EventTypeInfo];

    /// Handles one event, writing through `tx`; an error rolls back the whole batch.
    fn handle(
        &mut self,
        tx: &mut C,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// Handles a batch in log order, writing through `tx`; an error rolls back the whole batch.
    /// The default calls [`handle`](TransactionalProjection::handle) per event; override it to
    /// write a batch in a few set-based statements (one multi-row upsert instead of one per
    /// event), which is what makes rebuilds fast.
    fn handle_batch(
        &mut self,
        tx: &mut C,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), BatchFailure>> + Send {
        async move {
            for (index, event) in events.iter().enumerate() {
                self.handle(tx, event).await.map_err(|source| BatchFailure { index, source })?;
            }
            Ok(())
        }
    }

    /// The names of [`EVENT_TYPES`](TransactionalProjection::EVENT_TYPES), for the store's filter.
    fn event_types() -> Vec<EventType> {
        Self::EVENT_TYPES.iter().filter_map(|info| EventType::new(info.name).ok()).collect()
    }

    /// [`NAME`](TransactionalProjection::NAME) as a [`ProjectionName`], checked when the program
    /// is built (see [`Projection::projection_name`](super::Projection::projection_name)).
    fn projection_name() -> ProjectionName {
        super::checked_name(<Self as CheckedName<C>>::NAME)
    }
}

/// The name of a transactional projection, checked at compile time.
trait CheckedName<C> {
    const NAME: &'static str;
}

impl<C: Send, P: TransactionalProjection<C> + ?Sized> CheckedName<C> for P {
    const NAME: &'static str = ProjectionName::checked(P::NAME);
}

/// A batch handler failed.
#[derive(Debug)]
pub struct BatchFailure {
    /// The index in the batch of the event that failed (0 when a set-based write cannot tell; an
    /// index past the batch is charged to its last event).
    pub index: usize,
    /// Why.
    pub source: ProjectionError,
}
