//! Server-Sent Events streams: the driver of one subscriber connection (the
//! wire format and cursors are in [`crate::proto::sse`]).

pub mod stream;
