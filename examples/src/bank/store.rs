//! What the bank needs from a backend: events, snapshots, checkpoints, dead letters, locks and
//! the outbox.
//! Both `es::memory::MemoryTenantStore` and `es::postgres::PgTenantStore` provide all of it.

use es::EventStore;
use es::outbox::OutboxStore;
use es::pii::PersonalData;
use es::projection::{CheckpointStore, DeadLetterStore, ProjectionLocks};
use es::snapshot::SnapshotStore;

/// A tenant's store with every capability the bank uses.
pub trait BankStore:
    EventStore
    + SnapshotStore
    + CheckpointStore
    + DeadLetterStore
    + ProjectionLocks
    + OutboxStore
    + PersonalData
    + es::StreamCatalog
{
}

impl<T> BankStore for T where
    T: EventStore
        + PersonalData
        + es::StreamCatalog
        + SnapshotStore
        + CheckpointStore
        + DeadLetterStore
        + ProjectionLocks
        + OutboxStore
{
}
