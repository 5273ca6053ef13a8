//! Endpoint secrets: generated as `whsec_` + base64 of 32 random bytes (what Standard Webhooks
//! libraries take), sealed at rest through the host's [`Sealer`] port (the gateway encrypts
//! them with AES-256-GCM under a key it derives from its `secret_key`; the plugin never holds
//! key material), and the Standard Webhooks signature (`v1,` + base64 HMAC-SHA256).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use hoop_core::ports::Sealer;
use sha2::Sha256;

use crate::error::WebhookError;

/// Prefix of endpoint secrets.
pub const SECRET_PREFIX: &str = "whsec_";
/// What endpoint secrets are to the host's [`Sealer`]: the key it seals them with is its own
/// for this purpose.
pub const SEAL_PURPOSE: &str = "webhooks endpoint secrets";

/// Seals and opens endpoint secrets through the host's [`Sealer`], each bound to its
/// endpoint's name (a sealed secret copied onto another endpoint does not open).
///
/// Its `Debug` form shows nothing of the sealer.
#[derive(Clone)]
pub struct EndpointSecrets {
    sealer: Arc<dyn Sealer>,
}

impl std::fmt::Debug for EndpointSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointSecrets(..)")
    }
}

impl EndpointSecrets {
    /// Endpoint secrets sealed by `sealer` (the host's port).
    pub fn new(sealer: Arc<dyn Sealer>) -> Self {
        Self { sealer }
    }

    /// Encrypts `plaintext` bound to `context` (the endpoint name).
    pub(crate) fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, WebhookError> {
        self.sealer
            .seal(SEAL_PURPOSE, context, plaintext)
            .map_err(|_| WebhookError::Crypto("cannot encrypt an endpoint secret".to_owned()))
    }

    /// Decrypts what [`seal`](Self::seal) made with the same host key and context.
    pub(crate) fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, WebhookError> {
        self.sealer
            .open(SEAL_PURPOSE, context, sealed)
            .map_err(|_| {
                WebhookError::Crypto(
                    "cannot decrypt an endpoint secret: the gateway's secret_key differs from the \
                 one it was written with, or the value is corrupt"
                        .to_owned(),
                )
            })
    }
}

/// A fresh endpoint secret: `whsec_` + base64 of 32 random bytes.
pub(crate) fn generate_secret() -> Result<String, WebhookError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|_| WebhookError::Crypto("the system's random source failed".to_owned()))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
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
    let mut bytes = [0u8; 8];
    // Jitter only spreads retries: without randomness it is none, never an error.
    if getrandom::getrandom(&mut bytes).is_err() {
        return 0;
    }
    u64::from_le_bytes(bytes) % bound
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealer that records what it was asked for, and "seals" reversibly.
    #[derive(Debug, Default)]
    struct Recorder(std::sync::Mutex<Vec<(String, String)>>);

    impl Sealer for Recorder {
        fn seal(
            &self,
            purpose: &str,
            context: &str,
            plaintext: &[u8],
        ) -> Result<String, hoop_core::PortError> {
            let mut asked = self.0.lock().unwrap();
            asked.push((purpose.to_owned(), context.to_owned()));
            Ok(format!("{context}:{}", STANDARD.encode(plaintext)))
        }

        fn open(
            &self,
            purpose: &str,
            context: &str,
            sealed: &str,
        ) -> Result<Vec<u8>, hoop_core::PortError> {
            let mut asked = self.0.lock().unwrap();
            asked.push((purpose.to_owned(), context.to_owned()));
            let body = sealed
                .strip_prefix(&format!("{context}:"))
                .ok_or_else(|| hoop_core::PortError::Corrupt("other context".to_owned()))?;
            Ok(STANDARD.decode(body).unwrap())
        }
    }

    #[test]
    fn secrets_are_sealed_for_their_purpose_and_endpoint() {
        let recorder = Arc::new(Recorder::default());
        let secrets = EndpointSecrets::new(recorder.clone());
        let secret = generate_secret().unwrap();
        assert!(
            secret.starts_with("whsec_") && secret.len() == 6 + 44,
            "{secret}"
        );
        assert_ne!(secret, generate_secret().unwrap());
        let sealed = secrets.seal("ops", secret.as_bytes()).unwrap();
        assert_eq!(secrets.open("ops", &sealed).unwrap(), secret.as_bytes());
        let err = secrets.open("other", &sealed).unwrap_err().to_string();
        assert!(err.contains("secret_key differs"), "{err}");
        assert!(
            recorder
                .0
                .lock()
                .unwrap()
                .iter()
                .all(|(purpose, _)| purpose == SEAL_PURPOSE)
        );
        assert_eq!(format!("{secrets:?}"), "EndpointSecrets(..)");
    }

    #[test]
    fn signatures_verify_with_the_standardwebhooks_crate() {
        let secret = generate_secret().unwrap();
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
        let other = standardwebhooks::Webhook::new(&generate_secret().unwrap()).unwrap();
        assert!(other.verify(body, &headers).is_err());
    }
}
