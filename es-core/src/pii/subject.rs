//! How a data subject is named in key stores and audit records: a digest of the tenant and the
//! subject's id, never the id itself.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::TenantId;

/// The name of a data subject inside the key store, the audit trail and sealed payloads: the first
/// 16 bytes of SHA-256 over a domain tag, the tenant and the subject's id, written as 32 hex digits.
///
/// Key rows and audit records hold this digest, not the subject's id: an operator who is asked
/// "was subject X forgotten?" computes the digest of X and finds the record, but the tables alone
/// list no ids. (The digest of a guessable id can be confirmed by guessing; that is why the
/// subject's id should be an opaque identifier such as a customer number, never an e-mail
/// address: see the threat model in `docs/threat-model.md`.) The tenant is part of the digest, so
/// the same id in two tenants names two unrelated subjects.
///
/// ```
/// use es_core::{TenantId, pii::SubjectDigest};
/// let acme = TenantId::new("acme")?;
/// let digest = SubjectDigest::of(&acme, "customer-42");
/// assert_eq!(digest.to_string().len(), 32);
/// assert_eq!(digest.to_string().parse::<SubjectDigest>()?, digest);
/// assert_ne!(digest, SubjectDigest::of(&TenantId::new("other")?, "customer-42"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectDigest([u8; 16]);

impl SubjectDigest {
    /// The digest of `subject` in `tenant`.
    pub fn of(tenant: &TenantId, subject: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"es.pii.subject\0");
        hasher.update(tenant.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(subject.as_bytes());
        let hash = hasher.finalize();
        let mut digest = [0; 16];
        digest.copy_from_slice(&hash[..16]);
        Self(digest)
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Appends the 32 hex digits to `out` (what `Display` writes).
    pub(crate) fn write_hex(&self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for byte in self.0 {
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        }
    }

    /// Rebuilds a digest from its 16 bytes (as a key store keeps them).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for SubjectDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hex = Vec::with_capacity(32);
        self.write_hex(&mut hex);
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SubjectDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectDigest({self})")
    }
}

/// A text that is not 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a subject digest is 32 lowercase hex digits")]
pub struct ParseDigestError;

impl FromStr for SubjectDigest {
    type Err = ParseDigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return Err(ParseDigestError);
        }
        let nibble = |b: u8| match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            _ => Err(ParseDigestError),
        };
        let mut digest = [0; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            digest[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Ok(Self(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_anything_but_lowercase_hex() {
        for bad in ["", "abc", &"A".repeat(32), &"g".repeat(32), &"0".repeat(33)] {
            assert!(bad.parse::<SubjectDigest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_separator_keeps_tenant_and_subject_apart() {
        let ab = SubjectDigest::of(&TenantId::new("a").unwrap(), "b.c");
        let abc = SubjectDigest::of(&TenantId::new("a.b").unwrap(), "c");
        assert_ne!(ab, abc);
    }
}
