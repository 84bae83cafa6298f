//! Wire protocols the load generator speaks, as pure code over byte
//! buffers: HTTP/1.1 responses and chunked bodies, WebSocket frames, SSE
//! streams. Kept independent of ringcast's own protocol code on purpose: a
//! bug in one must not hide a bug in the other.

pub mod http;
pub mod sse;
pub mod ws;
