//! The validated name a projection's checkpoint, dead letters, lock and metrics go under.

use std::sync::Arc;

use super::IdKind;
use super::text::{Rules, text_id};

const RULES: Rules = Rules { kind: IdKind::Projection, rule: es_names::PROJECTION };

/// The name a projection's checkpoint, dead letters, lock and metrics go under.
///
/// 1 to 128 bytes of ASCII letters, digits, `-`, `_` and `.`: the name is a key in the stores,
/// a label in metrics and part of an advisory-lock key, so it is kept to a safe alphabet.
/// `#[projection(name = "…")]` checks its literal at compile time;
/// [`Projection::projection_name`](crate::Projection::projection_name) makes the name of any
/// projection, hand-written ones included, a compile-time-checked value.
///
/// ```
/// use es_core::ProjectionName;
/// let balances: ProjectionName = "balances".parse()?;
/// assert_eq!(balances.suffixed("rebuild")?.as_str(), "balances.rebuild");
/// assert!(ProjectionName::new("balances; DROP TABLE").is_err());
/// # Ok::<(), es_core::IdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ProjectionName(Arc<str>);

text_id!(ProjectionName, RULES);

impl ProjectionName {
    /// `{self}.{suffix}`: a related name (a rebuild's staging checkpoint, one model per process).
    pub fn suffixed(&self, suffix: &str) -> Result<Self, crate::IdError> {
        Self::new(format!("{self}.{suffix}"))
    }

    /// Checks a projection's own name at compile time when used in a constant: a name that
    /// breaks the rules stops the build. A projection's own name is at most 64 bytes, leaving room
    /// for suffixes ([`suffixed`](Self::suffixed)). Returns the name unchanged.
    ///
    /// # Panics
    ///
    /// When the name breaks the rules: meant for constants, where the panic is a build error
    /// (`Projection::projection_name`), never for run time.
    #[must_use]
    pub(crate) const fn checked(name: &'static str) -> &'static str {
        // Only ever evaluated in a constant (`Projection::projection_name`): a panic here is a
        // compile error naming the rule, never a run-time failure.
        match es_names::PROJECTION_OWN.check(name) {
            Ok(()) => {}
            Err(es_names::Violation::Empty | es_names::Violation::TooLong { .. }) => {
                panic!("a projection's own name is 1 to 64 bytes long")
            }
            Err(es_names::Violation::InvalidChar { .. }) => {
                panic!("projection names use ASCII letters, digits, '-', '_' and '.'")
            }
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules_at_run_time_and_compile_time_alike() {
        for good in ["balances", "statements.rebuild", "bank-transfer_process.v2", "a"] {
            assert!(ProjectionName::new(good).is_ok(), "{good}");
            assert_eq!(ProjectionName::checked(good), good);
        }
        let long = "x".repeat(65);
        assert!(ProjectionName::new(&long).is_ok(), "derived names may be longer");
        let long: &'static str = Box::leak(long.into_boxed_str());
        assert!(std::panic::catch_unwind(|| ProjectionName::checked(long)).is_err());
        for bad in ["", "bal ances", "bälances", "a/b", &"x".repeat(129)] {
            assert!(ProjectionName::new(bad).is_err(), "{bad:?}");
            let bad: &'static str = Box::leak(bad.to_owned().into_boxed_str());
            assert!(std::panic::catch_unwind(|| ProjectionName::checked(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_suffix_keeps_the_rules() {
        let name = ProjectionName::new("balances").unwrap_or_else(|_| unreachable!());
        assert_eq!(
            name.suffixed("rebuild").map(|n| n.to_string()).ok().as_deref(),
            Some("balances.rebuild")
        );
        assert!(name.suffixed("re build").is_err());
    }
}
