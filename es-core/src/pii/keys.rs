//! Data keys, the master keys that wrap them, and the [`KeyProvider`] a KMS can implement.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::PiiError;

/// A boxed future, for the object-safe [`KeyProvider`] and key store traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Bytes of a nonce of AES-256-GCM.
pub(crate) const NONCE_LEN: usize = 12;

/// A subject's data key: 32 random bytes for AES-256-GCM, wiped from memory when dropped. `Debug`
/// never shows it.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// A key from its bytes (a [`KeyProvider`] that unwraps keys elsewhere returns them so).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.as_ref().into())
    }

    /// What a vault keeps of the key while it is cached: the cipher, and a key derived for
    /// fingerprints (one key, one purpose).
    pub(crate) fn subject_key(&self) -> SubjectKey {
        let mut derived = Sha256::new();
        derived.update(b"es.pii.fingerprint\0");
        derived.update(self.0.as_ref());
        SubjectKey {
            cipher: self.cipher(),
            fingerprint_key: Zeroizing::new(derived.finalize().into()),
        }
    }
}

/// A subject's key as the vault uses it.
pub(crate) struct SubjectKey {
    pub(crate) cipher: Aes256Gcm,
    /// Keys the fingerprints of idempotent appends holding the subject's data: once the key is
    /// destroyed, nobody can test a guess of the forgotten values against a stored fingerprint.
    pub(crate) fingerprint_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// A data key as the key store keeps it: encrypted by a master key, with that master key's id.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The id of the master key that wrapped it.
    pub master_key: String,
    /// The wrapped bytes (for [`MasterKeys`]: nonce, then ciphertext and tag).
    pub bytes: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey({:?}, {} bytes)", self.master_key, self.bytes.len())
    }
}

/// Where master keys live: wraps new data keys and unwraps stored ones. [`MasterKeys`] holds them
/// in memory (from configuration); a KMS implements this trait to keep them out of the process.
///
/// `context` binds a wrapped key to its tenant and subject (authenticated data): a wrapped key
/// copied to another subject's row does not unwrap.
pub trait KeyProvider: Send + Sync + 'static {
    /// The id of the master key new data keys are wrapped with.
    fn current_key_id(&self) -> &str;

    /// Wraps `key` with the current master key.
    fn wrap<'a>(
        &'a self,
        context: &'a [u8],
        key: &'a DataKey,
    ) -> BoxFuture<'a, Result<WrappedKey, PiiError>>;

    /// Unwraps a stored key, with whichever master key wrapped it.
    fn unwrap<'a>(
        &'a self,
        context: &'a [u8],
        wrapped: &'a WrappedKey,
    ) -> BoxFuture<'a, Result<DataKey, PiiError>>;
}

/// Master keys held in memory: the current one wraps new data keys; previous ones still unwrap the
/// keys they wrapped until [`Vault::rotate`](super::Vault::rotate) rewraps them.
///
/// The configuration text is a comma-separated list of `id:base64-of-32-bytes`, the current key
/// first (`es-master-key` style ids: ASCII letters, digits, `-`, `_`, `.`; at most 64).
///
/// ```
/// use es_core::pii::{KeyProvider, MasterKeys};
/// let config = MasterKeys::generate_config("2026-11");
/// let keys = MasterKeys::parse(&config)?;
/// assert_eq!(keys.current_key_id(), "2026-11");
/// assert!(!format!("{keys:?}").contains(&config[8..]), "Debug never shows key material");
/// # Ok::<(), es_core::pii::PiiError>(())
/// ```
#[derive(Clone)]
pub struct MasterKeys {
    /// Current first.
    keys: Vec<(String, Aes256Gcm)>,
}

impl MasterKeys {
    /// One master key, current.
    pub fn new(id: &str, key: [u8; 32]) -> Result<Self, PiiError> {
        check_key_id(id)?;
        Ok(Self { keys: vec![(id.to_owned(), Aes256Gcm::new(&key.into()))] })
    }

    /// Adds a previous master key, which unwraps what it wrapped but wraps nothing new.
    pub fn with_previous(mut self, id: &str, key: [u8; 32]) -> Result<Self, PiiError> {
        check_key_id(id)?;
        if self.keys.iter().any(|(known, _)| known == id) {
            return Err(PiiError::InvalidMasterKeys(format!("master key id {id:?} appears twice")));
        }
        self.keys.push((id.to_owned(), Aes256Gcm::new(&key.into())));
        Ok(self)
    }

    /// A fresh random master key that lives only as long as this value: for tests and the in-memory
    /// store, whose data dies with the process anyway.
    pub fn ephemeral() -> Self {
        let mut key = Zeroizing::new([0; 32]);
        rand::rng().fill_bytes(key.as_mut());
        Self { keys: vec![("ephemeral".to_owned(), Aes256Gcm::new(key.as_ref().into()))] }
    }

    /// Reads the configuration text (see the type's docs).
    pub fn parse(config: &str) -> Result<Self, PiiError> {
        let invalid = |reason: String| PiiError::InvalidMasterKeys(reason);
        let mut keys: Option<Self> = None;
        for entry in config.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let (id, encoded) = entry
                .split_once(':')
                .ok_or_else(|| invalid("each entry is `id:base64-key`".to_owned()))?;
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| invalid(format!("the key of {id:?} is not base64")))?,
            );
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                invalid(format!("the key of {id:?} has {} bytes; a master key has 32", bytes.len()))
            })?;
            keys = Some(match keys {
                None => Self::new(id, key)?,
                Some(keys) => keys.with_previous(id, key)?,
            });
        }
        keys.ok_or_else(|| invalid("no master key given".to_owned()))
    }

    /// A configuration text holding one fresh random key with this id (what `bank-admin keys
    /// generate` prints).
    pub fn generate_config(id: &str) -> String {
        let mut key = Zeroizing::new([0; 32]);
        rand::rng().fill_bytes(key.as_mut());
        format!("{id}:{}", STANDARD.encode(key.as_ref()))
    }

    /// The ids of the configured keys, current first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeys").field("ids", &self.ids().collect::<Vec<_>>()).finish()
    }
}

