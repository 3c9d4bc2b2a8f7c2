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
//! #[derive(serde::Serialize, serde::Deserialize)]
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
//! ## Modules
//! - [`id`]: tenants, streams, event types, event ids, idempotency keys, all validated on creation.
//! - [`event`]: the envelope ([`EventData`] in, [`RecordedEvent`] out), [`Payload`], [`EventMetadata`].
//! - [`store`]: [`EventStore`], [`MultiTenantStore`], [`ExpectedVersion`], [`Position`], reads and
//!   appends, [`StoreError`].
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
pub mod projection;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod upcast;

pub use aggregate::{Aggregate, Apply, Decision, HandleCommand, SnapshotPolicy};
pub use event::typed::{
    DecodeError, EncodeError, Event, EventTypeInfo, EventVariant, KnownTypes, PiiField,
};
pub use event::{EventData, EventMetadata, Payload, PayloadError, RecordedEvent};
pub use id::{EventId, EventType, IdError, IdKind, IdempotencyKey, StreamId, TenantId};
pub use projection::{Projection, ProjectionError};
pub use store::{
    AppendOptions, AppendRequest, AppendResult, Direction, EventStore, EventStream,
    ExpectedVersion, Fingerprint, IdempotencyRecord, InvalidAppend, MultiTenantStore, Position,
    ReadAllOptions, ReadStreamOptions, StoreError,
};

// The derive macros; each keeps its documentation from es-macros.
#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
pub use es_macros::{Aggregate, Event, commands, projection};

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
