//! The gRPC endpoint of a gateway URL: plain `http://`, or `https://` with rustls (ring).
//!
//! Kept free of the CLI's own types so that another client of the gateway (such as an
//! agent) can share it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// How long connecting (TCP and the TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs ring as rustls' process-wide crypto provider. Call once, early; calling it
/// again does nothing.
pub(crate) fn install_crypto_provider() {
    // It fails only when a provider is installed already, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The endpoint of the gateway at `url` (`http://HOST:PORT` or `https://HOST:PORT`).
///
/// With `https://`, the gateway's certificate must chain to the CA in the PEM file `ca`,
/// or, without `ca`, to one of the webpki roots (Mozilla's list, built in; the system's
/// store is not read). `ca` is refused with `http://`. Errors are one line that says what
/// to do; they name `--ca` and `HOOP_CA`, as the CLI calls them.
pub(crate) fn gateway_endpoint(url: &str, ca: Option<&Path>) -> Result<Endpoint> {
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    let tls = match scheme.as_deref() {
        Some("http") => {
            if ca.is_some() {
                bail!(
                    "--ca (HOOP_CA) is for https:// gateways, but the gateway URL `{url}` is http://: use https://, or leave out --ca"
                );
            }
            None
        }
        Some("https") => Some(client_tls(ca)?),
        _ => bail!("invalid gateway URL `{url}`: expected http://HOST:PORT or https://HOST:PORT"),
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|err| anyhow!("invalid gateway URL `{url}`: {err}"))?
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|err| anyhow!("invalid gateway URL `{url}` for TLS: {err}"))?;
    }
    Ok(endpoint)
}

/// The TLS settings: trust `ca` only, or the webpki roots without it.
fn client_tls(ca: Option<&Path>) -> Result<ClientTlsConfig> {
    let config = ClientTlsConfig::new();
    let Some(path) = ca else {
        return Ok(config.with_webpki_roots());
    };
    let what_to_do = "pass the PEM file of the CA that signed the gateway's certificate";
    let pem = std::fs::read(path).map_err(|err| {
        anyhow!(
            "cannot read the CA file {} (--ca, HOOP_CA): {err}; {what_to_do}",
            path.display()
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|_| {
            anyhow!(
                "the CA file {} (--ca, HOOP_CA) is not a valid PEM file; {what_to_do}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        bail!(
            "the CA file {} (--ca, HOOP_CA) holds no certificate (no -----BEGIN CERTIFICATE----- block); {what_to_do}",
            path.display()
        );
    }
    // tonic skips certificates it cannot parse; check them here so a bad file is an error.
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|err| {
            anyhow!(
                "the CA file {} (--ca, HOOP_CA) holds a certificate that cannot be used: {err}; {what_to_do}",
                path.display()
            )
        })?;
    }
    Ok(config.ca_certificate(Certificate::from_pem(pem)))
}

#[cfg(test)]
mod tests {
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
