//! Tests of the client over TLS (`wss://`) against a scripted rustls server
//! on loopback, with certificates made on the spot: a test CA and a server
//! certificate for `localhost` and `127.0.0.1` it signed.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::server::{ServerConfig, ServerConnection};
use rustls::{
    HandshakeKind, ProtocolVersion, RootCertStore, StreamOwned, SupportedProtocolVersion,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::tests::{accept_101, frame, read_client_frame, request_header};
use super::{handshake, Client, ConnectOptions, HandshakeRefused, Message, TlsHandshakeError};

// --- certificates and files ---------------------------------------------------

/// A CA, and a server certificate it signed.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn make_pki(ca_name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        chain: vec![leaf.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

/// The PKI the test servers use.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| make_pki("ringcast test CA"))
}

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ringcast-client-tls-{}-{}.pem",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// --- the scripted server --------------------------------------------------------

type ServerStream = StreamOwned<ServerConnection, TcpStream>;

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn server_config(versions: &[&'static SupportedProtocolVersion]) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki().chain.clone(), pki().key.clone_key())
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Accepts one connection, completes the TLS handshake and reads the
/// request head through it.
fn accept(
    listener: &TcpListener,
    config: &Arc<ServerConfig>,
) -> io::Result<(ServerStream, String)> {
    let (tcp, _) = listener.accept()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut s = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
    }
    Ok((s, String::from_utf8(head).unwrap()))
}

/// Serves `n` connections in turn, each handed to `script` with its index
/// and request head.
fn serve<F>(
    config: Arc<ServerConfig>,
    n: usize,
    mut script: F,
) -> (SocketAddr, thread::JoinHandle<()>)
where
    F: FnMut(usize, ServerStream, String) + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        for i in 0..n {
            let (s, head) = accept(&listener, &config).unwrap();
            script(i, s, head);
        }
    });
    (addr, handle)
}

/// A server whose one TLS handshake is expected to fail: returns the
/// server's side of the error.
fn serve_failing_handshake() -> (SocketAddr, thread::JoinHandle<io::Error>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = server_config(BOTH);
    let handle = thread::spawn(move || match accept(&listener, &config) {
        Ok((_, head)) => panic!("the handshake succeeded: {head}"),
        Err(e) => e,
    });
    (addr, handle)
}

/// The closing handshake as the client starts it: its close frame is
/// echoed, then its `close_notify` must come (a clean end of the TLS
/// stream), answered with the server's.
fn close_handshake(s: &mut ServerStream) {
    let (_, _, op, p) = read_client_frame(s);
    assert_eq!(op, 8, "a close frame");
    s.write_all(&frame(true, false, 8, &p)).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(
        s.read(&mut b).unwrap(),
        0,
        "close_notify follows the close frames"
    );
    s.conn.send_close_notify();
    s.flush().unwrap();
}

