//! The event-store contract every backend implements (DESIGN.md §3).
//!
//! A backend offers a [`MultiTenantStore`]: an engine that hands out [`EventStore`] handles, each
//! scoped to one tenant. Everything a handle does (append, read a stream, read the global log,
//! wait for new events) sees only its tenant's data.

mod append;
mod catalog;
mod error;
mod expected_version;
mod position;
mod read;
mod subscribe;
mod traits;

pub use append::{AppendOptions, AppendRequest, AppendResult, Fingerprint, IdempotencyRecord};
pub use catalog::{MAX_STREAMS_PER_PAGE, StreamCatalog, StreamQuery, StreamSummary};
pub use error::{InvalidAppend, StoreError};
pub use expected_version::ExpectedVersion;
pub use position::Position;
pub use read::{
    Direction, EventStream, LogEvent, LogEventStream, ReadAllOptions, ReadStreamOptions,
    ReplayStream, ReplayedEvent,
};
pub use subscribe::{SubscribeOptions, subscribe};
pub use traits::{EventStore, MultiTenantStore};
