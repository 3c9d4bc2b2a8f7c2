//! The naming rules the runtime enforces, checked at compile time on the user's literals.

/// The rule of `es_core::EventType`: 1 to 128 bytes of ASCII letters, digits, `.`, `_`, `-`, `:`, `/`.
pub(crate) fn event_type_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!("event type name {name:?} must be 1 to 128 bytes long"));
    }
    match name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')))
    {
        Some(c) => Err(format!(
            "event type name {name:?} contains {c:?}; names use ASCII letters, digits and '.', '_', '-', ':', '/'"
        )),
        None => Ok(()),
    }
}

/// A stream category (aggregate name, projection name): 1 to 64 bytes of ASCII letters, digits,
/// `_` and `.` (a `-` would end the category in a stream id).
pub(crate) fn category_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{what} {name:?} must be 1 to 64 bytes long"));
    }
    match name.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))) {
        Some(c) => {
            Err(format!("{what} {name:?} contains {c:?}; use ASCII letters, digits, '_' and '.'"))
        }
        None => Ok(()),
    }
}

/// A stored event name to suggest for a type: `AccountOpened` → `account.opened`, reduced to the
/// characters [`event_type_name`] allows (`event` if none is left).
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
            assert!(event_type_name(&suggested_event_name(ident)).is_ok(), "{ident}");
        }
    }

    #[test]
    fn names() {
        assert!(event_type_name("account.opened").is_ok());
        assert!(event_type_name("account opened").is_err());
        assert!(event_type_name("").is_err());
        assert!(category_name("aggregate name", "bank_account").is_ok());
        assert!(category_name("aggregate name", "bank-account").is_err());
        assert_eq!(snake_case("BankAccount"), "bank_account");
        assert_eq!(pascal_case("withdraw_all"), "WithdrawAll");
    }
}
