//! Protocol code, pure: bytes in, bytes out, no I/O and no server state.
//! The lowest layer after `config`: everything else may use it, it uses
//! nothing of ringcast's but `config`.
//!
//! - [`sse`]: the Server-Sent Events wire format and resume cursors.

pub mod sse;
