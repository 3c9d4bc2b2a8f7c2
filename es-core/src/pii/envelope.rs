//! The stored form of a sealed field, and the splicing that seals and opens payloads.
//!
//! A sealed field holds `{"$pii":"1.<subject digest>.<sealed>"}`: the format's version, the
//! subject's digest in hex, and base64 of the nonce, the ciphertext and the tag of the field's
//! JSON text under AES-256-GCM. A redacted field holds `{"$redacted":true}`. The name `"$pii"` is
//! reserved (appends refuse payloads holding it), so reads find envelopes with a substring search
//! instead of parsing payloads; sealing and opening splice, and the rest of a payload is copied
//! byte for byte.

use std::borrow::Cow;
use std::sync::LazyLock;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::AeadInPlace;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use memchr::memmem::Finder;
use rand::RngCore;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::keys::NONCE_LEN;
use super::{PiiError, SubjectDigest};
use crate::TenantId;

/// The reserved name every envelope starts with; found with one substring search.
pub(crate) const SEALED_MARK: &[u8] = b"\"$pii\"";

/// The search for [`SEALED_MARK`], built once (building a searcher costs more than a search).
static SEALED_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(SEALED_MARK));

/// The search for a `\u` escape, built once.
static ESCAPE_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\\u"));

/// Whether a payload holds a sealed field (one substring search).
pub(crate) fn contains_sealed(json: &[u8]) -> bool {
    SEALED_FINDER.find(json).is_some()
}

/// The JSON of a redacted field.
pub(crate) const REDACTED_JSON: &str = r#"{"$redacted":true}"#;

/// The top-level fields of a JSON object, their values as unparsed text.
pub(crate) struct Object<'a> {
    pub(crate) fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(Object { fields })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl<'a> Object<'a> {
    /// The object's fields, or `None` when the text is another JSON value.
    pub(crate) fn parse(json: &'a [u8]) -> Result<Option<Self>, serde_json::Error> {
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Ok(None);
        }
        serde_json::from_slice(json).map(Some)
    }

    /// The raw value of a field.
    pub(crate) fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(key, _)| key == name).map(|(_, value)| *value)
    }
}

/// The envelope's text before the digest: the reserved key and the format's version.
const ENVELOPE_START: &[u8] = br#"{"$pii":"1."#;

/// Length of the AES-GCM tag at the end of a sealed value.
const TAG_LEN: usize = 16;

/// Whether a field's value holds the redacted marker.
pub(crate) fn is_redacted(value: &RawValue) -> bool {
    let text = value.get();
    text.starts_with('{')
        && text.contains("\"$redacted\"")
        && serde_json::from_str::<serde_json::Value>(text).is_ok_and(|value| {
            value
                .as_object()
                .is_some_and(|map| map.len() == 1 && map.get("$redacted") == Some(&true.into()))
        })
}

/// Whether a payload holds the reserved name `"$pii"` anywhere (as a key or a string), also
/// when written with `\u` escapes (jsonb stores such text unescaped). Only the vault writes it.
pub(crate) fn holds_reserved_name(json: &[u8]) -> bool {
    if contains_sealed(json) {
        return true;
    }
    // An escaped spelling needs a `\u` escape; only then is the text parsed.
    ESCAPE_FINDER.find(json).is_some()
        && serde_json::from_slice::<serde_json::Value>(json)
            .is_ok_and(|value| names_reserved(&value))
}

fn names_reserved(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) => text == "$pii",
        Value::Array(items) => items.iter().any(names_reserved),
        Value::Object(map) => map.iter().any(|(key, value)| key == "$pii" || names_reserved(value)),
        _ => false,
    }
}

/// The authenticated data of a sealed field: it binds the ciphertext to its tenant, field and
/// subject, so a value moved to another field, subject or tenant does not open. Written into
/// `aad` (cleared first), a buffer reused across fields.
pub(crate) fn associated_data(
    aad: &mut Vec<u8>,
    tenant: &TenantId,
    field: &str,
    subject: SubjectDigest,
) {
    aad.clear();
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad.push(0);
    aad.extend_from_slice(subject.as_bytes());
}

