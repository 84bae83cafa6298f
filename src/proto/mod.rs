//! Protocol code, pure: bytes in, bytes out, no I/O and no server state.
//! The lowest layer after `config`: everything else may use it, it uses
//! nothing of ringcast's but `config`.
//!
//! - [`http`]: the HTTP/1.1 request head parser and the response writer.
//! - [`jwt`]: HS256 JSON Web Tokens, verified under strict rules.
//! - [`sse`]: the Server-Sent Events wire format and resume cursors.
//! - [`ws`]: WebSocket (RFC 6455, RFC 7692): frames, the codec, deflate,
//!   the handshake, close codes, UTF-8 validation.

pub mod http;
pub mod jwt;
pub mod sse;
pub mod ws;
