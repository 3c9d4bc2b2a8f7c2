//! The subject an integration message is published under.

use std::sync::Arc;

use super::text::{Rules, text_id};
use super::{IdError, IdKind};

/// The subject rules, plus: no empty token.
struct SubjectRules;

const RULES: Rules = Rules { kind: IdKind::Subject, rule: es_names::SUBJECT };

impl SubjectRules {
    #[allow(clippy::unused_self, reason = "called as `RULES.make` by `text_id!`, like every rule")]
    fn make(&self, value: &str) -> Result<Arc<str>, IdError> {
        RULES.check(value)?;
        let empty_token = if value.starts_with('.') {
            Some(0)
        } else if value.ends_with('.') {
            Some(value.len() - 1)
        } else {
            value.find("..").map(|at| at + 1)
        };
        if let Some(at) = empty_token {
            return Err(IdError::InvalidChar {
                kind: IdKind::Subject,
                value: value.to_owned(),
                found: '.',
                at,
                allowed: "subjects are '.'-separated tokens, none of them empty",
            });
        }
        Ok(Arc::from(value))
    }
}

/// The subject an integration message is published under (see [`crate::outbox`]): `bank.account.opened`.
///
/// 1 to 255 bytes: `.`-separated tokens of ASCII letters, digits, `-` and `_`, none empty. The
/// subject is part of the public contract with other services, so it is validated when built; NATS
/// wildcards (`*`, `>`) are refused, as a message goes to one subject.
///
/// ```
/// use es_core::Subject;
/// assert_eq!(Subject::new("bank.account.opened")?.as_str(), "bank.account.opened");
/// assert!(Subject::new("bank.*").is_err());
/// assert!(Subject::new("bank..opened").is_err());
/// assert!(Subject::new(".bank").is_err());
/// # Ok::<(), es_core::IdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Subject(Arc<str>);

text_id!(Subject, SubjectRules);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_never_empty() {
        for good in ["a", "bank.account.opened", "bank.v2.account-opened_x"] {
            assert!(Subject::new(good).is_ok(), "{good}");
        }
        for (bad, at) in [(".a", 0), ("a.", 1), ("a..b", 2), (".", 0)] {
            assert!(
                matches!(Subject::new(bad), Err(IdError::InvalidChar { at: found, .. }) if found == at),
                "{bad}"
            );
        }
        for bad in ["", "a b", "a.*", "a.>", "ä", &"x".repeat(256)] {
            assert!(Subject::new(bad).is_err(), "{bad:?}");
        }
    }
}
