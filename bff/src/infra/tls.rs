//! TLS building blocks on rustls with the ring provider (no OpenSSL): PEM files read into
//! certificates, keys and roots, and the three ways a client may check a server, as libpq names
//! them: not at all (`require`: encrypted, nobody checked), the chain only (`verify-ca`, and the
//! healthcheck or engine calling this very server on loopback), or chain and name (`verify-full`).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};

/// The one crypto provider (ring, already in the tree through reqwest).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process's default provider (libraries that build their own configs, such as
/// the HTTPS listener's, use it); a second call is harmless.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The certificates of a PEM file (a chain: the leaf first).
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it (PEM expected)", path.display()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: no private key in it ({e})", path.display()))
}

/// A root store of every certificate in a PEM file.
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certs(path)? {
        store.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(store)
}

/// How a client checks the server it talks to.
pub enum Check {
    /// Encrypted, the server not checked (libpq's `require` and `prefer` without a root).
    Nothing,
    /// The chain against these roots, whatever name the certificate bears.
    Chain(rustls::RootCertStore),
    /// The chain against these roots and the name connected to.
    Full(rustls::RootCertStore),
    /// Exactly one of these certificates (the server's own, read from its file), or a chain to
    /// one of them: the healthcheck and the engine calling this very server.
    Own(Vec<CertificateDer<'static>>),
}

/// A client configuration that checks the server as `check` says and, when given, presents a
/// client certificate.
pub fn client_config(
    check: Check,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match check {
        Check::Full(roots) => builder.with_root_certificates(roots),
        Check::Chain(roots) => {
            let inner =
                rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                    .build()
                    .map_err(|e| format!("TLS roots: {e}"))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
        }
        Check::Nothing => builder.dangerous().with_custom_certificate_verifier(Arc::new(Unchecked)),
        Check::Own(certs) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in &certs {
                let _ = roots.add(c.clone());
            }
            let chain =
                rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                    .build()
                    .ok()
                    .map(ChainOnly);
            builder.dangerous().with_custom_certificate_verifier(Arc::new(Own { certs, chain }))
        }
    };
    match client_cert {
        Some((certs, key)) => {
            builder.with_client_auth_cert(certs, key).map_err(|e| format!("client certificate: {e}"))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The handshake's signatures checked with ring's algorithms, the same for every verifier here
/// (what differs between them is which certificates they accept).
macro_rules! handshake_signatures_by_ring {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            algorithms().supported_schemes()
        }
    };
}

fn algorithms() -> rustls::crypto::WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// Checks the chain (and expiry) but not the name: libpq's `verify-ca`.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(TlsError::InvalidCertificate(CertificateError::NotValidForName))
            | Err(TlsError::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    handshake_signatures_by_ring!();
}

/// Accepts the server's own certificate (byte for byte), or a chain to one in its file.
#[derive(Debug)]
struct Own {
    certs: Vec<CertificateDer<'static>>,
    chain: Option<ChainOnly>,
}

impl ServerCertVerifier for Own {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if self.certs.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.chain {
            Some(chain) => chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(TlsError::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    handshake_signatures_by_ring!();
}

/// Checks nothing of the certificate, only that the handshake is signed by its key: libpq's
/// `require` (encryption against eavesdroppers, not against someone in the middle).
#[derive(Debug)]
struct Unchecked;

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_by_ring!();
}
