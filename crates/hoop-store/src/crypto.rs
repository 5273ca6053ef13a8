//! Encryption of connection secrets at rest: AES-256-GCM with a key derived from the
//! gateway's `secret_key`, a random nonce per value, and the connection name as associated
//! data (a ciphertext copied onto another connection does not decrypt).

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::error::StoreError;

const VERSION: &str = "v1:";
const NONCE_LEN: usize = 12;

/// The purpose of the box of connection secrets (see [`SecretBox::for_purpose`]): no other
/// box may be made for it.
pub const CONNECTION_SECRETS: &str = "secret key";

/// Minimum length of a `secret_key`, in characters.
pub const MIN_SECRET_KEY_LEN: usize = 32;

/// Encrypts and decrypts secrets with the deployment's key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box keyed by `secret_key` (at least [`MIN_SECRET_KEY_LEN`] characters; a random
    /// one is best, such as the one the gateway generates).
    ///
    /// # Errors
    /// [`StoreError::InvalidSecretKey`] if the key is too short.
    pub fn new(secret_key: &str) -> Result<Self, StoreError> {
        Self::for_purpose(secret_key, CONNECTION_SECRETS)
    }

    /// A box keyed for `purpose` by `secret_key`: its key is the SHA-256 of
    /// `hoop-rs {purpose} v1\0` followed by `secret_key`, so boxes of different purposes
    /// never open each other's values. [`new`](Self::new) is the box of connection secrets
    /// (purpose `secret key`).
    ///
    /// # Errors
    /// [`StoreError::InvalidSecretKey`] if the key is too short.
    pub fn for_purpose(secret_key: &str, purpose: &str) -> Result<Self, StoreError> {
        if secret_key.chars().count() < MIN_SECRET_KEY_LEN {
            return Err(StoreError::InvalidSecretKey(format!(
                "must be at least {MIN_SECRET_KEY_LEN} characters"
            )));
        }
        let mut hasher = Sha256::new();
        hasher.update(b"hoop-rs ");
        hasher.update(purpose.as_bytes());
        hasher.update(b" v1\0");
        hasher.update(secret_key.as_bytes());
        let key: [u8; 32] = hasher.finalize().into();
        Ok(Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        })
    }

    /// A fresh random key, suitable for `secret_key`.
    pub fn generate_key() -> String {
        let key = Aes256Gcm::generate_key(OsRng);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. the connection name).
    ///
    /// # Errors
    /// [`StoreError::Crypto`] if encryption fails.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, StoreError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Crypto("encryption failed".to_owned()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(format!("{VERSION}{}", STANDARD.encode(out)))
    }

    /// Decrypts a value made by [`seal`](Self::seal) with the same key and context.
    ///
    /// # Errors
    /// [`StoreError::Crypto`] if the value is malformed, or was sealed with another key or
    /// context.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, StoreError> {
        let wrong = || {
            StoreError::Crypto(
                "cannot decrypt a stored secret: the secret_key differs from the one it was \
                 written with, or the value is corrupt"
                    .to_owned(),
            )
        };
        let body = sealed.strip_prefix(VERSION).ok_or_else(wrong)?;
        let bytes = STANDARD.decode(body).map_err(|_| wrong())?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| wrong())
    }
}

/// A fresh random bearer token: `prefix` followed by 32 random bytes in URL-safe base64.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The SHA-256 of a token, in lower-case hex: what the store keeps instead of the token.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretBox {
        SecretBox::new(&SecretBox::generate_key()).unwrap()
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let sb = key();
        let a = sb.seal("pg", b"hunter2").unwrap();
        let b = sb.seal("pg", b"hunter2").unwrap();
        assert_ne!(a, b, "each seal uses a new nonce");
        assert!(!a.contains("hunter2"));
        assert_eq!(sb.open("pg", &a).unwrap(), b"hunter2");
    }

    #[test]
    fn purposes_keep_their_values_apart() {
        let secret = SecretBox::generate_key();
        let a = SecretBox::for_purpose(&secret, "a").unwrap();
        let b = SecretBox::for_purpose(&secret, "b").unwrap();
        let sealed = a.seal("x", b"v").unwrap();
        assert_eq!(a.open("x", &sealed).unwrap(), b"v");
        assert!(b.open("x", &sealed).is_err());
        // `new` is the connection-secrets purpose.
        let conn = SecretBox::new(&secret).unwrap().seal("pg", b"pw").unwrap();
        let same = SecretBox::for_purpose(&secret, CONNECTION_SECRETS).unwrap();
        assert_eq!(same.open("pg", &conn).unwrap(), b"pw");
        assert!(a.open("pg", &conn).is_err());
    }

    #[test]
    fn wrong_key_or_context_fails() {
        let sealed = key().seal("pg", b"x").unwrap();
        assert!(key().open("pg", &sealed).is_err());
        let sb = key();
        let sealed = sb.seal("pg", b"x").unwrap();
        assert!(sb.open("mysql", &sealed).is_err());
        assert!(sb.open("pg", "v1:AAAA").is_err());
        assert!(sb.open("pg", "garbage").is_err());
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token("hpk_");
        assert!(a.starts_with("hpk_") && a.len() == 4 + 43, "{a}");
        assert_ne!(a, random_token("hpk_"));
        assert_eq!(
            hash_token("x"),
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            SecretBox::new("short"),
            Err(StoreError::InvalidSecretKey(_))
        ));
    }
}
