//! Writes a queue of shared frames (`Bytes`) with one vectored `sendmsg`,
//! popping what was written and trimming a frame written in part.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use bytes::{Buf, Bytes};

use super::sock;

/// Most frames gathered into one write.
pub const MAX_IOV: usize = 64;

/// Frames adding up to at most this many bytes are copied into one buffer
/// and sent with a single `send`, rather than as one segment each.
const GATHER_MAX: usize = 8 << 10;

thread_local! {
    static GATHER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(GATHER_MAX));
}

/// One vectored write of the front of `queue`; returns the bytes written.
pub fn write_queue(fd: RawFd, queue: &mut VecDeque<Bytes>) -> io::Result<usize> {
    if queue.len() == 1 {
        // (the common case of a busy connection: no slice array to build)
        let n = sock::send(fd, &queue[0])?;
        consume(queue, n);
        return Ok(n);
    }
    let n = {
        let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
        let mut cnt = 0;
        for b in queue.iter().take(MAX_IOV) {
            iov[cnt] = IoSlice::new(b);
            cnt += 1;
        }
        if cnt == 1 {
            sock::send(fd, &queue[0])?
        } else {
            let total: usize = iov[..cnt].iter().map(|s| s.len()).sum();
            if total <= GATHER_MAX {
                // Small frames are copied into one contiguous buffer: the
                // kernel's per-segment cost outweighs a short memcpy.
                GATHER.with(|g| {
                    let mut g = g.borrow_mut();
                    g.clear();
                    for s in &iov[..cnt] {
                        g.extend_from_slice(s);
                    }
                    sock::send(fd, &g)
                })?
            } else {
                sock::sendv(fd, &iov[..cnt])?
            }
        }
    };
    consume(queue, n);
    Ok(n)
}

/// Drops `n` written bytes from the front of the queue.
pub fn consume(queue: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let front = queue.front_mut().expect("wrote more than was queued");
        if front.len() <= n {
            n -= front.len();
            queue.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_writes_trim_the_front() {
        let mut q: VecDeque<Bytes> = ["abc", "de", "fgh"]
            .iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        consume(&mut q, 4);
        assert_eq!(q, ["e", "fgh"].map(|s| Bytes::from_static(s.as_bytes())));
        consume(&mut q, 4);
        assert!(q.is_empty());
    }

    #[test]
    fn writes_through_a_socket_pair() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        let mut q: VecDeque<Bytes> = (0..100)
            .map(|i| Bytes::from(format!("frame {i}\n")))
            .collect();
        let mut total = 0;
        while !q.is_empty() {
            total += write_queue(a.as_raw_fd(), &mut q).unwrap();
        }
        drop(a);
        let mut got = String::new();
        use std::io::Read;
        (&b).read_to_string(&mut got).unwrap();
        assert_eq!(got.len(), total);
        assert!(got.starts_with("frame 0\nframe 1\n") && got.ends_with("frame 99\n"));
    }

    #[test]
    fn small_and_large_frames_arrive_whole_and_in_order() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        // small frames are gathered into one send, frames over GATHER_MAX go as segments
        let frames: Vec<Bytes> = (0..40u8)
            .map(|i| {
                let len = if i % 10 == 9 { GATHER_MAX + 1 } else { 20 };
                Bytes::from(vec![i; len])
            })
            .collect();
        let want: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            got
        });
        let mut q: VecDeque<Bytes> = frames.into_iter().collect();
        while !q.is_empty() {
            match write_queue(a.as_raw_fd(), &mut q) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        drop(a);
        assert_eq!(reader.join().unwrap(), want);
    }
}
