//! Wire protocols the load generator speaks, as pure code over byte
//! buffers: HTTP/1.1 responses and chunked bodies, WebSocket frames, SSE
//! streams. WebSocket frames and the handshake's keys are ringcast's own
//! codec (`ringcast::proto::ws`), one implementation for the server, its
//! client library, its tests and this load generator; HTTP and SSE parsing
//! stay independent of the server's.

pub mod http;
pub mod sse;
pub mod ws;
