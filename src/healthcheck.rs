//! `presence-gateway healthcheck`: asks a running gateway's `GET /healthz`, as a container's
//! health check does, without needing curl in the image. It connects to the configured listen
//! address (an unspecified address becomes loopback). With TLS configured it speaks HTTPS and
//! accepts exactly the configured certificate (pinned), since the name a public certificate is
//! issued for rarely resolves to loopback.

use crate::config::Config;
use crate::tls;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error, SignatureScheme};

/// Probes `/healthz` of the gateway `config` describes; `Ok` when it answers 200.
pub async fn probe(config: &Config, limit: Duration) -> Result<(), String> {
    let address = address(config)?;
    let attempt = async { ask(connect(config, address).await?).await };
    tokio::time::timeout(limit, attempt).await.map_err(|_| format!("no answer from {address} within {limit:?}"))?
}

/// A connection to a local gateway: plain TCP, or TLS accepting only its configured certificate.
pub(crate) trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// The configured listen address, an unspecified one as loopback.
pub(crate) fn address(config: &Config) -> Result<SocketAddr, String> {
    let mut address: SocketAddr = config.listen.parse().map_err(|_| format!("listen: {:?} is not an address", config.listen))?;
    if address.ip().is_unspecified() {
        address.set_ip(if address.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) });
    }
    Ok(address)
}

pub(crate) async fn connect(config: &Config, address: SocketAddr) -> Result<Box<dyn Connection>, String> {
    let tcp = tokio::net::TcpStream::connect(address).await.map_err(|e| format!("cannot connect to {address}: {e}"))?;
    match &config.tls_cert {
        None => Ok(Box::new(tcp)),
        Some(cert) => {
            let pinned = tls::read_certificates(cert)?.remove(0);
            let connector = tokio_rustls::TlsConnector::from(pinned_client(pinned)?);
            let name = ServerName::IpAddress(address.ip().into());
            let stream = connector.connect(name, tcp).await.map_err(|e| format!("TLS with {address}: {e}"))?;
            Ok(Box::new(stream))
        }
    }
}

async fn ask(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> Result<(), String> {
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(request).await.map_err(|e| format!("sending: {e}"))?;
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line).await.map_err(|e| format!("reading the answer: {e}"))?;
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!("unhealthy: {}", status_line.trim())),
    }
}

fn pinned_client(certificate: CertificateDer<'static>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(ring::default_provider());
    let verifier = Arc::new(Pinned { certificate, provider: provider.clone() });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts the one certificate the gateway is configured with, and nothing else.
#[derive(Debug)]
struct Pinned {
    certificate: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
