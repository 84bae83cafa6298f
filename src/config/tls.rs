//! The `[tls]` section: the TLS listener beside the plain one, its
//! certificates, handshake limits, and the plain listener's redirect.

use serde::{Deserialize, Serialize};

use super::{fail, parse_listen, ConfigError, Period};

/// `[tls]`: HTTPS and WSS on the workers. Off while `listen` is empty.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the TLS listener (every worker binds its own, SO_REUSEPORT);
    /// empty = no TLS listener. Port 0 picks a free port.
    pub listen: String,
    /// PEM certificate chain (leaf first) of the default certificate.
    pub cert: String,
    /// PEM private key of `cert` (PKCS#8, SEC1 or PKCS#1; RSA, ECDSA or Ed25519).
    pub key: String,
    /// More certificates, each chosen when the client asks (SNI) for one
    /// of the DNS names in its subjectAltName; any other name gets `cert`.
    pub certificates: Vec<TlsCertificate>,
    /// A client must finish the TLS handshake within this long after connecting.
    pub handshake_timeout: Period,
    /// TLS handshakes in progress per worker; connections beyond it are closed at once.
    pub max_handshakes_per_worker: usize,
    /// Session resumption with tickets (keys rotate every 6 hours).
    pub session_tickets: bool,
    /// Oldest protocol version offered: "1.2" or "1.3".
    pub min_version: String,
    /// The plain listener answers every request with a 301 to the same
    /// URL on the TLS listener (except the paths in `redirect_exempt`).
    pub redirect_http: bool,
    /// Paths the plain listener still serves when `redirect_http` is on
    /// (e.g. "/healthz", "/metrics").
    pub redirect_exempt: Vec<String>,
    /// Value of a `Strict-Transport-Security` header on every TLS
    /// response, e.g. "max-age=31536000"; empty = no header.
    pub hsts: String,
}

/// `[[tls.certificates]]`: one more certificate, chosen by SNI.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsCertificate {
    /// PEM certificate chain, leaf first.
    pub cert: String,
    /// Its PEM private key.
    pub key: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: String::new(),
            cert: String::new(),
            key: String::new(),
            certificates: Vec::new(),
            handshake_timeout: Period::from_secs(10),
            max_handshakes_per_worker: 512,
            session_tickets: true,
            min_version: "1.2".into(),
            redirect_http: false,
            redirect_exempt: Vec::new(),
            hsts: String::new(),
        }
    }
}

impl TlsConfig {
    /// The TLS listener's address, when there is one.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        if self.listen.is_empty() {
            None
        } else {
            parse_listen(&self.listen).ok()
        }
    }

    pub(super) fn validate(&self, plain: std::net::SocketAddr) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            if self.redirect_http {
                return fail("tls.redirect_http needs a TLS listener: set tls.listen".into());
            }
            return Ok(());
        }
        let addr =
            parse_listen(&self.listen).map_err(|e| ConfigError(format!("tls.listen = {e}")))?;
        if addr == plain && addr.port() != 0 {
            return fail(format!(
                "tls.listen = \"{addr}\" is server.listen too: the TLS listener needs its own port"
            ));
        }
        if self.cert.is_empty() || self.key.is_empty() {
            return fail(
                "tls.listen is set: tls.cert and tls.key must name a PEM certificate chain and its private key (or run with --self-signed)"
                    .into(),
            );
        }
        for (i, c) in self.certificates.iter().enumerate() {
            if c.cert.is_empty() || c.key.is_empty() {
                return fail(format!("tls.certificates[{i}] needs both cert and key"));
            }
        }
        if self.handshake_timeout.0.is_zero() {
            return fail("tls.handshake_timeout must be more than 0".into());
        }
        if self.max_handshakes_per_worker == 0 {
            return fail("tls.max_handshakes_per_worker must be at least 1".into());
        }
        if self.min_version != "1.2" && self.min_version != "1.3" {
            return fail(format!(
                "tls.min_version = {:?} must be \"1.2\" or \"1.3\"",
                self.min_version
            ));
        }
        for p in &self.redirect_exempt {
            if !p.starts_with('/') {
                return fail(format!(
                    "tls.redirect_exempt: {p:?} must be a path starting with /"
                ));
            }
        }
        if let Some(b) = self.hsts.bytes().find(|b| !(0x20..0x7f).contains(b)) {
            return fail(format!(
                "tls.hsts: byte 0x{b:02x} is not allowed in a header value (printable ASCII only)"
            ));
        }
        Ok(())
    }
}