/// Seals a field's JSON text and appends the envelope's JSON text to `out`.
pub(crate) fn seal_into(
    out: &mut Vec<u8>,
    cipher: &Aes256Gcm,
    aad: &[u8],
    subject: SubjectDigest,
    plaintext: &[u8],
) -> Result<(), PiiError> {
    let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    let mut nonce = [0; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached((&nonce).into(), aad, &mut sealed[NONCE_LEN..])
        .map_err(|_| PiiError::Provider("AES-GCM refused to seal a value".to_owned()))?;
    sealed.extend_from_slice(&tag);
    out.extend_from_slice(ENVELOPE_START);
    subject.write_hex(out);
    out.push(b'.');
    let at = out.len();
    out.resize(at + base64::encoded_len(sealed.len(), false).unwrap_or(0), 0);
    let written = STANDARD_NO_PAD
        .encode_slice(&sealed, &mut out[at..])
        .map_err(|error| PiiError::Provider(error.to_string()))?;
    out.truncate(at + written);
    out.extend_from_slice(b"\"}");
    Ok(())
}

/// `text` with the byte ranges `span` gives for `items` (in text order, not overlapping)
/// replaced by what `write` appends for each; the rest is copied byte for byte. How sealing and
/// opening rewrite a payload.
pub(crate) fn splice<T, E>(
    text: &[u8],
    items: &[T],
    span: impl Fn(&T) -> (usize, usize),
    mut write: impl FnMut(&mut Vec<u8>, &T) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let mut out = Vec::with_capacity(text.len() + 128 * items.len());
    let mut at = 0;
    for item in items {
        let (start, end) = span(item);
        out.extend_from_slice(&text[at..start]);
        write(&mut out, item)?;
        at = end;
    }
    out.extend_from_slice(&text[at..]);
    Ok(out)
}

/// A sealed field found in a stored payload: where its envelope is, which field and subject.
pub(crate) struct Found<'a> {
    /// Offset of the envelope's `{`.
    pub(crate) start: usize,
    /// Offset just past the envelope's `}`.
    pub(crate) end: usize,
    pub(crate) field: Cow<'a, str>,
    pub(crate) subject: SubjectDigest,
    /// Base64 of nonce, ciphertext and tag.
    sealed: &'a [u8],
}

/// Finds every envelope of a stored payload, in order. The name `"$pii"` is reserved (appends
/// refuse it), so each occurrence is an envelope; one that is not well formed is an error, never
/// skipped. Tolerates the spacing jsonb adds (`{"$pii": "…"}`).
pub(crate) fn find_sealed<'a>(text: &'a [u8], out: &mut Vec<Found<'a>>) -> Result<(), PiiError> {
    for mark in SEALED_FINDER.find_iter(text) {
        let malformed = |field: &str, reason: &str| PiiError::MalformedEnvelope {
            field: field.to_owned(),
            reason: reason.to_owned(),
        };
        let start = skip_back(text, mark)
            .filter(|&at| text[at] == b'{')
            .ok_or_else(|| malformed("?", "`$pii` is not the key of an envelope"))?;
        let field = field_of(text, start)
            .ok_or_else(|| malformed("?", "the envelope is not the value of a field"))?;
        let parsed = parse_envelope(text, mark + SEALED_MARK.len());
        let (subject, sealed, end) = parsed.map_err(|reason| malformed(&field, reason))?;
        out.push(Found { start, end, field, subject, sealed });
    }
    Ok(())
}

/// The offset of the last non-space byte before `at`.
fn skip_back(text: &[u8], at: usize) -> Option<usize> {
    text[..at].iter().rposition(|b| !b.is_ascii_whitespace())
}

/// The offset of the first non-space byte from `at`.
fn skip_forward(text: &[u8], at: usize) -> Option<usize> {
    text.get(at..)?.iter().position(|b| !b.is_ascii_whitespace()).map(|offset| at + offset)
}

