//! ringcast: a real-time edge server for Linux.
//!
//! Thread-per-core workers on io_uring hold very many long-lived connections
//! (Server-Sent Events, WebSocket, plain HTTP) and fan messages out to rooms.
//! Use it as a binary (`ringcast --config ringcast.toml`) or embed it.
//!
//! # Embedding
//!
//! [`Server::new`] checks a [`config::Config`], [`Server::ws_handler`] and
//! [`Server::on_sse_connect`] register the application's code,
//! [`Server::start`] binds and starts the workers and returns a
//! [`ServerHandle`]; [`ServerHandle::hub`] gives a [`Hub`] to publish and
//! query rooms from any thread, and [`ServerHandle::stop`] or
//! [`ServerHandle::run_until_signal`] drains.
//!
//! - **Which configuration.** [`Config::default()`](config::Config::default)
//!   is the binary's: it serves the landing page and the other built-in
//!   pages, runs the demos (with their publisher thread) and the dashboard,
//!   and opens `/echo`, `/ws`, `/metrics` and `POST /publish` (to anyone).
//!   [`Config::bare()`](config::Config::bare) turns all of that off; what
//!   stays is the SSE endpoint of the rooms (`/sse`), `GET /rooms/{room}`,
//!   `/healthz`, and what the embedder registers.
//! - **Logging.** The library logs through the [`log`] facade and installs
//!   no logger: without one it prints nothing. Call
//!   [`logging::init`]`(&cfg.log.level, cfg.log.format)` for the binary's
//!   (stderr, text or JSON lines), or install any other `log` logger.
//! - **Errors.** [`Server::new`], [`Server::start`],
//!   [`ServerHandle::reload_auth`] and [`ServerHandle::run_until_signal`]
//!   return [`Error`]; a configuration error names its key
//!   ([`Error::config_key`]). It converts into `Box<dyn std::error::Error>` with `?`.
//! - **Signals.** [`ServerHandle::run_until_signal`] blocks until SIGTERM or
//!   SIGINT and drains (bounded by `server.shutdown_timeout`). SIGHUP is the
//!   application's: the binary re-reads its file in the hook of
//!   [`ServerHandle::run_until_signal_with`].
//!
//! ## An SSE room server
//!
//! A subscriber opens `GET /sse?room=news`; the application publishes to
//! the room through the hub.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//!
//! use ringcast::{config::Config, Message, Server};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut cfg = Config::bare();
//! cfg.server.listen = "127.0.0.1:0".parse()?; // any free port
//! cfg.server.workers = 1;
//! let server = Server::new(cfg)?.start()?;
//! let hub = server.hub();
//!
//! // a subscriber (a browser would use `new EventSource("/sse?room=news")`)
//! let mut stream = TcpStream::connect(server.local_addr())?;
//! stream.write_all(b"GET /sse?room=news HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
//! let mut lines = BufReader::new(stream).lines().map_while(Result::ok);
//! assert_eq!(lines.next().as_deref(), Some("HTTP/1.1 200 OK"));
//! while hub.room_info_blocking("news")?.subscribers == 0 {
//!     std::thread::sleep(std::time::Duration::from_millis(5));
//! }
//!
//! hub.publish("news", Message::with_event("headline", "Hello"))?;
//! let event: Vec<String> = lines
//!     .skip_while(|l| !l.starts_with("event:"))
//!     .take_while(|l| !l.is_empty())
//!     .collect();
//! assert_eq!(event, ["event: headline", "data: Hello"]);
//! server.stop(); // drain, bounded by server.shutdown_timeout
//! # Ok(())
//! # }
//! ```
//!
//! ## A WebSocket chat handler
//!
//! A handler is called once per connection, on the worker that owns it;
//! what a client sends to `/chat` is published to room `lobby`, which every
//! chat connection has joined.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//!
//! use ringcast::config::{Config, WsEndpoint};
//! use ringcast::{Message, Server};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut cfg = Config::bare();
//! cfg.server.listen = "127.0.0.1:0".parse()?;
//! cfg.server.workers = 1;
//! let server = Server::new(cfg)?
//!     .ws_handler("/chat", WsEndpoint::default(), |conn| async move {
//!         if conn.join("lobby").is_err() {
//!             return;
//!         }
//!         conn.send_text(&format!("welcome, {}", conn.id())).ok();
//!         while let Some(msg) = conn.recv().await {
//!             if let Some(text) = msg.as_text() {
//!                 conn.hub().publish("lobby", Message::new(text.to_string())).ok();
//!             }
//!         }
//!     })
//!     .start()?;
//!
//! // a client, by hand: the handshake, then frames
//! fn text_frame(ws: &mut TcpStream) -> std::io::Result<String> {
//!     let mut h = [0u8; 2]; // FIN + opcode, then the length (short messages only here)
//!     ws.read_exact(&mut h)?;
//!     let mut payload = vec![0u8; (h[1] & 0x7f) as usize];
//!     ws.read_exact(&mut payload)?;
//!     Ok(String::from_utf8_lossy(&payload).into_owned())
//! }
//! let mut ws = TcpStream::connect(server.local_addr())?;
//! ws.write_all(
//!     b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
//!       Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
//!       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
//! )?;
//! let mut head = Vec::new();
//! while !head.ends_with(b"\r\n\r\n") {
//!     let mut b = [0u8];
//!     ws.read_exact(&mut b)?;
//!     head.push(b[0]);
//! }
//! assert!(head.starts_with(b"HTTP/1.1 101"));
//! assert!(text_frame(&mut ws)?.starts_with("welcome, 0.")); // ConnId: worker.key.generation
//! // a text frame "hello", masked with the key 0 (clients must mask)
//! ws.write_all(&[0x81, 0x80 | 5, 0, 0, 0, 0, b'h', b'e', b'l', b'l', b'o'])?;
//! assert_eq!(text_frame(&mut ws)?, "hello"); // back through room lobby
//! server.stop();
//! # Ok(())
//! # }
//! ```
//!
//! ## Publishing from another thread
//!
//! [`Hub`] is `Clone + Send + Sync`: keep it anywhere, publish from any
//! thread (in a handler, on a worker, prefer [`Hub::publish_async`]).
//!
//! ```
//! use ringcast::{config::Config, Message, Server};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut cfg = Config::bare();
//! cfg.server.listen = "127.0.0.1:0".parse()?;
//! let server = Server::new(cfg)?.start()?;
//!
//! let hub = server.hub();
//! let feed = std::thread::spawn(move || -> Result<(), ringcast::HubError> {
//!     for price in [101, 102, 103] {
//!         hub.publish("prices", Message::with_event("price", price.to_string()))?;
//!     }
//!     // one message to several rooms: a connection in both gets it once
//!     hub.publish_many(&["prices", "alerts"], Message::new("closing"))
//!         .map_err(|e| e.error)
//! });
//! feed.join().unwrap()?;
//!
//! let info = server.hub().room_info_blocking("prices")?;
//! assert_eq!(info.history_len, 4); // kept for subscribers that resume
//! server.stop();
//! # Ok(())
//! # }
//! ```
//!
//! ## Running until a signal
//!
//! ```no_run
//! use ringcast::{config::Config, Server, WsConn};
//!
//! async fn echo(conn: WsConn) {
//!     while let Some(msg) = conn.recv().await {
//!         if conn.send(&msg).is_err() {
//!             break;
//!         }
//!     }
//! }
//!
//! # fn main() -> Result<(), ringcast::Error> {
//! let mut cfg = Config::bare();
//! cfg.server.listen = "0.0.0.0:8080".parse().unwrap();
//! ringcast::logging::init(&cfg.log.level, cfg.log.format); // or any `log` logger
//! let server = Server::new(cfg)?
//!     .ws_handler("/echo", Default::default(), echo)
//!     .start()?;
//! // SIGTERM or SIGINT: drain, at most server.shutdown_timeout
//! let drained = server.run_until_signal()?;
//! std::process::exit(if drained { 0 } else { 1 });
//! # }
//! ```
//!
//! # Inside ringcast
//!
//! The crate is in layers, each using only those below it (the test suite
//! checks this with `.ci/layers.py`). Only the API above is for
//! embedders; the layers' modules are public for the binary, the
//! benchmarks and the tests, and hidden from these docs.
//!
//! | layer (bottom up) | module | what is there |
//! |---|---|---|
//! | settings | `config` | keys, defaults, units; each section validates itself |
//! | wire formats | `proto` | pure code, no I/O: HTTP heads and responses (`proto::http`), SSE events and cursors (`proto::sse`), WebSocket frames, codec, permessage-deflate, handshake (`proto::ws`), JWT (`proto::jwt`) |
//! | runtime | `io` | the transport every driver reads and writes through (`io::transport`), readiness, syscalls, buffer pool, signals, clock, counters, panic containment |
//! | rooms | `hub` | the engine that orders rooms and keeps their history (`hub::engine`: a home worker per room, or Redis shared by several nodes), each worker's membership and delivery (`hub::local`, `hub::shard`), subscriber queues (`hub::subscriber`), the cross-core bus |
//! | policy | `auth` | who may subscribe and publish |
//! | drivers | `conn` | one connection from first byte to close: `conn::http`, `conn::sse`, `conn::ws` (session, handler API); what it sees of its worker (`conn::worker`); connection limits (`conn::limits`); the access log |
//! | application | `app` | the endpoint table (`app::router`), static files, `/metrics`, demos, dashboard |
//! | server | `server` | [`Server`], [`ServerHandle`]: listeners, worker threads (runtime, accept loop), drain, signals |
//!
//! Where frames are encoded: `proto::ws::codec` (once per room message:
//! `hub::Published`). Where room membership lives: `hub::local` and
//! `hub::shard`, per worker. Where the limits are: the keys in [`config`],
//! enforced in `conn::limits` (connections), `proto::http::request` (request
//! heads), `proto::ws::codec` (frames and messages) and `hub::subscriber`
//! (queues); each hit is counted in `/metrics`.

#![warn(missing_docs)]

// Linked even where the process's allocator is another: the workers ask
// mimalloc to return freed pages (see `io::release_free_memory`).
extern crate mimalloc as _;

// The library's API: what an embedder names (documented, kept stable).
pub mod client;
pub mod config;
pub mod logging;

pub use conn::sse::SseConnect;
pub use conn::ws::handler::{WsConn, WsMessage};
pub use error::Error;
pub use hub::{ConnId, Gap, Hub, HubError, Message, PublishManyError, RoomInfo, Subscription};
pub use server::{Server, ServerHandle, ShutdownSignals};

// The layers below (see the module documentation), public for the
// binary, the benchmarks, the load generator and the tests: not API.
#[doc(hidden)]
pub mod app;
#[doc(hidden)]
pub mod auth;
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod conn;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod hub;
#[doc(hidden)]
pub mod io;
#[doc(hidden)]
pub mod proto;
#[doc(hidden)]
pub mod server;
