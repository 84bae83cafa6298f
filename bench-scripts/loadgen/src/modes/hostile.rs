//! `hostile`: three attackers at once for `--duration`, each in its own
//! thread, each bounded in connections and time, each stopping by itself:
//!
//! - **flood** (pipelining without reading): every `--flood-every`,
//!   `--flood-conns` connections whose receive buffer is `--flood-rcvbuf`
//!   (set before connecting, so the window stays small) each write
//!   `--flood-requests` copies of `GET --static-path` in one write, read
//!   nothing for `--flood-hold` (keep it under the server's
//!   `http.send_timeout`, which cuts a client that reads nothing), then read
//!   every answer: each must be a 200 whose Content-Length body has the
//!   file's length (learnt by one plain GET first). The server is expected
//!   to stop parsing once `http.max_pending_output` waits, not to buffer
//!   everything: that shows in its RSS and metrics, not here.
//! - **utf8** (invalid UTF-8 publisher): every `--utf8-every`, a body that is
//!   not UTF-8 to `--text-room` (a room delivered in WebSocket text frames:
//!   the demo chat; it must be refused with 400 naming the byte offset),
//!   the same to `--raw-room` (raw bytes are allowed there: 202) and a valid
//!   numbered message to `--text-room`. A WebSocket subscriber of
//!   `--chat-ws` (the demo chat's endpoint) checks that every frame is a text
//!   frame of valid UTF-8 and that every valid message published after it
//!   joined arrives (joining is confirmed with probe messages first).
//! - **resume** (a client back after a long absence): every
//!   `--resume-every`, `--resume-count` messages of `--resume-size` bytes to
//!   `--resume-room`, then `GET /sse?room=R` with `Last-Event-ID` = the id of
//!   the first: every later one must arrive in order, once, intact, with
//!   no gap notice, although together they are more than `--resume-over`
//!   (pass hub.max_queued_bytes; the mode refuses to start otherwise).
//!   `--resume-count` must not exceed hub.history_size.
//!
//! `--only flood,utf8,resume` runs a subset. Blocking sockets with
//! timeouts: this mode makes faults, not load.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::args::{parse_size, Args};
use crate::json::JsonLine;
use crate::modes::common;
use crate::modes::midwrite::connect_small;
use crate::proto::http::{self, parse_response_head};
use crate::proto::sse::SseParser;
use crate::proto::ws::{self, WsEvent, WsReader};
use crate::rng::Rng;
use crate::sys;
use crate::url::{Scheme, Url};

/// Limit for one blocking connect, read or write.
const IO_LIMIT: Duration = Duration::from_secs(10);
/// Longest a flood connection may take to deliver all its answers.
const FLOOD_LIMIT: Duration = Duration::from_secs(60);
/// Longest a resume stream may take to replay what was missed.
const RESUME_LIMIT: Duration = Duration::from_secs(30);
/// After the last chat publish, how long the subscriber waits for the rest.
const CHAT_TAIL: Duration = Duration::from_secs(5);
/// Longest the chat subscriber may take to be confirmed in its room.
const CHAT_JOIN_LIMIT: Duration = Duration::from_secs(10);

/// What every attacker is told.
struct Cfg {
    base: Url,
    end: u64,
    static_path: String,
    flood_conns: usize,
    flood_requests: usize,
    flood_every: Duration,
    flood_hold: Duration,
    flood_rcvbuf: i32,
    text_room: String,
    raw_room: String,
    chat_ws: String,
    utf8_every: Duration,
    resume_room: String,
    resume_count: usize,
    resume_size: usize,
    resume_every: Duration,
}

/// Keeps the first few error messages.
#[derive(Default)]
struct Errors(Vec<String>);

impl Errors {
    fn note(&mut self, e: impl Into<String>) {
        if self.0.len() < 5 {
            self.0.push(e.into());
        }
    }
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Sleeps until `at_ns` on the monotonic clock (at once if past).
fn sleep_until(at_ns: u64) {
    let now = sys::now_ns();
    if at_ns > now {
        std::thread::sleep(Duration::from_nanos(at_ns - now));
    }
}

fn connect(url: &Url) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&url.addr, IO_LIMIT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(IO_LIMIT))
        .and_then(|_| s.set_write_timeout(Some(IO_LIMIT)))
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// One response, body included (Content-Length bodies only).
struct Resp {
    status: u16,
    body: Vec<u8>,
    closes: bool,
}

/// A blocking keep-alive HTTP/1.1 connection: one request, one response.
struct HttpConn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    fn open(url: &Url) -> Result<HttpConn, String> {
        Ok(HttpConn {
            s: connect(url)?,
            buf: Vec::new(),
        })
    }

    fn exchange(&mut self, req: &[u8]) -> Result<Resp, String> {
        self.s.write_all(req).map_err(|e| format!("write: {e}"))?;
        let mut b = [0u8; 16 * 1024];
        let head = loop {
            if let Some(h) = parse_response_head(&self.buf)? {
                break h;
            }
            let n = self.s.read(&mut b).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed before the response".into());
            }
            self.buf.extend_from_slice(&b[..n]);
        };
        self.buf.drain(..head.len);
        if head.is_chunked() {
            return Err("chunked response (Content-Length expected)".into());
        }
        let no_body = head.status / 100 == 1 || head.status == 204 || head.status == 304;
        let len = match head.content_length() {
            Some(n) => n as usize,
            None if no_body => 0,
            None => return Err(format!("{} without Content-Length", head.status)),
        };
        while self.buf.len() < len {
            let n = self.s.read(&mut b).map_err(|e| format!("read body: {e}"))?;
            if n == 0 {
                return Err("closed inside the response body".into());
            }
            self.buf.extend_from_slice(&b[..n]);
        }
        let body: Vec<u8> = self.buf.drain(..len).collect();
        Ok(Resp {
            status: head.status,
            body,
            closes: head.closes(),
        })
    }
}

