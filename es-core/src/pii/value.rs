//! `Pii<T>`: a field holding personal data, which reads as [`Pii::Redacted`] once its data subject
//! is forgotten.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The JSON key of the marker a redacted field holds: `{"$redacted":true}`.
pub const REDACTED_KEY: &str = "$redacted";

/// A field holding personal data: the value, or [`Pii::Redacted`] once the data subject it belongs
/// to was forgotten (its key destroyed).
///
/// Every field marked `#[pii(…)]` in an event must have this type, so that the code folding or
/// projecting the event has to say what it does with a forgotten value: it is never garbage and
/// never a silent default. `Debug` never shows the value, so logging an event or a state leaks no
/// personal data.
///
/// ```
/// use es_core::Pii;
/// let name = Pii::new(String::from("Ada Lovelace"));
/// assert_eq!(name.known().map(String::as_str), Some("Ada Lovelace"));
/// assert_eq!(format!("{name:?}"), "Pii(..)");
/// assert_eq!(serde_json::to_string(&name)?, r#""Ada Lovelace""#);
///
/// // What a field reads as after its subject was forgotten:
/// let forgotten: Pii<String> = serde_json::from_str(r#"{"$redacted":true}"#)?;
/// assert!(forgotten.is_redacted());
/// assert_eq!(forgotten.as_ref().map_or("[forgotten]", String::as_str), "[forgotten]");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pii<T> {
    /// The value, readable.
    Known(T),
    /// The data subject was forgotten: the value is gone for good.
    Redacted,
}

impl<T> Pii<T> {
    /// A known value.
    pub const fn new(value: T) -> Self {
        Self::Known(value)
    }

    /// The value, unless redacted.
    pub const fn known(&self) -> Option<&T> {
        match self {
            Self::Known(value) => Some(value),
            Self::Redacted => None,
        }
    }

    /// The value, unless redacted.
    pub fn into_known(self) -> Option<T> {
        match self {
            Self::Known(value) => Some(value),
            Self::Redacted => None,
        }
    }

    /// Whether the value was redacted.
    pub const fn is_redacted(&self) -> bool {
        matches!(self, Self::Redacted)
    }

    /// A `Pii` of a reference to the value.
    pub const fn as_ref(&self) -> Pii<&T> {
        match self {
            Self::Known(value) => Pii::Known(value),
            Self::Redacted => Pii::Redacted,
        }
    }

    /// Maps a known value; a redacted one stays redacted.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Pii<U> {
        match self {
            Self::Known(value) => Pii::Known(f(value)),
            Self::Redacted => Pii::Redacted,
        }
    }

    /// `f` of the known value, or `default` when redacted.
    pub fn map_or<U>(self, default: U, f: impl FnOnce(T) -> U) -> U {
        match self {
            Self::Known(value) => f(value),
            Self::Redacted => default,
        }
    }
}

impl<T> From<T> for Pii<T> {
    fn from(value: T) -> Self {
        Self::Known(value)
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Known(_) => f.write_str("Pii(..)"),
            Self::Redacted => f.write_str("Pii::Redacted"),
        }
    }
}

impl<T: Serialize> Serialize for Pii<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Known(value) => value.serialize(serializer),
            Self::Redacted => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(REDACTED_KEY, &true)?;
                map.end()
            }
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Pii<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        if is_redacted_marker(&value) {
            return Ok(Self::Redacted);
        }
        T::deserialize(value).map(Self::Known).map_err(serde::de::Error::custom)
    }
}

/// Whether `value` is the marker a redacted field holds.
fn is_redacted_marker(value: &serde_json::Value) -> bool {
    value
        .as_object()
        .is_some_and(|map| map.len() == 1 && map.get(REDACTED_KEY) == Some(&true.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_and_redacted() {
        for value in [Pii::new(vec![1, 2]), Pii::Redacted] {
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(serde_json::from_str::<Pii<Vec<i32>>>(&json).unwrap(), value);
        }
    }

    #[test]
    fn a_map_that_only_looks_like_the_marker_is_a_value() {
        let map: Pii<serde_json::Value> = serde_json::from_str(r#"{"$redacted":1}"#).unwrap();
        assert!(!map.is_redacted());
        let wrong: Result<Pii<String>, _> = serde_json::from_str("42");
        assert!(wrong.is_err(), "a value of the wrong type is an error, not a redaction");
    }

    #[test]
    fn options_and_nested_values_read_back() {
        let some: Pii<Option<String>> = serde_json::from_str(r#""a@example.com""#).unwrap();
        assert_eq!(some, Pii::new(Some("a@example.com".to_owned())));
        let none: Pii<Option<String>> = serde_json::from_str("null").unwrap();
        assert_eq!(none, Pii::new(None));
        let map: Pii<std::collections::BTreeMap<String, u8>> =
            serde_json::from_str(r#"{"a":1}"#).unwrap();
        assert_eq!(map.known().map(|m| m["a"]), Some(1));
    }

    #[test]
    fn debug_shows_no_value() {
        assert_eq!(format!("{:?}", Pii::new("secret")), "Pii(..)");
        assert_eq!(format!("{:?}", Pii::<u8>::Redacted), "Pii::Redacted");
    }
}
