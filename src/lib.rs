//! ringcast: a real-time edge server for Linux.
//!
//! Thread-per-core workers on io_uring hold very many long-lived connections
//! (Server-Sent Events, WebSocket, plain HTTP) and fan messages out to rooms.
//! Use it as a binary (`ringcast --config ringcast.toml`) or embed it:
//!
//! ```no_run
//! let cfg = ringcast::config::Config::default();
//! let server = ringcast::Server::new(cfg).unwrap().start().unwrap();
//! println!("listening on {}", server.local_addr());
//! server.stop();
//! ```

pub mod cli;
pub mod config;
pub mod http;
pub mod hub;
pub mod io;
pub mod logging;
pub mod server;
pub mod sse;
pub mod websocket;
pub mod ws;

pub use hub::{Hub, Message};
pub use server::{Server, ServerHandle};
