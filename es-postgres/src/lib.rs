//! # es-postgres
//!
//! The PostgreSQL backend of [`es_core`], on sqlx. It keeps every promise of the event-store
//! contract under concurrency and passes the same conformance suite as the in-memory backend.
//!
//! ```no_run
//! use es_core::{AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore,
//!               StreamId, TenantId};
//! use es_postgres::{PgStore, PgStoreOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = PgStore::connect_with(
//!     PgStoreOptions::new("postgres://app@127.0.0.1:5432/app").schema("es")?,
//! )
//! .await?;
//! backend.migrate().await?; // idempotent: creates the schema and applies pending migrations
//!
//! let store = backend.tenant(TenantId::new("acme")?);
//! let stream = StreamId::in_category("account", "1")?;
//! let opened = EventData::json(EventType::new("account.opened")?, &serde_json::json!({ "owner": "Ada" }))?;
//! store.append(&stream, ExpectedVersion::NoStream, vec![opened], AppendOptions::default()).await?;
//! # Ok(()) }
//! ```
//!
//! ## Schema
//! The tables live in one schema (default `es`, see [`PgStoreOptions::schema`]) created and
//! migrated by [`PgStore::migrate`] from migrations embedded in the crate (`migrations/`): `events`
//! (the log; `UPDATE`, `DELETE` and `TRUNCATE` are refused by triggers), `idempotency_keys`
//! (durable records of idempotent appends), `snapshots`, `checkpoints` (projection checkpoints)
//! and `dead_letters` (parked events); projection locks are advisory locks, not rows. Every key
//! starts with the tenant. There is no table of
//! streams: a stream's version is its highest `stream_version`, and the unique key on
//! `(tenant, stream_id, stream_version)` is the concurrency control.
//!
//! ## Appends
//! One round trip, on one of two paths. Appends without an idempotency key that expect `NoStream`
//! or `Exact(n)` (the command pipeline's appends of commands run without a key) are one plain
//! `INSERT … SELECT FROM unnest(…)` whose unique key refuses a version already taken. Every other
//! append (with an idempotency key, such as a keyed command, or expecting `Any` or
//! `StreamExists`) calls the `append_events()` function: it answers a recorded key at once, else
//! takes the stream's turn (a transaction-scoped advisory lock, no disk write), reads the key again
//! (a concurrent first append of the same key has committed by then), checks the expected version,
//! inserts the whole batch and records the key, all in the statement's transaction. A conflict
//! writes nothing.
//! With [`PgStoreOptions::group_commit`], concurrent appends of the first kind share one
//! statement, one transaction and one WAL flush, each with its own outcome (`docs/postgres.md`).
//! Transient failures are retried (up to [`PgStoreOptions::append_attempts`]) only where a retry
//! cannot write twice: when the server rolled the statement back, or when the connection was lost
//! and the append carries an idempotency key.
//!
//! ## Global order
//! Positions come from one sequence, so they are taken in one order and committed in another.
//! Readers return events only up to a *horizon*, a position below which every append transaction
//! has ended (module `horizon`, and `docs/postgres.md`): nothing is ever skipped and no timer
//! guesses that a gap is dead. The cost: an append transaction that stays open holds every reader
//! of the schema back until it ends; [`PgStore::horizon_status`] shows which session does.
//!
//! ## Waiting for events
//! [`EventStore::wait_for_events`](es_core::EventStore::wait_for_events) wakes on LISTEN/NOTIFY
//! (channel `es_events_<schema>`), sent by a background task after appends rather than inside
//! each append transaction, and polls every [`PgStoreOptions::poll_interval`] as a fallback.
//!
//! ## Feature flags
//! | feature | default | what it adds |
//! |---|---|---|
//! | `testing` | no | `testing::FreshSchema`: a store on a fresh, migrated schema, dropped when the test ends; `testing::PrivateCluster`: a server of the test's own to crash and restart |

mod admin;
mod append;
mod catalog;
mod checkpoint;
mod dead_letter;
mod error;
mod group_commit;
mod horizon;
mod inbox;
mod keys;
mod lock;
mod notify;
mod options;
mod outbox;
mod pool;
mod quota;
mod read;
mod rls;
mod row;
mod snapshot;
mod sql;
mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod transactional;
mod writes;

pub use admin::StoreStatistics;
pub use error::ConfigError;
pub use group_commit::GroupCommitStats;
pub use inbox::InboxTransaction;
pub use lock::PgProjectionLock;
pub use options::PgStoreOptions;
pub use store::{HorizonStatus, OpenAppend, PgStore, PgTenantStore};
