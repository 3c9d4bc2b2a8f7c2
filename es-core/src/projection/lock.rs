//! One owner per projection: when several processes run the same projection, the one holding its
//! lock runs it; when that process dies, its lock goes with it and another takes over.

use std::future::Future;

use crate::StoreError;

/// Hands out projection locks; implemented by the tenant-scoped store handles (a capability
/// beside [`EventStore`](crate::EventStore)).
pub trait ProjectionLocks: Clone + Send + Sync + 'static {
    /// The held lock; dropping it releases it.
    type Lock: ProjectionLock;

    /// Takes the lock of `projection` if nobody holds it.
    fn try_lock(
        &self,
        projection: &crate::ProjectionName,
    ) -> impl Future<Output = Result<Option<Self::Lock>, StoreError>> + Send;
}

/// A held projection lock.
pub trait ProjectionLock: Send + 'static {
    /// Whether the lock is still held (a backend may lose it, for example with its connection).
    fn is_held(&mut self) -> impl Future<Output = bool> + Send;
}
