//! An event's body: one JSON value every backend can store, checked when built.

use std::fmt;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An event's body: JSON text, validated once when it is built.
///
/// The rules are those of PostgreSQL's `jsonb`, so that an event the in-memory store accepts is one
/// PostgreSQL accepts too: the text must be one JSON value, and strings may not hold the `\u0000`
/// escape (jsonb cannot store the NUL character). Cloning is cheap (the bytes are shared).
///
/// ```
/// use es_core::Payload;
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Deposited { amount: i64 }
///
/// let payload = Payload::from_value(&Deposited { amount: 10 })?;
/// assert_eq!(payload.as_str(), r#"{"amount":10}"#);
/// assert_eq!(payload.deserialize::<Deposited>()?, Deposited { amount: 10 });
/// assert!(Payload::from_json(&b"{not json"[..]).is_err());
/// assert!(Payload::from_json(&br#"{"name":"a\u0000b"}"#[..]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Payload {
    bytes: Bytes,
    /// Whether the text is known to pass [`Payload::from_json`]'s checks (built by it or by
    /// [`Payload::from_value`]); a payload from [`Payload::from_stored`] is checked again before
    /// it is appended.
    checked: bool,
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Payload {}

impl std::hash::Hash for Payload {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

/// A payload was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The value could not be serialized, or the text is not JSON.
    #[error("payload is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON holds a `\u0000` escape, which PostgreSQL's jsonb cannot store.
    #[error("payload holds the escape \\u0000 at byte {at}; the NUL character cannot be stored")]
    NulCharacter {
        /// Byte offset of the escape.
        at: usize,
    },
    /// A float is NaN or infinite. JSON has no such numbers (`serde_json` would write `null`, which
    /// the type could then never read back), so the value is refused before anything is stored.
    #[error(
        "payload field `{path}` holds a float that is NaN or infinite, which JSON cannot represent; \
         check the arithmetic that produced it (nothing was stored)"
    )]
    NonFiniteFloat {
        /// Where the float is: a field path such as `amount` or `lines[3].price`.
        path: String,
    },
}

impl Payload {
    /// Serializes `value` to JSON.
    ///
    /// Refuses a value holding a NaN or infinite float ([`PayloadError::NonFiniteFloat`]): `serde_json`
    /// would write it as `null`, an event its own type could never read back.
    ///
    /// ```
    /// use es_core::{Payload, PayloadError};
    /// #[derive(serde::Serialize)]
    /// struct Measured { celsius: f64 }
    ///
    /// let refused = Payload::from_value(&Measured { celsius: f64::NAN });
    /// assert!(matches!(refused, Err(PayloadError::NonFiniteFloat { path }) if path == "celsius"));
    /// ```
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, PayloadError> {
        let bytes = serde_json::to_vec(value)?;
        // serde_json writes a non-finite float as `null`: only output holding a `null` needs the
        // walk that tells a real `None` from a NaN, so the common path costs one byte search.
        if contains_null(&bytes)
            && let Some(path) = super::finite::first_non_finite(value)
        {
            return Err(PayloadError::NonFiniteFloat { path });
        }
        check_no_nul_escape(&bytes)?;
        Ok(Self { bytes: Bytes::from(bytes), checked: true })
    }

    /// Checks that `json` is one JSON value that jsonb can store, and wraps it unchanged.
    pub fn from_json(json: impl Into<Bytes>) -> Result<Self, PayloadError> {
        let bytes = json.into();
        check_json(&bytes)?;
        Ok(Self { bytes, checked: true })
    }

    /// Wraps JSON text that a store validated when it was written, without checking it again.
    ///
    /// For backends returning stored events: the text passed [`Payload::from_json`] or
    /// [`Payload::from_value`] before it was stored, so checking it on every read would only cost
    /// time. A payload that is not JSON after all fails when it is deserialized, never silently;
    /// and one that is appended again is checked first ([`Payload::validate`]), so no store keeps
    /// text another store would refuse.
    pub fn from_stored(json: impl Into<Bytes>) -> Self {
        Self { bytes: json.into(), checked: false }
    }

