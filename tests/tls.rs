//! The TLS listener as its clients see it: HTTPS and WSS through curl,
//! Python's websockets and httpx-sse (each verifying the server against the
//! test's own CA) and a raw rustls client; certificates chosen by SNI and
//! reloaded on SIGHUP; the handshake's timeout, per-worker bound and the
//! refusal of what is not TLS; protocol versions and session resumption;
//! the plain listener's redirect and HSTS; every endpoint unchanged over
//! TLS; the start-up refusals of a bad `[tls]` section; the record layer's
//! edge cases (data behind the Finished, one byte per record, key updates,
//! parked connections); and how connections end (close_notify both ways).
//!
//! Certificates are made here: a test CA signs leaf certificates with the
//! names each test needs.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ringcast::proto::ws::frame::parse_header;
use ringcast::proto::ws::handshake::accept_key;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, ProtocolVersion,
    SignatureScheme, StreamOwned, SupportedProtocolVersion,
};

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// A certificate authority of the test's own.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A leaf certificate signed by a [`Ca`]: its PEM chain, PEM key and DER.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid
    /// until January 1st of `until_year`.
    fn leaf(&self, names: &[&str], until_year: i32) -> Leaf {
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, names[0].to_string());
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        p.not_after = rcgen::date_time_ymd(until_year, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// Unix seconds of January 1st, 00:00 UTC, of the years the tests use.
fn jan1(year: i32) -> f64 {
    match year {
        2040 => 2_208_988_800.0,
        2041 => 2_240_611_200.0,
        _ => unreachable!("add the year"),
    }
}

/// The default certificate's names: what curl, Python and rustls ask for.
const DEFAULT_NAMES: &[&str] = &["localhost", "a.test", "127.0.0.1"];

// ---------------------------------------------------------------------------
// A server with a TLS listener
// ---------------------------------------------------------------------------

/// A running server with a TLS listener, its default certificate made by
/// its own CA (files in `dir`: cert.pem, key.pem, ca.pem).
struct TlsServer {
    srv: TestServer,
    /// The TLS listener's address (from the start-up log line).
    tls: SocketAddr,
    dir: TempDir,
    ca: Ca,
    leaf: Leaf,
}

impl TlsServer {
    fn cert_path(&self) -> PathBuf {
        self.dir.0.join("cert.pem")
    }
    fn key_path(&self) -> PathBuf {
        self.dir.0.join("key.pem")
    }
    fn ca_path(&self) -> PathBuf {
        self.dir.0.join("ca.pem")
    }
    /// The plain listener's address.
    fn plain(&self) -> SocketAddr {
        self.srv.addr
    }
    /// A rustls connection to the TLS listener for "localhost", trusting the CA.
    fn connect(&self) -> TlsClient {
        TlsClient::connect(self.tls, "localhost", trusting(&self.ca)).expect("TLS handshake")
    }
}

/// Starts a server with `config` (whole sections) and a `[tls]` section
/// listening on a free port with a certificate for [`DEFAULT_NAMES`] and
/// the lines `tls_extra`.
fn start_tls(config: &str, tls_extra: &str) -> TlsServer {
    let dir = TempDir::new("tls");
    let ca = Ca::new("ringcast test CA");
    let leaf = ca.leaf(DEFAULT_NAMES, 2040);
    std::fs::write(dir.0.join("cert.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.0.join("key.pem"), &leaf.key_pem).unwrap();
    std::fs::write(dir.0.join("ca.pem"), ca.pem()).unwrap();
    let text = format!(
        "{config}\n[tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n{tls_extra}\n",
        path_str(&dir.0.join("cert.pem")),
        path_str(&dir.0.join("key.pem")),
    );
    let mut srv = TestServer::start(&text);
    let tls = tls_addr(&srv.wait_log("tls: listening on "));
    TlsServer {
        srv,
        tls,
        dir,
        ca,
        leaf,
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The address in `tls: listening on ADDR; certificate ...`.
fn tls_addr(line: &str) -> SocketAddr {
    line.split("tls: listening on ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// Polls `/metrics` (plain listener) until the sum of `family{label}` is
/// `want` (bounded: 10 s).
fn wait_metric(addr: SocketAddr, family: &str, label: &str, want: f64) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let v = metric(addr, family, label);
        if v == want {
            return;
        }
        assert!(
            Instant::now() < end,
            "{family}{{{label}}} is {v}, never reached {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every reason of `ringcast_tls_handshake_failures_total`.
const REASONS: &[&str] = &[
    "timeout",
    "eof",
    "not_tls",
    "plain_http",
    "peer_alert",
    "incompatible",
    "protocol",
    "io",
    "handshake_limit",
];

/// Every `ringcast_tls_handshake_failures_total` reason and its count.
fn failures(addr: SocketAddr) -> Vec<(&'static str, f64)> {
    REASONS
        .iter()
        .map(|&r| {
            (
                r,
                metric(
                    addr,
                    "ringcast_tls_handshake_failures_total",
                    &format!("reason=\"{r}\""),
                ),
            )
        })
        .collect()
}

/// `failures` with every reason 0 except those in `nonzero`.
fn failures_want(nonzero: &[(&'static str, f64)]) -> Vec<(&'static str, f64)> {
    REASONS
        .iter()
        .map(|&r| {
            let v = nonzero.iter().find(|(n, _)| *n == r).map_or(0.0, |x| x.1);
            (r, v)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A raw rustls client
// ---------------------------------------------------------------------------

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting `roots` only, offering `versions`.
fn client_config(
    roots: &[CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

/// TLS 1.2 and 1.3, trusting `ca` only.
fn trusting(ca: &Ca) -> Arc<ClientConfig> {
    client_config(&[ca.der()], rustls::ALL_VERSIONS)
}

/// A verifier that accepts any certificate and keeps the one the server
/// presented (to see which certificate a name gets, whatever its issuer).
#[derive(Debug, Default)]
struct Presented(Mutex<Option<Vec<u8>>>);

impl ServerCertVerifier for Presented {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The leaf certificate (DER) the server presents to a client asking for
/// `name` (an IP address sends no SNI).
fn presented_cert(addr: SocketAddr, name: &str) -> Vec<u8> {
    let v = Arc::new(Presented::default());
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(v.clone())
        .with_no_client_auth();
    let mut c = TlsClient::connect(addr, name, Arc::new(cfg)).expect("TLS handshake");
    assert_eq!(c.get("/healthz").status, 200);
    let der = v.0.lock().unwrap().take();
    der.expect("no certificate presented")
}

/// The rustls error inside an io error from the handshake.
fn tls_error(e: std::io::Error) -> rustls::Error {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned()
        .unwrap_or_else(|| rustls::Error::General(format!("io: {e}")))
}

/// An HTTP/1.1 client over a rustls connection, with a read buffer (so
/// pipelined responses, SSE events and WebSocket frames read one by one).
struct TlsClient {
    s: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl TlsClient {
    /// Connects and completes the handshake (its error if it fails).
    fn connect(
        addr: SocketAddr,
        name: &str,
        cfg: Arc<ClientConfig>,
    ) -> Result<TlsClient, rustls::Error> {
        Self::over(TcpStream::connect(addr).expect("connect"), name, cfg)
    }

    /// The handshake over a connection made already.
    fn over(
        mut sock: TcpStream,
        name: &str,
        cfg: Arc<ClientConfig>,
    ) -> Result<TlsClient, rustls::Error> {
        sock.set_read_timeout(Some(IO_LIMIT)).unwrap();
        sock.set_nodelay(true).unwrap();
        let name = ServerName::try_from(name.to_string()).unwrap();
        let mut conn = ClientConnection::new(cfg, name)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(tls_error)?;
        }
        Ok(TlsClient {
            s: StreamOwned::new(conn, sock),
            buf: Vec::new(),
        })
    }

    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.s.write_all(bytes.as_ref()).expect("TLS write");
        self.s.flush().expect("TLS flush");
    }

    fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        self.read_response()
    }

    /// POST /publish/{room}; returns the id.
    fn publish(&mut self, room: &str, data: &str) -> u64 {
        self.send(format!(
            "POST /publish/{room} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{data}",
            data.len()
        ));
        let r = self.read_response();
        assert_eq!(r.status, 202, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["id"].as_u64().unwrap()
    }

    /// Reads more; 0 at the end of the stream (close_notify, EOF or reset).
    fn fill(&mut self) -> usize {
        fill_from(&mut self.s, &mut self.buf)
    }

    fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        read_exact_from(&mut self.s, &mut self.buf, n)
    }

    /// One response (Content-Length delimited; no body when `head_only`
    /// or for 1xx/204/304).
    fn read_response_for(&mut self, head_only: bool) -> Response {
        read_response_from(&mut self.s, &mut self.buf, head_only)
    }

    fn read_response(&mut self) -> Response {
        self.read_response_for(false)
    }

    /// Opens an SSE stream on this connection; asserts 200.
    fn open_sse(&mut self, target: &str, extra_headers: &str) -> Response {
        self.send(format!(
            "GET {target} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{extra_headers}\r\n"
        ));
        let head = self.read_response_for(true);
        assert_eq!(head.status, 200, "{}", head.head);
        head
    }

    /// One line without its `\n`; None at the end of the stream.
    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8(l[..l.len() - 1].to_vec()).unwrap());
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// The next SSE event that carries data (comments and retry-only
    /// blocks skipped). Panics at the end of the stream.
    fn next_event(&mut self) -> Event {
        let mut ev = Event::default();
        let mut has_data = false;
        loop {
            let line = self.line().expect("stream ended before the next event");
            if line.is_empty() {
                if has_data || ev.id.is_some() || ev.event.is_some() {
                    return ev;
                }
                ev = Event::default();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
                None => (line.clone(), String::new()),
            };
            match field.as_str() {
                "id" => ev.id = Some(value),
                "event" => ev.event = Some(value),
                "retry" => ev.retry = value.parse().ok(),
                "data" => {
                    if has_data {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(&value);
                    has_data = true;
                }
                _ => {}
            }
        }
    }

    /// One WebSocket frame from the server; None at the end of the stream.
    fn read_frame(&mut self) -> Option<Frame> {
        let (h, header_len) = loop {
            match parse_header(&self.buf) {
                Ok(Some(h)) => break h,
                Ok(None) if self.fill() > 0 => {}
                Ok(None) if self.buf.len() < 2 => return None,
                Ok(None) => panic!("stream ended inside a frame header"),
                Err(e) => panic!("bad frame header from the server: {e}"),
            }
        };
        assert_eq!(h.mask, None, "server frames are never masked");
        self.buf.drain(..header_len);
        let len = h.payload_len as usize;
        let payload = self.read_exact_bytes(len);
        assert_eq!(payload.len(), len, "frame cut short");
        Some(Frame {
            fin: h.fin,
            rsv1: h.rsv1,
            opcode: h.opcode as u8,
            payload,
        })
    }

    /// Sends one masked frame (`rsv` as in [`WsClient::frame_bytes`]).
    fn send_frame(&mut self, rsv: u8, opcode: u8, payload: &[u8]) {
        let f = WsClient::frame_bytes(true, rsv, opcode, payload, Some([0xa1, 0xb2, 0xc3, 0xd4]));
        self.send(f);
    }

    /// Waits for the server to end the connection; true if nothing came before the end.
    fn closed_by_server(&mut self) -> bool {
        let before = self.buf.len();
        while self.fill() > 0 {}
        self.buf.len() == before
    }
}

// ---------------------------------------------------------------------------
// Third-party clients
// ---------------------------------------------------------------------------

fn script(name: &str) -> String {
    format!("{}/tests/clients/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A client process whose stdout is read line by line (each read bounded);
/// killed when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(program: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let lines = lines_of(child.stdout.take().unwrap());
        Proc { child, lines }
    }

    /// The next stdout line as JSON (bounded: 30 s).
    fn next_json(&mut self) -> serde_json::Value {
        let l = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the client printed nothing more (see its stderr above)");
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l:?}"))
    }

    /// Waits (bounded) for a successful exit.
    fn wait_success(&mut self) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "the client exited with {st}");
                return;
            }
            assert!(Instant::now() < end, "the client did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl with the test CA against `name` resolved to the TLS listener
/// (no verification switched off); returns stdout, asserting success.
fn curl(t: &TlsServer, name: &str, ca: &Path, args: &[&str]) -> String {
    let out = curl_raw(t, name, ca, args);
    assert!(
        out.status.success(),
        "curl {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn curl_raw(t: &TlsServer, name: &str, ca: &Path, args: &[&str]) -> std::process::Output {
    let resolve = format!("{name}:{}:127.0.0.1", t.tls.port());
    Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["--resolve", &resolve])
        .args(args)
        .output()
        .expect("run curl")
}

fn https(t: &TlsServer, name: &str, path: &str) -> String {
    format!("https://{name}:{}{path}", t.tls.port())
}

// ---------------------------------------------------------------------------
// 1. curl over https
// ---------------------------------------------------------------------------

#[test]
fn curl_over_https_healthz_keep_alive_pipelining_static_and_publish() {
    let site = TempDir::new("tls-site");
    std::fs::write(site.0.join("index.html"), "<h1>over tls</h1>\n").unwrap();
    let t = start_tls(
        &format!(
            "[hub]\nauto_join_room = \"\"\n[static]\ndir = {:?}\n",
            path_str(&site.0)
        ),
        "",
    );
    let ca = t.ca_path();

    // /healthz
    let out = curl(
        &t,
        "a.test",
        &ca,
        &[
            "-w",
            "\n%{http_code} %{ssl_verify_result}",
            &https(&t, "a.test", "/healthz"),
        ],
    );
    assert_eq!(out, "ok\n200 0", "body, status and a verified certificate");

    // keep-alive: the second URL reuses the first one's connection
    let out = curl(
        &t,
        "a.test",
        &ca,
        &[
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            &https(&t, "a.test", "/healthz"),
            &https(&t, "a.test", "/index.html"),
        ],
    );
    assert_eq!(out, "200 1\n200 0\n", "one connection for both requests");

    // a static page
    let out = curl(
        &t,
        "a.test",
        &ca,
        &["-D", "-", &https(&t, "a.test", "/index.html")],
    );
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("content-type: text/html; charset=utf-8\r\n"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\n<h1>over tls</h1>\n"), "{out}");

    // POST /publish over https, then the room says so
    let out = curl(
        &t,
        "a.test",
        &ca,
        &[
            "--data-binary",
            "hello over tls",
            "-w",
            "\n%{http_code}",
            &https(&t, "a.test", "/publish/tlsroom"),
        ],
    );
    let (body, status) = out.rsplit_once('\n').unwrap();
    assert_eq!(status, "202", "{out}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["room"], "tlsroom");
    let id = v["id"].as_u64().unwrap();
    let info: serde_json::Value = serde_json::from_str(&curl(
        &t,
        "a.test",
        &ca,
        &[&https(&t, "a.test", "/rooms/tlsroom")],
    ))
    .unwrap();
    assert_eq!(info["last_id"].as_u64(), Some(id), "{info}");
    let hist: serde_json::Value = serde_json::from_str(&curl(
        &t,
        "a.test",
        &ca,
        &[&https(&t, "a.test", "/rooms/tlsroom/messages?since=0")],
    ))
    .unwrap();
    assert_eq!(hist["messages"][0]["data"], "hello over tls", "{hist}");

    // curl refuses a server its CA file does not vouch for
    let other = TempDir::new("tls-otherca");
    let other_ca = other.0.join("ca.pem");
    std::fs::write(&other_ca, Ca::new("another CA").pem()).unwrap();
    let out = curl_raw(&t, "a.test", &other_ca, &[&https(&t, "a.test", "/healthz")]);
    assert_eq!(
        out.status.code(),
        Some(60),
        "curl: peer certificate cannot be authenticated"
    );

    // five pipelined requests in one write over one TLS connection:
    // five responses, in order
    let mut c = t.connect();
    c.send(
        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /missing.txt HTTP/1.1\r\nHost: t\r\n\r\n\
         POST /publish/pipe HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\npipelined\
         GET /rooms/pipe HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>over tls</h1>\n"));
    let r = c.read_response();
    assert_eq!(r.status, 404);
    let r = c.read_response();
    assert_eq!(r.status, 202, "{}", r.text());
    let pid = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"]
        .as_u64()
        .unwrap();
    let r = c.read_response();
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["last_id"].as_u64(), Some(pid));
    // and the connection is still good for more
    assert_eq!(c.get("/healthz").status, 200);
}

// ---------------------------------------------------------------------------
// 2. Python websockets over wss://
// ---------------------------------------------------------------------------

#[test]
fn python_websockets_over_wss_echo_and_a_parked_room_subscriber() {
    let py = test_clients_python();
    let t = start_tls("[hub]\nauto_join_room = \"\"\n", "");
    let ca = path_str(&t.ca_path());
    let ws_url = |path: &str| format!("wss://localhost:{}{path}", t.tls.port());

    // echo: text, binary, a 1 MiB message, with permessage-deflate
    let mut echo = Proc::spawn(
        &py,
        &[&script("wss_websockets.py"), "echo", &ws_url("/echo"), &ca],
    );
    let v = echo.next_json();
    echo.wait_success();
    assert_eq!(v["extensions"][0], "PerMessageDeflate", "{v}");
    assert_eq!(v["text"], "hello over tls");
    assert_eq!(
        v["binary"],
        serde_json::json!([0, 255, 98, 105, 110, 97, 114, 121])
    );
    assert_eq!(v["big_len"], 1 << 20);
    assert_eq!(v["big_ok"], true);
    assert_eq!(v["blob_ok"], true);
    assert_eq!(v["close_code"], 1000);

    // a room subscriber: 200 messages published over https, in order
    let mut sub = Proc::spawn(
        &py,
        &[
            &script("wss_websockets.py"),
            "room",
            &ws_url("/ws?room=wss"),
            &ca,
            "200",
            "5",
        ],
    );
    assert_eq!(sub.next_json()["ready"], true);
    wait_subscribers(t.plain(), "wss", 1);
    let mut p = t.connect();
    let first: Vec<String> = (0..200).map(|i| format!("message {i} over tls")).collect();
    for m in &first {
        p.publish("wss", m);
    }
    drop(p);
    let got = sub.next_json();
    assert_eq!(got["batch"], serde_json::json!(first));

    // idle, it parks (after a second without traffic); it stays parked
    // for two seconds after the last message, then wakes for the next ones
    let idle_from = Instant::now();
    let end = idle_from + Duration::from_secs(10);
    while metric(t.plain(), "ringcast_connections_parked", "") < 1.0 {
        assert!(Instant::now() < end, "the idle subscriber never parked");
        std::thread::sleep(Duration::from_millis(20));
    }
    while idle_from.elapsed() < Duration::from_secs(2) {
        assert!(
            metric(t.plain(), "ringcast_connections_parked", "") >= 1.0,
            "the idle subscriber left the parked state without traffic"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut p = t.connect();
    let next: Vec<String> = (0..5).map(|i| format!("after parking {i}")).collect();
    for m in &next {
        p.publish("wss", m);
    }
    assert_eq!(sub.next_json()["batch"], serde_json::json!(next));
    assert_eq!(sub.next_json()["close_code"], 1000);
    sub.wait_success();
}

// ---------------------------------------------------------------------------
// 3. httpx-sse over https
// ---------------------------------------------------------------------------

#[test]
fn httpx_sse_over_https_resumes_exactly_the_missed_events() {
    let py = test_clients_python();
    let t = start_tls("[hub]\nauto_join_room = \"\"\n", "");
    let ca = path_str(&t.ca_path());
    let url = format!("https://localhost:{}/sse?room=hx", t.tls.port());
    let sse = script("sse_httpx_tls.py");
    let mut p = t.connect();

    let mut first = Proc::spawn(&py, &[&sse, &url, &ca, "3"]);
    let head = first.next_json();
    assert_eq!(head["status"], 200);
    assert_eq!(head["content_type"], "text/event-stream; charset=utf-8");
    assert_eq!(head["http_version"], "HTTP/1.1");
    wait_subscribers(t.plain(), "hx", 1);
    let ids: Vec<u64> = (0..3)
        .map(|i| p.publish("hx", &format!("live {i}")))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let e = first.next_json();
        assert_eq!(e["id"], id.to_string());
        assert_eq!(e["event"], "message");
        assert_eq!(e["data"], format!("live {i}"));
    }
    first.wait_success();
    wait_subscribers(t.plain(), "hx", 0);

    // missed while away
    let missed: Vec<u64> = (0..4)
        .map(|i| p.publish("hx", &format!("missed {i}")))
        .collect();
    let last = ids[2].to_string();
    let mut second = Proc::spawn(&py, &[&sse, &url, &ca, "6", &last]);
    assert_eq!(second.next_json()["status"], 200);
    for (i, id) in missed.iter().enumerate() {
        let e = second.next_json();
        assert_eq!(
            (e["id"].as_str(), e["data"].as_str()),
            (
                Some(id.to_string().as_str()),
                Some(format!("missed {i}").as_str())
            )
        );
    }
    // then live, with nothing in between
    let live: Vec<u64> = (0..2)
        .map(|i| p.publish("hx", &format!("back {i}")))
        .collect();
    for (i, id) in live.iter().enumerate() {
        let e = second.next_json();
        assert_eq!(
            (e["id"].as_str(), e["data"].as_str()),
            (
                Some(id.to_string().as_str()),
                Some(format!("back {i}").as_str())
            )
        );
    }
    second.wait_success();
}

// ---------------------------------------------------------------------------
// 4. SNI
// ---------------------------------------------------------------------------

#[test]
fn sni_chooses_the_certificate_and_anything_else_gets_the_default() {
    let extra = TempDir::new("tls-b");
    let ca_b = Ca::new("ringcast test CA for b");
    let leaf_b = ca_b.leaf(&["b.test"], 2041);
    let (b_cert, b_key) = (extra.0.join("b.pem"), extra.0.join("b.key"));
    std::fs::write(&b_cert, &leaf_b.cert_pem).unwrap();
    std::fs::write(&b_key, &leaf_b.key_pem).unwrap();
    std::fs::write(extra.0.join("ca-b.pem"), ca_b.pem()).unwrap();
    let t = start_tls(
        "",
        &format!(
            "certificates = [{{ cert = {:?}, key = {:?} }}]\n",
            path_str(&b_cert),
            path_str(&b_key)
        ),
    );

    // which certificate each name gets
    assert!(
        presented_cert(t.tls, "b.test") == leaf_b.der,
        "b.test gets b's certificate"
    );
    assert!(
        presented_cert(t.tls, "B.TEST") == leaf_b.der,
        "names match without case"
    );
    assert!(
        presented_cert(t.tls, "a.test") == t.leaf.der,
        "a.test gets the default"
    );
    assert!(
        presented_cert(t.tls, "unknown.test") == t.leaf.der,
        "an unknown name gets the default"
    );
    assert!(
        presented_cert(t.tls, "127.0.0.1") == t.leaf.der,
        "no SNI gets the default"
    );

    // verified against b's CA only: b.test passes, a.test does not
    let mut c =
        TlsClient::connect(t.tls, "b.test", trusting(&ca_b)).expect("b.test verifies with b's CA");
    assert_eq!(c.get("/healthz").status, 200);
    let e = TlsClient::connect(t.tls, "a.test", trusting(&ca_b)).err();
    assert!(
        matches!(
            e,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{e:?}"
    );
    // and against the default's CA: b.test does not pass
    let e = TlsClient::connect(t.tls, "b.test", trusting(&t.ca)).err();
    assert!(
        matches!(
            e,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{e:?}"
    );
    // an SNI-less client (an IP address) verifies the default
    let mut c = TlsClient::connect(t.tls, "127.0.0.1", trusting(&t.ca))
        .expect("IP address, default certificate");
    assert_eq!(c.get("/healthz").status, 200);

    // curl, with b's CA
    let out = curl(
        &t,
        "b.test",
        &extra.0.join("ca-b.pem"),
        &[&https(&t, "b.test", "/healthz")],
    );
    assert_eq!(out, "ok");

    // both certificates and their expiry in /metrics
    let m = Client::connect(t.plain()).get("/metrics").text();
    let not_after = |names: &str| -> f64 {
        m.lines()
            .find(|l| {
                l.starts_with("ringcast_tls_certificate_not_after_seconds{")
                    && l.contains(&format!("names=\"{names}\""))
            })
            .unwrap_or_else(|| panic!("no certificate for {names} in\n{m}"))
            .rsplit_once(' ')
            .unwrap()
            .1
            .parse()
            .unwrap()
    };
    assert_eq!(not_after("localhost,a.test,127.0.0.1"), jan1(2040));
    assert_eq!(not_after("b.test"), jan1(2041));
    assert!(
        m.contains(&format!("file=\"{}\"", path_str(&b_cert))),
        "{m}"
    );
}

// ---------------------------------------------------------------------------
// 5. SIGHUP reloads the certificate
// ---------------------------------------------------------------------------

#[test]
fn sighup_reloads_the_certificate_open_streams_continue_and_garbage_keeps_the_last_good() {
    let mut t = start_tls("[hub]\nauto_join_room = \"\"\n", "");
    let old_ca = trusting(&t.ca);
    let mut stream = t.connect();
    stream.open_sse("/sse?room=hup", "");
    wait_subscribers(t.plain(), "hup", 1);
    let mut p = Publisher::new(t.plain());
    let id = p.publish("hup", "before");
    let e = stream.next_event();
    assert_eq!((e.id, e.data), (Some(id.to_string()), "before".to_string()));

    // a renewal: new files at the same paths, from another CA, other names
    let new_ca = Ca::new("ringcast renewed CA");
    let leaf = new_ca.leaf(&["localhost", "new.test"], 2041);
    std::fs::write(t.cert_path(), &leaf.cert_pem).unwrap();
    std::fs::write(t.key_path(), &leaf.key_pem).unwrap();
    t.srv.signal(libc::SIGHUP);
    let line = t.srv.wait_log("SIGHUP: tls certificate");
    assert!(line.contains(&path_str(&t.cert_path())), "{line}");
    assert!(line.contains("localhost, new.test"), "{line}");

    let mut c =
        TlsClient::connect(t.tls, "new.test", trusting(&new_ca)).expect("the new certificate");
    assert_eq!(c.get("/healthz").status, 200);
    let e = TlsClient::connect(t.tls, "localhost", old_ca.clone()).err();
    assert!(
        matches!(
            e,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "the old CA no longer verifies the server: {e:?}"
    );
    assert!(presented_cert(t.tls, "localhost") == leaf.der);
    wait_metric(
        t.plain(),
        "ringcast_tls_certificate_not_after_seconds",
        "names=\"localhost,new.test\"",
        jan1(2041),
    );
    // the stream opened before keeps its session and its messages
    let id = p.publish("hup", "after the reload");
    let e = stream.next_event();
    assert_eq!(
        (e.id, e.data),
        (Some(id.to_string()), "after the reload".to_string())
    );

    // a broken file: named in the log, the last good certificate stays
    std::fs::write(t.cert_path(), "this is not a certificate\n").unwrap();
    t.srv.signal(libc::SIGHUP);
    let line = t.srv.wait_log("SIGHUP: tls: ");
    assert!(line.contains(&path_str(&t.cert_path())), "{line}");
    assert!(line.contains("the running certificates stay"), "{line}");
    let mut c = TlsClient::connect(t.tls, "new.test", trusting(&new_ca))
        .expect("still the renewed certificate");
    assert_eq!(c.get("/healthz").status, 200);
    assert!(presented_cert(t.tls, "localhost") == leaf.der);
    let id = p.publish("hup", "after the failed reload");
    let e = stream.next_event();
    assert_eq!(
        (e.id, e.data),
        (Some(id.to_string()), "after the failed reload".to_string())
    );
    assert!(
        t.srv.child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
}

// ---------------------------------------------------------------------------
// 6. Handshake timeout, what is not TLS, the per-worker bound
// ---------------------------------------------------------------------------

#[test]
fn silent_garbage_and_plain_http_clients_are_cut_and_counted() {
    let t = start_tls("[server]\nworkers = 1\n", "handshake_timeout = \"300ms\"\n");
    let mut established = t.connect();
    assert_eq!(established.get("/healthz").status, 200);

    // a client that sends nothing is cut after the handshake timeout
    let mut silent = Client::connect(t.tls);
    let start = Instant::now();
    assert!(
        silent.closed_by_server(),
        "the server sent bytes to a silent client"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "cut after {took:?}, the timeout is 300ms"
    );
    wait_metric(
        t.plain(),
        "ringcast_tls_handshake_failures_total",
        "reason=\"timeout\"",
        1.0,
    );

    // bytes that are not a TLS record: closed at once, without an answer
    let mut garbage = Client::connect(t.tls);
    garbage.send([0x00, 0x01, 0x02, 0x03, 0xff, 0xfe, 0x10, 0x20]);
    assert!(garbage.closed_by_server());
    wait_metric(
        t.plain(),
        "ringcast_tls_handshake_failures_total",
        "reason=\"not_tls\"",
        1.0,
    );

    // plain HTTP on the TLS port: a 400 that says so
    let mut plain = Client::connect(t.tls);
    plain.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = plain.read_response();
    assert_eq!(r.status, 400, "{}", r.head);
    assert!(
        r.head.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{}",
        r.head
    );
    assert!(r.text().contains("this port speaks TLS"), "{}", r.text());
    assert!(plain.closed_by_server());
    wait_metric(
        t.plain(),
        "ringcast_tls_handshake_failures_total",
        "reason=\"plain_http\"",
        1.0,
    );

    // each counted once, under its own reason, nothing else
    assert_eq!(
        failures(t.plain()),
        failures_want(&[("timeout", 1.0), ("not_tls", 1.0), ("plain_http", 1.0)])
    );
    assert_eq!(
        metric(t.plain(), "ringcast_tls_handshakes_in_progress", ""),
        0.0
    );
    // the established connection never noticed
    assert_eq!(established.get("/healthz").status, 200);
}

#[test]
fn beyond_max_handshakes_per_worker_a_connection_is_closed_at_once() {
    let t = start_tls(
        "[server]\nworkers = 1\n",
        "max_handshakes_per_worker = 2\nhandshake_timeout = \"20s\"\n",
    );
    let mut established = t.connect();
    assert_eq!(established.get("/healthz").status, 200);

    let stalled: Vec<Client> = (0..2).map(|_| Client::connect(t.tls)).collect();
    wait_metric(t.plain(), "ringcast_tls_handshakes_in_progress", "", 2.0);
    assert_eq!(established.get("/healthz").status, 200);

    // the third is closed at once (long before the 20 s handshake timeout)
    let mut third = Client::connect(t.tls);
    let start = Instant::now();
    assert!(third.closed_by_server());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    wait_metric(
        t.plain(),
        "ringcast_tls_handshake_failures_total",
        "reason=\"handshake_limit\"",
        1.0,
    );
    // a full TLS client is refused too while the two stall
    let e = TlsClient::connect(t.tls, "localhost", trusting(&t.ca)).err();
    assert!(e.is_some(), "a handshake beyond the bound succeeded");
    wait_metric(
        t.plain(),
        "ringcast_tls_handshake_failures_total",
        "reason=\"handshake_limit\"",
        2.0,
    );
    // the established connection keeps working throughout
    assert_eq!(established.get("/healthz").status, 200);
    assert_eq!(established.get("/healthz").status, 200);

    // once the stalled ones go, handshakes succeed again
    drop(stalled);
    wait_metric(t.plain(), "ringcast_tls_handshakes_in_progress", "", 0.0);
    let mut c = t.connect();
    assert_eq!(c.get("/healthz").status, 200);
    assert_eq!(
        failures(t.plain()),
        failures_want(&[("eof", 2.0), ("handshake_limit", 2.0)])
    );
    assert_eq!(established.get("/healthz").status, 200);
}

// ---------------------------------------------------------------------------
// 7. Versions and resumption
// ---------------------------------------------------------------------------

#[test]
fn tls12_is_allowed_by_default_and_sessions_resume_from_tickets() {
    let t = start_tls("", "min_version = \"1.2\"\n");
    let tls12 = client_config(&[t.ca.der()], &[&rustls::version::TLS12]);
    let mut c = TlsClient::connect(t.tls, "localhost", tls12).expect("a TLS 1.2 client");
    assert_eq!(c.s.conn.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(c.get("/healthz").status, 200);
    assert_eq!(
        metric(
            t.plain(),
            "ringcast_tls_handshakes_total",
            "version=\"1.2\""
        ),
        1.0
    );
    assert_eq!(
        metric(
            t.plain(),
            "ringcast_tls_handshakes_total",
            "version=\"1.3\""
        ),
        0.0
    );

    // the same client configuration (its session cache) resumes
    let cfg = trusting(&t.ca);
    healthz_over_tls13(t.tls, &cfg, HandshakeKind::Full);
    healthz_over_tls13(t.tls, &cfg, HandshakeKind::Resumed);
    assert_eq!(resumed_and_tls13_handshakes(t.plain()), (1.0, 2.0));
}

/// Connects with `cfg` (its session cache), checks the handshake was TLS 1.3
/// of the given kind, and gets `/healthz` (the session tickets come after
/// the handshake: reading a response takes them in).
fn healthz_over_tls13(addr: SocketAddr, cfg: &Arc<ClientConfig>, kind: HandshakeKind) {
    let mut c = TlsClient::connect(addr, "localhost", cfg.clone()).unwrap();
    assert_eq!(c.s.conn.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(c.s.conn.handshake_kind(), Some(kind));
    assert_eq!(c.get("/healthz").status, 200);
}

/// The server's counts of resumed sessions and of TLS 1.3 handshakes.
fn resumed_and_tls13_handshakes(plain: SocketAddr) -> (f64, f64) {
    (
        metric(plain, "ringcast_tls_sessions_resumed_total", ""),
        metric(plain, "ringcast_tls_handshakes_total", "version=\"1.3\""),
    )
}

#[test]
fn min_version_13_refuses_tls12_and_without_tickets_nothing_resumes() {
    let t = start_tls("", "min_version = \"1.3\"\nsession_tickets = false\n");
    let tls12 = client_config(&[t.ca.der()], &[&rustls::version::TLS12]);
    let e = TlsClient::connect(t.tls, "localhost", tls12).err();
    assert!(
        matches!(
            e,
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::ProtocolVersion
            ))
        ),
        "the server answers a TLS 1.2-only hello with a protocol_version alert: {e:?}"
    );
    wait_metric(
        t.plain(),
        "ringcast_tls_handshake_failures_total",
        "reason=\"incompatible\"",
        1.0,
    );
    assert_eq!(failures(t.plain()), failures_want(&[("incompatible", 1.0)]));
    assert_eq!(metric(t.plain(), "ringcast_tls_handshakes_total", ""), 0.0);

    let cfg = trusting(&t.ca);
    for _ in 0..2 {
        healthz_over_tls13(t.tls, &cfg, HandshakeKind::Full);
    }
    assert_eq!(resumed_and_tls13_handshakes(t.plain()), (0.0, 2.0));
}

// ---------------------------------------------------------------------------
// 8. The plain listener's redirect, and HSTS
// ---------------------------------------------------------------------------

#[test]
fn plain_http_redirects_to_https_except_exempt_paths_and_hsts_is_on_tls_only() {
    let t = start_tls(
        "",
        "redirect_http = true\nredirect_exempt = [\"/healthz\"]\nhsts = \"max-age=600\"\n",
    );
    let port = t.tls.port();
    let mut plain = Client::connect(t.plain());
    plain.send("GET /x?y=1 HTTP/1.1\r\nHost: example.test:8080\r\n\r\n");
    let r = plain.read_response();
    assert_eq!(r.status, 301, "{}", r.head);
    assert_eq!(
        r.header("location"),
        Some(format!("https://example.test:{port}/x?y=1"))
    );
    assert_eq!(r.header("strict-transport-security"), None);
    // keep-alive: the exempt path on the same connection is served
    plain.send("GET /healthz HTTP/1.1\r\nHost: example.test:8080\r\n\r\n");
    let r = plain.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(r.header("location"), None);
    assert_eq!(r.header("strict-transport-security"), None);
    // a Host without a port, and IPv6
    let r = Client::connect(t.plain()).get("/");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(format!("https://t:{port}/")));
    let mut c = Client::connect(t.plain());
    c.send("GET /a HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
    assert_eq!(
        c.read_response().header("location"),
        Some(format!("https://[::1]:{port}/a"))
    );

    // a Host with a character no host has: 400, nothing echoed
    for bad in ["evil.test/x", "evil.test\"><b>", "evil test"] {
        let mut c = Client::connect(t.plain());
        c.send(format!("GET /x HTTP/1.1\r\nHost: {bad}\r\n\r\n"));
        let r = c.read_response();
        assert_eq!(r.status, 400, "Host: {bad}: {}", r.head);
        assert_eq!(r.header("location"), None, "Host: {bad}");
        assert!(
            !r.head.contains("evil") && !r.text().contains("evil"),
            "{}{}",
            r.head,
            r.text()
        );
    }

    // over TLS: served, never redirected, with the HSTS header
    let mut c = t.connect();
    for path in ["/healthz", "/x?y=1", "/metrics"] {
        let r = c.get(path);
        assert_ne!(r.status, 301, "{path}");
        assert_eq!(r.header("location"), None, "{path}");
        assert_eq!(
            r.header("strict-transport-security").as_deref(),
            Some("max-age=600"),
            "{path}: {}",
            r.head
        );
    }
    assert_eq!(c.get("/x?y=1").status, 404);
}

// ---------------------------------------------------------------------------
// 9. Every endpoint unchanged over TLS
// ---------------------------------------------------------------------------

/// Inflates one permessage-deflate message (no context takeover).
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut z = flate2::Decompress::new(false);
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(input.len() * 8 + 1024);
    loop {
        let before = z.total_in();
        z.decompress_vec(
            &input[z.total_in() as usize..],
            &mut out,
            flate2::FlushDecompress::Sync,
        )
        .unwrap();
        if z.total_in() as usize == input.len() {
            return out;
        }
        if z.total_in() == before {
            out.reserve(out.capacity());
        }
    }
}

/// Deflates one message as permessage-deflate does (the tail 00 00 ff ff cut).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    z.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    assert_eq!(z.total_in() as usize, data.len());
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

#[test]
fn websocket_echo_with_permessage_deflate_over_tls() {
    let t = start_tls("", "");
    let mut c = t.connect();
    c.send(format!(
        "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    ));
    let r = c.read_response_for(true);
    assert_eq!(r.status, 101, "{}", r.head);
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some(accept_key(WS_KEY.as_bytes()))
    );
    let ext = r.header("sec-websocket-extensions").unwrap_or_default();
    assert!(ext.starts_with("permessage-deflate"), "{ext}");

    // a large uncompressed text message: echoed compressed
    let text: String = (0..12_000).map(|i| format!("echo line {i:06}\n")).collect();
    c.send_frame(0, 1, text.as_bytes());
    let f = c.read_frame().expect("the echo");
    assert_eq!((f.fin, f.opcode), (true, 1));
    assert!(f.rsv1, "the echo is compressed");
    assert!(f.payload.len() < text.len() / 3);
    assert!(inflate(&f.payload) == text.as_bytes(), "the echo differs");

    // a compressed message from the client
    let msg: String = (0..3000).map(|i| format!("compressed {i} ")).collect();
    c.send_frame(4, 1, &deflate(msg.as_bytes()));
    let f = c.read_frame().expect("the echo");
    let got = if f.rsv1 {
        inflate(&f.payload)
    } else {
        f.payload.clone()
    };
    assert!(
        got == msg.as_bytes(),
        "the echo of a compressed message differs"
    );

    // ping, close
    c.send_frame(0, 9, b"tls ping");
    let f = c.read_frame().unwrap();
    assert_eq!((f.opcode, f.payload), (10, b"tls ping".to_vec()));
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    c.send_frame(0, 8, &close);
    let f = c.read_frame().unwrap();
    assert_eq!(f.close(), (Some(1000), "bye".to_string()));
    assert!(c.closed_by_server());
}

#[test]
fn a_large_sse_backlog_arrives_whole_and_in_order_over_tls() {
    let t = start_tls("[hub]\nauto_join_room = \"\"\nhistory_size = 2100\n", "");
    let mut p = Publisher::new(t.plain());
    let start = p.publish("backlog", "start");
    let sent: Vec<(u64, String)> = (0..2000)
        .map(|i| {
            let head = format!("{i:05}-");
            let fill = (b'a' + (i % 26) as u8) as char;
            let data: String = head
                .chars()
                .chain(std::iter::repeat_n(fill, 1024 - head.len()))
                .collect();
            (p.publish("backlog", &data), data)
        })
        .collect();
    let want: Vec<u8> = sent
        .iter()
        .flat_map(|(id, data)| format!("id: {id}\ndata: {data}\n\n").into_bytes())
        .collect();

    // a small receive window: the server's records go out in pieces; over
    // TLS 1.3 and over TLS 1.2 (another record format)
    let tls12 = client_config(&[t.ca.der()], &[&rustls::version::TLS12]);
    let mut readers = Vec::new();
    for (version, cfg) in [("1.3", trusting(&t.ca)), ("1.2", tls12)] {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(8192).unwrap();
        s.connect(&t.tls.into()).unwrap();
        let mut c = TlsClient::over(s.into(), "localhost", cfg).unwrap();
        c.open_sse("/sse?room=backlog", &format!("Last-Event-ID: {start}\r\n"));
        assert_eq!(c.line().as_deref(), Some("retry: 3000"));
        assert_eq!(c.line().as_deref(), Some(""));
        let got = c.read_exact_bytes(want.len());
        if got != want {
            let at = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len());
            panic!(
                "TLS {version}: the backlog differs at byte {at} of {} (got {} bytes): {:?}",
                want.len(),
                got.len(),
                String::from_utf8_lossy(&got[at.saturating_sub(40)..(at + 40).min(got.len())])
            );
        }
        readers.push(c);
    }
    // then live, to both
    let live = p.publish("backlog", "live");
    for c in &mut readers {
        let e = c.next_event();
        assert_eq!((e.id, e.data), (Some(live.to_string()), "live".to_string()));
    }
    assert_eq!(
        metric(t.plain(), "ringcast_slow_consumer_drops_total", ""),
        0.0
    );
}

// ---------------------------------------------------------------------------
// 10. Start-up refusals
// ---------------------------------------------------------------------------

/// Runs the binary with `config` and `args` (bounded: it must exit by
/// itself); its exit code and stderr.
fn run_refused(config: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = TempDir::new("tls-refused");
    let cfg = dir.0.join("ringcast.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started with {config:?} {args:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

#[test]
fn a_bad_tls_section_refuses_to_start_and_names_the_key_or_the_file() {
    // listen without a certificate: exit 2, naming tls.cert
    let (code, err) = run_refused("[tls]\nlisten = \"127.0.0.1:0\"\n", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls.cert"), "{err}");
    let (code, err) = run_refused("", &["--tls-listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls.cert"), "{err}");

    // a certificate file that does not exist: refused, naming it
    let dir = TempDir::new("tls-missing");
    let ca = Ca::new("ringcast test CA");
    let leaf = ca.leaf(&["localhost"], 2040);
    let key = dir.0.join("key.pem");
    std::fs::write(&key, &leaf.key_pem).unwrap();
    let missing = dir.0.join("no-such-cert.pem");
    let (code, err) = run_refused(
        &format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
            path_str(&missing),
            path_str(&key)
        ),
        &[],
    );
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {err}");
    assert!(err.contains(&path_str(&missing)), "{err}");
    // the same through the flags
    let (code, err) = run_refused(
        "",
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &path_str(&missing),
            "--tls-key",
            &path_str(&key),
        ],
    );
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {err}");
    assert!(err.contains(&path_str(&missing)), "{err}");
}

#[test]
fn a_certificate_that_does_not_load_is_a_configuration_error_for_check_config_too() {
    // `--check-config` is how a deployment checks a configuration before
    // using it; every other configuration error makes it (and a start)
    // exit 2 naming the problem.
    let dir = TempDir::new("tls-check");
    let leaf = Ca::new("ringcast test CA").leaf(&["localhost"], 2040);
    let key = dir.0.join("key.pem");
    std::fs::write(&key, &leaf.key_pem).unwrap();
    let missing = dir.0.join("no-such-cert.pem");
    let config = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
        path_str(&missing),
        path_str(&key)
    );
    let (start, start_err) = run_refused(&config, &[]);
    assert!(start_err.contains(&path_str(&missing)), "{start_err}");
    let (check, check_err) = run_refused(&config, &["--check-config"]);
    assert_eq!(
        (check, start),
        (Some(2), Some(2)),
        "a certificate file that does not exist: --check-config exits {check:?} \
         (stderr {check_err:?}), a start exits {start:?} (stderr {start_err:?})"
    );
    assert!(check_err.contains(&path_str(&missing)), "{check_err}");
}

// ---------------------------------------------------------------------------
// 11. The record layer's edge cases
// ---------------------------------------------------------------------------

#[test]
fn requests_riding_with_the_finished_byte_by_byte_or_many_pipelined_are_answered() {
    let t = start_tls("", "");

    // a request written before the handshake ends goes out right behind
    // the client's Finished
    let mut sock = TcpStream::connect(t.tls).unwrap();
    sock.set_read_timeout(Some(IO_LIMIT)).unwrap();
    let mut conn =
        ClientConnection::new(trusting(&t.ca), ServerName::try_from("localhost").unwrap()).unwrap();
    conn.writer()
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    let mut c = TlsClient {
        s: StreamOwned::new(conn, sock),
        buf: Vec::new(),
    };
    c.s.flush().unwrap();
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));

    // the handshake one byte per TCP segment, then a request one byte per record
    let mut sock = TcpStream::connect(t.tls).unwrap();
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(IO_LIMIT)).unwrap();
    let mut conn =
        ClientConnection::new(trusting(&t.ca), ServerName::try_from("localhost").unwrap()).unwrap();
    while conn.is_handshaking() {
        while conn.wants_write() {
            let mut out = Vec::new();
            conn.write_tls(&mut out).unwrap();
            for b in out {
                sock.write_all(&[b]).unwrap();
                // (pacing, so that the server sees the pieces apart)
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        if conn.is_handshaking() {
            conn.read_tls(&mut sock).unwrap();
            conn.process_new_packets().unwrap();
        }
    }
    let mut c = TlsClient {
        s: StreamOwned::new(conn, sock),
        buf: Vec::new(),
    };
    for b in b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" {
        c.send([*b]);
    }
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));

    // 600 requests in one write (several records in, many responses out)
    let mut c = t.connect();
    let req: String = (0..600)
        .map(|i| format!("GET /missing-{i} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .collect();
    assert!(req.len() > 16384, "more than one record");
    c.send(&req);
    for i in 0..600 {
        let r = c.read_response();
        assert_eq!(r.status, 404, "response {i}");
    }
    assert_eq!(c.get("/healthz").status, 200);
}

#[test]
fn key_updates_are_followed_in_traffic_and_while_parked() {
    let t = start_tls("[hub]\nauto_join_room = \"\"\n", "");
    let mut c = t.connect();
    c.send(format!(
        "GET /ws?room=keys HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ));
    assert_eq!(c.read_response_for(true).status, 101);
    wait_subscribers(t.plain(), "keys", 1);
    let ping = |c: &mut TlsClient, p: &[u8]| {
        c.send_frame(0, 9, p);
        let f = c.read_frame().expect("the pong");
        assert_eq!((f.opcode, f.payload.as_slice()), (10, p));
    };
    ping(&mut c, b"before");
    // (each asks the server to update its keys too)
    c.s.conn.refresh_traffic_keys().unwrap();
    ping(&mut c, b"after an update");
    // a key update reaching a parked connection
    wait_metric(t.plain(), "ringcast_connections_parked", "", 1.0);
    c.s.conn.refresh_traffic_keys().unwrap();
    c.s.flush().unwrap();
    wait_metric(t.plain(), "ringcast_connections_parked", "", 1.0);
    ping(&mut c, b"after an update while parked");
    wait_metric(t.plain(), "ringcast_connections_parked", "", 1.0);
    publish(t.plain(), "keys", None, "to the parked subscriber");
    assert_eq!(c.read_frame().unwrap().text(), "to the parked subscriber");
    // many in a row, each between two frames
    for i in 0..100 {
        c.s.conn.refresh_traffic_keys().unwrap();
        c.send_frame(0, 9, format!("k{i}").as_bytes());
    }
    for i in 0..100 {
        let f = c.read_frame().unwrap();
        assert_eq!((f.opcode, f.payload), (10, format!("k{i}").into_bytes()));
    }
}

// ---------------------------------------------------------------------------
// 12. Closing
// ---------------------------------------------------------------------------

/// How a TLS connection ended, as its client saw it.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// The server's close_notify.
    CloseNotify,
    /// TCP's end without a close_notify before it.
    EofWithoutCloseNotify,
    /// Nothing ended it within the limit.
    StillOpen,
    Other(String),
}

/// Reads (and drops) what comes until the connection ends, at most `limit`.
fn ending(c: &mut TlsClient, limit: Duration) -> Ending {
    let end = Instant::now() + limit;
    c.s.sock.set_read_timeout(Some(limit)).unwrap();
    let mut tmp = [0u8; 4096];
    loop {
        match c.s.read(&mut tmp) {
            Ok(0) => return Ending::CloseNotify,
            Ok(_) if Instant::now() > end => return Ending::StillOpen,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ending::EofWithoutCloseNotify
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ending::StillOpen
            }
            Err(e) => return Ending::Other(e.to_string()),
        }
    }
}

#[test]
fn a_clients_close_notify_ends_its_sse_stream_active_or_parked() {
    let t = start_tls("[hub]\nauto_join_room = \"\"\n", "");
    for parked in [false, true] {
        let mut c = t.connect();
        c.open_sse("/sse?room=bye", "");
        wait_subscribers(t.plain(), "bye", 1);
        if parked {
            wait_metric(t.plain(), "ringcast_connections_parked", "", 1.0);
        }
        c.s.conn.send_close_notify();
        c.s.flush().unwrap();
        let end = ending(&mut c, Duration::from_secs(5));
        assert_ne!(end, Ending::StillOpen, "parked: {parked}");
        wait_subscribers(t.plain(), "bye", 0);
    }
}

#[test]
fn a_request_followed_by_close_notify_is_answered_then_the_connection_closes() {
    let t = start_tls("", "");
    let req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    // plain HTTP: a request, then the client's end of input (FIN): the
    // answer, and the server closes at once
    let mut p = Client::connect(t.plain());
    p.send(req);
    p.shutdown_write();
    assert_eq!(p.read_response().status, 200);
    assert!(p.closed_by_server());
    // TLS: a request, then close_notify (the client's end of input), in one flight
    let mut c = t.connect();
    c.s.conn.writer().write_all(req.as_bytes()).unwrap();
    c.s.conn.send_close_notify();
    c.s.flush().unwrap();
    assert_eq!(c.read_response().status, 200);
    let end = ending(&mut c, Duration::from_secs(5));
    assert_ne!(
        end,
        Ending::StillOpen,
        "after answering, the server kept the connection open although the \
         client's close_notify ended its input (it closes only at \
         http.keepalive_timeout, 75 s by default)"
    );
}

#[test]
fn the_server_ends_tls_connections_with_close_notify() {
    let t = start_tls("[http]\nkeepalive_timeout = \"300ms\"\n", "");
    let limit = Duration::from_secs(5);

    let mut c = t.connect();
    c.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_eq!(
        ending(&mut c, limit),
        Ending::CloseNotify,
        "Connection: close"
    );

    let mut c = t.connect();
    c.send("GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_eq!(ending(&mut c, limit), Ending::CloseNotify, "HTTP/1.0");

    let mut c = t.connect();
    c.send("NOT HTTP\r\n\r\n");
    assert_eq!(c.read_response().status, 400);
    assert_eq!(ending(&mut c, limit), Ending::CloseNotify, "a bad request");

    let mut c = t.connect();
    c.send(format!(
        "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ));
    assert_eq!(c.read_response_for(true).status, 101);
    c.send_frame(0, 8, &1000u16.to_be_bytes());
    assert_eq!(c.read_frame().unwrap().close().0, Some(1000));
    assert_eq!(
        ending(&mut c, limit),
        Ending::CloseNotify,
        "a WebSocket close"
    );

    // an idle keep-alive connection closed at http.keepalive_timeout
    let mut c = t.connect();
    assert_eq!(c.get("/healthz").status, 200);
    assert_eq!(
        ending(&mut c, limit),
        Ending::CloseNotify,
        "an idle keep-alive connection closed at http.keepalive_timeout \
         (RFC 8446 6.1: close_notify before closing the write side)"
    );
}
