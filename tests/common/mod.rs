//! Test harness: starts the real `ringcast` binary on a free loopback port
//! and talks to it over raw sockets, so tests see exactly the bytes a client
//! would.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringcast::proto::ws::frame::{encode_raw_frame, parse_header, MAX_HEADER_LEN};
use ringcast::proto::ws::handshake::accept_key;

/// Longest any single socket read may block before the test fails (a bound, not a synchronisation).
pub const IO_LIMIT: Duration = Duration::from_secs(10);

/// A running server process. Killed when dropped.
pub struct TestServer {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every log line the server printed so far (stderr), collected in the background.
    log_rx: mpsc::Receiver<String>,
    pub log: Vec<String>,
    args: Vec<String>,
    nofile: Option<u64>,
    env: Vec<(String, String)>,
    _dir: TempDir,
}

/// Spawns the binary listening on `listen`; returns it and its log lines (stderr).
fn spawn_server(
    cfg_path: &std::path::Path,
    listen: &str,
    args: &[String],
    nofile: Option<u64>,
    env: &[(String, String)],
) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = Command::new(bin());
    cmd.arg("--config")
        .arg(cfg_path)
        .arg("--listen")
        .arg(listen)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(n) = nofile {
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let rl = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("spawn ringcast");
    let log_rx = lines_of(child.stderr.take().unwrap());
    (child, log_rx)
}

