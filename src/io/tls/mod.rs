//! TLS on the worker that owns the connection: the handshake and the record
//! layer run inside the connection's own task, with rustls's unbuffered API,
//! so the buffers are ours and an idle connection holds none.
//!
//! - **Receiving.** Ciphertext is read into a buffer taken from this
//!   thread's free list, records are decrypted in place, and the plaintext
//!   is copied into the driver's pooled read buffer. The buffer goes back
//!   to the free list as soon as it holds nothing (a partial record keeps
//!   it, at most one record's worth).
//! - **Sending.** What the driver sends (one buffer, or its queue of frames
//!   gathered into one) is sealed into a single record of up to 16 KiB and
//!   written with one `send`: a burst of small messages costs one record
//!   and one syscall, as its plaintext costs one write. Ciphertext the
//!   socket does not take stays here until the next send; until it has
//!   gone, the last byte of the plaintext it carries is reported unsent
//!   (the driver offers it again, as it offers any unwritten rest), so a
//!   driver never mistakes "sealed" for "written" and never parks or waits
//!   for input with bytes stuck here.
//! - **Parking.** A parked TLS connection keeps its session (keys and
//!   sequence numbers, boxed) and its descriptor; nothing else.
//!
//! The certificates, their live reload and the rustls configuration are in
//! [`certs`].

pub mod certs;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};
use rustls::{HandshakeKind, ProtocolVersion};

use super::signal::Signal;
use super::{sock, writeq};

/// The largest record on the wire: header, 16 KiB of plaintext, and the
/// most expansion a peer may add (RFC 8446 5.2).
const MAX_RECORD: usize = 5 + 16384 + 256;

/// Plaintext sealed into one record by one send.
const BATCH: usize = 16384;

/// Size of every receive and send buffer (one whole record and a little).
const BUF_SIZE: usize = 17 * 1024;

/// Free buffers kept per thread.
const MAX_FREE: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static GATHER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(BATCH));
}

/// A zeroed buffer of [`BUF_SIZE`] bytes (its whole length usable).
fn take_buf() -> Vec<u8> {
    FREE.with(|f| f.borrow_mut().pop())
        .unwrap_or_else(|| vec![0; BUF_SIZE])
}

/// Gives a buffer back to this thread's free list (or frees it).
fn give_buf(buf: Vec<u8>) {
    if buf.len() != BUF_SIZE {
        return;
    }
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < MAX_FREE {
            f.push(buf);
        }
    });
}

/// How a TLS handshake ended without a session (each is counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// `tls.handshake_timeout` ran out.
    Timeout,
    /// The client closed the connection during the handshake.
    Eof,
    /// The first bytes were not a TLS record.
    NotTls,
    /// The first bytes were a plain HTTP request (answered 400).
    PlainHttp,
    /// The client sent an alert (it refused our certificate, say).
    PeerAlert,
    /// No protocol version, cipher suite or group in common.
    Incompatible,
    /// A malformed or unexpected message.
    Protocol,
    /// The socket failed, or the worker is draining.
    Io,
}

impl HandshakeFailure {
    /// The reason's label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Eof => "eof",
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::PlainHttp => "plain_http",
            HandshakeFailure::PeerAlert => "peer_alert",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::Protocol => "protocol",
            HandshakeFailure::Io => "io",
        }
    }

    fn of(e: &rustls::Error) -> HandshakeFailure {
        match e {
            rustls::Error::AlertReceived(_) => HandshakeFailure::PeerAlert,
            rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => {
                HandshakeFailure::Incompatible
            }
            _ => HandshakeFailure::Protocol,
        }
    }
}

/// What a finished handshake negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// TLS 1.3 (else 1.2).
    pub tls13: bool,
    /// The session was resumed from a ticket.
    pub resumed: bool,
}

/// One connection's TLS state: the rustls session and the bytes in flight
/// through it (see the module documentation).
pub struct TlsSession {
    conn: UnbufferedServerConnection,
    rx: Rx,
    tx: Tx,
    /// Plaintext bytes sealed into `tx` but reported unsent (0 or 1).
    held: usize,
    /// The handshake's first record has been seen to be TLS.
    saw_hello: bool,
    /// The peer sent close_notify.
    peer_closed: bool,
    /// The socket, while the connection is parked (see `transport::ParkedTransport`).
    pub(crate) parked_fd: Option<std::os::fd::OwnedFd>,
}