/// Writes `bytes` through the session into `raw` as TLS records, without
/// sending them.
fn seal(s: &mut ServerStream, bytes: &[u8], raw: &mut Vec<u8>) {
    s.conn.writer().write_all(bytes).unwrap();
    while s.conn.wants_write() {
        s.conn.write_tls(raw).unwrap();
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

// --- tests ----------------------------------------------------------------------

#[test]
fn wss_echo_with_a_ca_file_and_close_notify() {
    let ca = TempFile::new(&pki().ca_pem);
    let (addr, server) = serve(server_config(BOTH), 1, move |_, mut s, head| {
        assert!(head.starts_with("GET /echo?room=t HTTP/1.1\r\n"), "{head}");
        let host = request_header(&head, "Host").unwrap().to_string();
        assert_eq!(host, s.sock.local_addr().unwrap().to_string());
        assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(s.conn.server_name(), None, "no SNI for an IP address");
        s.write_all(accept_101(&head, "").as_bytes()).unwrap();
        let (fin, _, op, p) = read_client_frame(&mut s);
        s.write_all(&frame(fin, false, op, &p)).unwrap();
        close_handshake(&mut s);
    });
    let opts = ConnectOptions::new().ca_file(ca.path());
    let url = format!("wss://{addr}/echo?room=t");
    let (mut c, res) = Client::connect_with(&url, &opts).unwrap();
    assert_eq!(res.status, 101);
    assert_eq!(c.get_ref().peer_addr().unwrap(), addr);
    let info = c.tls_info().unwrap();
    assert_eq!(info.protocol_version, ProtocolVersion::TLSv1_3);
    assert!(!info.resumed);
    assert_eq!(info.alpn_protocol.as_deref(), Some(&b"http/1.1"[..]));
    assert!(format!("{c:?}").contains("TLSv1_3"), "{c:?}");
    c.send_text("over TLS").unwrap();
    assert_eq!(c.recv().unwrap(), Message::Text("over TLS".into()));
    assert_eq!(
        c.close(1000, "bye").unwrap(),
        Some((Some(1000), "bye".into()))
    );
    // The server's close_notify, then the end of the stream.
    c.wait_eof().unwrap();
    server.join().unwrap();
}

#[test]
fn plain_ws_has_no_tls_info() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap();
        s.write_all(accept_101(&head, "").as_bytes()).unwrap();
    });
    let c = Client::connect(&format!("ws://{addr}/")).unwrap();
    assert_eq!(c.tls_info(), None);
    server.join().unwrap();
}

#[test]
fn tls_server_name_replaces_the_host_for_sni_and_verification() {
    let ca = TempFile::new(&pki().ca_pem);
    let (addr, server) = serve(server_config(BOTH), 1, move |_, mut s, head| {
        assert_eq!(s.conn.server_name(), Some("localhost"));
        // The Host header is still the URL's.
        let host = request_header(&head, "Host").unwrap().to_string();
        assert_eq!(host, s.sock.local_addr().unwrap().to_string());
        s.write_all(accept_101(&head, "").as_bytes()).unwrap();
        let (fin, _, op, p) = read_client_frame(&mut s);
        s.write_all(&frame(fin, false, op, &p)).unwrap();
        close_handshake(&mut s);
    });
    let opts = ConnectOptions::new()
        .ca_file(ca.path())
        .tls_server_name("localhost");
    let (mut c, _) = Client::connect_with(&format!("wss://{addr}/"), &opts).unwrap();
    c.send_binary(&[1, 2, 3]).unwrap();
    assert_eq!(c.recv().unwrap(), Message::Binary(vec![1, 2, 3]));
    c.close(1000, "").unwrap();
    server.join().unwrap();
}

#[test]
fn a_certificate_for_another_name_is_refused_with_rustls_reason() {
    let ca = TempFile::new(&pki().ca_pem);
    let (addr, server) = serve_failing_handshake();
    let opts = ConnectOptions::new()
        .ca_file(ca.path())
        .tls_server_name("wrong.example");
    let err = Client::connect_with(&format!("wss://{addr}/"), &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    let msg = err.to_string();
    for part in [
        &addr.to_string(),
        "wrong.example",
        "invalid peer certificate",
        "not valid for name",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg:?}");
    }
    let tls: &TlsHandshakeError = err.get_ref().unwrap().downcast_ref().unwrap();
    assert!(
        matches!(tls.error, rustls::Error::InvalidCertificate(_)),
        "{:?}",
        tls.error
    );
    // The client told the server why, with an alert.
    let server_err = server.join().unwrap();
    assert!(server_err.to_string().contains("alert"), "{server_err}");
}

#[test]
fn the_ca_file_is_trusted_instead_of_the_system_roots() {
    // A certificate from a CA the file does not hold is refused.
    let other = TempFile::new(&make_pki("another CA").ca_pem);
    let (addr, server) = serve_failing_handshake();
    let opts = ConnectOptions::new().ca_file(other.path());
    let err = Client::connect_with(&format!("wss://{addr}/"), &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&addr.to_string()), "{msg}");
    assert!(msg.contains("invalid peer certificate"), "{msg}");
    server.join().unwrap();
}

