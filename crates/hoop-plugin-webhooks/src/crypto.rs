//! Endpoint secrets: generated as `whsec_` + base64 of 32 random bytes (what Standard Webhooks
//! libraries take), encrypted at rest with AES-256-GCM under the [`SecretKey`] the host hands
//! the plugin, and the Standard Webhooks signature (`v1,` + base64 HMAC-SHA256).

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::WebhookError;

/// Prefix of endpoint secrets.
pub const SECRET_PREFIX: &str = "whsec_";
const SEALED_VERSION: &str = "v1:";
const NONCE_LEN: usize = 12;

/// The key that encrypts endpoint secrets at rest: a resource the host puts into
/// [`Resources`](hoop_core::Resources) (the gateway derives it from its `secret_key`, so the
/// plugin never needs the gateway's own key or crate).
///
/// Its `Debug` form never shows the key.
#[derive(Clone)]
pub struct SecretKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A key derived from `secret` (e.g. the gateway's `secret_key`) with SHA-256 under a
    /// label of its own, so it differs from every other key derived from the same secret.
    pub fn derive(secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"hoop-rs webhooks endpoint secrets v1\0");
        hasher.update(secret);
        let key: [u8; 32] = hasher.finalize().into();
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        }
    }

    /// Encrypts `plaintext` bound to `context` (the endpoint name).
    pub(crate) fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, WebhookError> {
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
            .map_err(|_| WebhookError::Crypto("encryption failed".to_owned()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(format!("{SEALED_VERSION}{}", STANDARD.encode(out)))
    }

    /// Decrypts what [`seal`](Self::seal) made with the same key and context.
    pub(crate) fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, WebhookError> {
        let wrong = || {
            WebhookError::Crypto(
                "cannot decrypt an endpoint secret: the gateway's secret_key differs from the \
                 one it was written with, or the value is corrupt"
                    .to_owned(),
            )
        };
        let body = sealed.strip_prefix(SEALED_VERSION).ok_or_else(wrong)?;
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

/// A fresh endpoint secret: `whsec_` + base64 of 32 random bytes.
pub(crate) fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a `whsec_…` secret.
pub(crate) fn secret_bytes(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let body = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(body)
        .map_err(|_| WebhookError::Crypto("a stored endpoint secret is malformed".to_owned()))
}

/// The Standard Webhooks signature of one attempt: `v1,` + base64 of
/// HMAC-SHA256(key, `{id}.{timestamp}.{body}`).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// A random number in `0..bound` (for jitter).
pub(crate) fn random_below(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    OsRng.next_u64() % bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_are_bound_to_their_endpoint() {
        let key = SecretKey::derive(b"k");
        let secret = generate_secret();
        assert!(
            secret.starts_with("whsec_") && secret.len() == 6 + 44,
            "{secret}"
        );
        let sealed = key.seal("ops", secret.as_bytes()).unwrap();
        assert!(!sealed.contains(&secret[6..]));
        assert_eq!(key.open("ops", &sealed).unwrap(), secret.as_bytes());
        assert!(key.open("other", &sealed).is_err());
        assert!(SecretKey::derive(b"j").open("ops", &sealed).is_err());
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
    }

    #[test]
    fn signatures_verify_with_the_standardwebhooks_crate() {
        let secret = generate_secret();
        let key = secret_bytes(&secret).unwrap();
        let body = br#"{"type":"session.closed","timestamp":"2026-12-03T14:05:09.120Z","data":{}}"#;
        let now = chrono::Utc::now().timestamp();
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        headers.insert(
            "webhook-signature",
            sign(&key, "msg_1", now, body).parse().unwrap(),
        );
        let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
        verifier.verify(body, &headers).unwrap();
        // Another secret does not verify.
        let other = standardwebhooks::Webhook::new(&generate_secret()).unwrap();
        assert!(other.verify(body, &headers).is_err());
    }
}
