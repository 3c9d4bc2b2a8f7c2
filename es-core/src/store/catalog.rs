//! The stream catalog: which streams a tenant has, found by id prefix, in id order, a page at a
//! time. Operators' tools (the console, admin CLIs) use it; the command path never does.

use std::future::Future;

use chrono::{DateTime, Utc};

use super::{Position, StoreError};
use crate::StreamId;

/// The most streams one [`StreamCatalog::list_streams`] call returns.
pub const MAX_STREAMS_PER_PAGE: usize = 1_000;

/// Which streams to list: those whose id starts with `prefix`, after `after` in id order, at most
/// `limit`.
///
/// Id order is the byte order of the UTF-8 id on the in-memory backend and the database's
/// collation on PostgreSQL (so that its index serves the page); the two agree on ids of lowercase
/// ASCII letters, digits and `-`. Within one backend the order is total and stable, so paging with
/// [`after`](StreamQuery::after) never skips or repeats a stream.
///
/// ```
/// use es_core::{StreamId, StreamQuery};
/// let first = StreamQuery::category("account").expect("a valid category").limit(50);
/// let next = first.clone().after(StreamId::new("account-42").expect("valid id"));
/// assert_eq!(next.prefix_str(), "account-");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamQuery {
    prefix: String,
    after: Option<StreamId>,
    limit: usize,
}

impl StreamQuery {
    /// Every stream, 100 to a page.
    pub fn all() -> Self {
        Self { prefix: String::new(), after: None, limit: 100 }
    }

    /// Streams whose id starts with `prefix`. A prefix longer than any valid id, or holding a
    /// character no id may hold, is refused, so a hostile search never reaches the backend.
    pub fn prefix(prefix: &str) -> Result<Self, crate::IdError> {
        if !prefix.is_empty() {
            // A prefix of a valid id is itself a valid id (the rules are per character and a
            // maximum length), so the id rules check it.
            StreamId::new(prefix)?;
        }
        Ok(Self { prefix: prefix.to_owned(), ..Self::all() })
    }

    /// The streams of a category: ids starting with `"{category}-"` (see [`StreamId::in_category`]).
    pub fn category(category: &str) -> Result<Self, crate::IdError> {
        let probe = StreamId::in_category(category, "x")?;
        let prefix = &probe.as_str()[..=category.len()];
        Ok(Self { prefix: prefix.to_owned(), ..Self::all() })
    }

    /// Starts after this id (the last id of the previous page).
    #[must_use]
    pub fn after(mut self, stream_id: StreamId) -> Self {
        self.after = Some(stream_id);
        self
    }

    /// At most `limit` streams, clamped to `1..=`[`MAX_STREAMS_PER_PAGE`].
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, MAX_STREAMS_PER_PAGE);
        self
    }

    /// The id prefix (empty for every stream).
    pub fn prefix_str(&self) -> &str {
        &self.prefix
    }

    /// The id the page starts after.
    pub fn after_id(&self) -> Option<&StreamId> {
        self.after.as_ref()
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.limit
    }

    /// Whether `stream_id` belongs on a page of this query (prefix and `after`; not the limit).
    pub fn matches(&self, stream_id: &StreamId) -> bool {
        stream_id.as_str().starts_with(&self.prefix)
            && self.after.as_ref().is_none_or(|after| stream_id.as_str() > after.as_str())
    }
}

/// One stream of a catalog page.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamSummary {
    /// The stream.
    pub stream_id: StreamId,
    /// Its version (the number of its events).
    pub version: u64,
    /// The position of its last event.
    pub last_position: Position,
    /// When its last event was recorded.
    pub last_recorded_at: DateTime<Utc>,
}

impl StreamSummary {
    /// A summary (for backends).
    pub fn new(
        stream_id: StreamId,
        version: u64,
        last_position: Position,
        last_recorded_at: DateTime<Utc>,
    ) -> Self {
        Self { stream_id, version, last_position, last_recorded_at }
    }
}

/// Lists a tenant's streams; implemented by the tenant-scoped store handles (a capability).
///
/// ```no_run
/// # async fn demo<S: es_core::StreamCatalog>(store: S) -> Result<(), es_core::StoreError> {
/// use es_core::StreamQuery;
/// let mut query = StreamQuery::category("account").expect("a valid category").limit(100);
/// loop {
///     let page = store.list_streams(&query).await?;
///     let Some(last) = page.last() else { break };
///     query = query.after(last.stream_id.clone());
/// }
/// # Ok(()) }
/// ```
pub trait StreamCatalog: Clone + Send + Sync + 'static {
    /// The streams that match `query`, in id order, at most its limit.
    fn list_streams(
        &self,
        query: &StreamQuery,
    ) -> impl Future<Output = Result<Vec<StreamSummary>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> StreamId {
        StreamId::new(text).expect("valid id")
    }

    #[test]
    fn a_category_is_its_prefix_with_the_dash_and_is_checked() {
        let query = StreamQuery::category("account").expect("valid");
        assert_eq!(query.prefix_str(), "account-");
        assert!(query.matches(&id("account-1")));
        assert!(!query.matches(&id("accounts-1")), "another category");
        assert!(!query.matches(&id("account")), "the bare category is no stream of it");
        assert!(StreamQuery::category("a-b").is_err(), "a category holds no dash");
        assert!(StreamQuery::category("").is_err());
    }

    #[test]
    fn a_prefix_is_checked_with_the_id_rules() {
        assert_eq!(StreamQuery::prefix("").expect("empty: every stream").prefix_str(), "");
        assert_eq!(StreamQuery::prefix("acc").expect("valid").prefix_str(), "acc");
        assert!(StreamQuery::prefix("bad\nprefix").is_err());
        assert!(StreamQuery::prefix(&"a".repeat(300)).is_err(), "longer than any id");
        assert!(StreamQuery::all().matches(&id("anything")));
    }

    #[test]
    fn after_skips_up_to_and_including_its_id() {
        let query = StreamQuery::prefix("s-").expect("valid").after(id("s-2"));
        assert_eq!(query.after_id(), Some(&id("s-2")));
        assert!(!query.matches(&id("s-1")));
        assert!(!query.matches(&id("s-2")), "the last id of the previous page is not repeated");
        assert!(query.matches(&id("s-3")));
    }

    #[test]
    fn the_limit_is_clamped_to_a_page() {
        assert_eq!(StreamQuery::all().page_size(), 100);
        assert_eq!(StreamQuery::all().limit(0).page_size(), 1);
        assert_eq!(StreamQuery::all().limit(7).page_size(), 7);
        assert_eq!(StreamQuery::all().limit(usize::MAX).page_size(), MAX_STREAMS_PER_PAGE);
    }
}
