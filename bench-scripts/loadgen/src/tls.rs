//! TLS for `wss://` and `https://` targets: the client configuration
//! (rustls 0.23, ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`, the CA of
//! `--ca` as the only root) and [`Stream`], one connection's socket: plain
//! TCP, or TCP under a rustls client session.
//!
//! The plain variant is the bare mio socket: reading and writing it is one
//! `match` away from the syscall, with no copy and no allocation, so
//! plaintext runs cost what they did before TLS existed here. The TLS
//! variant is boxed (a plain `Conn` stays small) and uses rustls's buffered
//! `ClientConnection`: plaintext written is encrypted into rustls's buffer
//! and pushed to the socket at once, what the socket cannot take yet stays
//! there until the next writable edge; reads pull records until the socket
//! would block (edge-triggered readiness needs the socket drained) and hand
//! out the decrypted bytes.
//!
//! Session resumption is off unless asked for (`--tls-resume`): the client
//! keeps no session, so every connection is a full handshake.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};

use crate::sys;

/// How TLS connections to one host are made: shared by every connection of
/// a pool (and so is the session cache, when resumption is on).
pub struct TlsClient {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsClient {
    /// A client trusting only the certificates in the PEM file `ca`, for
    /// server name `host` (a DNS name or an IP address, as in the URL).
    pub fn new(ca: &Path, host: &str, resume: bool) -> Result<TlsClient, String> {
        let mut roots = RootCertStore::empty();
        let certs =
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("--ca {}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("--ca {}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("--ca {}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("--ca {}: no certificate in it", ca.display()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if !resume {
            config.resumption = Resumption::disabled();
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
        Ok(TlsClient {
            config: Arc::new(config),
            name,
        })
    }

    /// Starts a TLS session over `tcp` (connecting or connected); the
    /// ClientHello leaves with the first flush.
    pub fn wrap(&self, tcp: TcpStream) -> io::Result<Stream> {
        let conn = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(TlsStream {
            tcp,
            conn,
            eof: false,
            handshake_done_ns: 0,
        })))
    }
}

/// What a completed TLS handshake was.
#[derive(Debug, Clone, Copy)]
pub struct TlsOpen {
    /// From the connect's start (`since_ns`) to the TLS handshake's end (the
    /// read that brought the server's Finished).
    pub handshake_ns: u64,
    /// Full or resumed (or full after a HelloRetryRequest).
    pub kind: Option<HandshakeKind>,
    pub version: Option<rustls::ProtocolVersion>,
    pub suite: Option<rustls::CipherSuite>,
}

/// One connection's socket.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

pub struct TlsStream {
    tcp: TcpStream,
    conn: ClientConnection,
    /// The socket reported end of stream.
    eof: bool,
    handshake_done_ns: u64,
}

impl Stream {
    #[inline]
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.tcp,
        }
    }

    #[inline]
    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &mut t.tcp,
        }
    }

    /// Does a read shorter than the buffer mean the socket is drained? True
    /// for plain TCP; not under TLS, where decrypted bytes come out a
    /// record at a time.
    #[inline]
    pub fn short_read_drains(&self) -> bool {
        matches!(self, Stream::Plain(_))
    }

    /// Reads plaintext. `Ok(0)`: end of stream (under TLS: a close_notify,
    /// or the socket's end without one). `WouldBlock`: the socket is drained.
    #[inline]
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }

    /// Writes plaintext. Under TLS, bytes taken are encrypted and either
    /// written or kept by rustls until [`Stream::flush_tls`]; `WouldBlock`
    /// once rustls's buffer is full and the socket takes no more.
    #[inline]
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    /// Pushes out the encrypted bytes rustls still holds (TLS only; a plain
    /// socket holds none). Stops, without error, when the socket is full.
    #[inline]
    pub fn flush_tls(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(t) => t.push(),
        }
    }

    /// The TLS handshake's outcome, once complete (None: plain, or not
    /// yet); `since_ns`: when the connect started.
    pub fn tls_open(&self, since_ns: u64) -> Option<TlsOpen> {
        match self {
            Stream::Tls(t) if t.handshake_done_ns != 0 => Some(TlsOpen {
                handshake_ns: t.handshake_done_ns.saturating_sub(since_ns),
                kind: t.conn.handshake_kind(),
                version: t.conn.protocol_version(),
                suite: t.conn.negotiated_cipher_suite().map(|s| s.suite()),
            }),
            _ => None,
        }
    }

    /// Before a local close: a TLS session still open sends its close_notify
    /// (best effort, one write). Nothing for plain TCP, nor once the server
    /// has ended the stream.
    pub fn close_notify(&mut self) {
        if let Stream::Tls(t) = self {
            if !t.eof && !t.conn.is_handshaking() {
                t.conn.send_close_notify();
                let _ = t.conn.write_tls(&mut t.tcp);
            }
        }
    }
}