fn check_key_id(id: &str) -> Result<(), PiiError> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(PiiError::InvalidMasterKeys(format!(
            "master key id {id:?}: 1 to 64 ASCII letters, digits, '-', '_' or '.'"
        )))
    }
}

impl KeyProvider for MasterKeys {
    fn current_key_id(&self) -> &str {
        &self.keys[0].0
    }

    fn wrap<'a>(
        &'a self,
        context: &'a [u8],
        key: &'a DataKey,
    ) -> BoxFuture<'a, Result<WrappedKey, PiiError>> {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), AeadPayload { msg: key.as_bytes(), aad: context })
            .map_err(|_| PiiError::Provider("AES-GCM refused to wrap a key".to_owned()));
        Box::pin(std::future::ready(sealed.map(|sealed| {
            let mut bytes = nonce.to_vec();
            bytes.extend_from_slice(&sealed);
            WrappedKey { master_key: id.clone(), bytes }
        })))
    }

    fn unwrap<'a>(
        &'a self,
        context: &'a [u8],
        wrapped: &'a WrappedKey,
    ) -> BoxFuture<'a, Result<DataKey, PiiError>> {
        // The caller turns these into errors naming the subject.
        let result = (|| {
            let (_, cipher) = self
                .keys
                .iter()
                .find(|(id, _)| *id == wrapped.master_key)
                .ok_or(UnwrapFailure::UnknownKey)?;
            if wrapped.bytes.len() < NONCE_LEN {
                return Err(UnwrapFailure::WrongKey);
            }
            let (nonce, sealed) = wrapped.bytes.split_at(NONCE_LEN);
            let plain = Zeroizing::new(
                cipher
                    .decrypt(Nonce::from_slice(nonce), AeadPayload { msg: sealed, aad: context })
                    .map_err(|_| UnwrapFailure::WrongKey)?,
            );
            let bytes: [u8; 32] =
                plain.as_slice().try_into().map_err(|_| UnwrapFailure::WrongKey)?;
            Ok(DataKey::from_bytes(bytes))
        })();
        Box::pin(std::future::ready(result.map_err(|failure| failure.into_error(wrapped))))
    }
}

enum UnwrapFailure {
    UnknownKey,
    WrongKey,
}

impl UnwrapFailure {
    /// The subject is filled in by the vault, which knows it.
    fn into_error(self, wrapped: &WrappedKey) -> PiiError {
        let subject = super::SubjectDigest::from_bytes([0; 16]);
        match self {
            Self::UnknownKey => {
                PiiError::UnknownMasterKey { subject, master_key: wrapped.master_key.clone() }
            }
            Self::WrongKey => {
                PiiError::WrongMasterKey { subject, master_key: wrapped.master_key.clone() }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(future: BoxFuture<'_, T>) -> T {
        futures_util::FutureExt::now_or_never(future).expect("ready")
    }

    #[test]
    fn a_key_wrapped_by_a_previous_master_key_still_unwraps() {
        let old = MasterKeys::new("old", [1; 32]).unwrap();
        let key = DataKey::generate();
        let wrapped = block_on(old.wrap(b"ctx", &key)).unwrap();
        let rotated =
            MasterKeys::new("new", [2; 32]).unwrap().with_previous("old", [1; 32]).unwrap();
        assert_eq!(block_on(rotated.unwrap(b"ctx", &wrapped)).unwrap().as_bytes(), key.as_bytes());
        assert_eq!(block_on(rotated.wrap(b"ctx", &key)).unwrap().master_key, "new");
    }

    #[test]
    fn a_wrong_key_or_context_fails_loudly() {
        let keys = MasterKeys::new("k", [1; 32]).unwrap();
        let wrapped = block_on(keys.wrap(b"ctx", &DataKey::generate())).unwrap();
        let impostor = MasterKeys::new("k", [9; 32]).unwrap();
        assert!(matches!(
            block_on(impostor.unwrap(b"ctx", &wrapped)),
            Err(PiiError::WrongMasterKey { .. })
        ));
        assert!(matches!(
            block_on(keys.unwrap(b"other", &wrapped)),
            Err(PiiError::WrongMasterKey { .. })
        ));
        let stranger = MasterKeys::new("j", [1; 32]).unwrap();
        assert!(matches!(
            block_on(stranger.unwrap(b"ctx", &wrapped)),
            Err(PiiError::UnknownMasterKey { .. })
        ));
    }

    #[test]
    fn configuration_is_checked() {
        assert!(MasterKeys::parse("").is_err());
        assert!(MasterKeys::parse("k:notbase64!").is_err());
        assert!(MasterKeys::parse("k:AAAA").is_err(), "3 bytes");
        assert!(MasterKeys::parse("bad id:AAAA").is_err());
        let two =
            format!("{},{}", MasterKeys::generate_config("b"), MasterKeys::generate_config("a"));
        assert_eq!(MasterKeys::parse(&two).unwrap().ids().collect::<Vec<_>>(), ["b", "a"]);
        let twice =
            format!("{},{}", MasterKeys::generate_config("a"), MasterKeys::generate_config("a"));
        assert!(MasterKeys::parse(&twice).is_err());
    }
}