/// POSTs `body` to `path` over `conn` (opened when None; dropped after an
/// error or a `Connection: close`).
fn post(conn: &mut Option<HttpConn>, url: &Url, path: &str, body: &[u8]) -> Result<Resp, String> {
    if conn.is_none() {
        *conn = Some(HttpConn::open(url)?);
    }
    let mut req = Vec::with_capacity(body.len() + 128);
    http::post_request(&mut req, &url.authority, path, body);
    let r = conn.as_mut().unwrap().exchange(&req);
    match &r {
        Ok(resp) if !resp.closes => {}
        _ => *conn = None,
    }
    r
}

fn get_request(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

// ------------------------------------------------------------------ flood

#[derive(Default)]
struct Flood {
    cycles: u64,
    conns: u64,
    sent: u64,
    answered: u64,
    /// Complete answers that were not 200 with the file's length.
    bad: u64,
    failed: u64,
    static_len: u64,
    /// Slowest connection: first byte written to last answer read.
    slowest_ns: u64,
    errors: Errors,
}

/// Counts complete answers to pipelined GETs in a byte stream.
struct Answers {
    buf: Vec<u8>,
    want_len: u64,
    /// Body bytes still to skip of the answer being read.
    left: u64,
    in_body: bool,
    good: bool,
    answered: u64,
    bad: u64,
}

impl Answers {
    fn new(want_len: u64) -> Answers {
        Answers {
            buf: Vec::new(),
            want_len,
            left: 0,
            in_body: false,
            good: false,
            answered: 0,
            bad: 0,
        }
    }

    fn complete(&self) -> u64 {
        self.answered + self.bad
    }

    fn feed(&mut self, input: &[u8]) -> Result<(), String> {
        self.buf.extend_from_slice(input);
        let mut at = 0;
        loop {
            if self.in_body {
                let take = self.left.min((self.buf.len() - at) as u64);
                at += take as usize;
                self.left -= take;
                if self.left > 0 {
                    break;
                }
                self.in_body = false;
                if self.good {
                    self.answered += 1;
                } else {
                    self.bad += 1;
                }
                continue;
            }
            let Some(h) = parse_response_head(&self.buf[at..])? else {
                break;
            };
            at += h.len;
            if h.is_chunked() {
                return Err(format!("answer {} is chunked", self.complete() + 1));
            }
            let len = h
                .content_length()
                .ok_or_else(|| format!("answer {} has no Content-Length", self.complete() + 1))?;
            self.good = h.status == 200 && len == self.want_len;
            self.left = len;
            self.in_body = true;
        }
        self.buf.drain(..at);
        Ok(())
    }
}

/// Result of one flood connection.
struct FloodConn {
    sent: u64,
    answered: u64,
    bad: u64,
    took_ns: u64,
    error: Option<String>,
}

fn flood_conn(cfg: &Cfg, req: &[u8], static_len: u64) -> FloodConn {
    let mut r = FloodConn {
        sent: 0,
        answered: 0,
        bad: 0,
        took_ns: 0,
        error: None,
    };
    let mut s = match connect_small(&cfg.base, cfg.flood_rcvbuf) {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(format!("flood connect: {e}"));
            return r;
        }
    };
    let t0 = sys::now_ns();
    if let Err(e) = s.write_all(req) {
        r.error = Some(format!("flood write: {e}"));
        return r;
    }
    r.sent = cfg.flood_requests as u64;
    std::thread::sleep(cfg.flood_hold);
    let mut answers = Answers::new(static_len);
    let mut b = vec![0u8; 64 * 1024];
    let limit = t0 + ns(FLOOD_LIMIT);
    let outcome = loop {
        if answers.complete() >= r.sent {
            break Ok(());
        }
        if sys::now_ns() > limit {
            break Err(format!(
                "flood: {} of {} answers after {} s",
                answers.complete(),
                r.sent,
                FLOOD_LIMIT.as_secs()
            ));
        }
        match s.read(&mut b) {
            Ok(0) => {
                break Err(format!(
                    "flood: closed by the server after {} of {} answers",
                    answers.complete(),
                    r.sent
                ))
            }
            Ok(n) => {
                if let Err(e) = answers.feed(&b[..n]) {
                    break Err(format!("flood: {e}"));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                break Err(format!(
                    "flood: read after {} of {} answers: {e}",
                    answers.complete(),
                    r.sent
                ))
            }
        }
    };
    r.took_ns = sys::now_ns() - t0;
    r.answered = answers.answered;
    r.bad = answers.bad;
    r.error = outcome.err();
    r
}

fn flood(cfg: &Cfg) -> Flood {
    let mut f = Flood::default();
    // The file's length, from one plain GET.
    let probe = HttpConn::open(&cfg.base)
        .and_then(|mut c| c.exchange(&get_request(&cfg.base.authority, &cfg.static_path)));
    match probe {
        Ok(r) if r.status == 200 && !r.body.is_empty() => f.static_len = r.body.len() as u64,
        Ok(r) => {
            f.failed += 1;
            f.errors.note(format!(
                "flood: GET {} answered {} with {} bytes (a static file is needed)",
                cfg.static_path,
                r.status,
                r.body.len()
            ));
            return f;
        }
        Err(e) => {
            f.failed += 1;
            f.errors
                .note(format!("flood: GET {}: {e}", cfg.static_path));
            return f;
        }
    }
    // "Host: x": any valid host will do; one write of every copy.
    let one = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", cfg.static_path);
    let req = one.repeat(cfg.flood_requests).into_bytes();
    while sys::now_ns() < cfg.end {
        let cycle_start = sys::now_ns();
        let results: Vec<FloodConn> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..cfg.flood_conns)
                .map(|_| sc.spawn(|| flood_conn(cfg, &req, f.static_len)))
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| FloodConn {
                        sent: 0,
                        answered: 0,
                        bad: 0,
                        took_ns: 0,
                        error: Some("flood connection thread panicked".into()),
                    })
                })
                .collect()
        });
        for r in results {
            f.conns += 1;
            f.sent += r.sent;
            f.answered += r.answered;
            f.bad += r.bad;
            f.slowest_ns = f.slowest_ns.max(r.took_ns);
            if let Some(e) = r.error {
                f.failed += 1;
                f.errors.note(e);
            }
        }
        f.cycles += 1;
        let next = cycle_start + ns(cfg.flood_every);
        if next < cfg.end {
            sleep_until(next);
        } else {
            break;
        }
    }
    if f.bad > 0 {
        f.errors.note(format!(
            "flood: {} answers were not 200 with {} bytes",
            f.bad, f.static_len
        ));
    }
    f
}

