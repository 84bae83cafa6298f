//! Non-blocking socket syscalls and the waits around them.
//!
//! A connection waits for read readiness from its worker's epoll instance
//! (see [`super::ready`]), then reads
//! with `recv(MSG_DONTWAIT)` straight into a buffer borrowed from the
//! worker's pool. Writes go out with `send`/`sendmsg` and only wait for
//! writability when the kernel's send buffer is full.

use std::io;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use monoio::net::TcpStream;

/// Reads at most `want` bytes of what the socket has into the spare capacity
/// of `buf`. `Ok(0)` is end of stream; `WouldBlock` means nothing is there
/// yet; fewer than `want` bytes means the socket had no more.
pub fn recv_into(fd: RawFd, buf: &mut BytesMut, want: usize) -> io::Result<usize> {
    buf.reserve(want);
    let spare = &mut buf.spare_capacity_mut()[..want];
    // SAFETY: recv writes at most spare.len() bytes into the uninitialised tail.
    let n = unsafe {
        libc::recv(
            fd,
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel initialised n bytes.
    unsafe { buf.advance_mut(n as usize) };
    Ok(n as usize)
}

/// Whether the peer has sent bytes we have not read yet (a non-blocking peek).
pub fn has_pending(fd: RawFd) -> bool {
    let mut b = 0u8;
    // SAFETY: one byte into a valid local; MSG_PEEK leaves it in the socket.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut b as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n > 0
}

/// One non-blocking `send`.
pub fn send(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data is a valid slice for the duration of the call.
    let n = unsafe {
        libc::send(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One non-blocking vectored send of up to `IOV_MAX` slices.
pub fn sendv(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let cnt = bufs.len().min(1024);
    // SAFETY: msghdr is plain data; IoSlice is ABI-compatible with iovec.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = cnt as _;
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Waits until the socket can take more bytes, at most `timeout`.
pub async fn wait_writable(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    match monoio::time::timeout(timeout, stream.writable(false)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client did not read its data within http.send_timeout",
        )),
    }
}

/// Writes all of `data`, waiting for writability as needed (each wait bounded by `timeout`).
pub async fn write_all(stream: &TcpStream, mut data: &[u8], timeout: Duration) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    while !data.is_empty() {
        match send(fd, data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(stream, timeout).await?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Half-closes the write side so the peer sees end of stream after our last byte.
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: plain syscall on an fd we own.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// Closes gracefully: half-close, then read and discard what the client still
/// sends (bounded by `max`), so that closing does not reset the connection
/// before the client has read our last response.
pub async fn linger_close(stream: &TcpStream, max: Duration) {
    let fd = stream.as_raw_fd();
    shutdown_write(fd);
    let _ = monoio::time::timeout(max, async {
        let mut scratch = BytesMut::new();
        loop {
            if stream.readable(false).await.is_err() {
                return;
            }
            scratch.clear();
            match recv_into(fd, &mut scratch, 4096) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

/// The socket of a connection that parks, as its bare descriptor: the
/// runtime's record of it (an allocation) is let go while it waits.
pub fn park_stream(stream: TcpStream) -> OwnedFd {
    // SAFETY: the runtime hands over the descriptor without closing it
    // (nothing else refers to it: a parked connection has no I/O in flight).
    unsafe { OwnedFd::from_raw_fd(stream.into_raw_fd()) }
}

/// The socket of a parked connection, handed back to the runtime (on an
/// error the descriptor is closed).
pub fn resume_stream(fd: OwnedFd) -> io::Result<TcpStream> {
    TcpStream::from_std(std::net::TcpStream::from(fd))
}
