//! A per-worker pool of read buffers.
//!
//! A connection borrows a buffer only while it has bytes to work on and gives
//! it back when they are consumed, so idle connections cost no buffer.

use std::cell::RefCell;

use bytes::BytesMut;

/// Free buffers of one worker (single-threaded: `RefCell`, no locks).
pub struct BufPool {
    free: RefCell<Vec<BytesMut>>,
    size: usize,
    max_free: usize,
}

impl BufPool {
    /// A pool of buffers of `size` bytes keeping at most `max_free` spare ones.
    pub fn new(size: usize, max_free: usize) -> Self {
        BufPool {
            free: RefCell::new(Vec::new()),
            size,
            max_free,
        }
    }

    /// The size of every buffer handed out.
    pub fn size(&self) -> usize {
        self.size
    }

    /// An empty buffer with at least `size` bytes of capacity.
    pub fn take(&self) -> BytesMut {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(self.size))
    }

    /// Returns a buffer. It is kept if the pool is not full and its whole
    /// allocation can be taken back without allocating (reading a request
    /// advances the buffer's start; no message still shares the memory);
    /// otherwise it is freed.
    pub fn give(&self, mut buf: BytesMut) {
        buf.clear();
        if buf.capacity() < self.size && !buf.try_reclaim(self.size) {
            return;
        }
        if buf.capacity() < self.size || buf.capacity() > self.size * 4 {
            return;
        }
        let mut free = self.free.borrow_mut();
        if free.len() < self.max_free {
            free.push(buf);
        }
    }

    /// Spare buffers held right now.
    pub fn spare(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_buffer_comes_back_whole() {
        use bytes::Buf;
        let p = BufPool::new(1024, 2);
        let mut a = p.take();
        let ptr = a.as_ptr();
        a.extend_from_slice(&[1; 300]);
        a.advance(300); // a request was consumed
        p.give(a);
        assert_eq!(p.spare(), 1);
        assert_eq!(p.take().as_ptr(), ptr, "reclaimed, not reallocated");
        // a buffer whose bytes live on in a message is not taken back
        let mut b = p.take();
        b.extend_from_slice(&[2; 100]);
        let msg = b.split_to(100).freeze();
        p.give(b);
        assert_eq!(p.spare(), 0);
        drop(msg);
    }

    #[test]
    fn reuses_and_bounds() {
        let p = BufPool::new(1024, 2);
        let a = p.take();
        let ptr = a.as_ptr();
        p.give(a);
        assert_eq!(p.spare(), 1);
        let b = p.take();
        assert_eq!(b.as_ptr(), ptr, "the same allocation comes back");
        p.give(b);
        p.give(BytesMut::with_capacity(1024));
        p.give(BytesMut::with_capacity(1024));
        assert_eq!(p.spare(), 2, "never more than max_free");
        p.give(BytesMut::with_capacity(16));
        assert_eq!(p.spare(), 2, "undersized buffers are dropped");
    }
}
