//! Client connections on one mio event loop: a `Conn` is one WebSocket or
//! SSE client (connect, TLS handshake for wss:// and https://, HTTP
//! handshake, read frames or events, write batched),
//! a `Pool` owns many of them and dispatches readiness to a mode's
//! `Handler`. Sockets other than pool connections (a mode's publishers)
//! share the poll under tokens from `FOREIGN_BASE` up.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};

use crate::proto::http::{self, Chunked, Head};
use crate::proto::sse::SseParser;
use crate::proto::ws::{self, WsEvent, WsReader};
use crate::rng::Rng;
use crate::sys;
use crate::tls::{Stream, TlsClient, TlsOpen};
use crate::url::{Scheme, Url};

/// Tokens at and above this belong to the mode, not the pool.
pub const FOREIGN_BASE: usize = 1 << 40;

/// Read size per `read` call; one buffer shared by every connection.
const SCRATCH: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Ws,
    Sse,
}

impl Proto {
    pub fn of(url: &Url) -> Proto {
        match url.scheme {
            Scheme::Ws => Proto::Ws,
            Scheme::Http => Proto::Sse,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Ws => "websocket",
            Proto::Sse => "sse",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Head,
    Open,
    /// We sent a WebSocket close and wait for the server's.
    Closing,
}

/// What a connection reports to its mode.
pub enum Ev<'a> {
    /// Handshake complete; `handshake_ns` since the connect started (TCP
    /// connect, TLS handshake if any, HTTP answer). `tls`: the TLS
    /// handshake's outcome (None on plain connections).
    Open {
        handshake_ns: u64,
        tls: Option<TlsOpen>,
    },
    /// A WebSocket message, or the data of an SSE event; `at_ns`: when the
    /// read that brought it returned (one clock read per read, not per message).
    Msg {
        text: bool,
        data: &'a [u8],
        at_ns: u64,
    },
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// The server closed the TCP connection (no WebSocket close seen).
    Eof,
    /// The server sent a WebSocket close with this code.
    ServerClose(u16),
    /// A close we asked for completed.
    Local,
    /// The handshake was refused with this HTTP status.
    Rejected(u16),
    /// Connect, protocol or I/O error, or a timeout.
    Error(String),
}

/// Lets a mode's handler write to the connection that raised an event.
pub struct Outbox<'a> {
    out: &'a mut Vec<u8>,
    rng: &'a mut Rng,
    close: &'a mut bool,
}

impl Outbox<'_> {
    /// Queues one masked WebSocket frame.
    pub fn send(&mut self, opcode: ws::OpCode, payload: &[u8]) {
        let mask = self.rng.mask();
        ws::encode_masked(self.out, opcode, payload, mask);
    }

    /// Closes the connection: a WebSocket close handshake, or for SSE an
    /// immediate close.
    pub fn close(&mut self) {
        *self.close = true;
    }
}

struct SseBody {
    chunked: Option<Chunked>,
    parser: SseParser,
}

pub struct Conn {
    stream: Stream,
    pub phase: Phase,
    proto: Proto,
    head: Vec<u8>,
    accept: String,
    ws: WsReader,
    sse: Option<Box<SseBody>>,
    out: Vec<u8>,
    out_pos: usize,
    t_start: u64,
    close_req: bool,
    server_close: Option<u16>,
}

impl Conn {
    fn start(target: &Target, rng: &mut Rng, src: Option<Ipv4Addr>) -> io::Result<Conn> {
        let (url, proto) = (&target.url, target.proto);
        let tcp = sys::connect(url.addr, src)?;
        let stream = match &target.tls {
            None => Stream::Plain(tcp),
            Some(tls) => tls.wrap(tcp)?,
        };
        let (out, accept) = match proto {
            Proto::Ws => {
                let key = ws::client_key(rng.bytes16());
                let accept = ws::accept_key(key.as_bytes());
                (
                    ws::handshake_request(&url.authority, &url.path, &key),
                    accept,
                )
            }
            Proto::Sse => (http::sse_request(&url.authority, &url.path), String::new()),
        };
        Ok(Conn {
            stream,
            phase: Phase::Connecting,
            proto,
            head: Vec::new(),
            accept,
            ws: WsReader::new(),
            sse: None,
            out,
            out_pos: 0,
            t_start: sys::now_ns(),
            close_req: false,
            server_close: None,
        })
    }

