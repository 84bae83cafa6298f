//! Server-Sent Events: the wire format and resume cursors (pure), and the
//! stream that drives one subscriber connection.

pub mod cursor;
pub mod encode;
pub mod stream;
