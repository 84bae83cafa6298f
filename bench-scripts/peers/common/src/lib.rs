//! What the tokio-based benchmark peers share, so that they differ only in
//! their WebSocket library: the command line, the runtime and accept loop
//! (hyper 1 HTTP/1.1), the rooms (one `tokio::sync::broadcast` channel per
//! room), the SSE subscriber body, `POST /publish/NAME` and `GET /healthz`.
//!
//! A peer's `main` parses [`Args`], and hands [`server::run`] a router that
//! answers `/echo` and `/ws` itself and everything else with [`http`].
//!
//! With the `tls` feature, `--tls-listen` adds a second listener serving the
//! same router over TLS ([`tls`]: tokio-rustls, ring provider).

pub mod args;
pub mod body;
pub mod http;
pub mod rooms;
pub mod server;
pub mod sse;
#[cfg(feature = "tls")]
pub mod tls;

pub use args::Args;
pub use body::Body;
pub use rooms::{Event, Rooms};
