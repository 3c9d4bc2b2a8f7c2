//! The naming rules the runtime enforces (defined once, in `es-names`), checked at compile time
//! on the user's literals, and the case conversions that derive names from Rust identifiers.

use es_names::{Rule, Violation};

/// Checks `name` against `rule`; the message names it as `what` (`aggregate name`).
pub(crate) fn check(rule: &Rule, what: &str, name: &str) -> Result<(), String> {
    match rule.check(name) {
        Ok(()) => Ok(()),
        Err(Violation::Empty | Violation::TooLong { .. }) => {
            Err(format!("{what} {name:?} must be 1 to {} bytes long", rule.max_len))
        }
        Err(Violation::InvalidChar { at }) => {
            let found = name[at..].chars().next().unwrap_or_default();
            Err(format!("{what} {name:?} contains {found:?}; {}", rule.allowed))
        }
    }
}

/// A stored event name to suggest for a type: `AccountOpened` → `account.opened`, reduced to the
/// characters `es_names::EVENT_TYPE` allows (`event` if none is left).
pub(crate) fn suggested_event_name(ident: &str) -> String {
    let dotted: String = snake_case(ident)
        .replace('_', ".")
        .chars()
        .filter(|&c| c.is_ascii_alphanumeric() || c == '.')
        .collect();
    let dotted = dotted.trim_matches('.').to_owned();
    if dotted.is_empty() { "event".to_owned() } else { dotted }
}

/// `BankAccount` → `bank_account`.
pub(crate) fn snake_case(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, c) in ident.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `withdraw_all` → `WithdrawAll`.
pub(crate) fn pascal_case(ident: &str) -> String {
    ident
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_event_names_are_valid_names() {
        assert_eq!(suggested_event_name("AccountOpened"), "account.opened");
        assert_eq!(suggested_event_name("Marker"), "marker");
        assert_eq!(suggested_event_name("Einzahlungsbestätigung"), "einzahlungsbesttigung");
        assert_eq!(suggested_event_name("Ä"), "event");
        for ident in ["AccountOpened", "X", "Ä", "HTTPCall"] {
            assert!(es_names::EVENT_TYPE.allows(&suggested_event_name(ident)), "{ident}");
        }
    }

    #[test]
    fn names() {
        assert!(check(&es_names::EVENT_TYPE, "event name", "account.opened").is_ok());
        assert_eq!(
            check(&es_names::EVENT_TYPE, "event name", "account opened"),
            Err("event name \"account opened\" contains ' '; event type names use ASCII letters, digits and '.', '_', '-', ':', '/'".to_owned())
        );
        assert!(check(&es_names::EVENT_TYPE, "event name", "").is_err());
        assert!(check(&es_names::CATEGORY, "aggregate name", "bank_account").is_ok());
        assert!(check(&es_names::CATEGORY, "aggregate name", "bank-account").is_err());
        assert_eq!(snake_case("BankAccount"), "bank_account");
        assert_eq!(pascal_case("withdraw_all"), "WithdrawAll");
    }
}
