//! ringcast: a real-time edge server for Linux.
//!
//! Thread-per-core workers on io_uring hold very many long-lived connections
//! (Server-Sent Events, WebSocket, plain HTTP) and fan messages out to rooms.
//! Use it as a binary (`ringcast --config ringcast.toml`) or embed it:
//!
//! ```no_run
//! use ringcast::{config::Config, Message, Server};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new(Config::default())?
//!     // first events of every new SSE stream (c.id can be used with hub.join/leave)
//!     .on_sse_connect(|_c| vec![Message::with_event("welcome", "hello")])
//!     // a WebSocket handler: one call per connection, on the worker that owns it
//!     .ws_handler("/chat", Default::default(), |conn| async move {
//!         conn.join("lobby").ok();
//!         while let Some(msg) = conn.recv().await {
//!             if let Some(text) = msg.as_text() {
//!                 conn.hub().publish("lobby", Message::new(text.to_string())).ok();
//!             }
//!         }
//!     })
//!     .start()?;
//! let hub = server.hub(); // Send + Sync: keep it, call it from any thread
//! hub.publish("news", Message::with_event("headline", "<p>Hello</p>"))?;
//! hub.publish_many(&["news", "sport"], Message::new("both"))?; // once per connection
//! println!("{:?}", hub.room_info_blocking("news")?);
//! server.stop(); // drain, bounded by server.shutdown_timeout
//! # Ok(())
//! # }
//! ```

// Linked even where the process's allocator is another: the workers ask
// mimalloc to return freed pages (see `server::worker`).
extern crate mimalloc as _;

pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod http;
pub mod hub;
pub mod io;
pub mod logging;
pub mod proto;
pub mod server;
pub mod sse;
pub mod websocket;

pub use hub::{Hub, Message};
pub use server::{Server, ServerHandle};