#[test]
fn default_trust_is_the_system_store() {
    let opts = ConnectOptions::new();
    match opts.tls_client_config() {
        // No store on this machine: the error names it.
        Err(e) => assert!(e.to_string().contains("system certificate store"), "{e}"),
        // A store: the test CA is not in it.
        Ok(config) => {
            assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
            let (addr, server) = serve_failing_handshake();
            let err = Client::connect(&format!("wss://{addr}/")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
            assert!(
                err.to_string().contains("invalid peer certificate"),
                "{err}"
            );
            server.join().unwrap();
        }
    }
}

#[test]
fn ca_file_errors_name_the_file_and_come_before_connecting() {
    // Port 9 on loopback: nothing listens, so a connect attempt would be
    // refused; these fail earlier, on the options.
    let url = "wss://127.0.0.1:9/";
    let missing = std::env::temp_dir().join("ringcast-client-tls-no-such-file.pem");
    let err = Client::connect_with(url, &ConnectOptions::new().ca_file(&missing)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let no_cert = TempFile::new("just some text\n");
    let err =
        Client::connect_with(url, &ConnectOptions::new().ca_file(no_cert.path())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    assert!(
        err.to_string()
            .contains(&no_cert.path().display().to_string()),
        "{err}"
    );

    let bad = TempFile::new("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
    let err = Client::connect_with(url, &ConnectOptions::new().ca_file(bad.path())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(
        err.to_string().contains(&bad.path().display().to_string()),
        "{err}"
    );

    let ca = TempFile::new(&pki().ca_pem);
    let opts = ConnectOptions::new()
        .ca_file(ca.path())
        .tls_server_name("not a name");
    let err = Client::connect_with(url, &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("not a name"), "{err}");
}

#[test]
fn options_keep_their_tls_config_and_clones_share_it() {
    let ca = TempFile::new(&pki().ca_pem);
    let other = TempFile::new(&make_pki("another CA").ca_pem);
    let opts = ConnectOptions::new().ca_file(ca.path());
    let first = opts.tls_client_config().unwrap();
    assert!(Arc::ptr_eq(&first, &opts.tls_client_config().unwrap()));
    assert!(Arc::ptr_eq(
        &first,
        &opts.clone().tls_client_config().unwrap()
    ));
    // Built anew for another CA file; fresh options build their own.
    let changed = opts.clone().ca_file(other.path());
    assert!(!Arc::ptr_eq(&first, &changed.tls_client_config().unwrap()));
    let fresh = ConnectOptions::new().ca_file(ca.path());
    assert!(!Arc::ptr_eq(&first, &fresh.tls_client_config().unwrap()));
    // A given configuration is used as it is.
    let given = Arc::new(first.as_ref().clone());
    let opts = ConnectOptions::new().tls_config(given.clone());
    assert!(Arc::ptr_eq(&given, &opts.tls_client_config().unwrap()));
}

#[test]
fn a_given_tls_config_is_used_as_it_is() {
    let mut roots = RootCertStore::empty();
    roots.add(pki().ca_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (addr, server) = serve(server_config(BOTH), 1, |_, mut s, head| {
        assert_eq!(s.conn.alpn_protocol(), None, "the given config offers none");
        s.write_all(accept_101(&head, "").as_bytes()).unwrap();
        close_handshake(&mut s);
    });
    let opts = ConnectOptions::new().tls_config(Arc::new(config));
    let (mut c, _) = Client::connect_with(&format!("wss://{addr}/"), &opts).unwrap();
    let info = c.tls_info().unwrap();
    assert_eq!(info.protocol_version, ProtocolVersion::TLSv1_2);
    assert_eq!(info.alpn_protocol, None);
    c.close(1000, "").unwrap();
    server.join().unwrap();
}

#[test]
fn sessions_resume_with_the_same_options() {
    let ca = TempFile::new(&pki().ca_pem);
    let versions: [(&[&SupportedProtocolVersion], ProtocolVersion); 2] = [
        (&[&rustls::version::TLS13], ProtocolVersion::TLSv1_3),
        (&[&rustls::version::TLS12], ProtocolVersion::TLSv1_2),
    ];
    for (server_versions, version) in versions {
        // Connections: the first (full), a clone of its options (resumed),
        // fresh options with the same CA file (full: their own cache).
        let expect = [false, true, false];
        let (addr, server) = serve(server_config(server_versions), 3, move |i, mut s, head| {
            let resumed = s.conn.handshake_kind() == Some(HandshakeKind::Resumed);
            assert_eq!(resumed, expect[i], "connection {i}");
            s.write_all(accept_101(&head, "").as_bytes()).unwrap();
            close_handshake(&mut s);
        });
        let url = format!("wss://{addr}/");
        let opts = ConnectOptions::new().ca_file(ca.path());
        let fresh = ConnectOptions::new().ca_file(ca.path());
        for (i, o) in [&opts, &opts.clone(), &fresh].into_iter().enumerate() {
            let (mut c, _) = Client::connect_with(&url, o).unwrap();
            let info = c.tls_info().unwrap();
            assert_eq!(info.protocol_version, version, "connection {i}");
            assert_eq!(info.resumed, expect[i], "{version:?} connection {i}");
            assert_eq!(
                c.close(1000, "").unwrap(),
                Some((Some(1000), String::new()))
            );
        }
        server.join().unwrap();
    }
}

#[test]
fn recv_timeout_inside_a_tls_record_loses_nothing() {
    let ca = TempFile::new(&pki().ca_pem);
    let text = "a frame split across two TLS records ".repeat(40);
    let sent = text.clone();
    let (addr, server) = serve(server_config(BOTH), 1, move |_, mut s, head| {
        // One record: the 101 and the frame's first 4 bytes. Another: the
        // rest of the frame, of which only half is sent at first.
        let f = frame(true, false, 1, sent.as_bytes());
        let mut first = accept_101(&head, "").into_bytes();
        first.extend_from_slice(&f[..4]);
        let (mut raw, mut rest) = (Vec::new(), Vec::new());
        seal(&mut s, &first, &mut raw);
        seal(&mut s, &f[4..], &mut rest);
        let half = rest.len() / 2;
        raw.extend_from_slice(&rest[..half]);
        s.sock.write_all(&raw).unwrap();
        // The client's ping comes once its recv has timed out.
        assert_eq!(read_client_frame(&mut s).2, 0x9);
        s.sock.write_all(&rest[half..]).unwrap();
        close_handshake(&mut s);
    });
    let opts = ConnectOptions::new().ca_file(ca.path());
    let (mut c, _) = Client::connect_with(&format!("wss://{addr}/"), &opts).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    for _ in 0..2 {
        let e = c.recv().unwrap_err();
        assert!(is_timeout(&e), "{e}");
    }
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.ping(b"").unwrap();
    assert_eq!(c.recv().unwrap(), Message::Text(text));
    c.close(1000, "").unwrap();
    server.join().unwrap();
}

#[test]
fn a_refused_upgrade_is_read_over_tls() {
    let ca = TempFile::new(&pki().ca_pem);
    // Bodies to the end of the stream, which ends with close_notify or
    // without it; then one by Content-Length, for connect's error.
    let (addr, server) = serve(server_config(BOTH), 3, |i, mut s, _| {
        if i < 2 {
            s.write_all(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nnot you")
                .unwrap();
            if i == 0 {
                s.conn.send_close_notify();
            }
            s.flush().unwrap();
        } else {
            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno room\r\n")
                .unwrap();
        }
    });
    let url = format!("wss://{addr}/ws");
    let opts = ConnectOptions::new().ca_file(ca.path());
    for _ in 0..2 {
        let hs = handshake(&url, &opts).unwrap();
        assert_eq!((hs.status, hs.reason.as_str()), (403, "Forbidden"));
        assert_eq!(hs.body, b"not you");
        assert!(hs.client.is_none());
    }
    let err = Client::connect_with(&url, &opts).unwrap_err();
    let refused: &HandshakeRefused = err.get_ref().unwrap().downcast_ref().unwrap();
    assert_eq!(refused.response.status, 404);
    assert_eq!(refused.response.body, b"no room\r\n");
    server.join().unwrap();
}