/// Received bytes: `buf[head..filled]` not processed yet; `buf` is empty
/// (no allocation) while nothing is buffered.
#[derive(Default)]
struct Rx {
    buf: Vec<u8>,
    head: usize,
    filled: usize,
    /// Decrypted plaintext in `buf` not handed out yet.
    plain: (usize, usize),
    /// Bytes past `head` to drop once that plaintext is handed out.
    discard: usize,
    /// Plaintext not in `buf` (see [`TlsSession::recv_into`]), handed out first.
    stash: Vec<u8>,
}

/// Sealed bytes not sent yet: `buf[sent..sealed]`; `buf` is empty (no
/// allocation) while nothing waits.
#[derive(Default)]
struct Tx {
    buf: Vec<u8>,
    sent: usize,
    sealed: usize,
}

impl Tx {
    fn pending(&self) -> bool {
        self.sent < self.sealed
    }

    /// Room for `need` more bytes at the end.
    fn room(&mut self, need: usize) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = take_buf();
        }
        if self.sent == self.sealed {
            self.sent = 0;
            self.sealed = 0;
        }
        if self.buf.len() - self.sealed < need {
            self.buf.resize(self.sealed + need.max(BUF_SIZE), 0);
        }
        &mut self.buf[self.sealed..]
    }

    /// Sends what is sealed; `Ok(true)` once all of it has gone (the buffer
    /// is then back in the free list).
    fn flush(&mut self, fd: RawFd) -> io::Result<bool> {
        while self.sent < self.sealed {
            match sock::send(fd, &self.buf[self.sent..self.sealed]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !self.buf.is_empty() {
            self.sent = 0;
            self.sealed = 0;
            give_buf(std::mem::take(&mut self.buf));
        }
        Ok(true)
    }
}

impl Rx {
    /// The buffer goes back to the free list when it holds nothing.
    fn settle(&mut self) {
        if self.head == self.filled && self.plain.0 == self.plain.1 && !self.buf.is_empty() {
            self.head = 0;
            self.filled = 0;
            self.plain = (0, 0);
            give_buf(std::mem::take(&mut self.buf));
        }
    }

    /// Room to receive into; `None` when a whole buffer holds no complete record.
    fn room(&mut self) -> Option<&mut [u8]> {
        if self.buf.is_empty() {
            self.buf = take_buf();
        }
        if self.head > 0 && self.buf.len() - self.filled < MAX_RECORD {
            self.buf.copy_within(self.head..self.filled, 0);
            self.filled -= self.head;
            if self.plain.1 > self.plain.0 {
                self.plain = (self.plain.0 - self.head, self.plain.1 - self.head);
            }
            self.head = 0;
        }
        if self.filled == self.buf.len() {
            return None;
        }
        Some(&mut self.buf[self.filled..])
    }

    /// Reads from the socket: the count (0 = end of stream) and whether
    /// the socket gave less than there was room for (it has no more).
    fn fill(&mut self, fd: RawFd) -> io::Result<(usize, bool)> {
        let Some(room) = self.room() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS record larger than the protocol allows",
            ));
        };
        let want = room.len();
        let n = sock::recv_slice(fd, room)?;
        self.filled += n;
        Ok((n, n < want))
    }
}

