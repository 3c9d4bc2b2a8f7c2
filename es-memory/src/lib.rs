//! # es-memory
//!
//! The in-memory backend of [`es_core`]: every promise of the event-store contract (atomic batches,
//! expected versions, idempotent appends, global order, tenant isolation, wake-ups for waiting
//! readers), kept in process memory. It passes the same conformance suite as the PostgreSQL
//! backend, so domain code tested here behaves the same in production.
//!
//! ```
//! use es_core::{AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore,
//!               ReadAllOptions, StreamId, TenantId};
//! use es_memory::MemoryStore;
//! use futures_util::TryStreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = MemoryStore::new();
//! let store = backend.tenant(TenantId::default());
//!
//! let stream = StreamId::in_category("account", "1")?;
//! let opened = EventData::json(EventType::new("account.opened")?, &serde_json::json!({ "owner": "Ada" }))?;
//! store.append(&stream, ExpectedVersion::NoStream, vec![opened], AppendOptions::default()).await?;
//!
//! let log: Vec<_> = store.read_all(ReadAllOptions::from_beginning()).try_collect().await?;
//! assert_eq!(log.len(), 1);
//! assert_eq!(log[0].stream_version, 1);
//! # Ok(()) }
//! ```
//!
//! Data lives as long as the [`MemoryStore`] (and its clones); nothing is written to disk.
//!
//! ## Concurrency
//! Each tenant's log sits behind its own lock: appends to one tenant are serialised (which is what
//! makes positions increase in commit order), reads copy a page at a time under a shared lock, and
//! tenants never contend with each other. Positions come from one counter shared by all tenants.
//!
//! ## Feature flags
//! None.

mod keys;
mod outbox;
mod reader;
mod store;
mod tenant_log;

pub use store::{MemoryProjectionLock, MemoryStore, MemoryTenantStore};
