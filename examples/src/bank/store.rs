//! What the bank needs from a backend: events, snapshots, checkpoints, dead letters and locks.
//! Both `es_memory::MemoryTenantStore` and `es_postgres::PgTenantStore` provide all of it.

use es_core::EventStore;
use es_core::projection::{CheckpointStore, DeadLetterStore, ProjectionLocks};
use es_core::snapshot::SnapshotStore;

/// A tenant's store with every capability the bank uses.
pub trait BankStore:
    EventStore + SnapshotStore + CheckpointStore + DeadLetterStore + ProjectionLocks
{
}

impl<T> BankStore for T where
    T: EventStore + SnapshotStore + CheckpointStore + DeadLetterStore + ProjectionLocks
{
}
