//! Stream ids and their categories.

use std::sync::Arc;

use super::text::{Rules, text_id};
use super::{IdError, IdKind};

const RULES: Rules = Rules { kind: IdKind::Stream, rule: es_names::STREAM };

const CATEGORY_RULES: Rules = Rules { kind: IdKind::Category, rule: es_names::CATEGORY };

/// The identity of one event stream within a tenant, typically one aggregate instance.
///
/// 1 to 256 bytes of UTF-8 without control characters. By convention the part before the first `-` is
/// the stream's *category*, the aggregate type (`account-42` is in category `account`);
/// [`StreamId::in_category`] builds ids that follow it.
///
/// ```
/// use es_core::StreamId;
/// let id = StreamId::in_category("account", "42")?;
/// assert_eq!(id.as_str(), "account-42");
/// assert_eq!(id.category(), Some("account"));
/// assert!(StreamId::new("").is_err());
/// assert!(StreamId::new("bad\nid").is_err());
/// # Ok::<(), es_core::IdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct StreamId(Arc<str>);

text_id!(StreamId, RULES);

impl StreamId {
    /// Builds `"{category}-{id}"`, checking that the category holds no `-` and the whole is a valid id.
    pub fn in_category(category: &str, id: impl AsRef<str>) -> Result<Self, IdError> {
        CATEGORY_RULES.check(category)?;
        Self::new(format!("{category}-{}", id.as_ref()))
    }

    /// The part before the first `-`, if the id has one.
    pub fn category(&self) -> Option<&str> {
        self.0.split_once('-').map(|(category, _)| category)
    }
}