// ------------------------------------------------------------------ utf8

/// Bodies that are not UTF-8: a lone continuation byte pair, a truncated
/// sequence, an overlong encoding, a UTF-16 surrogate, a byte never valid.
const INVALID: [&[u8]; 5] = [
    b"<p>\xff\xfe</p>",
    b"<p>caf\xc3</p>",
    b"<p>\xc0\xaf</p>",
    b"<p>ok \xed\xa0\x80 no</p>",
    b"<p>hostile \xf8\x88\x80\x80\x80</p>",
];

#[derive(Default)]
struct Utf8 {
    /// Invalid bodies sent to the text room...
    sent: u64,
    /// ...refused with 400 naming the offset of the first bad byte...
    refused: u64,
    /// ...answered otherwise (accepted, or 400 without the offset).
    not_refused: u64,
    raw_sent: u64,
    raw_accepted: u64,
    chat_published: u64,
    chat_received: u64,
    chat_duplicates: u64,
    chat_out_of_order: u64,
    chat_frames: u64,
    /// Frames that were not text, or text that is not UTF-8.
    bad_frames: u64,
    /// The server closed the chat subscriber (or it failed).
    sub_failed: u64,
    failed: u64,
    errors: Errors,
}

/// What the publisher and the chat subscriber share.
struct ChatShared {
    /// A probe came back: the subscriber is in the room.
    joined: AtomicBool,
    /// Valid messages accepted (202), final once `done` is set.
    published: AtomicU64,
    done: AtomicBool,
    /// Distinct valid messages received so far.
    received: AtomicU64,
    /// The subscriber has ended (the publisher stops waiting for it).
    sub_ended: AtomicBool,
}

/// What the chat subscriber saw.
#[derive(Default)]
struct ChatSub {
    frames: u64,
    bad_frames: u64,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    failed: bool,
    errors: Errors,
}

