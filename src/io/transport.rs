//! The transport: a connection's byte stream as every driver reads and
//! writes it (HTTP, SSE, WebSocket): a plain TCP socket, or TLS over one
//! ([`super::tls`]). The drivers do not tell them apart: they only ever
//! read into a pooled buffer, send bytes or a queue of frames, wait for
//! room to write, close gracefully, and park.
//!
//! A parked connection keeps a [`ParkedTransport`]: its bare descriptor
//! and, for TLS, its boxed session (keys and sequence numbers), so an idle
//! connection costs no more than that whichever transport it uses.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;

use super::signal::Signal;
use super::tls::TlsSession;
use super::{sock, writeq};

/// A connection's byte stream (see the module documentation).
pub struct Transport {
    // (the session first: dropped before the socket, it may still send
    // its close_notify on it)
    tls: Option<Box<RefCell<TlsSession>>>,
    stream: TcpStream,
}

/// A parked connection's transport: what it needs to carry on, and nothing
/// the runtime would have to keep for it. One word: a plain socket's
/// descriptor (tagged in the low bit), or the boxed TLS session holding
/// its descriptor, so the parked state of every idle connection stays
/// within one small allocation.
pub struct ParkedTransport {
    /// `fd << 1 | 1`, or a `Box<RefCell<TlsSession>>` pointer (aligned, low bit 0).
    bits: std::num::NonZeroUsize,
}

impl Drop for ParkedTransport {
    fn drop(&mut self) {
        // (the descriptor closes, or the session and its descriptor go)
        drop(self.take());
    }
}
impl Transport {
    /// A plain TCP connection.
    pub fn tcp(stream: TcpStream) -> Transport {
        Transport { stream, tls: None }
    }

    /// A TLS connection (its handshake still to run: [`Transport::tls_session`]).
    pub fn tls(stream: TcpStream, mut session: TlsSession) -> Transport {
        session.fd = stream.as_raw_fd();
        Transport {
            stream,
            tls: Some(Box::new(RefCell::new(session))),
        }
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The socket and the TLS session, for the handshake.
    pub fn tls_session(&self) -> Option<(&TcpStream, &RefCell<TlsSession>)> {
        self.tls.as_deref().map(|s| (&self.stream, s))
    }

    /// The socket's descriptor, for the worker's readiness registration (no I/O goes through it).
    pub fn readiness_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Reads at most `want` bytes into the spare capacity of `buf`. `Ok(0)`
    /// is end of stream; `WouldBlock` means nothing is there yet; fewer than
    /// `want` bytes means there was no more.
    #[inline]
    pub fn recv_into(&self, buf: &mut BytesMut, want: usize) -> io::Result<usize> {
        let fd = self.stream.as_raw_fd();
        match &self.tls {
            None => sock::recv_into(fd, buf, want),
            Some(t) => t.borrow_mut().recv_into(fd, buf, want),
        }
    }

    /// Whether the end of the input has been seen behind bytes already
    /// returned (a TLS close_notify): the next read returns `Ok(0)`, and
    /// no readiness event will announce it.
    pub fn input_ended(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.borrow().peer_closed())
    }

    /// Whether the peer has sent bytes not read yet.
    pub fn has_pending(&self) -> bool {
        let fd = self.stream.as_raw_fd();
        match &self.tls {
            None => sock::has_pending(fd),
            Some(t) => t.borrow().has_pending(fd),
        }
    }

    /// Sends what it can of `data` now, without waiting.
    #[inline]
    pub fn send(&self, data: &[u8]) -> io::Result<usize> {
        let fd = self.stream.as_raw_fd();
        match &self.tls {
            None => sock::send(fd, data),
            Some(t) => t.borrow_mut().send(fd, data),
        }
    }

