//! The transport: a connection's byte stream as every driver reads and
//! writes it (HTTP, SSE, WebSocket). Today it is a plain TCP socket; an
//! encrypted stream slots in here, underneath, without the drivers
//! changing: they only ever read into a pooled buffer, send bytes or a
//! queue of frames, wait for room to write, close gracefully, and park.
//!
//! A parked connection keeps a [`ParkedTransport`]: for a plain socket its
//! bare descriptor (4 bytes), so an idle connection costs no more than its
//! socket whichever transport it uses (another transport keeps its own
//! session state there, boxed).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;

use super::signal::Signal;
use super::{sock, writeq};

/// A connection's byte stream (see the module documentation).
pub struct Transport {
    stream: TcpStream,
}

/// A parked connection's transport: what it needs to carry on, and nothing
/// the runtime would have to keep for it.
pub struct ParkedTransport {
    fd: OwnedFd,
}

impl Transport {
    /// A plain TCP connection.
    pub fn tcp(stream: TcpStream) -> Transport {
        Transport { stream }
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
        sock::recv_into(self.stream.as_raw_fd(), buf, want)
    }

    /// Whether the peer has sent bytes not read yet.
    pub fn has_pending(&self) -> bool {
        sock::has_pending(self.stream.as_raw_fd())
    }

    /// Sends what it can of `data` now, without waiting.
    #[inline]
    pub fn send(&self, data: &[u8]) -> io::Result<usize> {
        sock::send(self.stream.as_raw_fd(), data)
    }

    /// Sends what it can of a queue of frames now (one vectored write),
    /// popping what was written and trimming a frame written in part.
    #[inline]
    pub fn send_queue(&self, queue: &mut VecDeque<Bytes>) -> io::Result<usize> {
        writeq::write_queue(self.stream.as_raw_fd(), queue)
    }

    /// Writes all of `data`, waiting for room as needed (each wait bounded by `timeout`).
    pub async fn write_all(&self, data: &[u8], timeout: Duration) -> io::Result<()> {
        sock::write_all(&self.stream, data, timeout).await
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

    /// Closes gracefully: ends the write side, then reads and discards what
    /// the peer still sends (at most `max`), so the close does not reset the
    /// connection before the peer has read the last bytes.
    pub async fn linger_close(&self, max: Duration) {
        sock::linger_close(&self.stream, max).await
    }

    /// The transport of a connection that parks (see the module documentation).
    pub fn park(self) -> ParkedTransport {
        ParkedTransport {
            fd: sock::detach_stream(self.stream),
        }
    }
}

impl ParkedTransport {
    /// The transport again, for a connection that resumes (on an error the
    /// connection is closed).
    pub fn resume(self) -> io::Result<Transport> {
        sock::attach_stream(self.fd).map(Transport::tcp)
    }
}