/// `<p>hostile chat N</p>` → N (probes are `hostile probe N`).
fn chat_number(text: &str) -> Option<u64> {
    let rest = &text[text.find("hostile chat ")? + "hostile chat ".len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

fn chat_subscriber(cfg: &Cfg, sh: &ChatShared) -> ChatSub {
    let mut c = ChatSub::default();
    let r = chat_subscriber_run(cfg, sh, &mut c);
    if let Err(e) = r {
        c.failed = true;
        c.errors.note(format!("chat subscriber: {e}"));
    }
    sh.sub_ended.store(true, Ordering::Release);
    c
}

fn chat_subscriber_run(cfg: &Cfg, sh: &ChatShared, c: &mut ChatSub) -> Result<(), String> {
    let mut rng = Rng::from_entropy();
    let mut s = connect(&cfg.base)?;
    let key = ws::client_key(rng.bytes16());
    s.write_all(&ws::handshake_request(
        &cfg.base.authority,
        &cfg.chat_ws,
        &key,
    ))
    .map_err(|e| format!("handshake write: {e}"))?;
    let mut buf = Vec::new();
    let mut b = vec![0u8; 64 * 1024];
    let head = loop {
        if let Some(h) = parse_response_head(&buf)? {
            break h;
        }
        let n = s.read(&mut b).map_err(|e| format!("handshake read: {e}"))?;
        if n == 0 {
            return Err("closed during the handshake".into());
        }
        buf.extend_from_slice(&b[..n]);
    };
    if head.status != 101 {
        return Err(format!(
            "GET {} answered {} (want 101)",
            cfg.chat_ws, head.status
        ));
    }
    if head.header("sec-websocket-accept") != Some(ws::accept_key(key.as_bytes()).as_str()) {
        return Err("wrong Sec-WebSocket-Accept".into());
    }
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let mut reader = WsReader::new();
    let mut seen: Vec<bool> = Vec::new();
    let mut last: Option<u64> = None;
    let mut pongs: Vec<Vec<u8>> = Vec::new();
    let mut closed_by_server: Option<u16> = None;
    let mut pending = buf.split_off(head.len);
    let hard_end = cfg.end + ns(Duration::from_secs(60));
    let mut done_at: Option<u64> = None;
    loop {
        if !pending.is_empty() {
            let data = std::mem::take(&mut pending);
            reader.feed(&data, &mut |ev| match ev {
                WsEvent::Message { text, data } => {
                    c.frames += 1;
                    let Some(t) = text.then(|| std::str::from_utf8(data).ok()).flatten() else {
                        c.bad_frames += 1;
                        if c.bad_frames <= 3 {
                            c.errors.note(format!(
                                "chat subscriber: a {} frame of {} bytes{}",
                                if text { "text" } else { "binary" },
                                data.len(),
                                if text { " that is not UTF-8" } else { "" }
                            ));
                        }
                        return;
                    };
                    if t.contains("hostile probe ") {
                        sh.joined.store(true, Ordering::Release);
                    }
                    if let Some(n) = chat_number(t) {
                        if n >= 1 << 24 {
                            // no run publishes that many: not ours, or mangled
                            c.out_of_order += 1;
                            return;
                        }
                        let i = n as usize;
                        if seen.len() <= i {
                            seen.resize(i + 1, false);
                        }
                        if seen[i] {
                            c.duplicates += 1;
                        } else {
                            seen[i] = true;
                            c.received += 1;
                        }
                        if last.is_some_and(|l| n < l) {
                            c.out_of_order += 1;
                        }
                        last = Some(n);
                    }
                }
                WsEvent::Ping(p) => pongs.push(p.to_vec()),
                WsEvent::Pong(_) => {}
                WsEvent::Close { code } => closed_by_server = Some(code),
            })?;
            sh.received.store(c.received, Ordering::Release);
            for p in pongs.drain(..) {
                let mut f = Vec::new();
                ws::encode_masked(&mut f, ws::OpCode::Pong, &p, rng.mask());
                s.write_all(&f).map_err(|e| format!("pong: {e}"))?;
            }
        }
        if let Some(code) = closed_by_server {
            return Err(format!("closed by the server with {code}"));
        }
        let now = sys::now_ns();
        if sh.done.load(Ordering::Acquire) {
            let at = *done_at.get_or_insert(now);
            if c.received >= sh.published.load(Ordering::Acquire) || now > at + ns(CHAT_TAIL) {
                break;
            }
        }
        if now > hard_end {
            return Err("still running 60 s after --duration".into());
        }
        match s.read(&mut b) {
            Ok(0) => return Err("connection closed by the server".into()),
            Ok(n) => pending.extend_from_slice(&b[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    // A clean close: our close frame, then the server's, within a second.
    let mut f = Vec::new();
    ws::encode_close(&mut f, 1000, rng.mask());
    let _ = s.write_all(&f);
    let until = sys::now_ns() + ns(Duration::from_secs(1));
    while sys::now_ns() < until {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

fn utf8(cfg: &Cfg) -> Utf8 {
    let mut u = Utf8::default();
    let sh = ChatShared {
        joined: AtomicBool::new(false),
        published: AtomicU64::new(0),
        done: AtomicBool::new(false),
        received: AtomicU64::new(0),
        sub_ended: AtomicBool::new(false),
    };
    let text_path = format!("/publish/{}", cfg.text_room);
    let raw_path = format!("/publish/{}", cfg.raw_room);
    let sub = std::thread::scope(|sc| {
        let h = sc.spawn(|| chat_subscriber(cfg, &sh));
        let mut conn: Option<HttpConn> = None;
        // Probes until one comes back: from then on the subscriber is in
        // the room and every later message must reach it.
        let join_end = sys::now_ns() + ns(CHAT_JOIN_LIMIT);
        let mut probe = 0u64;
        while !sh.joined.load(Ordering::Acquire) && !sh.sub_ended.load(Ordering::Acquire) {
            if sys::now_ns() > join_end.min(cfg.end) {
                u.failed += 1;
                u.errors
                    .note("utf8: the chat subscriber saw no probe message (not in the room?)");
                break;
            }
            let body = format!("<p>hostile probe {probe}</p>");
            probe += 1;
            if let Err(e) = post(&mut conn, &cfg.base, &text_path, body.as_bytes()) {
                u.failed += 1;
                u.errors.note(format!("utf8: probe publish: {e}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut i = 0usize;
        let mut n = 0u64;
        while sh.joined.load(Ordering::Acquire) && sys::now_ns() < cfg.end {
            let tick = sys::now_ns();
            let bad = INVALID[i % INVALID.len()];
            i += 1;
            let want = std::str::from_utf8(bad)
                .err()
                .map(|e| e.valid_up_to())
                .unwrap_or(0);
            // Invalid UTF-8 to the text room: 400 naming the offset.
            u.sent += 1;
            match post(&mut conn, &cfg.base, &text_path, bad) {
                Ok(r) => {
                    let body = String::from_utf8_lossy(&r.body);
                    if r.status == 400 && body.contains(&format!("offset {want}")) {
                        u.refused += 1;
                    } else {
                        u.not_refused += 1;
                        u.errors.note(format!(
                            "utf8: invalid body to {} answered {} {:?} (want 400 naming offset {want})",
                            cfg.text_room,
                            r.status,
                            body.trim()
                        ));
                    }
                }
                Err(e) => {
                    u.failed += 1;
                    u.errors
                        .note(format!("utf8: publish to {}: {e}", cfg.text_room));
                }
            }
            // The same to a raw room: bytes are bytes there.
            u.raw_sent += 1;
            match post(&mut conn, &cfg.base, &raw_path, bad) {
                Ok(r) if r.status == 202 => u.raw_accepted += 1,
                Ok(r) => u.errors.note(format!(
                    "utf8: invalid body to raw room {} answered {} (want 202)",
                    cfg.raw_room, r.status
                )),
                Err(e) => {
                    u.failed += 1;
                    u.errors
                        .note(format!("utf8: publish to {}: {e}", cfg.raw_room));
                }
            }
            // A valid message, which the subscriber must get.
            let body = format!("<p>hostile chat {n}</p>");
            n += 1;
            match post(&mut conn, &cfg.base, &text_path, body.as_bytes()) {
                Ok(r) if r.status == 202 => {
                    sh.published.fetch_add(1, Ordering::AcqRel);
                }
                Ok(r) => {
                    u.failed += 1;
                    u.errors.note(format!(
                        "utf8: valid message to {} answered {}",
                        cfg.text_room, r.status
                    ));
                }
                Err(e) => {
                    u.failed += 1;
                    u.errors
                        .note(format!("utf8: publish to {}: {e}", cfg.text_room));
                }
            }
            sleep_until(tick + ns(cfg.utf8_every));
        }
        sh.done.store(true, Ordering::Release);
        h.join().unwrap_or_else(|_| {
            let mut c = ChatSub {
                failed: true,
                ..Default::default()
            };
            c.errors.note("chat subscriber thread panicked");
            c
        })
    });
    u.chat_published = sh.published.load(Ordering::Acquire);
    u.chat_received = sub.received;
    u.chat_duplicates = sub.duplicates;
    u.chat_out_of_order = sub.out_of_order;
    u.chat_frames = sub.frames;
    u.bad_frames = sub.bad_frames;
    u.sub_failed = sub.failed as u64;
    for e in sub.errors.0 {
        u.errors.note(e);
    }
    if u.chat_received < u.chat_published {
        u.errors.note(format!(
            "utf8: the chat subscriber got {} of {} valid messages",
            u.chat_received, u.chat_published
        ));
    }
    u
}

// ------------------------------------------------------------------ resume

#[derive(Default)]
struct Resume {
    cycles: u64,
    published: u64,
    expected: u64,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    /// Events whose id or data was not what was published.
    corrupt: u64,
    /// `ringcast-gap` notices (part of what was missed is gone).
    gaps: u64,
    /// Streams the server ended before everything was replayed.
    cut: u64,
    /// Streams still incomplete after the time limit.
    stalled: u64,
    /// Slowest replay: request sent to last message read.
    slowest_ns: u64,
    failed: u64,
    errors: Errors,
}

/// The data of message `i` of cycle `c`: a marker padded to `size`.
fn resume_body(c: u64, i: usize, size: usize) -> Vec<u8> {
    let mut b = format!("resume {c} {i} ").into_bytes();
    b.resize(size.max(b.len()), b'r');
    b
}

/// `resume C I ...` → (C, I).
fn resume_marker(data: &[u8]) -> Option<(u64, usize)> {
    let head = &data[..data.len().min(64)];
    let text = std::str::from_utf8(head).ok()?;
    let mut parts = text.strip_prefix("resume ")?.split(' ');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn resume(cfg: &Cfg) -> Resume {
    let mut r = Resume::default();
    let path = format!("/publish/{}", cfg.resume_room);
    let mut cycle = 0u64;
    while sys::now_ns() < cfg.end {
        let cycle_start = sys::now_ns();
        cycle += 1;
        if let Err(e) = resume_cycle(cfg, &path, cycle, &mut r) {
            r.failed += 1;
            r.errors.note(format!("resume (cycle {cycle}): {e}"));
        }
        r.cycles += 1;
        let next = cycle_start + ns(cfg.resume_every);
        if next < cfg.end {
            sleep_until(next);
        } else {
            break;
        }
    }
    r
}

fn resume_cycle(cfg: &Cfg, path: &str, cycle: u64, r: &mut Resume) -> Result<(), String> {
    // The backlog: a fresh keep-alive connection (an idle one would have
    // been closed by http.keepalive_timeout since the last cycle).
    let mut conn: Option<HttpConn> = None;
    let mut ids = Vec::with_capacity(cfg.resume_count);
    for i in 0..cfg.resume_count {
        let resp = post(
            &mut conn,
            &cfg.base,
            path,
            &resume_body(cycle, i, cfg.resume_size),
        )?;
        if resp.status != 202 {
            return Err(format!("publish {i} answered {}", resp.status));
        }
        // {"room":"...","id":N}
        let text = String::from_utf8_lossy(&resp.body);
        let id: u64 = text
            .split("\"id\":")
            .nth(1)
            .map(|t| t.trim_end_matches(|c: char| !c.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("no id in the publish answer {text:?}"))?;
        ids.push(id);
        r.published += 1;
    }
    drop(conn);
    // Back after a long absence: everything after the first one.
    let want = cfg.resume_count - 1;
    r.expected += want as u64;
    let mut s = connect(&cfg.base)?;
    let req = format!(
        "GET /sse?room={} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nLast-Event-ID: {}\r\n\r\n",
        cfg.resume_room, cfg.base.authority, ids[0]
    );
    let t0 = sys::now_ns();
    s.write_all(req.as_bytes())
        .map_err(|e| format!("stream write: {e}"))?;
    let mut buf = Vec::new();
    let mut b = vec![0u8; 64 * 1024];
    let head = loop {
        if let Some(h) = parse_response_head(&buf)? {
            break h;
        }
        let n = s.read(&mut b).map_err(|e| format!("stream head: {e}"))?;
        if n == 0 {
            return Err("stream closed before its head".into());
        }
        buf.extend_from_slice(&b[..n]);
    };
    if head.status != 200 {
        return Err(format!("GET /sse answered {}", head.status));
    }
    if head.is_chunked() {
        return Err("the SSE stream is chunked (not expected from ringcast)".into());
    }
    let mut parser = SseParser::new();
    let mut next = 1usize; // the first one is where the client was
    let mut received = 0usize;
    let mut pending = buf.split_off(head.len);
    let limit = t0 + ns(RESUME_LIMIT);
    let size = cfg.resume_size;
    let ended = loop {
        if !pending.is_empty() {
            let data = std::mem::take(&mut pending);
            parser.feed(&data, &mut |ev| {
                if ev.event == b"ringcast-gap" {
                    r.gaps += 1;
                    r.errors.note(format!(
                        "resume (cycle {cycle}): gap notice {}",
                        String::from_utf8_lossy(ev.data)
                    ));
                    return;
                }
                let Some((c, i)) = resume_marker(ev.data) else {
                    r.corrupt += 1;
                    return;
                };
                if c != cycle || i >= ids.len() {
                    // an earlier cycle's message: replayed too far back
                    r.corrupt += 1;
                    return;
                }
                if ev.data.len() != size || ev.id != ids[i].to_string().as_bytes() {
                    r.corrupt += 1;
                }
                if i == next {
                    received += 1;
                    next += 1;
                } else if i < next {
                    r.duplicates += 1;
                } else {
                    r.out_of_order += 1;
                    received += 1;
                    next = i + 1;
                }
            })?;
        }
        if next >= cfg.resume_count {
            break None;
        }
        if sys::now_ns() > limit {
            break Some(false);
        }
        match s.read(&mut b) {
            Ok(0) => break Some(true),
            Ok(n) => pending.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break Some(false)
            }
            Err(_) => break Some(true), // reset by the server
        }
    };
    r.slowest_ns = r.slowest_ns.max(sys::now_ns() - t0);
    r.received += received.min(want) as u64;
    match ended {
        None => {}
        Some(true) => {
            r.cut += 1;
            r.errors.note(format!(
                "resume (cycle {cycle}): the server ended the stream after {received} of {want} messages ({} bytes missed in all)",
                want * size
            ));
        }
        Some(false) => {
            r.stalled += 1;
            r.errors.note(format!(
                "resume (cycle {cycle}): {received} of {want} messages after {} s",
                (sys::now_ns() - t0) / 1_000_000_000
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ run

/// An attacker's result, or a note of its thread's panic.
fn joined<T>(x: Option<Result<T, &str>>, errors: &mut Errors, ok: &mut bool) -> Option<T> {
    match x {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.note(e);
            *ok = false;
            None
        }
        None => None,
    }
}

pub fn run(mut a: Args) -> Result<i32, String> {
    let base = Url::parse(
        &a.opt("url")?
            .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
    )?;
    base.refuse_tls("hostile")?;
    let duration = a.duration("duration", Duration::from_secs(30))?;
    let only = a.opt("only")?.unwrap_or_else(|| "flood,utf8,resume".into());
    let static_path = a
        .opt("static-path")?
        .unwrap_or_else(|| "/assets/htmx-2.0.11.min.js".into());
    let flood_conns: usize = a.num("flood-conns", 4)?;
    let flood_requests: usize = a.num("flood-requests", 1000)?;
    let flood_every = a.duration("flood-every", Duration::from_secs(5))?;
    let flood_hold = a.duration("flood-hold", Duration::from_secs(2))?;
    let flood_rcvbuf = parse_size(&a.opt("flood-rcvbuf")?.unwrap_or_else(|| "4KiB".into()))?;
    let text_room = a.opt("text-room")?.unwrap_or_else(|| "demo-chat".into());
    let raw_room = a.opt("raw-room")?.unwrap_or_else(|| "hostile-raw".into());
    let chat_ws = a.opt("chat-ws")?.unwrap_or_else(|| "/demo/chat/ws".into());
    let utf8_every = a.duration("utf8-every", Duration::from_millis(200))?;
    let resume_room = a
        .opt("resume-room")?
        .unwrap_or_else(|| "hostile-resume".into());
    let resume_count: usize = a.num("resume-count", 64)?;
    let resume_size = parse_size(&a.opt("resume-size")?.unwrap_or_else(|| "60000".into()))?;
    let resume_every = a.duration("resume-every", Duration::from_secs(10))?;
    let resume_over = parse_size(&a.opt("resume-over")?.unwrap_or_else(|| "1MiB".into()))?;
    a.finish()?;
    if base.scheme != Scheme::Http {
        return Err("--url must be http://HOST:PORT".into());
    }
    let mut want = (false, false, false);
    for part in only.split(',') {
        match part.trim() {
            "flood" => want.0 = true,
            "utf8" => want.1 = true,
            "resume" => want.2 = true,
            other => {
                return Err(format!(
                    "--only: unknown attacker {other:?} (flood, utf8, resume)"
                ))
            }
        }
    }
    if flood_conns == 0 || flood_requests == 0 || flood_rcvbuf == 0 || flood_rcvbuf > 1 << 30 {
        return Err("--flood-conns, --flood-requests and --flood-rcvbuf must be positive".into());
    }
    if flood_every.is_zero() || utf8_every.is_zero() || resume_every.is_zero() {
        return Err("--flood-every, --utf8-every and --resume-every must be positive".into());
    }
    if resume_count < 2 || resume_size < 32 {
        return Err("--resume-count must be at least 2 and --resume-size at least 32".into());
    }
    let replay = (resume_count - 1) * resume_size;
    if want.2 && replay <= resume_over {
        return Err(format!(
            "the replay ({} x {resume_size} B = {replay} B) must exceed --resume-over {resume_over} B (hub.max_queued_bytes): raise --resume-count or --resume-size",
            resume_count - 1
        ));
    }
    sys::raise_nofile();
    let t0 = sys::now_ns();
    let cfg = Cfg {
        base,
        end: t0 + ns(duration),
        static_path,
        flood_conns,
        flood_requests,
        flood_every,
        flood_hold,
        flood_rcvbuf: flood_rcvbuf as i32,
        text_room,
        raw_room,
        chat_ws,
        utf8_every,
        resume_room,
        resume_count,
        resume_size,
        resume_every,
    };
    let (f, u, r) = std::thread::scope(|sc| {
        let f = want.0.then(|| sc.spawn(|| flood(&cfg)));
        let u = want.1.then(|| sc.spawn(|| utf8(&cfg)));
        let r = want.2.then(|| sc.spawn(|| resume(&cfg)));
        (
            f.map(|h| h.join().map_err(|_| "the flood thread panicked")),
            u.map(|h| h.join().map_err(|_| "the utf8 thread panicked")),
            r.map(|h| h.join().map_err(|_| "the resume thread panicked")),
        )
    });
    let wall = (sys::now_ns() - t0) as f64 / 1e9;
    let mut errors = Errors::default();
    let mut ok = true;
    let f = joined(f, &mut errors, &mut ok);
    let u = joined(u, &mut errors, &mut ok);
    let r = joined(r, &mut errors, &mut ok);
    println!("hostile: {wall:.1}s, attackers {only}");
    let mut j = JsonLine::new();
    j.str("mode", "hostile").float("duration_s", wall);
    if let Some(f) = &f {
        let incomplete = f.sent - f.answered.min(f.sent);
        println!(
            "  flood: {} cycles, {} connections x {} pipelined GET {} ({} B each) with {} B receive buffers, unread for {:.1}s: {} sent, {} answered complete, {} incomplete, {} wrong; slowest connection {:.1}s; {} failures",
            f.cycles,
            f.conns,
            flood_requests,
            cfg.static_path,
            f.static_len,
            flood_rcvbuf,
            flood_hold.as_secs_f64(),
            f.sent,
            f.answered,
            incomplete,
            f.bad,
            f.slowest_ns as f64 / 1e9,
            f.failed
        );
        ok &= f.sent > 0 && f.answered == f.sent && f.bad == 0 && f.failed == 0;
        j.int("flood_cycles", f.cycles)
            .int("pipelined_conns", f.conns)
            .int("pipelined_sent", f.sent)
            .int("pipelined_answered", f.answered)
            .int("pipelined_incomplete", incomplete)
            .int("pipelined_wrong", f.bad)
            .int("pipelined_failed", f.failed)
            .int("static_bytes", f.static_len)
            .float("pipelined_slowest_s", f.slowest_ns as f64 / 1e9);
        for e in &f.errors.0 {
            errors.note(e.clone());
        }
    }
    if let Some(u) = &u {
        println!(
            "  utf8: {} invalid bodies to {}: {} refused with 400 naming the offset, {} not; {} to raw room {}: {} accepted; chat subscriber: {} frames, {} not text or not UTF-8, {} of {} valid messages ({} duplicates, {} out of order){}; {} failures",
            u.sent,
            cfg.text_room,
            u.refused,
            u.not_refused,
            u.raw_sent,
            cfg.raw_room,
            u.raw_accepted,
            u.chat_frames,
            u.bad_frames,
            u.chat_received,
            u.chat_published,
            u.chat_duplicates,
            u.chat_out_of_order,
            if u.sub_failed > 0 { ", subscriber failed" } else { "" },
            u.failed
        );
        ok &= u.sent > 0
            && u.refused == u.sent
            && u.raw_accepted == u.raw_sent
            && u.bad_frames == 0
            && u.chat_published > 0
            && u.chat_received == u.chat_published
            && u.chat_duplicates == 0
            && u.chat_out_of_order == 0
            && u.sub_failed == 0
            && u.failed == 0;
        j.int("utf8_sent", u.sent)
            .int("utf8_refused", u.refused)
            .int("utf8_not_refused", u.not_refused)
            .int("utf8_raw_sent", u.raw_sent)
            .int("utf8_raw_accepted", u.raw_accepted)
            .int("utf8_bad_frames", u.bad_frames)
            .int("chat_frames", u.chat_frames)
            .int("chat_published", u.chat_published)
            .int("chat_received", u.chat_received)
            .int("chat_duplicates", u.chat_duplicates)
            .int("chat_out_of_order", u.chat_out_of_order)
            .int("chat_sub_failed", u.sub_failed)
            .int("utf8_failed", u.failed);
        for e in &u.errors.0 {
            errors.note(e.clone());
        }
    }
    if let Some(r) = &r {
        let missing = r.expected - r.received.min(r.expected);
        println!(
            "  resume: {} cycles of {} x {} B to {}, each resumed after the first ({} B to replay, over --resume-over {} B): {} expected, {} received, {} missing, {} duplicates, {} out of order, {} corrupt, {} gap notices, {} streams ended by the server, {} stalled; slowest replay {:.1}s; {} failures",
            r.cycles,
            cfg.resume_count,
            cfg.resume_size,
            cfg.resume_room,
            replay,
            resume_over,
            r.expected,
            r.received,
            missing,
            r.duplicates,
            r.out_of_order,
            r.corrupt,
            r.gaps,
            r.cut,
            r.stalled,
            r.slowest_ns as f64 / 1e9,
            r.failed
        );
        ok &= r.expected > 0
            && missing == 0
            && r.duplicates == 0
            && r.out_of_order == 0
            && r.corrupt == 0
            && r.gaps == 0
            && r.cut == 0
            && r.stalled == 0
            && r.failed == 0;
        j.int("resume_cycles", r.cycles)
            .int("resume_published", r.published)
            .int("resume_replay_bytes", replay as u64)
            .int("resume_expected", r.expected)
            .int("resume_received", r.received)
            .int("resume_missing", missing)
            .int("resume_duplicates", r.duplicates)
            .int("resume_out_of_order", r.out_of_order)
            .int("resume_corrupt", r.corrupt)
            .int("resume_gaps", r.gaps)
            .int("resume_cut", r.cut)
            .int("resume_stalled", r.stalled)
            .int("resume_failed", r.failed)
            .float("resume_slowest_s", r.slowest_ns as f64 / 1e9);
        for e in &r.errors.0 {
            errors.note(e.clone());
        }
    }
    for e in &errors.0 {
        println!("  {e}");
    }
    j.str(
        "first_error",
        errors.0.first().map(String::as_str).unwrap_or(""),
    );
    j.bool("ok", ok);
    common::emit(&j);
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bodies_are_invalid() {
        for b in INVALID {
            assert!(std::str::from_utf8(b).is_err(), "{b:?}");
        }
        assert_eq!(
            std::str::from_utf8(INVALID[0]).unwrap_err().valid_up_to(),
            3
        );
    }

    #[test]
    fn markers_round_trip() {
        let b = resume_body(7, 42, 60_000);
        assert_eq!(b.len(), 60_000);
        assert_eq!(resume_marker(&b), Some((7, 42)));
        assert_eq!(resume_marker(b"rrrr"), None);
        assert_eq!(
            chat_number("<p>hostile chat 17</p><div id=\"ringcast-cursor\"></div>"),
            Some(17)
        );
        assert_eq!(chat_number("<p>hostile probe 3</p>"), None);
    }

    #[test]
    fn answers_are_counted_at_every_split() {
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let mut stream = Vec::new();
        for _ in 0..3 {
            stream.extend_from_slice(one);
        }
        stream.extend_from_slice(short);
        stream.extend_from_slice(one);
        for step in 1..=stream.len() {
            let mut a = Answers::new(5);
            for piece in stream.chunks(step) {
                a.feed(piece).unwrap();
            }
            assert_eq!((a.answered, a.bad), (4, 1), "step {step}");
        }
        let mut a = Answers::new(5);
        a.feed(&one[..one.len() - 1]).unwrap();
        assert_eq!(a.complete(), 0);
        assert!(Answers::new(5)
            .feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .is_err());
    }
}
