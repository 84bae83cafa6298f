//! `wss://`: the client's byte stream (plain TCP or rustls over TCP), the
//! rustls configuration built from [`ConnectOptions`], and what a TLS
//! handshake negotiated.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::ClientConnection;
use rustls::{ClientConfig, HandshakeKind, RootCertStore, StreamOwned};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, ServerName};

use super::{ConnectOptions, Url};

/// The ALPN protocol offered by the configurations built here.
const ALPN_HTTP11: &[u8] = b"http/1.1";

// ---------------------------------------------------------------------------
// The stream

/// What the client reads and writes: the socket itself for `ws://`, a TLS
/// session over it for `wss://`.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// The socket underneath.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// The TLS session, for `wss://`.
    pub(super) fn tls(&self) -> Option<&ClientConnection> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(s) => Some(&s.conn),
        }
    }

    /// Writes all of `bytes` and everything TLS has buffered: when this
    /// returns `Ok`, the bytes have been handed to the socket.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)?;
        self.flush()
    }

    /// Sends the TLS `close_notify` alert (once; nothing for `ws://`).
    pub(super) fn close_notify(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(s) => {
                s.conn.send_close_notify();
                write_pending(s)
            }
        }
    }
}

/// Hands the socket every TLS record rustls has queued. A write timeout is
/// an error after which the rest stays queued for the next call.
fn write_pending(s: &mut StreamOwned<ClientConnection, TcpStream>) -> io::Result<()> {
    while s.conn.wants_write() {
        if s.conn.write_tls(&mut s.sock)? == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

impl Read for Stream {
    /// For TLS, a read timeout leaves a partly received record buffered in
    /// the session; an end of stream without `close_notify` reads as the
    /// end of the stream (the WebSocket framing tells a cut message).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
                res => res,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => {
                // Make room first: an error here has consumed nothing.
                write_pending(s)?;
                let n = s.conn.writer().write(buf)?;
                // `n` bytes are taken whatever happens now; an error writing
                // them out shows in the next write or flush.
                let _ = write_pending(s);
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => {
                write_pending(s)?;
                s.sock.flush()
            }
        }
    }
}

// ---------------------------------------------------------------------------
// What was negotiated, and handshake errors

/// What the TLS handshake of a `wss://` connection negotiated
/// ([`Client::tls_info`](super::Client::tls_info)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1_3` or `TLSv1_2`.
    pub protocol_version: rustls::ProtocolVersion,
    /// The cipher suite.
    pub cipher_suite: rustls::CipherSuite,
    /// The session was resumed from one of an earlier connection made with
    /// the same [`ConnectOptions`] (or a clone of them): an abbreviated
    /// handshake.
    pub resumed: bool,
    /// The protocol the server chose by ALPN (`http/1.1` is offered), if it
    /// chose one.
    pub alpn_protocol: Option<Vec<u8>>,
}

impl TlsInfo {
    pub(super) fn of(conn: &ClientConnection) -> Option<TlsInfo> {
        Some(TlsInfo {
            protocol_version: conn.protocol_version()?,
            cipher_suite: conn.negotiated_cipher_suite()?.suite(),
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
            alpn_protocol: conn.alpn_protocol().map(<[u8]>::to_vec),
        })
    }
}

/// The error inside the `io::Error` of a `wss://` connect whose TLS
/// handshake failed for a TLS reason: a certificate that is not trusted,
/// expired or for another name, no protocol version or cipher suite in
/// common, an alert from the server. Its kind is `InvalidData`; reach it
/// with `err.get_ref().and_then(|e| e.downcast_ref())`. (A handshake cut by
/// a timeout or a closed connection is a plain I/O error of that kind, its
/// message naming the server too.)
#[derive(Debug, Clone)]
pub struct TlsHandshakeError {
    /// The server: `host:port` from the URL, followed by the name the
    /// certificate was checked against when
    /// [`ConnectOptions::tls_server_name`] replaced the host.
    pub server: String,
    /// What rustls reported.
    pub error: rustls::Error,
}

impl fmt::Display for TlsHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TLS handshake with {} failed: {}",
            self.server, self.error
        )
    }
}

impl std::error::Error for TlsHandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

// ---------------------------------------------------------------------------
// Connecting

/// Everything a `wss://` connect needs before the TCP connect: checked first
/// so that a bad CA file or server name fails without touching the network.
pub(super) struct TlsConnector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// The server, as error messages name it.
    server: String,
}