/// The name of the field whose value starts at `value` (`"name" : <value>`). A key without
/// escapes is read backwards in place; one with escapes is read by parsing the object.
fn field_of(text: &[u8], value: usize) -> Option<Cow<'_, str>> {
    let colon = skip_back(text, value).filter(|&at| text[at] == b':')?;
    let close = skip_back(text, colon).filter(|&at| text[at] == b'"')?;
    let open = memchr::memrchr(b'"', &text[..close])?;
    let key = &text[open + 1..close];
    if memchr::memchr(b'\\', key).is_none() && (open == 0 || text[open - 1] != b'\\') {
        return std::str::from_utf8(key).ok().map(Cow::Borrowed);
    }
    let object = Object::parse(text).ok().flatten()?;
    let at = |raw: &RawValue| raw.get().as_ptr() as usize - text.as_ptr() as usize;
    object.fields.into_iter().find(|(_, raw)| at(raw) == value).map(|(key, _)| key)
}

/// Reads `: "1.<digest>.<sealed>" }` from `at`; returns the digest, the sealed text and the
/// offset past the `}`.
fn parse_envelope(text: &[u8], at: usize) -> Result<(SubjectDigest, &[u8], usize), &'static str> {
    let expect = |at: Option<usize>, byte: u8| at.filter(|&at| text[at] == byte);
    let colon = expect(skip_forward(text, at), b':').ok_or("no `:` after `$pii`")?;
    let quote =
        expect(skip_forward(text, colon + 1), b'"').ok_or("the envelope is not a string")?;
    let len = memchr::memchr(b'"', &text[quote + 1..]).ok_or("the envelope string never ends")?;
    let content = &text[quote + 1..quote + 1 + len];
    let end = expect(skip_forward(text, quote + len + 2), b'}')
        .ok_or("the envelope holds more than `$pii`")?;
    let rest = content.strip_prefix(b"1.").ok_or("unknown envelope version")?;
    let (digest, sealed) = rest.split_at_checked(32).ok_or("the envelope is too short")?;
    let subject = std::str::from_utf8(digest)
        .ok()
        .and_then(|digest| digest.parse().ok())
        .ok_or("the subject is not a digest")?;
    let sealed = sealed.strip_prefix(b".").ok_or("no `.` after the subject")?;
    Ok((subject, sealed, end + 1))
}

