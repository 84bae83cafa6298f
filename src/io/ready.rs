//! Read readiness of a worker's connections through one epoll instance.
//!
//! Waiting with an io_uring poll per wait arms and disarms a poll on the
//! socket in the kernel for every message a connection receives. Instead
//! each connection is registered once, edge-triggered, in its worker's epoll
//! instance (the kernel keeps that registration, no user memory per
//! connection); one task per worker waits for the instance itself with a
//! single poll, collects the ready connections in batches of up to
//! [`BATCH`] and marks each connection's [`Signal`](crate::io::signal::Signal)
//! readable, waking its task.
//!
//! Edge-triggered means a connection hears of new bytes once: it reads until
//! the socket is drained (a short read, `EAGAIN` or end of stream) before it
//! clears its readable mark and waits again. End of stream is not consumed
//! by a short read, so once the peer has closed its side the mark stays set
//! until a read returns 0. A stale event (for a connection that just closed
//! and whose slot was reused) only costs one `EAGAIN`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Events taken from the kernel per `epoll_wait`.
pub const BATCH: usize = 1024;

/// A worker's epoll instance, waited for through the worker's runtime.
pub struct Epoll {
    /// The instance as a runtime stream, only so its readiness can be awaited.
    waitable: monoio::net::UnixStream,
    fd: RawFd,
}

impl Epoll {
    /// A new instance, registered with the current runtime.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: epoll_create1 returned a fresh fd that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // The runtime waits on any fd through its poll op; the stream type
        // is only its carrier (no stream call other than `readable` is made).
        let waitable =
            monoio::net::UnixStream::from_std(std::os::unix::net::UnixStream::from(owned))?;
        Ok(Epoll { waitable, fd })
    }

    /// Watches `sock` for input, end of stream and errors; events carry `key`.
    pub fn add(&self, sock: RawFd, key: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: key,
        };
        // SAFETY: plain syscall with a valid event.
        let r = unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, sock, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Resolves when some registered socket has an event (the instance is readable).
    pub async fn readable(&self) -> io::Result<()> {
        self.waitable.readable(false).await
    }

    /// Takes the pending events without waiting and calls `ready` with the
    /// key of each and whether the peer has closed its side or the socket
    /// failed (at most [`BATCH`] per call).
    pub fn take_events(
        &self,
        events: &mut Vec<libc::epoll_event>,
        mut ready: impl FnMut(u64, bool),
    ) -> io::Result<()> {
        events.clear();
        events.reserve(BATCH);
        // SAFETY: the kernel writes at most BATCH events into the reserved
        // capacity. (A direct syscall, as in `sock`: the C library's wrapper
        // is a cancellation point.)
        let r = unsafe {
            super::sock::syscall_result(libc::syscall(
                libc::SYS_epoll_wait,
                self.fd as libc::c_long,
                events.as_mut_ptr(),
                BATCH as libc::c_long,
                0 as libc::c_long,
            ))
        };
        let n = match r {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        };
        // SAFETY: the kernel initialised n events.
        unsafe { events.set_len(n) };
        const ENDED: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        for ev in events.iter() {
            let (key, flags) = (ev.u64, ev.events);
            ready(key, flags & ENDED != 0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn reports_each_new_input_once() {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async {
            let ep = Epoll::new().unwrap();
            let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            b.set_nonblocking(true).unwrap();
            ep.add(b.as_raw_fd(), 7).unwrap();
            a.write_all(b"x").unwrap();
            let mut events = Vec::new();
            let mut seen = Vec::new();
            let mut batch = |seen: &mut Vec<(u64, bool)>| {
                seen.clear();
                ep.take_events(&mut events, |k, ended| seen.push((k, ended)))
                    .unwrap();
            };
            ep.readable().await.unwrap();
            batch(&mut seen);
            assert_eq!(seen, [(7, false)]);
            // edge-triggered: input not read yet is not reported again...
            batch(&mut seen);
            assert!(seen.is_empty());
            // ...new input is, and so is end of stream
            a.write_all(b"y").unwrap();
            batch(&mut seen);
            assert_eq!(seen, [(7, false)]);
            drop(a);
            batch(&mut seen);
            assert_eq!(seen, [(7, true)]);
        });
    }
}
