//! Socket I/O for the workers: readiness waits on the runtime (io_uring
//! PollAdd or epoll), then non-blocking syscalls into pooled buffers, so an
//! idle connection pins no buffer at all.

pub mod bufpool;
pub mod sock;
pub mod writeq;
