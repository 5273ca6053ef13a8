//! The gRPC endpoint of a gateway URL, for the gateway's clients (the `hoop` CLI, the
//! `hoop-agent` binary): plain `http://`, or `https://` with rustls and the ring provider.
//! Behind the `client` feature.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// How long connecting (TCP and the TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do about a bad CA file, as every such error ends.
const WHAT_TO_DO: &str = "pass the PEM file of the CA that signed the gateway's certificate";

/// Why a gateway URL or CA file cannot be used. The messages are one line that says what to
/// do; they name `--ca` and `HOOP_CA`, as the clients call them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Neither `http://` nor `https://`, or not a URL.
    #[error("invalid gateway URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL cannot be used for TLS.
    #[error("invalid gateway URL `{url}` for TLS: {reason}")]
    Tls {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// `--ca` with an `http://` URL.
    #[error(
        "--ca (HOOP_CA) is for https:// gateways, but the gateway URL `{0}` is http://: use https://, or leave out --ca"
    )]
    CaWithoutTls(String),
    /// The CA file cannot be read.
    #[error("cannot read the CA file {} (--ca, HOOP_CA): {error}; {WHAT_TO_DO}", path.display())]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// Why (in the message, whole: not a separate cause to print again).
        error: std::io::Error,
    },
    /// The CA file is not PEM, holds no certificate, or one that cannot be used.
    #[error("the CA file {} (--ca, HOOP_CA) {problem}; {WHAT_TO_DO}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

/// Installs ring as rustls' process-wide crypto provider. Call once, early; calling it
/// again does nothing.
pub fn install_crypto_provider() {
    // It fails only when a provider is installed already, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The endpoint of the gateway at `url` (`http://HOST:PORT` or `https://HOST:PORT`).
///
/// With `https://`, the gateway's certificate must chain to the CA in the PEM file `ca`,
/// or, without `ca`, to one of the webpki roots (Mozilla's list, built in; the system's
/// store is not read). `ca` is refused with `http://`.
///
/// # Errors
/// [`EndpointError`], saying what to do.
pub fn gateway_endpoint(url: &str, ca: Option<&Path>) -> Result<Endpoint, EndpointError> {
    let invalid = |reason: String| EndpointError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    let tls = match scheme.as_deref() {
        Some("http") => {
            if ca.is_some() {
                return Err(EndpointError::CaWithoutTls(url.to_owned()));
            }
            None
        }
        Some("https") => Some(client_tls(ca)?),
        _ => {
            return Err(invalid(
                "expected http://HOST:PORT or https://HOST:PORT".to_owned(),
            ));
        }
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|err| invalid(err.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        // Session output comes in messages of up to 256 KiB: one HTTP/2 frame each rather
        // than sixteen of the default 16 KiB, and windows that hold several of them.
        .max_frame_size(crate::HTTP2_MAX_FRAME)
        .initial_stream_window_size(crate::HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(crate::HTTP2_CONNECTION_WINDOW);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|err| EndpointError::Tls {
            url: url.to_owned(),
            reason: err.to_string(),
        })?;
    }
    Ok(endpoint)
}

/// The TLS settings: trust `ca` only, or the webpki roots without it.
fn client_tls(ca: Option<&Path>) -> Result<ClientTlsConfig, EndpointError> {
    let config = ClientTlsConfig::new();
    let Some(path) = ca else {
        return Ok(config.with_webpki_roots());
    };
    let bad = |problem: String| EndpointError::BadCa {
        path: path.to_owned(),
        problem,
    };
    let pem = std::fs::read(path).map_err(|error| EndpointError::ReadCa {
        path: path.to_owned(),
        error,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|_| bad("is not a valid PEM file".to_owned()))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no certificate (no -----BEGIN CERTIFICATE----- block)".to_owned(),
        ));
    }
    // tonic skips certificates it cannot parse; check them here so a bad file is an error.
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|err| bad(format!("holds a certificate that cannot be used: {err}")))?;
    }
    Ok(config.ca_certificate(Certificate::from_pem(pem)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn err(url: &str, ca: Option<&Path>) -> String {
        match gateway_endpoint(url, ca) {
            Ok(_) => panic!("{url} accepted"),
            Err(err) => format!("{err:#}"),
        }
    }

    #[test]
    fn schemes() {
        install_crypto_provider();
        assert!(gateway_endpoint("http://127.0.0.1:8010", None).is_ok());
        assert!(gateway_endpoint("https://gw.example:8010", None).is_ok());
        assert_eq!(
            err("ftp://gw:1", None),
            "invalid gateway URL `ftp://gw:1`: expected http://HOST:PORT or https://HOST:PORT"
        );
        assert!(
            err("http://gw:1", Some(Path::new("ca.pem")))
                .starts_with("--ca (HOOP_CA) is for https:// gateways"),
        );
    }

    #[test]
    fn bad_ca_files_say_what_to_do() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let message = err("https://gw:1", Some(&missing));
        assert!(
            message.starts_with("cannot read the CA file ")
                && message
                    .ends_with("pass the PEM file of the CA that signed the gateway's certificate"),
            "{message}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(err("https://gw:1", Some(&empty)).contains("holds no certificate"));
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(err("https://gw:1", Some(&broken)).contains("is not a valid PEM file"));
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(
            err("https://gw:1", Some(&junk)).contains("holds a certificate that cannot be used"),
        );
    }
}
