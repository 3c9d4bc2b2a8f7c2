//! # es: event sourcing for Rust
//!
//! The crate applications depend on. It re-exports the contract and the runtime of
//! [`es_core`] (events, aggregates, the command pipeline, snapshots, projections) with its
//! derive macros, and each backend behind a cargo feature, so the same domain code runs on the
//! in-memory store in tests and on PostgreSQL in production:
//!
//! ```toml
//! [dependencies]
//! es = { version = "0.1", features = ["postgres"] }   # "memory" is on by default
//! ```
//!
//! ```
//! use es::repository::{CommandOptions, Repository};
//! use es::{Aggregate, Apply, Event, MultiTenantStore, StreamId, TenantId, commands};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, Event)]
//! #[event(name = "counter.incremented")]
//! pub struct Incremented { by: i64 }
//!
//! #[derive(Debug, Event)]
//! pub enum CounterEvent { Incremented(Incremented) }
//!
//! #[derive(Debug)]
//! pub enum CounterError { TooBig }
//!
//! #[derive(Default, Serialize, Deserialize, Aggregate)]
//! #[aggregate(name = "counter", event = CounterEvent, error = CounterError)]
//! pub struct Counter { value: i64 }
//!
//! #[derive(Clone, Hash)]
//! pub struct Increment { by: i64 }
//!
//! #[commands]
//! impl Counter {
//!     pub fn increment(&self, command: Increment) -> Result<Incremented, CounterError> {
//!         if self.value + command.by > 100 { Err(CounterError::TooBig) } else { Ok(Incremented { by: command.by }) }
//!     }
//! }
//!
//! impl Apply<CounterEvent> for Counter {
//!     fn apply(&mut self, event: &CounterEvent) {
//!         let CounterEvent::Incremented(incremented) = event;
//!         self.value += incremented.by;
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = es::memory::MemoryStore::new().tenant(TenantId::default());
//! let counters = Repository::<Counter, _>::new(store);
//! let id = StreamId::in_category(Counter::NAME, "7")?;
//! let outcome = counters.execute(&id, Increment { by: 5 }, CommandOptions::default()).await;
//! assert_eq!(outcome.map(|done| done.version).ok(), Some(1));
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//! | feature | default | what it adds |
//! |---|---|---|
//! | `memory` | yes | [`memory`]: the in-memory backend (`MemoryStore`) |
//! | `postgres` | no | [`postgres`]: the PostgreSQL backend (`PgStore`, migrations, the gap-safe read horizon) |
//! | `console` | no | [`console`]: the operations console, an axum router to mount (`Console`) |
//! | `nats` | no | [`nats`]: the NATS JetStream sink of the outbox relay (`JetStreamSink`) |
//! | `testing` | no | the conformance suite (`testing`, `conformance_tests!`, `capability_tests!`), and with `postgres` its test fixtures |
//!
//! The derive macros name this crate in the code they generate when an application depends on
//! `es` rather than `es-core` (they look the dependency up in the application's `Cargo.toml`).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use es_core::*;

/// The in-memory backend (feature `memory`, on by default): [`es_memory`].
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use es_memory as memory;

/// The operations console (feature `console`): [`es_console`].
#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub use es_console as console;

/// The NATS JetStream sink of the outbox relay (feature `nats`): [`es_nats`].
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use es_nats as nats;

/// The PostgreSQL backend (feature `postgres`): [`es_postgres`].
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use es_postgres as postgres;