impl TlsConnector {
    pub(super) fn new(url: &Url, opts: &ConnectOptions) -> io::Result<TlsConnector> {
        let config = opts.tls_client_config()?;
        let host_port = if url.host.contains(':') {
            format!("[{}]:{}", url.host, url.port)
        } else {
            format!("{}:{}", url.host, url.port)
        };
        let (name, server) = match &opts.tls_server_name {
            Some(name) => (name.as_str(), format!("{host_port} (as {name:?})")),
            None => (url.host.as_str(), host_port),
        };
        let name = ServerName::try_from(name.to_string()).map_err(|e| {
            io::Error::new(
                ErrorKind::InvalidInput,
                format!("{name:?}: not a TLS server name: {e}"),
            )
        })?;
        Ok(TlsConnector {
            config,
            name,
            server,
        })
    }

    /// Runs the TLS handshake on `tcp` (with its read and write timeouts).
    pub(super) fn handshake(self, mut tcp: TcpStream) -> io::Result<Stream> {
        let mut conn = ClientConnection::new(self.config, self.name)
            .map_err(|e| io::Error::other(format!("TLS session for {}: {e}", self.server)))?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                return Err(handshake_error(e, self.server));
            }
        }
        Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }
}

/// An error from the handshake's I/O, with the server named.
fn handshake_error(e: io::Error, server: String) -> io::Error {
    let kind = e.kind();
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        let inner = e.into_inner().expect("checked above");
        let error = *inner.downcast::<rustls::Error>().expect("checked above");
        return io::Error::new(kind, TlsHandshakeError { server, error });
    }
    let what = match kind {
        ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
        _ => e.to_string(),
    };
    io::Error::new(kind, format!("TLS handshake with {server} failed: {what}"))
}

// ---------------------------------------------------------------------------
// Configuration

/// The rustls configuration built for a [`ConnectOptions`], shared by its
/// clones: later connects reuse it and so its session cache (resumption).
#[derive(Clone, Default)]
pub(super) struct TlsCache(Arc<Mutex<Option<Built>>>);

/// A configuration and the CA file it was built from (`None`: the system's
/// roots).
struct Built {
    ca_file: Option<PathBuf>,
    config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("TlsCache")
            .field("built", &slot.is_some())
            .finish()
    }
}

impl TlsCache {
    /// The configuration for `ca_file` (`None`: the system's roots), built
    /// on the first call and again only when the CA file changes.
    pub(super) fn get(&self, ca_file: Option<&Path>) -> io::Result<Arc<ClientConfig>> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(built) = &*slot {
            if built.ca_file.as_deref() == ca_file {
                return Ok(built.config.clone());
            }
        }
        let roots = match ca_file {
            Some(path) => Arc::new(ca_file_roots(path)?),
            None => system_roots()?,
        };
        let config = Arc::new(client_config(roots)?);
        *slot = Some(Built {
            ca_file: ca_file.map(Path::to_path_buf),
            config: config.clone(),
        });
        Ok(config)
    }
}

/// A client configuration trusting `roots`: the ring provider, TLS 1.3 and
/// 1.2, no client certificate, ALPN `http/1.1`, rustls's in-memory session
/// cache.
fn client_config(roots: Arc<RootCertStore>) -> io::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(config)
}

/// The CA certificates of a PEM file (other sections are skipped). A file
/// with none is an error.
fn ca_file_roots(path: &Path) -> io::Result<RootCertStore> {
    let bad = |e: pem::Error| match e {
        pem::Error::Io(e) => io::Error::new(e.kind(), format!("CA file {}: {e}", path.display())),
        e => io::Error::new(
            ErrorKind::InvalidData,
            format!("CA file {}: {e}", path.display()),
        ),
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(bad)? {
        roots.add(cert.map_err(bad)?).map_err(|e| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("CA file {}: {e}", path.display()),
            )
        })?;
    }
    if roots.is_empty() {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            format!("CA file {}: no CERTIFICATE in it", path.display()),
        ));
    }
    Ok(roots)
}

/// The system's trusted roots (rustls-native-certs, which honours
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`), loaded once per process. Loading
/// fails when no root can be had; errors beside usable roots are logged.
fn system_roots() -> io::Result<Arc<RootCertStore>> {
    static ROOTS: Mutex<Option<Arc<RootCertStore>>> = Mutex::new(None);
    let mut slot = ROOTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(roots) = &*slot {
        return Ok(roots.clone());
    }
    let loaded = rustls_native_certs::load_native_certs();
    let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = if !errors.is_empty() {
            errors.join("; ")
        } else if ignored > 0 {
            format!("none of its {ignored} certificates could be used")
        } else {
            "no certificates found".to_string()
        };
        return Err(io::Error::other(format!(
            "system certificate store: {why} (ConnectOptions::ca_file names a CA file to trust instead)"
        )));
    }
    if !errors.is_empty() {
        log::warn!(
            "system certificate store: {added} roots loaded, with errors: {}",
            errors.join("; ")
        );
    }
    let roots = Arc::new(roots);
    *slot = Some(roots.clone());
    Ok(roots)
}
