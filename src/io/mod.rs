//! Socket I/O for the workers: read readiness from the worker's epoll
//! instance (one registration per connection, see [`ready`]), write
//! readiness from the runtime's poll op, then non-blocking syscalls into
//! pooled buffers, so an idle connection pins no buffer at all.

pub mod bufpool;
pub mod clock;
pub mod ready;
pub mod signal;
pub mod sock;
pub mod stats;
pub mod writeq;
