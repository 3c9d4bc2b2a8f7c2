//! The console's pages, one module per section, and the parameter rules they share.

pub(crate) mod health;
pub(crate) mod log;
pub(crate) mod login;
pub(crate) mod overview;
pub(crate) mod parked;
pub(crate) mod projections;
pub(crate) mod stream;
pub(crate) mod streams;
pub(crate) mod subjects;
pub(crate) mod tenants;

use std::fmt::Write;

use crate::error::ConsoleError;

/// Any path the console does not have.
pub(crate) async fn not_found() -> ConsoleError {
    ConsoleError::NotFound("the console has no such page".into())
}

/// The page size a request asks for: `default` when absent, else `1..=max`.
pub(crate) fn limit(value: Option<&str>, default: u64, max: u64) -> Result<u64, ConsoleError> {
    match value.filter(|value| !value.is_empty()) {
        None => Ok(default),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ConsoleError::BadRequest(format!(
                "limit must be a whole number from 1 to {max}, not {text:?}"
            ))),
        },
    }
}

/// A position or version parameter: absent, or a whole number.
pub(crate) fn number(name: &str, value: Option<&str>) -> Result<Option<u64>, ConsoleError> {
    match value.filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
            ConsoleError::BadRequest(format!("{name} must be a whole number, not {text:?}"))
        }),
    }
}

/// A stream id as one path segment: every byte but the unreserved ones percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A query string from its pairs, each value percent-encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let encoded: Vec<String> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", segment(value)))
        .collect();
    if encoded.is_empty() { String::new() } else { format!("?{}", encoded.join("&")) }
}