    /// Wraps JSON text the vault wrote when it sealed fields of a checked payload: the fields it
    /// replaced hold its own JSON, the rest is the checked text unchanged.
    pub(crate) fn from_sealed(json: Vec<u8>) -> Self {
        Self { bytes: Bytes::from(json), checked: true }
    }

    /// The bytes, shared (a clone of the handle, not of the text).
    pub(crate) fn shared_bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// Checks the text against the rules of [`Payload::from_json`], unless it was built by a
    /// function that already did. Appends call it on every event (so every backend refuses the
    /// same payloads); it costs nothing for payloads built by `from_value` or `from_json`.
    pub fn validate(&self) -> Result<(), PayloadError> {
        if self.checked { Ok(()) } else { check_json(&self.bytes) }
    }

    /// Deserializes the payload into `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }

    /// Parses the payload into a JSON tree (upcasters work on this form).
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }

    /// The JSON text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The JSON text. Payloads are built from UTF-8 JSON, so this never fails for a valid payload;
    /// bytes that are not UTF-8 read as the empty string.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes).unwrap_or_default()
    }

    /// Size of the JSON text in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the text is empty (never true for a validated payload).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 256;
        let text = self.as_str();
        match text.char_indices().nth(SHOWN) {
            Some((cut, _)) => write!(f, "Payload({}… {} bytes)", &text[..cut], text.len()),
            None => write!(f, "Payload({text})"),
        }
    }
}

/// One JSON value that jsonb can store. A full parse (not `IgnoredAny`) also rejects lone UTF-16
/// surrogates in escapes, as jsonb does.
fn check_json(json: &[u8]) -> Result<(), PayloadError> {
    serde_json::from_slice::<serde_json::Value>(json)?;
    check_no_nul_escape(json)
}

fn contains_null(json: &[u8]) -> bool {
    json.windows(4).any(|window| window == b"null")
}

/// Finds a `\u0000` escape. Backslashes occur only inside JSON strings, and every backslash starts
/// an escape of at least two bytes, so stepping over escapes pairwise never misreads `\\u0000`.
fn check_no_nul_escape(json: &[u8]) -> Result<(), PayloadError> {
    let mut at = 0;
    while let Some(offset) = json[at..].iter().position(|&b| b == b'\\') {
        let start = at + offset;
        if json[start + 1..].starts_with(b"u0000") {
            return Err(PayloadError::NulCharacter { at: start });
        }
        at = start + 2;
        if at >= json.len() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escape_is_rejected_but_escaped_backslash_is_not() {
        assert!(matches!(
            Payload::from_json(&br#"["\u0000"]"#[..]),
            Err(PayloadError::NulCharacter { at: 2 })
        ));
        assert!(Payload::from_json(&br#"["\\u0000"]"#[..]).is_ok());
        assert!(Payload::from_json(&br#"["\\\u0000"]"#[..]).is_err());
        assert!(Payload::from_value("a\0b").is_err());
    }

    #[test]
    fn lone_surrogates_and_trailing_garbage_are_rejected() {
        assert!(Payload::from_json(&br#"["\ud800"]"#[..]).is_err());
        assert!(Payload::from_json(&b"{} {}"[..]).is_err());
        assert!(Payload::from_json(&b""[..]).is_err());
    }

    /// Every finite f64 an event holds reads back bit for bit (`serde_json`'s `float_roundtrip`;
    /// without it, 8.01e29 read back as 8.010000000000001e29: found by the payload fuzz target).
    #[test]
    fn floats_round_trip_exactly() {
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut samples = vec![8.01e29, 0.1, -0.0, f64::MIN_POSITIVE, f64::MAX, 5e-324, 1.0 / 3.0];
        for _ in 0..20_000 {
            // xorshift over the bit patterns: every exponent and mantissa shape.
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let value = f64::from_bits(bits);
            if value.is_finite() {
                samples.push(value);
            }
        }
        for value in samples {
            let payload = Payload::from_value(&value).unwrap();
            let back: f64 = payload.deserialize().unwrap();
            assert_eq!(back.to_bits(), value.to_bits(), "{value:e} read back as {back:e}");
        }
    }

    #[test]
    fn debug_output_is_bounded() {
        let long = Payload::from_value(&"x".repeat(10_000)).unwrap();
        assert!(format!("{long:?}").len() < 400);
    }
}
