//! Validated identifiers: tenants, streams, event types, event ids, idempotency keys,
//! projection names and the subjects integration messages are published under.
//!
//! Every identifier is checked once, when it is built (or deserialized), so a value of one of these
//! types is always valid and backends never see a malformed id. Cloning a textual id is cheap (a
//! reference-count increment), because ids travel on every event a store reads.

mod error;
mod event_id;
mod event_type;
mod idempotency_key;
mod projection_name;
mod stream;
mod subject;
mod tenant;
mod text;

pub use error::{IdError, IdKind};
pub use event_id::EventId;
pub use event_type::EventType;
pub use idempotency_key::IdempotencyKey;
pub use projection_name::ProjectionName;
pub use stream::StreamId;
pub use subject::Subject;
pub use tenant::TenantId;