impl TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The server closed TCP without a close_notify: servers do,
                // and for these protocols (framed messages) it is an end.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // No plaintext buffered: read records (WouldBlock ends here).
            match self.conn.read_tls(&mut self.tcp)? {
                0 => self.eof = true,
                _ => {
                    if let Err(e) = self.conn.process_new_packets() {
                        // Send the alert rustls queued, then fail.
                        let _ = self.conn.write_tls(&mut self.tcp);
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("tls: {e}"),
                        ));
                    }
                    if self.handshake_done_ns == 0 && !self.conn.is_handshaking() {
                        self.handshake_done_ns = sys::now_ns();
                    }
                    // Handshake messages, key updates, alerts; and once the
                    // handshake completes, the plaintext written before it.
                    self.push()?;
                }
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let n = self.conn.writer().write(buf)?;
            if n > 0 || buf.is_empty() {
                self.push()?;
                return Ok(n);
            }
            // rustls's buffer is full: make room by writing to the socket.
            self.push()?;
            if self.conn.wants_write() || self.conn.is_handshaking() {
                // The socket is full, or the handshake has to progress
                // before buffered plaintext can leave.
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
    }

    fn push(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Short names for the report: `TLSv1.3`, `TLS13_AES_256_GCM_SHA384`.
pub fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

pub fn suite_name(s: rustls::CipherSuite) -> String {
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    use mio::{Events, Interest, Poll, Token};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::{ServerConfig, ServerConnection, StreamOwned};

    /// A test CA (PEM, written to a file) and a leaf for 127.0.0.1 signed by it.
    struct Pki {
        ca_file: std::path::PathBuf,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    }

    fn pki(tag: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let ca_file =
            std::env::temp_dir().join(format!("loadgen-tls-{tag}-{}.pem", std::process::id()));
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Pki {
            ca_file,
            chain: vec![leaf.der().clone(), ca.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        }
    }

    /// A blocking one-connection TLS echo server; returns its address.
    fn echo_server(p: &Pki) -> std::net::SocketAddr {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(p.chain.clone(), p.key.clone_key())
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let conn = ServerConnection::new(Arc::new(config)).unwrap();
            let mut s = StreamOwned::new(conn, tcp);
            let mut buf = vec![0u8; 8192];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        addr
    }

    #[test]
    fn echo_through_a_tls_stream() {
        let p = pki("echo");
        let addr = echo_server(&p);
        let client = TlsClient::new(&p.ca_file, "127.0.0.1", false).unwrap();
        let mut s = client
            .wrap(mio::net::TcpStream::connect(addr).unwrap())
            .unwrap();
        assert!(!s.short_read_drains());
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(
                s.tcp_mut(),
                Token(0),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap();
        let mut events = Events::with_capacity(8);
        // More than rustls's 64 KiB buffer: writes must meet WouldBlock and
        // go on at later edges.
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut pos, mut got) = (0, Vec::new());
        let mut buf = vec![0u8; 16384];
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < sent.len() {
            assert!(
                Instant::now() < deadline,
                "echo timed out: {} bytes back",
                got.len()
            );
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            // Not connected yet: writes fail with NotConnected (or WouldBlock).
            if s.tcp().peer_addr().is_err() {
                continue;
            }
            s.flush_tls().unwrap();
            while pos < sent.len() {
                match s.write(&sent[pos..]) {
                    Ok(n) => pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
            loop {
                match s.read(&mut buf) {
                    Ok(0) => panic!("end of stream after {} bytes", got.len()),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
        assert!(got == sent, "echo differs");
        let t = s.tls_open(0).expect("handshake done");
        assert_eq!(t.kind, Some(HandshakeKind::Full));
        assert_eq!(t.version, Some(rustls::ProtocolVersion::TLSv1_3));
        assert!(t.handshake_ns > 0);
        s.close_notify();
        let _ = std::fs::remove_file(&p.ca_file);
    }

    #[test]
    fn client_errors() {
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        assert!(TlsClient::new(missing, "127.0.0.1", false).is_err());
        let empty =
            std::env::temp_dir().join(format!("loadgen-tls-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TlsClient::new(&empty, "127.0.0.1", false).err().unwrap();
        assert!(e.contains("no certificate"), "{e}");
        let _ = std::fs::remove_file(&empty);
        let p = pki("errors");
        assert!(TlsClient::new(&p.ca_file, "[::1]", true).is_ok());
        assert!(TlsClient::new(&p.ca_file, "localhost", false).is_ok());
        assert!(TlsClient::new(&p.ca_file, "bad name!", false).is_err());
        let _ = std::fs::remove_file(&p.ca_file);
    }
}
