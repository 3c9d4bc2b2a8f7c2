//! The caller's key that makes an append safe to retry.

use std::sync::Arc;

use super::IdKind;
use super::text::{Rules, text_id};

const RULES: Rules = Rules { kind: IdKind::IdempotencyKey, rule: es_names::IDEMPOTENCY_KEY };

/// A caller-chosen key that makes an append safe to retry (see
/// [`AppendOptions::idempotency_key`](crate::AppendOptions::idempotency_key)).
///
/// 1 to 128 bytes of UTF-8 without control characters, scoped to the tenant. A request id from an
/// HTTP header or a command id are typical keys.
///
/// ```
/// use es_core::IdempotencyKey;
/// let key = IdempotencyKey::new("req-7f3a")?;
/// assert_eq!(key.as_str(), "req-7f3a");
/// # Ok::<(), es_core::IdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct IdempotencyKey(Arc<str>);

text_id!(IdempotencyKey, RULES);
