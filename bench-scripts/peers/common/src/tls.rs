//! The TLS listener's configuration (feature `tls`): rustls 0.23 through
//! tokio-rustls, ring provider, TLS 1.2 and 1.3 with rustls's default
//! cipher suites and key-exchange groups, ALPN `http/1.1`, the certificate
//! chain and key from PEM files. Session resumption as nginx's
//! `ssl_session_tickets on`: stateless tickets (rustls's ring `Ticketer`,
//! TLS 1.3 tickets and TLS 1.2 session tickets), and rustls's default
//! in-memory session cache for TLS 1.2 session ids.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::TcpStream;
pub use tokio_rustls::TlsAcceptor;

/// The I/O of a connection accepted on the TLS listener (what an upgraded
/// connection downcasts to, inside hyper's `TokioIo`).
pub type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// A TLS handshake not done by then is dropped (as ringcast's
/// `tls.handshake_timeout` default).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server configuration: chain and key from PEM files (the key PKCS#8,
/// SEC1 or PKCS#1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS tickets: {e}"))?;
    Ok(Arc::new(config))
}

/// The acceptor of the TLS listener.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    server_config(cert, key).map(TlsAcceptor::from)
}
