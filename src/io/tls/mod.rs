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
mod records;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError};
use rustls::{HandshakeKind, ProtocolVersion};

use records::{Opened, RecordError, Records};

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

    fn of(e: &ProcessError) -> HandshakeFailure {
        let ProcessError::Tls(e) = e else {
            return HandshakeFailure::Protocol;
        };
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
    mode: Mode,
    /// What the handshake negotiated (set when it completes).
    negotiated: Negotiated,
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
    /// The socket's descriptor (-1: not known to be open), for the
    /// close_notify sent when the session goes (see `Drop`).
    pub(crate) fd: RawFd,
    /// A close_notify or a fatal alert has been sealed: nothing more to send.
    closed: bool,
}

impl Drop for TlsSession {
    /// A connection the server ends without a graceful close (an idle
    /// timeout, an error, the drain) still says close_notify, as RFC 8446
    /// 6.1 asks: sealed and offered to the socket once, without waiting.
    /// The transport drops its session before its socket, so the
    /// descriptor is still this connection's.
    fn drop(&mut self) {
        if self.closed || self.fd < 0 || !matches!(self.mode, Mode::Records(_)) {
            return;
        }
        self.seal_close_notify();
        if self.tx.pending() {
            let _ = sock::send(self.fd, &self.tx.buf[self.tx.sent..self.tx.sealed]);
        }
        self.tx.sent = self.tx.sealed;
        let _ = self.tx.flush(self.fd);
    }
}

/// rustls during the handshake, then the record layer (see [`records`]).
enum Mode {
    Rustls(Box<UnbufferedServerConnection>),
    Records(Records),
    /// The handover failed (the connection is closing).
    Broken,
}

/// Why input could not be processed.
enum ProcessError {
    Tls(rustls::Error),
    Record(RecordError),
}