/// The lines a child process writes to `out` (its stdout or stderr), as
/// they come, read by a thread of their own.
pub fn lines_of(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Waits at most `limit` for a child process to exit; its status.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("ringcast-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Options for starting a server.
#[derive(Default)]
pub struct Opts {
    /// TOML config text (without `[server] listen`, which is always 127.0.0.1:0).
    pub config: String,
    pub args: Vec<String>,
    /// Hard and soft RLIMIT_NOFILE of the server process.
    pub nofile: Option<u64>,
    /// Extra environment variables of the server process.
    pub env: Vec<(String, String)>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringcast")
}

impl TestServer {
    pub fn start(config: &str) -> TestServer {
        Self::start_with(Opts {
            config: config.to_string(),
            ..Default::default()
        })
    }

    pub fn start_with(opts: Opts) -> TestServer {
        let dir = TempDir::new("srv");
        let cfg_path = dir.0.join("ringcast.toml");
        std::fs::write(&cfg_path, &opts.config).unwrap();
        let (child, log_rx) =
            spawn_server(&cfg_path, "127.0.0.1:0", &opts.args, opts.nofile, &opts.env);
        let mut srv = TestServer {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log_rx,
            log: Vec::new(),
            args: opts.args,
            nofile: opts.nofile,
            env: opts.env,
            _dir: dir,
        };
        srv.addr = srv.wait_listening();
        srv
    }

    fn wait_listening(&mut self) -> SocketAddr {
        let line = self.wait_log("listening on ");
        let addr = line
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        addr.parse().unwrap()
    }

    /// Stops the server with SIGTERM (waiting for it to exit) and starts it
    /// again with the same config and flags ON THE SAME PORT, so clients
    /// that reconnect to the old address find the new process. The log
    /// starts afresh.
    pub fn restart_same_port(&mut self) {
        self.signal(libc::SIGTERM);
        let st = self.wait_exit(Duration::from_secs(15));
        assert!(st.is_some(), "the server did not exit on SIGTERM");
        let listen = self.addr.to_string();
        let (child, log_rx) = spawn_server(
            &self.config_path(),
            &listen,
            &self.args,
            self.nofile,
            &self.env,
        );
        self.child = child;
        self.log_rx = log_rx;
        self.log.clear();
        let addr = self.wait_listening();
        assert_eq!(addr, self.addr, "restarted on another address");
    }

    /// Waits (bounded) for a log line containing `needle`; returns it.
    pub fn wait_log(&mut self, needle: &str) -> String {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + IO_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log_rx.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "server never logged {needle:?}; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Lines logged so far (drains what has arrived without waiting).
    pub fn log_now(&mut self) -> &[String] {
        while let Ok(l) = self.log_rx.try_recv() {
            self.log.push(l);
        }
        &self.log
    }

    /// Every line the process printed, once it has exited (see
    /// [`TestServer::wait_exit`]): waits (bounded) for its stderr to end.
    pub fn log_after_exit(&mut self) -> &[String] {
        let deadline = Instant::now() + IO_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log_rx.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return &self.log,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("stderr did not end after the exit"),
            }
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The config file the server was started with (tests may rewrite it).
    pub fn config_path(&self) -> PathBuf {
        self._dir.0.join("ringcast.toml")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits (bounded by `limit`) for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, limit)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw TCP client with a read buffer (so pipelined responses can be read one by one).
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(IO_LIMIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("write");
    }

    /// Sends, ignoring errors (the server may already have closed).
    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        self.read_response()
    }

    fn fill(&mut self) -> usize {
        fill_from(&mut self.stream, &mut self.buf)
    }

    /// Reads exactly `n` more bytes (or what arrives before end of stream).
    pub fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        read_exact_from(&mut self.stream, &mut self.buf, n)
    }

    /// Reads one response (`Content-Length` delimited; no body for 1xx/204/304 or `head_only`).
    pub fn read_response_for(&mut self, head_only: bool) -> Response {
        read_response_from(&mut self.stream, &mut self.buf, head_only)
    }

    /// The next response, or None if the connection ends before its head.
    pub fn try_read_response(&mut self) -> Option<Response> {
        while find(&self.buf, b"\r\n\r\n").is_none() {
            if self.fill() == 0 {
                return None;
            }
        }
        Some(self.read_response())
    }

    pub fn read_response(&mut self) -> Response {
        self.read_response_for(false)
    }

    /// Waits for the server to close: true if end of stream (or reset) came
    /// with no further bytes before it.
    pub fn closed_by_server(&mut self) -> bool {
        let before = self.buf.len();
        loop {
            let n = self.fill();
            if n == 0 {
                return self.buf.len() == before;
            }
        }
    }

    /// Everything until end of stream.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill() > 0 {}
        std::mem::take(&mut self.buf)
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads more of `r` into `buf`; 0 at the end of the stream (EOF, a TLS
/// stream cut without close_notify, a reset). Panics on any other error
/// (a read timeout: [`IO_LIMIT`]).
pub fn fill_from<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> usize {
    let mut tmp = [0u8; 16384];
    loop {
        match r.read(&mut tmp) {
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                return n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return 0
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Takes exactly `n` bytes from `buf`, reading more of `r` as needed (or
/// what arrives before the end of the stream).
pub fn read_exact_from<R: Read>(r: &mut R, buf: &mut Vec<u8>, n: usize) -> Vec<u8> {
    while buf.len() < n {
        if fill_from(r, buf) == 0 {
            break;
        }
    }
    let n = n.min(buf.len());
    buf.drain(..n).collect()
}

/// Takes one response from `buf`, reading more of `r` as needed
/// (`Content-Length` delimited; no body for 1xx/204/304 or `head_only`).
/// What follows it stays in `buf` (pipelined responses, a stream).
pub fn read_response_from<R: Read>(r: &mut R, buf: &mut Vec<u8>, head_only: bool) -> Response {
    let end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if fill_from(r, buf) == 0 {
            panic!(
                "connection closed before a full response head; got {:?}",
                String::from_utf8_lossy(buf)
            );
        }
    };
    let head = String::from_utf8(buf.drain(..end).collect()).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let mut resp = Response {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = resp
        .header("content-length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    if !(head_only || status == 304 || status < 200 || status == 204) {
        resp.body = read_exact_from(r, buf, len);
        assert_eq!(resp.body.len(), len, "body shorter than Content-Length");
    }
    resp
}

/// One SSE event as a client assembles it (per the WHATWG parsing rules).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

/// An SSE stream read over a raw socket.
pub struct SseClient {
    pub client: Client,
    pub head: Response,
    /// Comments seen so far (without the leading colon and space).
    pub comments: Vec<String>,
}

impl SseClient {
    /// Opens `GET target` with extra header lines; asserts 200.
    pub fn open(addr: SocketAddr, target: &str, extra_headers: &str) -> SseClient {
        SseClient::open_on(Client::connect(addr), target, extra_headers)
    }

    /// Like [`SseClient::open`], on a connection made already.
    pub fn open_on(mut client: Client, target: &str, extra_headers: &str) -> SseClient {
        client.send(format!(
            "GET {target} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{extra_headers}\r\n"
        ));
        let head = client.read_response_for(true);
        assert_eq!(head.status, 200, "{}", head.head);
        SseClient {
            client,
            head,
            comments: Vec::new(),
        }
    }

    /// Reads one line (without its `\n`); None at end of stream.
    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.client.buf.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = self.client.buf.drain(..=i).collect();
                return Some(String::from_utf8(l[..l.len() - 1].to_vec()).unwrap());
            }
            if self.client.fill() == 0 {
                return None;
            }
        }
    }

    /// The next block (event, retry-only block); comments are collected, not returned.
    /// None at end of stream.
    pub fn next_block(&mut self) -> Option<Event> {
        let mut ev = Event::default();
        let mut has_data = false;
        let mut any = false;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                if any {
                    return Some(ev);
                }
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                self.comments.push(c.trim_start().to_string());
                continue;
            }
            any = true;
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

    /// The next block that carries data (skips `retry:`-only blocks). Panics at end of stream.
    pub fn next_event(&mut self) -> Event {
        loop {
            let b = self
                .next_block()
                .expect("stream ended before the next event");
            if b.retry.is_some() && b.id.is_none() && b.event.is_none() && b.data.is_empty() {
                continue;
            }
            return b;
        }
    }
}

/// Publishes over HTTP; returns the id the server gave the message.
pub fn publish(addr: SocketAddr, room: &str, event: Option<&str>, data: &str) -> u64 {
    let mut c = Client::connect(addr);
    let q = event.map(|e| format!("?event={e}")).unwrap_or_default();
    c.send(format!(
        "POST /publish/{room}{q} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{data}",
        data.len()
    ));
    let r = c.read_response();
    assert_eq!(r.status, 202, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["room"], room);
    v["id"].as_u64().unwrap()
}

/// A keep-alive publisher connection (for many publishes).
pub struct Publisher(pub Client);

impl Publisher {
    pub fn new(addr: SocketAddr) -> Publisher {
        Publisher(Client::connect(addr))
    }
    pub fn publish(&mut self, room: &str, data: &str) -> u64 {
        self.0.send(format!(
            "POST /publish/{room} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{data}",
            data.len()
        ));
        let r = self.0.read_response();
        assert_eq!(r.status, 202, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["id"].as_u64().unwrap()
    }
}

/// `GET /rooms/{room}` as JSON.
pub fn room_info(addr: SocketAddr, room: &str) -> serde_json::Value {
    let mut c = Client::connect(addr);
    let r = c.get(&format!("/rooms/{room}"));
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).unwrap()
}

/// A server frame as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// Code and reason of a close frame.
    pub fn close(&self) -> (Option<u16>, String) {
        assert_eq!(self.opcode, 8, "not a close frame: {self:?}");
        if self.payload.len() < 2 {
            return (None, String::new());
        }
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        (
            Some(code),
            String::from_utf8_lossy(&self.payload[2..]).into_owned(),
        )
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.payload.clone()).unwrap()
    }
}

/// A WebSocket client over a raw socket: its frames are built byte by byte
/// with the library's frame helpers, so it can send any frame at all.
pub struct WsClient {
    pub client: Client,
    pub handshake: Response,
}

pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

impl WsClient {
    /// Sends an upgrade for `target` (plus extra header lines) and reads the response head.
    pub fn handshake(addr: SocketAddr, target: &str, extra: &str) -> (Client, Response) {
        let mut c = Client::connect(addr);
        c.send(format!(
            "GET {target} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        ));
        let r = c.read_response_for(true);
        (c, r)
    }

    /// Connects and asserts the 101.
    pub fn connect(addr: SocketAddr, target: &str, extra: &str) -> WsClient {
        let (c, r) = Self::handshake(addr, target, extra);
        assert_eq!(r.status, 101, "{}", r.head);
        assert_eq!(
            r.header("sec-websocket-accept"),
            Some(accept_key(WS_KEY.as_bytes()))
        );
        WsClient {
            client: c,
            handshake: r,
        }
    }

    /// Raw frame bytes: FIN, the RSV bits (RSV1 = 4, RSV2 = 2, RSV3 = 1),
    /// any opcode (reserved ones too), any length, masked or not.
    pub fn frame_bytes(
        fin: bool,
        rsv: u8,
        opcode: u8,
        payload: &[u8],
        mask: Option<[u8; 4]>,
    ) -> Vec<u8> {
        let mut f = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
        encode_raw_frame((fin as u8) << 7 | rsv << 4 | opcode, payload, mask, &mut f);
        f
    }

    /// Sends one masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let f = Self::frame_bytes(fin, 0, opcode, payload, Some([0x12, 0x34, 0x56, 0x78]));
        self.client.send(f);
    }

    pub fn send_text(&mut self, s: &str) {
        self.send_frame(true, 1, s.as_bytes());
    }

    pub fn send_close(&mut self, code: u16, reason: &str) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        self.send_frame(true, 8, &p);
    }

    /// Reads one frame; None at end of stream.
    pub fn read_frame(&mut self) -> Option<Frame> {
        let (h, header_len) = loop {
            match parse_header(&self.client.buf) {
                Ok(Some(h)) => break h,
                Ok(None) if self.client.fill() > 0 => {}
                Ok(None) if self.client.buf.len() < 2 => return None,
                Ok(None) => panic!("stream ended inside a frame header"),
                Err(e) => panic!("bad frame header from the server: {e}"),
            }
        };
        assert_eq!(h.mask, None, "server frames are never masked");
        self.client.buf.drain(..header_len);
        let (fin, rsv1, opcode) = (h.fin, h.rsv1, h.opcode as u8);
        let len = h.payload_len as usize;
        let payload = self.client.read_exact_bytes(len);
        assert_eq!(payload.len(), len, "frame cut short");
        Some(Frame {
            fin,
            rsv1,
            opcode,
            payload,
        })
    }

    /// Reads frames until a data frame (answering nothing); panics at end of stream.
    pub fn next_data(&mut self) -> Frame {
        loop {
            let f = self.read_frame().expect("stream ended");
            if f.opcode != 9 && f.opcode != 10 {
                return f;
            }
        }
    }

    /// Reads until the close frame; returns its code and reason.
    pub fn expect_close(&mut self) -> (Option<u16>, String) {
        loop {
            let f = self
                .read_frame()
                .expect("stream ended without a close frame");
            if f.opcode == 8 {
                return f.close();
            }
        }
    }
}

/// Polls `GET /rooms/{room}` until it counts `n` subscribers (bounded: 5 s).
pub fn wait_subscribers(addr: SocketAddr, room: &str, n: u64) {
    for _ in 0..500 {
        if room_info(addr, room)["subscribers"].as_u64() == Some(n) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("room {room} never reached {n} subscribers");
}

/// A client with a 4 KiB receive window that sends `request` and then never
/// reads: the server's send buffer for it fills up and stays full.
pub fn non_reading_client(addr: SocketAddr, request: &str) -> Client {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    let mut c = Client::from_stream(s.into());
    c.send(request);
    c
}

/// The server configuration of [`slow_subscriber_on_a_full_socket`]: 60 KB
/// messages, a 256 KiB queue per subscriber, and a send timeout far longer
/// than any wait of the test.
pub const SLOW_SUBSCRIBER_CONFIG: &str =
    "[hub]\nauto_join_room = \"\"\nmax_message_size = \"64KiB\"\n\
     max_queued_bytes = \"256KiB\"\n[http]\nsend_timeout = \"120s\"\n";

/// A subscriber of `room` that never reads (`slow`, subscribed) has its
/// socket full long before its queue passes the hub's limit; it must be
/// dropped as soon as it passes it, while it waits for its socket, not at
/// the send timeout. 60 KB messages are published one at a time, each once
/// the reading subscriber (`fast_next` returns the size of what it got
/// next) has it, until the room has lost the slow subscriber. Returns how
/// many were published.
pub fn slow_subscriber_on_a_full_socket(
    srv: &TestServer,
    room: &str,
    slow: Client,
    mut fast_next: impl FnMut() -> usize,
) -> usize {
    wait_subscribers(srv.addr, room, 2);
    let payload = "x".repeat(60_000);
    let mut p = Publisher::new(srv.addr);
    // kernel buffers (a few hundred KB at most here) plus the 256 KiB queue
    let most = 200;
    let mut published = 0;
    while published < most {
        p.publish(room, &payload);
        published += 1;
        assert_eq!(
            fast_next(),
            60_000,
            "the reading subscriber gets each message"
        );
        if room_info(srv.addr, room)["subscribers"].as_u64() == Some(1) {
            break;
        }
    }
    assert!(
        published < most,
        "the slow subscriber was still in the room after {most} messages of 60 KB"
    );
    // its connection ends (within the read limit, far below the send timeout)
    let mut slow = slow;
    let got = slow.read_to_end();
    assert!(
        got.len() < published * 60_000,
        "slow subscriber got everything"
    );
    assert_eq!(
        metric(srv.addr, "ringcast_slow_consumer_drops_total", ""),
        1.0
    );
    published
}

/// A connection to `addr` from the local address `src` (any 127.x.y.z works on
/// loopback), to act as another client IP.
pub fn connect_from(src: &str, addr: SocketAddr) -> Client {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{src}:0").parse().unwrap();
    sock.bind(&from.into()).expect("bind the source address");
    sock.connect(&addr.into()).expect("connect");
    Client::from_stream(sock.into())
}

/// Polls the parked-connections gauge until it reads `n` (bounded: 10 s; a
/// stream parks once it has written nothing for a second).
pub fn wait_parked(addr: std::net::SocketAddr, n: f64) {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while metric(addr, "ringcast_connections_parked", "") != n {
        assert!(
            std::time::Instant::now() < end,
            "parked connections never reached {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The sum of every `/metrics` sample of `family` whose labels contain `label`
/// (e.g. `limit="max_rooms"`; empty for all).
pub fn metric(addr: SocketAddr, family: &str, label: &str) -> f64 {
    let text = Client::connect(addr).get("/metrics").text();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next() == Some(family) && series.contains(label))
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

/// The Python interpreter of the third-party test clients (httpx-sse,
/// websockets, PyJWT), installed by tests/clients/setup.sh if missing.
pub fn test_clients_python() -> String {
    let setup = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/setup.sh");
    let out = std::process::Command::new("bash")
        .arg(setup)
        .output()
        .expect("run tests/clients/setup.sh");
    assert!(
        out.status.success(),
        "tests/clients/setup.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