    /// Writes queued bytes until done or the socket is full.
    fn flush(&mut self) -> Result<(), Gone> {
        // Encrypted bytes rustls kept when the socket was full (TLS only).
        if let Stream::Tls(_) = self.stream {
            self.stream
                .flush_tls()
                .map_err(|e| Gone::Error(format!("write: {e}")))?;
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(Gone::Error("write returned 0".into())),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Gone::Error(format!("write: {e}"))),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 1 << 20 {
                self.out.shrink_to(64 * 1024);
            }
        } else if self.out_pos > 1 << 20 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    fn handle(
        &mut self,
        readable: bool,
        read_closed: bool,
        scratch: &mut [u8],
        rng: &mut Rng,
        on: &mut dyn FnMut(Ev<'_>, &mut Outbox),
    ) -> Result<(), Gone> {
        if self.phase == Phase::Connecting {
            if let Ok(Some(e)) | Err(e) = self.stream.tcp().take_error() {
                return Err(Gone::Error(format!("connect: {e}")));
            }
            match self.stream.tcp().peer_addr() {
                Ok(_) => self.phase = Phase::Head,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(Gone::Error(format!("connect: {e}"))),
            }
        }
        self.flush()?;
        if readable {
            loop {
                match self.stream.read(scratch) {
                    Ok(0) => {
                        return Err(match (self.server_close, self.phase) {
                            (_, Phase::Closing) => Gone::Local,
                            (Some(c), _) => Gone::ServerClose(c),
                            (None, _) => Gone::Eof,
                        })
                    }
                    Ok(n) => {
                        let at = sys::now_ns();
                        self.input(&scratch[..n], at, rng, on)?;
                        if self.close_req {
                            self.close_req = false;
                            match self.proto {
                                Proto::Sse => return Err(Gone::Local),
                                Proto::Ws => {
                                    if self.phase == Phase::Open {
                                        ws::encode_close(&mut self.out, 1000, rng.mask());
                                        self.phase = Phase::Closing;
                                        self.t_start = sys::now_ns();
                                    }
                                }
                            }
                        }
                        if n < scratch.len() && !read_closed && self.stream.short_read_drains() {
                            // A short read drained the socket; new data
                            // raises a new edge. Not so for a FIN that
                            // came with this data (read_closed): read on
                            // to see the end of stream. Nor under TLS,
                            // where a read returns one record's worth:
                            // read on until the socket would block.
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        return Err(Gone::Error(e.to_string()))
                    }
                    Err(e) => return Err(Gone::Error(format!("read: {e}"))),
                }
            }
        }
        self.flush()
    }

    fn input(
        &mut self,
        data: &[u8],
        at: u64,
        rng: &mut Rng,
        on: &mut dyn FnMut(Ev<'_>, &mut Outbox),
    ) -> Result<(), Gone> {
        if self.phase == Phase::Head {
            self.head.extend_from_slice(data);
            let head = match http::parse_response_head(&self.head).map_err(Gone::Error)? {
                Some(h) => h,
                None => return Ok(()),
            };
            self.check_head(&head)?;
            let head_bytes = std::mem::take(&mut self.head);
            self.phase = Phase::Open;
            let handshake_ns = at.saturating_sub(self.t_start);
            let mut close = false;
            on(
                Ev::Open {
                    handshake_ns,
                    tls: self.stream.tls_open(self.t_start),
                },
                &mut Outbox {
                    out: &mut self.out,
                    rng,
                    close: &mut close,
                },
            );
            self.close_req |= close;
            let rest = &head_bytes[head.len..];
            if !rest.is_empty() {
                self.body(rest, at, rng, on)?;
            }
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        self.body(data, at, rng, on)
    }

    fn check_head(&mut self, head: &Head) -> Result<(), Gone> {
        match self.proto {
            Proto::Ws => {
                if head.status != 101 {
                    return Err(Gone::Rejected(head.status));
                }
                match head.header("sec-websocket-accept") {
                    Some(a) if a == self.accept => {}
                    other => {
                        return Err(Gone::Error(format!(
                            "bad Sec-WebSocket-Accept {other:?}, want {:?}",
                            self.accept
                        )))
                    }
                }
                self.accept = String::new();
            }
            Proto::Sse => {
                if head.status != 200 {
                    return Err(Gone::Rejected(head.status));
                }
                let ct = head.header("content-type").unwrap_or("");
                if !ct.to_ascii_lowercase().starts_with("text/event-stream") {
                    return Err(Gone::Error(format!("SSE Content-Type is {ct:?}")));
                }
                self.sse = Some(Box::new(SseBody {
                    chunked: head.is_chunked().then(Chunked::new),
                    parser: SseParser::new(),
                }));
            }
        }
        Ok(())
    }

    fn body(
        &mut self,
        data: &[u8],
        at: u64,
        rng: &mut Rng,
        on: &mut dyn FnMut(Ev<'_>, &mut Outbox),
    ) -> Result<(), Gone> {
        let Conn {
            ws,
            sse,
            out,
            close_req,
            server_close,
            phase,
            ..
        } = self;
        match sse {
            None => {
                let mut ob = Outbox {
                    out,
                    rng,
                    close: close_req,
                };
                let r = ws.feed(data, &mut |e| match e {
                    WsEvent::Message { text, data } => {
                        if server_close.is_none() {
                            on(
                                Ev::Msg {
                                    text,
                                    data,
                                    at_ns: at,
                                },
                                &mut ob,
                            )
                        }
                    }
                    WsEvent::Ping(p) => {
                        let m = ob.rng.mask();
                        ws::encode_masked(ob.out, ws::OpCode::Pong, p, m)
                    }
                    WsEvent::Pong(_) => {}
                    WsEvent::Close { code } => {
                        if server_close.is_none() {
                            *server_close = Some(code);
                            if *phase != Phase::Closing {
                                // Echo the close; then wait for the server to
                                // end the TCP connection.
                                let m = ob.rng.mask();
                                let c = if code == 1005 { 1000 } else { code };
                                ws::encode_close(ob.out, c, m);
                            }
                        }
                    }
                });
                r.map_err(Gone::Error)
            }
            Some(body) => {
                let mut ob = Outbox {
                    out,
                    rng,
                    close: close_req,
                };
                let SseBody { chunked, parser } = &mut **body;
                let mut perr = Ok(());
                let mut feed = |bytes: &[u8]| {
                    if perr.is_ok() {
                        perr = parser.feed(bytes, &mut |e| {
                            on(
                                Ev::Msg {
                                    text: true,
                                    data: e.data,
                                    at_ns: at,
                                },
                                &mut ob,
                            )
                        });
                    }
                };
                match chunked {
                    Some(c) => {
                        let n = c.feed(data, &mut feed).map_err(Gone::Error)?;
                        perr.map_err(Gone::Error)?;
                        if c.done() || n < data.len() {
                            return Err(Gone::Eof);
                        }
                    }
                    None => {
                        feed(data);
                        perr.map_err(Gone::Error)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Where the pool's connections go.
#[derive(Clone)]
pub struct Target {
    pub url: Url,
    pub proto: Proto,
    /// Set for wss:// and https:// URLs.
    pub tls: Option<Arc<TlsClient>>,
}

/// A mode's reaction to its connections.
pub trait Handler {
    fn on_event(&mut self, idx: usize, ev: Ev<'_>, out: &mut Outbox);
    fn on_gone(&mut self, idx: usize, why: Gone);
    /// Readiness of a mode-owned socket (token >= FOREIGN_BASE).
    fn on_foreign(&mut self, _token: usize, _readable: bool, _writable: bool) {}
}

pub struct Pool {
    pub poll: Poll,
    events: Events,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    scratch: Vec<u8>,
    pub rng: Rng,
    target: Target,
    /// More targets: connections go to `target` and these in turn.
    more_targets: Vec<Target>,
    next_target: usize,
    src_ips: u32,
    next_src: u32,
    live: usize,
    ready: Vec<(usize, bool, bool, bool)>,
}

impl Pool {
    /// `src_ips > 1` spreads connects over 127.0.0.1 .. 127.0.0.N (loopback
    /// targets only), each with its own ephemeral port range.
    pub fn new(target: Target, src_ips: u32) -> io::Result<Pool> {
        let loopback =
            matches!(target.url.addr, std::net::SocketAddr::V4(a) if a.ip().is_loopback());
        Ok(Pool {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            conns: Vec::new(),
            free: Vec::new(),
            scratch: vec![0; SCRATCH],
            rng: Rng::from_entropy(),
            target,
            more_targets: Vec::new(),
            next_target: 0,
            src_ips: if loopback { src_ips.max(1) } else { 1 },
            next_src: 0,
            live: 0,
            ready: Vec::new(),
        })
    }

    /// Connections open or opening.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Starts one connection; returns its index.
    pub fn open(&mut self) -> io::Result<usize> {
        let src = if self.src_ips > 1 {
            let n = self.next_src % self.src_ips;
            self.next_src = self.next_src.wrapping_add(1);
            Some(Ipv4Addr::new(127, 0, 0, 1 + n as u8))
        } else {
            None
        };
        let k = self.next_target % (1 + self.more_targets.len());
        self.next_target = self.next_target.wrapping_add(1);
        let target = if k == 0 {
            &self.target
        } else {
            &self.more_targets[k - 1]
        };
        let mut c = Conn::start(target, &mut self.rng, src)?;
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        self.poll.registry().register(
            c.stream.tcp_mut(),
            Token(idx),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.conns[idx] = Some(c);
        self.live += 1;
        Ok(idx)
    }

    /// Spreads later connections over `target` too (round robin with the first).
    pub fn add_target(&mut self, target: Target) {
        self.more_targets.push(target);
    }

    /// Drops a connection (closes the socket) without telling the handler.
    pub fn drop_conn(&mut self, idx: usize) {
        if let Some(mut c) = self.conns.get_mut(idx).and_then(|c| c.take()) {
            c.stream.close_notify();
            let _ = self.poll.registry().deregister(c.stream.tcp_mut());
            self.free.push(idx);
            self.live -= 1;
        }
    }

    /// Drops every connection.
    pub fn drop_all(&mut self) {
        for i in 0..self.conns.len() {
            self.drop_conn(i);
        }
    }

    /// Ends, with `Gone::Error("timeout")`, connections whose handshake (or
    /// local close) has not completed `limit` after they started.
    pub fn expire(&mut self, limit: Duration, h: &mut dyn Handler) {
        let now = sys::now_ns();
        let limit = limit.as_nanos() as u64;
        for i in 0..self.conns.len() {
            let stale = match &self.conns[i] {
                Some(c) => c.phase != Phase::Open && now.saturating_sub(c.t_start) > limit,
                None => false,
            };
            if stale {
                let phase = self.conns[i].as_ref().map(|c| c.phase);
                self.drop_conn(i);
                h.on_gone(i, Gone::Error(format!("timeout in phase {phase:?}")));
            }
        }
    }

    /// Marks an open connection for a local close now (outside an event).
    pub fn close(&mut self, idx: usize, h: &mut dyn Handler) {
        let Some(c) = self.conns.get_mut(idx).and_then(|c| c.as_mut()) else {
            return;
        };
        let gone = match (c.proto, c.phase) {
            (Proto::Ws, Phase::Open) => {
                ws::encode_close(&mut c.out, 1000, self.rng.mask());
                c.phase = Phase::Closing;
                c.t_start = sys::now_ns();
                c.flush().err()
            }
            (Proto::Ws, Phase::Closing) => None,
            _ => Some(Gone::Local),
        };
        if let Some(g) = gone {
            self.drop_conn(idx);
            h.on_gone(idx, g);
        }
    }

    /// Waits up to `timeout` for readiness and dispatches it.
    pub fn turn(&mut self, timeout: Option<Duration>, h: &mut dyn Handler) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.ready.clear();
        for e in self.events.iter() {
            let closed = e.is_read_closed() || e.is_error();
            self.ready.push((
                e.token().0,
                e.is_readable() || closed,
                e.is_writable() || e.is_write_closed() || e.is_error(),
                closed,
            ));
        }
        for k in 0..self.ready.len() {
            let (tok, r, w, closed) = self.ready[k];
            if tok >= FOREIGN_BASE {
                h.on_foreign(tok, r, w);
                continue;
            }
            let Some(c) = self.conns.get_mut(tok).and_then(|c| c.as_mut()) else {
                continue;
            };
            let res = c.handle(
                r,
                closed,
                &mut self.scratch,
                &mut self.rng,
                &mut |ev, ob| h.on_event(tok, ev, ob),
            );
            if let Err(g) = res {
                self.drop_conn(tok);
                h.on_gone(tok, g);
            }
        }
        Ok(())
    }

    /// Lets the caller queue frames on connection `idx` outside an event,
    /// then writes them.
    pub fn send<H: Handler>(&mut self, idx: usize, h: &mut H, f: impl FnOnce(&mut H, &mut Outbox)) {
        let Some(c) = self.conns.get_mut(idx).and_then(|c| c.as_mut()) else {
            return;
        };
        if c.phase != Phase::Open {
            return;
        }
        let mut close = false;
        f(
            h,
            &mut Outbox {
                out: &mut c.out,
                rng: &mut self.rng,
                close: &mut close,
            },
        );
        if let Err(g) = c.flush() {
            self.drop_conn(idx);
            h.on_gone(idx, g);
        } else if close {
            self.close(idx, h);
        }
    }
}
