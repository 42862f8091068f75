//! HTTPS: the server's rustls configuration from a PEM certificate chain and private key, with
//! errors that name the file. Handshakes run in each connection's own task and must finish within
//! the header timeout (see `http::conn::server`), so a client that connects and stays silent holds
//! up nobody. ALPN offers only `http/1.1`.

use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

/// The server's TLS configuration type, for callers that do not depend on rustls themselves.
pub type TlsServerConfig = ServerConfig;

/// The PEM blocks of a certificate file, leaf first.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("tls_cert {shown}: {}", pem_error(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_cert {shown}: {}", pem_error(e)))?;
    if certs.is_empty() {
        return Err(format!("tls_cert {shown}: no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// A server configuration serving `cert` (a chain) with `key`; HTTP/1.1 by ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certificates(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {}", key.display(), pem_error(e)))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("tls_cert/tls_key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pem_error(error: tokio_rustls::rustls::pki_types::pem::Error) -> String {
    use tokio_rustls::rustls::pki_types::pem::Error;
    match error {
        Error::Io(e) => format!("cannot read: {e}"),
        Error::NoItemsFound => "no matching PEM block (expected a certificate or a private key)".into(),
        other => format!("not valid PEM: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_certificates_or_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, junk) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("junk.pem"));
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        std::fs::write(&junk, "hello").unwrap();
        assert!(server_config(&cert, &key).is_ok());
        let e = server_config(&junk, &key).unwrap_err();
        assert!(e.starts_with("tls_cert") && e.contains("junk.pem"), "{e}");
        let e = server_config(&cert, &cert).unwrap_err();
        assert!(e.starts_with("tls_key") && e.contains("cert.pem"), "{e}");
        let e = server_config(&cert, &dir.path().join("missing.pem")).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }
}