impl ProcessError {
    fn into_io(self) -> io::Error {
        let msg = match self {
            ProcessError::Tls(e) => e.to_string(),
            ProcessError::Record(e) => e.to_string(),
        };
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }
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
            mode: Mode::Rustls(Box::new(conn)),
            negotiated: Negotiated {
                tls13: false,
                resumed: false,
            },
            rx: Rx::default(),
            tx: Tx::default(),
            held: 0,
            saw_hello: false,
            peer_closed: false,
            parked_fd: None,
            fd: -1,
            closed: false,
        })
    }

    /// The peer sent close_notify.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// What the handshake negotiated (once it is done).
    pub fn negotiated(&self) -> Negotiated {
        self.negotiated
    }

    /// Whether the handshake is still running.
    fn handshaking(&self) -> bool {
        match &self.mode {
            Mode::Rustls(c) => c.is_handshaking(),
            _ => false,
        }
    }

    /// After the handshake: the keys go to the record layer and rustls's
    /// session is dropped (see [`records`]).
    fn hand_over(&mut self) -> Result<(), HandshakeFailure> {
        if !matches!(self.mode, Mode::Rustls(_)) {
            return Ok(());
        }
        self.drain_rustls();
        let Mode::Rustls(conn) = std::mem::replace(&mut self.mode, Mode::Broken) else {
            return Ok(());
        };
        self.negotiated = Negotiated {
            tls13: conn.protocol_version() == Some(ProtocolVersion::TLSv1_3),
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
        };
        let records = conn
            .dangerous_into_kernel_connection()
            .map_err(|e| e.to_string())
            .and_then(|(secrets, kernel)| Records::new(secrets, kernel));
        match records {
            Ok(r) => {
                self.mode = Mode::Records(r);
                Ok(())
            }
            Err(e) => {
                log::warn!("tls: cannot hand the session to the record layer: {e}");
                Err(HandshakeFailure::Io)
            }
        }
    }

    /// Takes what rustls still holds before it goes: handshake records to
    /// send (into `tx`) and plaintext it kept itself (into the stash).
    fn drain_rustls(&mut self) {
        let Mode::Rustls(conn) = &mut self.mode else {
            return;
        };
        for _ in 0..64 {
            let status = conn.process_tls_records(&mut []);
            match status.state {
                Ok(ConnectionState::ReadTraffic(mut t)) => match t.next_record() {
                    Some(Ok(rec)) => self.rx.stash.extend_from_slice(rec.payload),
                    _ => return,
                },
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    let room = self.tx.room(4096);
                    match e.encode(room) {
                        Ok(n) => self.tx.sealed += n,
                        Err(_) => return,
                    }
                }
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                _ => return,
            }
        }
    }

    /// A parked connection keeps no expanded keys.
    pub fn shrink(&mut self) {
        if let Mode::Records(r) = &mut self.mode {
            r.shrink();
        }
    }

    /// The record layer's part of [`TlsSession::process`].
    fn process_records(&mut self) -> Result<Option<bool>, ProcessError> {
        let Mode::Records(rec) = &mut self.mode else {
            return Err(ProcessError::Record(RecordError::Unexpected));
        };
        loop {
            if self.peer_closed {
                return Ok(Some(false));
            }
            let head = self.rx.head;
            let avail = &mut self.rx.buf[head..self.rx.filled];
            let len = match rec.complete(avail).map_err(ProcessError::Record)? {
                Some(len) => len,
                None => {
                    if self.rx.head == self.rx.filled {
                        self.rx.settle();
                    }
                    return Ok(None);
                }
            };
            match rec.open(&mut avail[..len]).map_err(ProcessError::Record)? {
                Opened::Data(a, b) if a < b => {
                    self.rx.plain = (head + a, head + b);
                    self.rx.discard = len;
                    return Ok(Some(true));
                }
                Opened::Data(..) | Opened::Nothing => self.rx.head += len,
                Opened::Closed => {
                    self.rx.head += len;
                    self.peer_closed = true;
                    return Ok(Some(false));
                }
            }
        }
    }

    /// Works through the buffered records until plaintext is ready
    /// (`Some(true)`), the peer closed (`Some(false)`), or more input is
    /// needed (`None`). Handshake and alert records on the way are sealed
    /// into `tx` and sent as far as the socket takes them.
    fn process(&mut self, fd: RawFd) -> Result<Option<bool>, ProcessError> {
        let conn = match &mut self.mode {
            Mode::Rustls(c) => c,
            Mode::Records(_) => return self.process_records(),
            Mode::Broken => return Err(ProcessError::Record(RecordError::Unexpected)),
        };
        loop {
            if self.peer_closed {
                return Ok(Some(false));
            }
            let (base, span) = (self.rx.buf.as_ptr() as usize, self.rx.buf.len());
            let status = conn.process_tls_records(&mut self.rx.buf[self.rx.head..self.rx.filled]);
            let mut discard = status.discard;
            let state = match status.state {
                Ok(s) => s,
                Err(e) => {
                    self.rx.head += discard;
                    return Err(ProcessError::Tls(e));
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
                        return Err(ProcessError::Tls(e));
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
                    return Err(ProcessError::Tls(rustls::Error::General(
                        "early data is not accepted".into(),
                    )));
                }
            }
            self.rx.head += discard;
        }
    }

    /// Seals an alert the session queued after an error and sends what it can of it.
    fn send_alert(&mut self, fd: RawFd, err: &ProcessError) {
        self.closed = true;
        match (&mut self.mode, err) {
            (Mode::Rustls(conn), _) => {
                let status = conn.process_tls_records(&mut []);
                if let Ok(ConnectionState::EncodeTlsData(mut e)) = status.state {
                    let room = self.tx.room(512);
                    if let Ok(n) = e.encode(room) {
                        self.tx.sealed += n;
                    }
                }
            }
            (Mode::Records(r), ProcessError::Record(e)) => {
                let desc = match e {
                    RecordError::Overflow => 22,  // record_overflow
                    RecordError::BadRecord => 20, // bad_record_mac
                    RecordError::Alert(_) => return,
                    _ => 10, // unexpected_message
                };
                let room = self.tx.room(64);
                if let Ok(n) = r.seal_alert(desc, room) {
                    self.tx.sealed += n;
                }
            }
            _ => {}
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
                    self.send_alert(fd, &e);
                    break Err(e.into_io());
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
        let rest = &self.rx.buf
            [self.rx.head.min(self.rx.buf.len())..self.rx.filled.min(self.rx.buf.len())];
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
        let Mode::Records(rec) = &mut self.mode else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if rec.update_due() {
            let room = self.tx.room(64);
            let n = rec
                .seal_key_update(room)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            self.tx.sealed += n;
        }
        let room = self.tx.room(plain.len() + rec.overhead());
        let n = rec
            .seal(0x17, plain, room)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        self.tx.sealed += n;
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
        if self.closed {
            return;
        }
        self.closed = true;
        if let Mode::Records(rec) = &mut self.mode {
            if rec.update_due() {
                let room = self.tx.room(64);
                if let Ok(n) = rec.seal_key_update(room) {
                    self.tx.sealed += n;
                }
            }
            let room = self.tx.room(64);
            if let Ok(n) = rec.seal_close_notify(room) {
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
            if self.saw_hello && !self.handshaking() {
                self.hand_over()?;
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
                Ok(Some(true)) if !self.handshaking() => {
                    self.hand_over()?;
                    return Ok(if self.tx.pending() {
                        HsStep::WantWrite
                    } else {
                        HsStep::Done
                    });
                }
                Ok(Some(true)) => return Err(HandshakeFailure::Protocol),
                Ok(None) => {}
                Err(e) => {
                    self.send_alert(fd, &e);
                    return Err(HandshakeFailure::of(&e));
                }
            }
            if !self.handshaking() {
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
