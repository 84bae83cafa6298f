//! Non-blocking socket syscalls and the waits around them.
//!
//! A connection waits for read readiness from its worker's epoll instance
//! (see [`super::ready`]), then reads
//! with `recv(MSG_DONTWAIT)` straight into a buffer borrowed from the
//! worker's pool. Writes go out with `send`/`sendmsg` and only wait for
//! writability when the kernel's send buffer is full.
//!
//! The hot calls enter the kernel directly rather than through the C
//! library's wrappers: those are thread-cancellation points, and in a
//! process with more than one thread each call would switch asynchronous
//! cancellation on and off around the syscall (about 1.5 % of a worker's
//! time in a WebSocket echo). Nothing here is ever cancelled.

use std::future::Future;
use std::io;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::task::Poll;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use monoio::net::TcpStream;

use crate::io::signal::Signal;

/// Reads at most `want` bytes of what the socket has into the spare capacity
/// of `buf`. `Ok(0)` is end of stream; `WouldBlock` means nothing is there
/// yet; fewer than `want` bytes means the socket had no more.
pub fn recv_into(fd: RawFd, buf: &mut BytesMut, want: usize) -> io::Result<usize> {
    buf.reserve(want);
    let spare = &mut buf.spare_capacity_mut()[..want];
    // SAFETY: recv writes at most spare.len() bytes into the uninitialised tail.
    let n = unsafe {
        sys_recv(
            fd,
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    }?;
    // SAFETY: the kernel initialised n bytes.
    unsafe { buf.advance_mut(n) };
    Ok(n)
}

/// Reads at most `buf.len()` bytes of what the socket has into `buf`
/// (`Ok(0)` is end of stream, `WouldBlock` nothing there yet).
pub fn recv_slice(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: recv writes at most buf.len() bytes into the borrowed slice.
    unsafe { sys_recv(fd, buf.as_mut_ptr(), buf.len(), libc::MSG_DONTWAIT) }
}

/// Whether the peer has sent bytes we have not read yet (a non-blocking peek).
pub fn has_pending(fd: RawFd) -> bool {
    let mut b = 0u8;
    // SAFETY: one byte into a valid local; MSG_PEEK leaves it in the socket.
    let n = unsafe {
        sys_recv(
            fd,
            (&mut b as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    matches!(n, Ok(n) if n > 0)
}

/// One non-blocking `send`.
pub fn send(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data is a valid slice for the duration of the call.
    unsafe {
        syscall_result(libc::syscall(
            libc::SYS_sendto,
            fd as libc::c_long,
            data.as_ptr(),
            data.len(),
            (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as libc::c_long,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::c_long,
        ))
    }
}

/// One non-blocking vectored send of up to `IOV_MAX` slices.
pub fn sendv(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let cnt = bufs.len().min(1024);
    // SAFETY: msghdr is plain data; IoSlice is ABI-compatible with iovec.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = cnt as _;
    // SAFETY: msg points at `cnt` valid slices for the duration of the call.
    unsafe {
        syscall_result(libc::syscall(
            libc::SYS_sendmsg,
            fd as libc::c_long,
            &msg as *const libc::msghdr,
            (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as libc::c_long,
        ))
    }
}

/// `recv` as a direct syscall (see the module comment).
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
unsafe fn sys_recv(fd: RawFd, ptr: *mut u8, len: usize, flags: i32) -> io::Result<usize> {
    syscall_result(libc::syscall(
        libc::SYS_recvfrom,
        fd as libc::c_long,
        ptr,
        len,
        flags as libc::c_long,
        std::ptr::null_mut::<libc::sockaddr>(),
        std::ptr::null_mut::<libc::socklen_t>(),
    ))
}

/// A syscall's return value: a count, or the error it left in `errno`.
pub(crate) fn syscall_result(r: libc::c_long) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
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

/// Waits like [`wait_writable`] (`Ok(true)`), but gives up (`Ok(false)`)
/// as soon as `give_up` holds, checked now and at every kick of `signal`:
/// a subscriber the hub dropped while its socket was full ends at once
/// instead of at the send timeout.
pub async fn wait_writable_or(
    stream: &TcpStream,
    timeout: Duration,
    signal: &Signal,
    give_up: impl Fn() -> bool,
) -> io::Result<bool> {
    let mut writable = std::pin::pin!(wait_writable(stream, timeout));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = writable.as_mut().poll(cx) {
            return Poll::Ready(r.map(|()| true));
        }
        if give_up() {
            return Poll::Ready(Ok(false));
        }
        signal.wake_on_kick(cx);
        Poll::Pending
    })
    .await
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

/// A socket as its bare descriptor, detached from the runtime (whose record
/// of it is an allocation): what a parked connection keeps.
pub fn detach_stream(stream: TcpStream) -> OwnedFd {
    // SAFETY: the runtime hands over the descriptor without closing it
    // (nothing else refers to it: a parked connection has no I/O in flight).
    unsafe { OwnedFd::from_raw_fd(stream.into_raw_fd()) }
}

/// A detached socket handed back to the runtime (on an error the
/// descriptor is closed).
pub fn attach_stream(fd: OwnedFd) -> io::Result<TcpStream> {
    TcpStream::from_std(std::net::TcpStream::from(fd))
}
