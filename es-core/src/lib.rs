//! # es-core
//!
//! The contract and runtime of an event-sourcing framework: validated ids, the event envelope, the
//! [`EventStore`] trait every backend implements, and (feature `testing`) the conformance suite that
//! proves a backend keeps the contract.
//!
//! Applications depend on `es-core` plus one backend: `es-memory` for tests and development,
//! `es-postgres` in production. The same code runs on both, because both are checked by the same
//! suite.
//!
//! ```
//! use es_core::{
//!     AppendOptions, EventData, EventStore, EventType, ExpectedVersion, ReadStreamOptions,
//!     StoreError, StreamId,
//! };
//! use futures_util::TryStreamExt;
//!
//! #[derive(serde::Serialize, serde::Deserialize, Hash)]
//! struct Deposited { amount: i64 }
//!
//! /// Works on any backend.
//! async fn deposit_twice(store: &impl EventStore) -> Result<i64, Box<dyn std::error::Error>> {
//!     let account = StreamId::in_category("account", "42")?;
//!     let deposited = EventType::new("account.deposited")?;
//!     let events = vec![
//!         EventData::json(deposited.clone(), &Deposited { amount: 10 })?,
//!         EventData::json(deposited, &Deposited { amount: 5 })?,
//!     ];
//!     // Both events or neither, and only if the stream is new.
//!     let written = store
//!         .append(&account, ExpectedVersion::NoStream, events, AppendOptions::default())
//!         .await?;
//!     assert_eq!((written.first_version, written.last_version), (1, 2));
//!
//!     // A second writer that still believes the stream is new is refused.
//!     let late = EventData::json(EventType::new("account.deposited")?, &Deposited { amount: 1 })?;
//!     let refused = store
//!         .append(&account, ExpectedVersion::NoStream, vec![late], AppendOptions::default())
//!         .await;
//!     assert!(matches!(refused, Err(StoreError::VersionConflict { actual: 2, .. })));
//!
//!     let balance = store
//!         .read_stream(&account, ReadStreamOptions::forward())
//!         .try_fold(0, |sum, event| async move {
//!             Ok(sum + event.deserialize_payload::<Deposited>().map_or(0, |d| d.amount))
//!         })
//!         .await?;
//!     Ok(balance)
//! }
//! ```
//!
//! ## A domain with the derives
//!
//! Events are plain structs with a stable name and a schema version; older stored versions are
//! upcast on read. An aggregate decides on commands (one method each) and folds events (one
//! exhaustive `match`: forgetting a variant is a compile error that points at it).
//!
//! ```
//! use es_core::{Aggregate, Apply, Event, Projection, ProjectionError, commands, projection};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, Event)]
//! #[event(name = "account.opened", version = 2, upcast(from = 1, with = add_currency))]
//! pub struct AccountOpened { pub owner: String, pub currency: String }
//!
//! fn add_currency(mut v1: serde_json::Value) -> Result<serde_json::Value, es_core::upcast::UpcastError> {
//!     v1["currency"] = "EUR".into(); // version 1 had no currency
//!     Ok(v1)
//! }
//!
//! #[derive(Debug, Serialize, Deserialize, Event)]
//! #[event(name = "account.deposited")]
//! pub struct Deposited { pub amount: i64 }
//!
//! #[derive(Debug, Event)]
//! pub enum AccountEvent { Opened(AccountOpened), Deposited(Deposited) }
//!
//! #[derive(Debug)]
//! pub enum AccountError { NotOpen }
//!
//! #[derive(Default, Aggregate)]
//! #[aggregate(name = "account", event = AccountEvent, error = AccountError, snapshot(every = 200))]
//! pub struct Account { open: bool, balance: i64 }
//!
//! #[derive(Clone, Hash)] // Clone: decided again after a conflict; Hash: fingerprinted under an idempotency key
//! pub struct Deposit { pub amount: i64 }
//!
//! #[commands] // generates `AccountCommand` with `From<Deposit>`, and the dispatch
//! impl Account {
//!     pub fn deposit(&self, command: Deposit) -> Result<Deposited, AccountError> {
//!         if !self.open { return Err(AccountError::NotOpen) }
//!         Ok(Deposited { amount: command.amount })
//!     }
//! }
//!
//! impl Apply<AccountEvent> for Account {
//!     fn apply(&mut self, event: &AccountEvent) {
//!         match event {
//!             AccountEvent::Opened(_) => self.open = true,
//!             AccountEvent::Deposited(deposited) => self.balance += deposited.amount,
//!         }
//!     }
//! }
//!
//! #[derive(Default)]
//! pub struct TotalDeposits { pub cents: i64 }
//!
//! #[projection(name = "total_deposits")] // handled types, dispatch, checkpoint name
//! impl TotalDeposits {
//!     async fn on_deposited(&mut self, event: &Deposited) -> Result<(), ProjectionError> {
//!         self.cents += event.amount;
//!         Ok(())
//!     }
//! }
//!
//! // A stored version-1 event reads as version 2:
//! let v1 = es_core::Payload::from_json(r#"{"owner":"ada"}"#.as_bytes().to_vec())?;
//! let opened = AccountEvent::from_stored("account.opened", 1, &v1)?;
//! let mut account = Account::default();
//! account.apply(&opened);
//! let decided = account.handle(Deposit { amount: 5 }.into());
//! assert!(matches!(decided.as_deref(), Ok([AccountEvent::Deposited(_)])));
//! assert_eq!(TotalDeposits::EVENT_TYPES[0].name, "account.deposited");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Modules
//! - [`id`]: tenants, streams, event types, event ids, idempotency keys, all validated on creation.
//! - [`event`]: the envelope ([`EventData`] in, [`RecordedEvent`] out), [`Payload`], [`EventMetadata`].
//! - [`store`]: [`EventStore`], [`MultiTenantStore`], [`ExpectedVersion`], [`Position`], reads and
//!   appends, [`StoreError`].
//! - [`Event`], [`EventVariant`], [`DecodeError`] (typed events) and [`upcast`]: stored names and
//!   versions, upcaster chains.
//! - [`aggregate`]: [`Aggregate`], [`Apply`], [`HandleCommand`], [`Decision`], [`SnapshotPolicy`].
//! - [`projection`](mod@projection): [`Projection`], [`ProjectionError`].
//! - `testing` (feature `testing`): the backend conformance suite.
//!
//! ## Feature flags
//! | feature | default | what it adds |
//! |---|---|---|
//! | `derive` | yes | `#[derive(Event)]`, `#[derive(Aggregate)]`, `#[commands]`, `#[projection]` (from `es-macros`) |
//! | `testing` | no | `testing::conformance` and the [`conformance_tests!`] macro that runs every contract case against a backend, each as its own `#[test]` |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod aggregate;
pub mod event;
pub mod id;
pub mod inbox;
pub mod outbox;
pub mod pii;
pub mod projection;
pub mod quota;
pub mod repository;
pub mod snapshot;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod upcast;

pub use aggregate::{Aggregate, Apply, Decision, HandleCommand, SnapshotPolicy};
pub use event::typed::{
    DecodeError, EncodeError, Event, EventTypeInfo, EventVariant, KnownTypes, PiiField, PiiSubject,
};
pub use event::{EventData, EventMetadata, Payload, PayloadError, RecordedEvent};
pub use id::{
    EventId, EventType, IdError, IdKind, IdempotencyKey, ProjectionName, StreamId, Subject,
    TenantId,
};
pub use pii::Pii;
pub use projection::{Projection, ProjectionError};
pub use store::{
    AppendOptions, AppendRequest, AppendResult, Direction, EventStore, EventStream,
    ExpectedVersion, Fingerprint, IdempotencyRecord, InvalidAppend, LogEvent, LogEventStream,
    MultiTenantStore, Position, ReadAllOptions, ReadStreamOptions, ReplayStream, ReplayedEvent,
    StoreError, StreamCatalog, StreamQuery, StreamSummary,
};

// The derive macros; each keeps its documentation from es-macros.
#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
pub use es_macros::{Aggregate, Event, commands, projection};

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
