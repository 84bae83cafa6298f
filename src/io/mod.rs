//! Socket I/O for the workers: read readiness from the worker's epoll
//! instance (one registration per connection, see [`ready`]), write
//! readiness from the runtime's poll op, then non-blocking syscalls into
//! pooled buffers, so an idle connection pins no buffer at all.

pub mod bufpool;
pub mod clock;
pub mod cpu;
pub mod panic;
pub mod ready;
pub mod signal;
pub mod sock;
pub mod stats;
pub mod tls;
pub mod transport;
pub mod writeq;

/// The io driver a worker ended up running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring (monoio's `IoUringDriver`).
    IoUring,
    /// epoll (monoio's `LegacyDriver`), where io_uring is unavailable.
    Legacy,
}

impl Driver {
    /// The driver's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Legacy => "epoll",
        }
    }
}

/// Hands this thread's free allocator pages back to the kernel. mimalloc
/// purges freed memory lazily, during later allocations; a worker whose
/// connections went quiet (and parked, freeing their tasks) makes few, so
/// it asks once a second. Cheap when there is nothing to purge.
pub fn release_free_memory() {
    // (mimalloc is linked into every build of ringcast, whichever allocator
    // the process uses: a heap it never used has nothing to purge)
    // SAFETY: mimalloc's collect takes no pointers; it only looks at this
    // thread's own heap (a no-op for memory another allocator handed out).
    unsafe { libmimalloc_sys::mi_collect(true) }
}
