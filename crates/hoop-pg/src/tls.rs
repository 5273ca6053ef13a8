//! TLS between the gateway and the database: the rustls client configuration for a
//! connection's `SSLMODE` and `SSLROOTCERT` (rustls with the ring provider).
//!
//! | mode          | TLS                         | certificate checked                        |
//! |---------------|-----------------------------|--------------------------------------------|
//! | `disable`     | never                       | —                                          |
//! | `allow`       | only if plain is refused    | no                                         |
//! | `prefer`      | if the database offers it   | no                                         |
//! | `require`     | always                      | no (with `SSLROOTCERT`: as `verify-ca`)    |
//! | `verify-ca`   | always                      | issued by a trusted root                   |
//! | `verify-full` | always                      | issued by a trusted root and names `HOST`  |
//!
//! Trusted roots are `SSLROOTCERT`'s certificates (PEM), or else the webpki roots (the
//! Mozilla CA set).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

use crate::target::{PgTarget, SslMode};

/// Most certificates `SSLROOTCERT` may hold.
const MAX_ROOTS: usize = 256;

/// The root certificates of `SSLROOTCERT` (PEM).
///
/// # Errors
/// What is wrong, in words: no certificate, bad PEM, a certificate rustls cannot use.
pub fn roots(pem: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        if i >= MAX_ROOTS {
            return Err(format!("at most {MAX_ROOTS} certificates"));
        }
        let cert = cert.map_err(|e| format!("certificate {} is not valid PEM: {e}", i + 1))?;
        store
            .add(cert)
            .map_err(|e| format!("certificate {} cannot be a root: {e}", i + 1))?;
    }
    if store.is_empty() {
        return Err(
            "holds no PEM certificate: give the CA certificates themselves \
             (-----BEGIN CERTIFICATE----- …), not a file name"
                .to_owned(),
        );
    }
    Ok(store)
}

/// What the gateway needs to open TLS to a connection's database.
#[derive(Clone)]
pub struct TlsSettings {
    /// The rustls client configuration.
    pub config: Arc<ClientConfig>,
    /// The name the certificate is checked against (`verify-full`), also sent as SNI when
    /// `HOST` is a DNS name.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The TLS settings of `target`, `None` with `SSLMODE=disable`.
///
/// # Errors
/// A bad `SSLROOTCERT`, or (`verify-full`) a `HOST` that is neither a DNS name nor an IP
/// address, in words.
pub fn settings(target: &PgTarget) -> Result<Option<TlsSettings>, String> {
    let mode = target.sslmode;
    if mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_name = match ServerName::try_from(target.host.clone()) {
        Ok(name) => name,
        Err(_) if mode == SslMode::VerifyFull => {
            return Err(format!(
                "`{}` is not a host name a certificate can name",
                target.host
            ));
        }
        // Not checked: no SNI is sent for an address.
        Err(_) => ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()),
    };
    let verify = match (mode, &target.root_cert) {
        (SslMode::VerifyFull, _) => Verify::Full,
        (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => Verify::Chain,
        _ => Verify::Nothing,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(Unverified(Arc::clone(&provider))),
        Verify::Chain | Verify::Full => {
            let store = match &target.root_cert {
                Some(pem) => roots(pem)?,
                None => RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                },
            };
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
                    .build()
                    .map_err(|e| e.to_string())?;
            if verify == Verify::Full {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(TlsSettings {
        config: Arc::new(config),
        server_name,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    Full,
}

/// `allow`, `prefer`, `require`: encrypts, checks the handshake's signatures, trusts any
/// certificate (libpq does the same without a root certificate).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain to a trusted root, every check but the host name.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // The name is checked last, once the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_pem_certificates() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = cert.pem();
        assert_eq!(roots(&pem).unwrap().len(), 1);
        assert_eq!(roots(&format!("{pem}\n{pem}")).unwrap().len(), 2);
        assert!(
            roots("/etc/ssl/certs/ca.pem")
                .unwrap_err()
                .contains("not a file name")
        );
        let broken = pem.replace("-----END CERTIFICATE-----", "");
        assert!(roots(&broken).is_err());
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(roots(garbage).unwrap_err().contains("certificate 1"));
    }
}
