//! Event ids: UUID v7 when made here, derived (v8) for messages published about an event.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The unique id of one event: a UUID, version 7 (time-ordered) when the framework makes it.
///
/// Unique within a tenant; a backend refuses a second event with the same id.
///
/// ```
/// use es_core::EventId;
/// let a = EventId::new();
/// let b = EventId::new();
/// assert_ne!(a, b);
/// assert_eq!(a.as_uuid().get_version_num(), 7);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    /// A fresh time-ordered id (UUID v7).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// An id derived from `source` and `scope`, the same every time: the id of a message a
    /// projection or process manager publishes for an event (`scope` names the publisher), so
    /// handling the event again enqueues nothing new and consumers drop repeats. A UUID of
    /// version 8 (custom): the first 16 bytes of SHA-256 over the scope and the source id.
    ///
    /// ```
    /// use es_core::EventId;
    /// let event = EventId::new();
    /// assert_eq!(EventId::derived(event, "notifications"), EventId::derived(event, "notifications"));
    /// assert_ne!(EventId::derived(event, "notifications"), EventId::derived(event, "audit"));
    /// assert_eq!(EventId::derived(event, "audit").as_uuid().get_version_num(), 8);
    /// ```
    pub fn derived(source: Self, scope: &str) -> Self {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update((scope.len() as u64).to_le_bytes());
        hasher.update(scope.as_bytes());
        hasher.update(source.0.as_bytes());
        let digest = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// Wraps an existing UUID, for instance one stored by a backend or chosen by a client.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for EventId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<EventId> for Uuid {
    fn from(id: EventId) -> Self {
        id.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
