//! Recently used aggregates, by stream: their state and the version it includes.

use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::Mutex;

use crate::StreamId;

/// A bounded least-recently-used cache of aggregate states.
///
/// A command *takes* its stream's entry and puts the new state back after a successful append, so
/// two commands never share an entry, and an entry made stale by another process only costs a
/// version conflict and a reload (or, for a refusal or a no-op, which append nothing, a check of
/// the stream's version and a reload). Beyond `capacity` streams, the least recently used goes.
pub(super) struct Cache<A> {
    entries: Mutex<LruCache<StreamId, (u64, A)>>,
}

impl<A> Cache<A> {
    /// A cache of up to `capacity` streams.
    pub(super) fn new(capacity: NonZeroUsize) -> Self {
        Self { entries: Mutex::new(LruCache::new(capacity)) }
    }

    /// Removes and returns the stream's entry: its version and state.
    pub(super) fn take(&self, stream_id: &StreamId) -> Option<(u64, A)> {
        self.entries.lock().pop(stream_id)
    }

    /// Keeps `state` at `version` for the stream, unless a newer entry is already there.
    pub(super) fn put(&self, stream_id: &StreamId, version: u64, state: A) {
        let mut entries = self.entries.lock();
        // Commands on one stream can finish out of order (one appended, another was refused on
        // the state it loaded earlier): a newer entry is never replaced by an older one.
        if entries.peek(stream_id).is_some_and(|(held, _)| *held > version) {
            return;
        }
        entries.put(stream_id.clone(), (version, state));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(n: u32) -> StreamId {
        StreamId::new(format!("counter-{n}")).unwrap_or_else(|_| unreachable!())
    }

    fn cache(capacity: usize) -> Cache<&'static str> {
        Cache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN))
    }

    #[test]
    fn the_least_recently_used_stream_goes_first() {
        let cache = cache(2);
        cache.put(&stream(1), 1, "one");
        cache.put(&stream(2), 1, "two");
        // Stream 1 is used again (taken and put back), so stream 2 is now the oldest.
        let (version, state) = cache.take(&stream(1)).unwrap_or_else(|| unreachable!());
        cache.put(&stream(1), version, state);
        cache.put(&stream(3), 1, "three");
        assert!(cache.take(&stream(2)).is_none(), "the least recently used entry is evicted");
        assert_eq!(cache.take(&stream(1)), Some((1, "one")));
        assert_eq!(cache.take(&stream(3)), Some((1, "three")));
    }

    #[test]
    fn an_older_state_never_replaces_a_newer_one() {
        let cache = cache(4);
        cache.put(&stream(1), 5, "newer");
        cache.put(&stream(1), 3, "older");
        assert_eq!(cache.take(&stream(1)), Some((5, "newer")));
        cache.put(&stream(1), 5, "five");
        cache.put(&stream(1), 6, "six");
        assert_eq!(cache.take(&stream(1)), Some((6, "six")));
    }

    #[test]
    fn a_taken_entry_is_gone() {
        let cache = cache(1);
        cache.put(&stream(1), 1, "one");
        assert!(cache.take(&stream(1)).is_some());
        assert!(cache.take(&stream(1)).is_none());
    }
}
