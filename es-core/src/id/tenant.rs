//! Tenant ids: every store handle is scoped to one.

use std::sync::{Arc, LazyLock};

use super::IdKind;
use super::text::{Rules, text_id};

const RULES: Rules = Rules { kind: IdKind::Tenant, rule: es_names::TENANT };

/// The tenant every call of a store handle is scoped to.
///
/// 1 to 64 bytes of ASCII letters, digits, `-`, `_` and `.`: tenant ids end up in keys, metric labels
/// and, when a store partitions by tenant, in table names, so they are kept to a safe alphabet.
/// Single-tenant applications use [`TenantId::default()`], the tenant named `default`.
///
/// ```
/// use es_core::TenantId;
/// let acme: TenantId = "acme".parse()?;
/// assert_eq!(acme.as_str(), "acme");
/// assert!(TenantId::new("acme corp").is_err());
/// assert_eq!(TenantId::default().as_str(), "default");
/// # Ok::<(), es_core::IdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TenantId(Arc<str>);

text_id!(TenantId, RULES);

impl Default for TenantId {
    fn default() -> Self {
        static DEFAULT: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("default"));
        Self(DEFAULT.clone())
    }
}