/// Opens a found envelope and appends the field's JSON text to `out`. `scratch` is a buffer
/// reused across fields.
pub(crate) fn open_into(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    cipher: &Aes256Gcm,
    aad: &[u8],
    found: &Found<'_>,
) -> Result<(), PiiError> {
    let malformed = |reason: &str| PiiError::MalformedEnvelope {
        field: found.field.clone().into_owned(),
        reason: reason.to_owned(),
    };
    let tampered = || PiiError::Tampered { subject: found.subject, field: found.field.to_string() };
    scratch.clear();
    scratch.resize(found.sealed.len() * 3 / 4 + 3, 0);
    let len = STANDARD_NO_PAD
        .decode_slice(found.sealed, scratch)
        .map_err(|_| malformed("the sealed value is not base64"))?;
    scratch.truncate(len);
    if len < NONCE_LEN + TAG_LEN {
        return Err(malformed("the sealed value is too short"));
    }
    let (nonce, rest) = scratch.split_at_mut(NONCE_LEN);
    let (message, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    cipher
        .decrypt_in_place_detached((&*nonce).into(), aad, message, (&*tag).into())
        .map_err(|_| tampered())?;
    // Authenticated: these are the bytes that were sealed, one JSON value's text.
    std::str::from_utf8(message).map_err(|_| tampered())?;
    out.extend_from_slice(message);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_read_shallowly() {
        let json = br#"{"a" : [1, 2.50], "b\"q":"x", "c":{"d":null}}"#;
        let object = Object::parse(json).unwrap().unwrap();
        assert_eq!(object.get("b\"q").unwrap().get(), r#""x""#);
        assert_eq!(object.get("a").unwrap().get(), "[1, 2.50]");
        assert!(Object::parse(b" [1]").unwrap().is_none());
        assert!(Object::parse(b"{").is_err());
    }

    #[test]
    fn redacted_marker_is_recognized_with_any_spacing() {
        let parsed =
            Object::parse(br#"{"a":{"$redacted": true},"b":{"$redacted":1}}"#).unwrap().unwrap();
        assert!(is_redacted(parsed.fields[0].1));
        assert!(!is_redacted(parsed.fields[1].1));
    }

    fn cipher() -> Aes256Gcm {
        super::super::DataKey::from_bytes([7; 32]).cipher()
    }

    /// Seals `value` as field `field` of a payload, the way the vault does.
    fn sealed_payload(prefix: &str, field: &str, value: &str, suffix: &str) -> Vec<u8> {
        let tenant = TenantId::new("acme").unwrap();
        let subject = SubjectDigest::of(&tenant, "s-1");
        let mut aad = Vec::new();
        associated_data(&mut aad, &tenant, field, subject);
        let mut out = prefix.as_bytes().to_vec();
        seal_into(&mut out, &cipher(), &aad, subject, value.as_bytes()).unwrap();
        out.extend_from_slice(suffix.as_bytes());
        out
    }

    fn open_all(text: &[u8]) -> Result<String, PiiError> {
        let tenant = TenantId::new("acme").unwrap();
        let mut found = Vec::new();
        find_sealed(text, &mut found)?;
        let (mut aad, mut scratch) = (Vec::new(), Vec::new());
        let out = splice(
            text,
            &found,
            |item| (item.start, item.end),
            |out, item| {
                associated_data(&mut aad, &tenant, &item.field, item.subject);
                open_into(out, &mut scratch, &cipher(), &aad, item)
            },
        )?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_sealed_field_opens_back_byte_for_byte() {
        let text = sealed_payload(r#"{"id":1,"email":"#, "email", r#""ada@example.com""#, "}");
        assert!(contains_sealed(&text));
        assert_eq!(open_all(&text).unwrap(), r#"{"id":1,"email":"ada@example.com"}"#);
    }

    #[test]
    fn envelopes_are_found_with_the_spacing_jsonb_writes() {
        // jsonb writes `{"$pii": "…"}` and `"key": value`; the text must still open.
        let text = sealed_payload(r#"{"id": 1, "email": "#, "email", "[1, 2]", ", \"z\": 3}");
        let spaced = String::from_utf8(text).unwrap().replacen(r#"{"$pii":"#, r#"{"$pii": "#, 1);
        assert_eq!(open_all(spaced.as_bytes()).unwrap(), r#"{"id": 1, "email": [1, 2], "z": 3}"#);
    }

    #[test]
    fn a_key_with_escapes_is_read_by_parsing() {
        let text = sealed_payload(r#"{"a\"b":"#, "a\"b", "true", "}");
        assert_eq!(open_all(&text).unwrap(), r#"{"a\"b":true}"#);
        // The field is part of the authenticated data: under another name it does not open.
        let moved = sealed_payload(r#"{"x":"#, "a\"b", "true", "}");
        assert!(matches!(open_all(&moved), Err(PiiError::Tampered { .. })));
    }

    #[test]
    fn a_reserved_name_that_is_not_an_envelope_is_an_error() {
        for text in [
            r#"{"a":"$pii"}"#,
            r#"{"a":{"$pii":1}}"#,
            r#"{"a":{"$pii":"1.00"}}"#,
            r#"{"a":{"$pii":"2.dc89d122a28636377b09d202d5928de7.AAAA"}}"#,
            r#"{"a":{"$pii":"1.dc89d122a28636377b09d202d5928de7.AAAA","b":1}}"#,
            r#"["$pii"]"#,
        ] {
            assert!(
                matches!(open_all(text.as_bytes()), Err(PiiError::MalformedEnvelope { .. })),
                "{text}"
            );
        }
        let short = r#"{"a":{"$pii":"1.dc89d122a28636377b09d202d5928de7.AAAA"}}"#;
        assert!(open_all(short.as_bytes()).is_err());
    }

    #[test]
    fn the_reserved_name_is_found_in_any_spelling() {
        assert!(holds_reserved_name(br#"{"$pii":1}"#));
        assert!(holds_reserved_name(br#"{"a":["$pii"]}"#));
        assert!(holds_reserved_name(br#"{"a":{"\u0024pii":1}}"#));
        assert!(holds_reserved_name(br#"{"a":"\u0024pii"}"#));
        assert!(!holds_reserved_name(br#"{"a":"$pii2","\u0041":"pii"}"#));
        assert!(!holds_reserved_name(br#"{"a":"x"}"#));
    }
}