impl TlsSession {
    /// A server session under `config`.
    pub fn new(config: Arc<rustls::ServerConfig>) -> io::Result<TlsSession> {
        let conn = UnbufferedServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsSession {
            conn,
            rx: Rx::default(),
            tx: Tx::default(),
            held: 0,
            saw_hello: false,
            peer_closed: false,
            parked_fd: None,
        })
    }

    /// What the handshake negotiated (once it is done).
    pub fn negotiated(&self) -> Negotiated {
        Negotiated {
            tls13: self.conn.protocol_version() == Some(ProtocolVersion::TLSv1_3),
            resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
        }
    }

    /// Works through the buffered records until plaintext is ready
    /// (`Some(true)`), the peer closed (`Some(false)`), or more input is
    /// needed (`None`). Handshake and alert records on the way are sealed
    /// into `tx` and sent as far as the socket takes them.
    fn process(&mut self, fd: RawFd) -> Result<Option<bool>, rustls::Error> {
        loop {
            if self.peer_closed {
                return Ok(Some(false));
            }
            let (base, span) = (self.rx.buf.as_ptr() as usize, self.rx.buf.len());
            let status = self
                .conn
                .process_tls_records(&mut self.rx.buf[self.rx.head..self.rx.filled]);
            let mut discard = status.discard;
            let state = match status.state {
                Ok(s) => s,
                Err(e) => {
                    self.rx.head += discard;
                    return Err(e);
                }
            };
            match state {
                ConnectionState::ReadTraffic(mut t) => match t.next_record() {
                    Some(Ok(rec)) => {
                        discard += rec.discard;
                        let at = rec.payload.as_ptr() as usize;
                        if at < base || at >= base + span {
                            // plaintext rustls kept itself (data that came
                            // with the handshake): copied out, rare
                            self.rx.stash.extend_from_slice(rec.payload);
                            self.rx.head += discard;
                            return Ok(Some(true));
                        }
                        let start = at - base;
                        let end = start + rec.payload.len();
                        self.rx.plain = (start, end);
                        self.rx.discard = discard;
                        if start == end {
                            self.rx.head += self.rx.discard;
                            self.rx.discard = 0;
                            continue;
                        }
                        return Ok(Some(true));
                    }
                    Some(Err(e)) => {
                        self.rx.head += discard;
                        return Err(e);
                    }
                    None => {}
                },
                ConnectionState::EncodeTlsData(mut e) => {
                    let mut need = 4096;
                    loop {
                        let room = self.tx.room(need);
                        match e.encode(room) {
                            Ok(n) => {
                                self.tx.sealed += n;
                                break;
                            }
                            Err(EncodeError::InsufficientSize(s)) => need = s.required_size,
                            Err(_) => break,
                        }
                    }
                }
                ConnectionState::TransmitTlsData(t) => {
                    // what the socket does not take now goes with the next write
                    let _ = self.tx.flush(fd);
                    t.done();
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.rx.head += discard;
                    self.peer_closed = true;
                    return Ok(Some(false));
                }
                ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => {
                    self.rx.head += discard;
                    if self.rx.head == self.rx.filled {
                        self.rx.settle();
                    }
                    return Ok(None);
                }
                _ => {
                    self.rx.head += discard;
                    return Err(rustls::Error::General("early data is not accepted".into()));
                }
            }
            self.rx.head += discard;
        }
    }

    /// Seals an alert the session queued after an error and sends what it can of it.
    fn send_alert(&mut self, fd: RawFd) {
        let status = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::EncodeTlsData(mut e)) = status.state {
            let room = self.tx.room(512);
            if let Ok(n) = e.encode(room) {
                self.tx.sealed += n;
            }
        }
        let _ = self.tx.flush(fd);
    }

    /// Reads at most `want` bytes of plaintext into `buf` (the contract of
    /// [`sock::recv_into`]: fewer than `want` means the socket had no more).
    pub fn recv_into(&mut self, fd: RawFd, buf: &mut BytesMut, want: usize) -> io::Result<usize> {
        let mut got = 0;
        let mut drained = false;
        let r = loop {
            if !self.rx.stash.is_empty() {
                let n = self.rx.stash.len().min(want - got);
                buf.extend_from_slice(&self.rx.stash[..n]);
                self.rx.stash.drain(..n);
                if self.rx.stash.is_empty() {
                    self.rx.stash = Vec::new();
                }
                got += n;
                if got == want {
                    break Ok(got);
                }
            }
            let (a, b) = self.rx.plain;
            if a < b {
                let n = (b - a).min(want - got);
                buf.extend_from_slice(&self.rx.buf[a..a + n]);
                self.rx.plain.0 += n;
                got += n;
                if self.rx.plain.0 == self.rx.plain.1 {
                    self.rx.head += self.rx.discard;
                    self.rx.discard = 0;
                    self.rx.plain = (0, 0);
                }
                if got == want {
                    break Ok(got);
                }
            }
            match self.process(fd) {
                Ok(Some(true)) => continue,
                Ok(Some(false)) => break Ok(got),
                Ok(None) => {}
                Err(e) => {
                    self.send_alert(fd);
                    break Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            if drained {
                break if got > 0 {
                    Ok(got)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            match self.rx.fill(fd) {
                Ok((0, _)) => break Ok(got),
                Ok((_, short)) => drained = short,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => break Ok(got),
                Err(e) => break Err(e),
            }
        };
        self.rx.settle();
        r
    }

    /// Whether input is waiting: plaintext, a whole record, or bytes in the socket.
    pub fn has_pending(&self, fd: RawFd) -> bool {
        if self.rx.plain.0 < self.rx.plain.1 || !self.rx.stash.is_empty() {
            return true;
        }
        let rest = &self.rx.buf[self.rx.head.min(self.rx.buf.len())..self.rx.filled.min(self.rx.buf.len())];
        if rest.len() >= 5 && rest.len() >= 5 + u16::from_be_bytes([rest[3], rest[4]]) as usize {
            return true;
        }
        sock::has_pending(fd)
    }

    /// Before new plaintext: sends what is sealed. `Some(n)`: the held
    /// byte(s) of the caller's data went out now (report them).
    fn before_send(&mut self, fd: RawFd) -> io::Result<Option<usize>> {
        if self.tx.pending() && !self.tx.flush(fd)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.held > 0 {
            return Ok(Some(std::mem::take(&mut self.held)));
        }
        Ok(None)
    }

    /// Seals `plain` (at most [`BATCH`] bytes) into one record and sends it.
    fn seal_and_send(&mut self, fd: RawFd, plain: &[u8]) -> io::Result<usize> {
        if plain.is_empty() {
            return Ok(0);
        }
        loop {
            let status = self.conn.process_tls_records(&mut []);
            match status.state.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))? {
                ConnectionState::WriteTraffic(mut w) => {
                    let mut need = plain.len() + 64;
                    loop {
                        let room = self.tx.room(need);
                        match w.encrypt(plain, room) {
                            Ok(n) => {
                                self.tx.sealed += n;
                                break;
                            }
                            Err(EncryptError::InsufficientSize(s)) => need = s.required_size,
                            Err(e) => return Err(io::Error::other(e.to_string())),
                        }
                    }
                    break;
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    let room = self.tx.room(4096);
                    if let Ok(n) = e.encode(room) {
                        self.tx.sealed += n;
                    }
                }
                ConnectionState::TransmitTlsData(t) => t.done(),
                ConnectionState::Closed | ConnectionState::PeerClosed => {
                    return Err(io::ErrorKind::BrokenPipe.into())
                }
                _ => return Err(io::ErrorKind::WouldBlock.into()),
            }
        }
        if self.tx.flush(fd)? {
            return Ok(plain.len());
        }
        // Sealed but not all sent: the last byte counts as unsent until it has gone.
        self.held = 1;
        if plain.len() > 1 {
            Ok(plain.len() - 1)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// Sends what it can of `data` now (see the module documentation).
    pub fn send(&mut self, fd: RawFd, data: &[u8]) -> io::Result<usize> {
        if let Some(h) = self.before_send(fd)? {
            return Ok(h);
        }
        self.seal_and_send(fd, &data[..data.len().min(BATCH)])
    }

    /// Sends what it can of a queue of frames now: the front frames,
    /// gathered into one record, popping what was written.
    pub fn send_queue(&mut self, fd: RawFd, queue: &mut VecDeque<Bytes>) -> io::Result<usize> {
        let n = match self.before_send(fd)? {
            Some(h) => h,
            None if queue.len() == 1 || queue.front().is_some_and(|f| f.len() >= BATCH) => {
                let front = &queue[0];
                self.seal_and_send(fd, &front[..front.len().min(BATCH)])?
            }
            None => GATHER.with(|g| {
                let mut g = g.borrow_mut();
                g.clear();
                for f in queue.iter() {
                    let take = f.len().min(BATCH - g.len());
                    g.extend_from_slice(&f[..take]);
                    if g.len() == BATCH {
                        break;
                    }
                }
                self.seal_and_send(fd, &g)
            })?,
        };
        writeq::consume(queue, n);
        Ok(n)
    }

    /// Seals a close_notify alert (sent with what is still sealed).
    fn seal_close_notify(&mut self) {
        let status = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::WriteTraffic(mut w)) = status.state {
            let room = self.tx.room(64);
            if let Ok(n) = w.queue_close_notify(room) {
                self.tx.sealed += n;
            }
        }
    }

    /// Advances the handshake as far as the socket allows.
    fn handshake_step(&mut self, fd: RawFd) -> Result<HsStep, HandshakeFailure> {
        loop {
            if self.tx.pending() {
                match self.tx.flush(fd) {
                    Ok(true) => {}
                    Ok(false) => return Ok(HsStep::WantWrite),
                    Err(_) => return Err(HandshakeFailure::Io),
                }
            }
            if !self.saw_hello && self.rx.filled > self.rx.head {
                match self.rx.buf[self.rx.head] {
                    0x16 => self.saw_hello = true,
                    b'A'..=b'Z' => return Err(HandshakeFailure::PlainHttp),
                    _ => return Err(HandshakeFailure::NotTls),
                }
            }
            if self.saw_hello && !self.conn.is_handshaking() {
                return Ok(if self.tx.pending() {
                    HsStep::WantWrite
                } else {
                    HsStep::Done
                });
            }
            match self.process(fd) {
                Ok(Some(false)) => return Err(HandshakeFailure::Eof),
                // application data right behind the client's Finished: it
                // waits (decrypted) for the driver's first read
                Ok(Some(true)) if !self.conn.is_handshaking() => return Ok(HsStep::Done),
                Ok(Some(true)) => return Err(HandshakeFailure::Protocol),
                Ok(None) => {}
                Err(e) => {
                    self.send_alert(fd);
                    return Err(HandshakeFailure::of(&e));
                }
            }
            if !self.conn.is_handshaking() {
                continue;
            }
            if self.tx.pending() {
                continue;
            }
            match self.rx.fill(fd) {
                Ok((0, _)) => return Err(HandshakeFailure::Eof),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.rx.settle();
                    return Ok(HsStep::WantRead);
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(HandshakeFailure::Protocol)
                }
                Err(_) => return Err(HandshakeFailure::Io),
            }
        }
    }

    /// Memory this session holds beyond its own struct (for tests).
    pub fn buffered_bytes(&self) -> usize {
        self.rx.buf.capacity() + self.tx.buf.capacity()
    }
}

enum HsStep {
    Done,
    WantRead,
    WantWrite,
}

/// Runs the server side of the handshake on `stream` until the session
/// is ready, the deadline passes, or `give_up` holds at a kick of `signal`.
/// Read readiness comes from the worker's epoll registration (`signal`);
/// write readiness from the runtime.
pub async fn handshake(
    stream: &TcpStream,
    session: &RefCell<TlsSession>,
    signal: &Signal,
    timeout: Duration,
    give_up: impl Fn() -> bool,
) -> Result<Negotiated, HandshakeFailure> {
    let fd = stream.as_raw_fd();
    let deadline = Instant::now() + timeout;
    signal.set_deadline(Some(deadline));
    let r = loop {
        let step = session.borrow_mut().handshake_step(fd);
        match step {
            Ok(HsStep::Done) => {
                // Records that came with the client's Finished may already
                // be buffered here: the driver reads before it waits.
                signal.mark_readable(false);
                break Ok(session.borrow().negotiated());
            }
            Ok(HsStep::WantRead) => {
                signal.drained();
                let expired = monoio::select! {
                    _ = signal.readable() => false,
                    _ = signal.kicked() => signal.take_expired(),
                };
                if expired {
                    break Err(HandshakeFailure::Timeout);
                }
                if give_up() {
                    break Err(HandshakeFailure::Io);
                }
            }
            Ok(HsStep::WantWrite) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match monoio::time::timeout(left, stream.writable(false)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break Err(HandshakeFailure::Io),
                    Err(_) => break Err(HandshakeFailure::Timeout),
                }
            }
            Err(f) => break Err(f),
        }
    };
    signal.set_deadline(None);
    r
}

/// Closes a TLS connection gracefully: close_notify, what is still sealed,
/// then the socket's own graceful close.
pub async fn close(stream: &TcpStream, session: &RefCell<TlsSession>, max: Duration) {
    let fd = stream.as_raw_fd();
    let deadline = Instant::now() + max;
    session.borrow_mut().seal_close_notify();
    loop {
        let done = session.borrow_mut().tx.flush(fd);
        match done {
            Ok(true) | Err(_) => break,
            Ok(false) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match monoio::time::timeout(left, stream.writable(false)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
        }
    }
    sock::linger_close(stream, deadline.saturating_duration_since(Instant::now())).await
}
