//! The TLS record layer that takes over from rustls after the handshake
//! (src/io/tls/records.rs), driven by a rustls client over real sockets:
//! every cipher suite of TLS 1.2 and 1.3 carries HTTP and WebSocket traffic
//! larger than one record both ways, TLS 1.3 key updates in both
//! directions keep the connection working, a parked connection wakes with
//! its keys, and a forged or oversized record closes only its own
//! connection.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::crypto::ring as provider;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

struct Tls {
    srv: TestServer,
    tls: SocketAddr,
    roots: Arc<rustls::RootCertStore>,
    _dir: TempDir,
}

fn start(extra: &str) -> Tls {
    let dir = TempDir::new("tls-records");
    let files = ringcast::io::tls::certs::write_self_signed(&dir.0, &["localhost".into()]).unwrap();
    let mut srv = TestServer::start(&format!(
        "[server]\nworkers = 1\n[tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n{extra}",
        files.cert.display().to_string(),
        files.key.display().to_string()
    ));
    let line = srv.wait_log("tls: listening on ");
    let addr = line
        .split("tls: listening on ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .parse()
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&files.cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    Tls {
        srv,
        tls: addr,
        roots: Arc::new(roots),
        _dir: dir,
    }
}

impl Tls {
    fn config(&self, tls12_suite: Option<rustls::SupportedCipherSuite>) -> Arc<ClientConfig> {
        let mut p = provider::default_provider();
        let versions: &[&rustls::SupportedProtocolVersion] = match tls12_suite {
            Some(s) => {
                p.cipher_suites = vec![s];
                &[&rustls::version::TLS12]
            }
            None => &[&rustls::version::TLS13],
        };
        let mut c = ClientConfig::builder_with_provider(Arc::new(p))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }

    fn config13(&self, suite: rustls::SupportedCipherSuite) -> Arc<ClientConfig> {
        let mut p = provider::default_provider();
        p.cipher_suites = vec![suite];
        let c = ClientConfig::builder_with_provider(Arc::new(p))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        Arc::new(c)
    }

    fn connect(&self, cfg: Arc<ClientConfig>) -> StreamOwned<ClientConnection, TcpStream> {
        let sock = TcpStream::connect(self.tls).unwrap();
        sock.set_read_timeout(Some(IO_LIMIT)).unwrap();
        let conn = ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
        let mut s = StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).unwrap();
        }
        s
    }
}

/// Reads one HTTP response (head and Content-Length body).
fn response<S: Read>(s: &mut S) -> (String, Vec<u8>) {
    let r = read_response_from(s, &mut Vec::new(), false);
    (r.head, r.body)
}

/// Publishes `n` messages of `size` bytes over the TLS connection `s`
/// (keep-alive), then reads them back from the room's history.
fn publish_and_read_back<S: Read + Write>(s: &mut S, room: &str, n: usize, size: usize) {
    for i in 0..n {
        let body = format!("{i:0>width$}", width = size);
        let req = format!(
            "POST /publish/{room} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let (head, _) = response(s);
        assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    }
    s.write_all(
        format!("GET /rooms/{room}/messages?limit={n} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let (head, body) = response(s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), n);
    assert_eq!(
        msgs[n - 1]["data"].as_str().unwrap(),
        format!("{:0>width$}", n - 1, width = size)
    );
}

#[test]
fn every_cipher_suite_carries_traffic_larger_than_a_record() {
    let t = start("");
    let suites12 = [
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    let suites13 = [
        provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
        provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
        provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    let configs = suites12
        .iter()
        .map(|s| (t.config(Some(*s)), *s))
        .chain(suites13.iter().map(|s| (t.config13(*s), *s)));
    for (i, (cfg, suite)) in configs.enumerate() {
        let mut s = t.connect(cfg);
        assert_eq!(
            s.conn.negotiated_cipher_suite().unwrap().suite(),
            suite.suite()
        );
        // 40 messages of 3000 bytes: requests and the history answer span many records
        publish_and_read_back(&mut s, &format!("suite{i}"), 40, 3000);
    }
}

#[test]
fn client_key_updates_and_the_servers_answering_update_keep_the_connection_working() {
    let t = start("");
    let mut s = t.connect(t.config(None));
    publish_and_read_back(&mut s, "ku", 3, 100);
    for round in 0..3 {
        // the client moves to new keys and asks the server to move too
        s.conn.refresh_traffic_keys().unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (head, body) = response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200"), "round {round}: {head}");
        assert_eq!(body, b"ok");
    }
    publish_and_read_back(&mut s, "ku2", 20, 2000);
}

#[test]
fn a_parked_connection_wakes_with_its_keys() {
    let mut t = start("[hub]\nauto_join_room = \"\"\n");
    let mut s = t.connect(t.config(None));
    let req = "GET /ws?room=parked HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1);
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    wait_subscribers(t.srv.addr, "parked", 1);
    // quiet for longer than the parking delay: the worker parks it
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::connect(t.srv.addr);
        let m = c.get("/metrics").text();
        if m.contains("ringcast_connections_parked{worker=\"0\"} 1") {
            break;
        }
        assert!(Instant::now() < deadline, "never parked:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..5 {
        publish(t.srv.addr, "parked", None, &format!("after park {i}"));
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < 5 * 14 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    // five unmasked text frames, in order
    let mut at = 0;
    for i in 0..5 {
        assert_eq!(got[at], 0x81);
        let len = got[at + 1] as usize;
        assert_eq!(
            &got[at + 2..at + 2 + len],
            format!("after park {i}").as_bytes()
        );
        at += 2 + len;
    }
    let _ = &mut t;
}

#[test]
fn a_forged_or_oversized_record_closes_only_its_connection() {
    let t = start("");
    let mut good = t.connect(t.config(None));
    for forge in [true, false] {
        let bad = t.connect(t.config(None));
        let mut raw = bad.sock.try_clone().unwrap();
        if forge {
            // a well-formed application-data record whose tag cannot verify
            let mut rec = vec![0x17, 3, 3, 0, 40];
            rec.extend_from_slice(&[0x5a; 40]);
            raw.write_all(&rec).unwrap();
        } else {
            // a header announcing more than TLS 1.3 allows
            raw.write_all(&[0x17, 3, 3, 0x48, 0x01]).unwrap();
        }
        // the server closes (after its session tickets and an alert): end
        // of stream well before the read limit
        let mut rest = Vec::new();
        let r = raw.read_to_end(&mut rest);
        assert!(r.is_ok(), "not closed: {r:?}");
    }
    good.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, body) = response(&mut good);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body, b"ok");
}