    /// Sends what it can of a queue of frames now (one write), popping what
    /// was written and trimming a frame written in part.
    #[inline]
    pub fn send_queue(&self, queue: &mut VecDeque<Bytes>) -> io::Result<usize> {
        let fd = self.stream.as_raw_fd();
        match &self.tls {
            None => writeq::write_queue(fd, queue),
            Some(t) => t.borrow_mut().send_queue(fd, queue),
        }
    }

    /// Writes all of `data`, waiting for room as needed (each wait bounded by `timeout`).
    pub async fn write_all(&self, mut data: &[u8], timeout: Duration) -> io::Result<()> {
        if self.tls.is_none() {
            return sock::write_all(&self.stream, data, timeout).await;
        }
        while !data.is_empty() {
            match self.send(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    sock::wait_writable(&self.stream, timeout).await?
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits until the peer can take more bytes, at most `timeout`
    /// (`Ok(true)`), giving up (`Ok(false)`) as soon as `give_up` holds,
    /// checked now and at every kick of `signal`.
    pub async fn wait_writable_or(
        &self,
        timeout: Duration,
        signal: &Signal,
        give_up: impl Fn() -> bool,
    ) -> io::Result<bool> {
        sock::wait_writable_or(&self.stream, timeout, signal, give_up).await
    }

    /// Closes gracefully: ends the write side (after a TLS close_notify),
    /// then reads and discards what the peer still sends (at most `max`),
    /// so the close does not reset the connection before the peer has read
    /// the last bytes.
    pub async fn linger_close(&self, max: Duration) {
        match &self.tls {
            None => sock::linger_close(&self.stream, max).await,
            Some(t) => super::tls::close(&self.stream, t, max).await,
        }
    }

    /// The transport of a connection that parks (see the module documentation).
    pub fn park(self) -> ParkedTransport {
        let fd = sock::detach_stream(self.stream);
        let bits = match self.tls {
            None => (fd.into_raw_fd() as usize) << 1 | 1,
            Some(session) => {
                let mut s = session.borrow_mut();
                s.parked_fd = Some(fd);
                s.shrink();
                drop(s);
                Box::into_raw(session) as usize
            }
        };
        ParkedTransport {
            bits: std::num::NonZeroUsize::new(bits).expect("tagged or a box: never 0"),
        }
    }
}

/// What a [`ParkedTransport`] holds, owned again.
enum Unparked {
    Tcp(OwnedFd),
    // (the session first: dropped before the descriptor)
    Tls(Box<RefCell<TlsSession>>, OwnedFd),
    Gone,
}

impl ParkedTransport {
    /// Takes what the word holds (once: the word then holds nothing).
    fn take(&mut self) -> Unparked {
        let bits = self.bits.get();
        if bits == usize::MAX {
            return Unparked::Gone;
        }
        self.bits = std::num::NonZeroUsize::MAX;
        if bits & 1 == 1 {
            // SAFETY: `park` stored a descriptor it owned, and nothing else has it.
            Unparked::Tcp(unsafe { OwnedFd::from_raw_fd((bits >> 1) as RawFd) })
        } else {
            // SAFETY: `park` stored this box's pointer; it is taken back once.
            let session = unsafe { Box::from_raw(bits as *mut RefCell<TlsSession>) };
            let fd = session.borrow_mut().parked_fd.take();
            match fd {
                Some(fd) => Unparked::Tls(session, fd),
                None => {
                    session.borrow_mut().fd = -1;
                    Unparked::Gone
                }
            }
        }
    }

    /// The transport again, for a connection that resumes (on an error the
    /// connection is closed).
    pub fn resume(mut self) -> io::Result<Transport> {
        match self.take() {
            Unparked::Tcp(fd) => sock::attach_stream(fd).map(Transport::tcp),
            Unparked::Tls(session, fd) => match sock::attach_stream(fd) {
                Ok(stream) => Ok(Transport {
                    stream,
                    tls: Some(session),
                }),
                Err(e) => {
                    // the descriptor is gone: the session must not write to it
                    session.borrow_mut().fd = -1;
                    Err(e)
                }
            },
            Unparked::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}
