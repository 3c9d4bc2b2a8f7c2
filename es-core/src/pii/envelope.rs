//! The stored form of a sealed field, and the shallow JSON rewrite that seals and opens payloads.
//!
//! A sealed field holds `{"$pii":{"v":1,"s":"<subject digest>","n":"<nonce>","c":"<ciphertext>"}}`
//! (base64 nonce and ciphertext-with-tag of the field's JSON text under AES-256-GCM); a redacted
//! one holds `{"$redacted":true}`. Only top-level fields are rewritten, and the other fields'
//! JSON text is copied as it is, never parsed into a tree.

use std::borrow::Cow;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Payload as AeadPayload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::keys::NONCE_LEN;
use super::{PiiError, SubjectDigest};
use crate::TenantId;

/// What a payload holding a sealed field contains; found with one substring search.
pub(crate) const SEALED_MARK: &[u8] = b"\"$pii\"";

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

    /// The object again, with the values `replace` returns for some fields.
    pub(crate) fn write(&self, mut replace: impl FnMut(usize) -> Option<String>) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.fields.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>() + 64,
        );
        out.push(b'{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Keys are written as JSON strings again: escapes were undone when they were read.
            serde_json::to_writer(&mut out, key)
                .unwrap_or_else(|_| unreachable!("a string serializes"));
            out.push(b':');
            match replace(i) {
                Some(text) => out.extend_from_slice(text.as_bytes()),
                None => out.extend_from_slice(value.get().as_bytes()),
            }
        }
        out.push(b'}');
        out
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed<'a> {
    #[serde(rename = "$pii", borrow)]
    pii: Envelope<'a>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    v: u8,
    #[serde(borrow)]
    s: Cow<'a, str>,
    #[serde(borrow)]
    n: Cow<'a, str>,
    #[serde(borrow)]
    c: Cow<'a, str>,
}

/// A sealed field, read.
pub(crate) struct Opened {
    pub(crate) subject: SubjectDigest,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// Whether a field's value looks sealed (then [`read_sealed`] tells for sure).
pub(crate) fn looks_sealed(value: &RawValue) -> bool {
    let text = value.get().as_bytes();
    text.first() == Some(&b'{') && memchr::memmem::find(text, SEALED_MARK).is_some()
}

/// Whether a field holds the redacted marker.
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

/// Reads a sealed field's envelope.
pub(crate) fn read_sealed(value: &RawValue, field: &str) -> Result<Opened, PiiError> {
    let malformed = |reason: &str| PiiError::MalformedEnvelope {
        field: field.to_owned(),
        reason: reason.to_owned(),
    };
    let sealed: Sealed<'_> =
        serde_json::from_str(value.get()).map_err(|error| malformed(&error.to_string()))?;
    let envelope = sealed.pii;
    if envelope.v != 1 {
        return Err(malformed(&format!("unknown envelope version {}", envelope.v)));
    }
    let subject = envelope.s.parse().map_err(|_| malformed("the subject is not a digest"))?;
    let nonce = STANDARD_NO_PAD
        .decode(envelope.n.as_bytes())
        .ok()
        .and_then(|bytes| <[u8; NONCE_LEN]>::try_from(bytes).ok())
        .ok_or_else(|| malformed("the nonce is not 12 bytes of base64"))?;
    let ciphertext = STANDARD_NO_PAD
        .decode(envelope.c.as_bytes())
        .map_err(|_| malformed("the ciphertext is not base64"))?;
    Ok(Opened { subject, nonce, ciphertext })
}

/// The authenticated data of a sealed field: it binds the ciphertext to its tenant, field and
/// subject, so a value moved to another field, subject or tenant does not open.
pub(crate) fn associated_data(tenant: &TenantId, field: &str, subject: SubjectDigest) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tenant.as_str().len() + field.len() + 18);
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad.push(0);
    aad.extend_from_slice(subject.as_bytes());
    aad
}

/// Seals a field's JSON text; returns the envelope's JSON text.
pub(crate) fn seal(
    cipher: &Aes256Gcm,
    aad: &[u8],
    subject: SubjectDigest,
    plaintext: &str,
) -> Result<String, PiiError> {
    let mut nonce = [0; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt((&nonce).into(), AeadPayload { msg: plaintext.as_bytes(), aad })
        .map_err(|_| PiiError::Provider("AES-GCM refused to seal a value".to_owned()))?;
    let sealed = Sealed {
        pii: Envelope {
            v: 1,
            s: Cow::Owned(subject.to_string()),
            n: Cow::Owned(STANDARD_NO_PAD.encode(nonce)),
            c: Cow::Owned(STANDARD_NO_PAD.encode(ciphertext)),
        },
    };
    serde_json::to_string(&sealed).map_err(|error| PiiError::Provider(error.to_string()))
}

/// Opens a sealed field; returns its JSON text.
pub(crate) fn open(
    cipher: &Aes256Gcm,
    aad: &[u8],
    sealed: &Opened,
    field: &str,
) -> Result<String, PiiError> {
    let tampered = || PiiError::Tampered { subject: sealed.subject, field: field.to_owned() };
    let plain = cipher
        .decrypt((&sealed.nonce).into(), AeadPayload { msg: &sealed.ciphertext, aad })
        .map_err(|_| tampered())?;
    // Authenticated: these are the bytes that were sealed, one JSON value.
    String::from_utf8(plain).map_err(|_| tampered())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewriting_keeps_other_fields_byte_for_byte() {
        let json = br#"{"a" : [1, 2.50], "b\"q":"x", "c":{"d":null}}"#;
        let object = Object::parse(json).unwrap().unwrap();
        assert_eq!(object.get("b\"q").unwrap().get(), r#""x""#);
        let out = object.write(|i| (i == 1).then(|| "7".to_owned()));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"a":[1, 2.50],"b\"q":7,"c":{"d":null}}"#
        );
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
}
