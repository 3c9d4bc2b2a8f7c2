//! The stable stored name of an event type.

use std::sync::Arc;

use super::IdKind;
use super::text::{Rules, text_id};

const RULES: Rules = Rules { kind: IdKind::EventType, rule: es_names::EVENT_TYPE };

/// The stable name of an event type, as stored beside every event (`account.opened`).
///
/// 1 to 128 bytes of ASCII letters, digits and `.`, `_`, `-`, `:`, `/`. The name is part of the
/// stored data: renaming a type in code must not rename it here, which is why the derive lets a
/// name be fixed once and for all.
///
/// ```
/// use es_core::EventType;
/// let opened = EventType::new("account.opened")?;
/// assert_eq!(opened.to_string(), "account.opened");
/// assert!(EventType::new("account opened").is_err());
/// # Ok::<(), es_core::IdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct EventType(Arc<str>);

text_id!(EventType, RULES);
