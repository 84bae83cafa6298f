//! Connection drivers: what runs one client connection on its worker, from
//! the first byte to the close. [`http`] reads requests and writes answers,
//! then hands a stream over to [`sse`] or [`ws`] (the WebSocket session and
//! the handlers an embedder registers). [`worker`] is what a connection sees
//! of its worker (the connection table, parking, drain state); [`limits`]
//! and [`access`] are the connection limits and the access log they obey
//! and write.
//!
//! The drivers know no routes: what a request is answered with is the
//! application's [`App`] (see [`crate::app`]), installed in
//! [`worker::Shared`] when the server starts.

pub mod access;
pub mod http;
pub mod limits;
pub mod liveness;
pub mod sse;
pub mod tls;
pub mod worker;
pub mod ws;

use bytes::BytesMut;

pub use http::Action;

use crate::proto::http::request::RequestHead;
use worker::Worker;

/// The application behind the HTTP driver: answers one complete request
/// (`body` is its whole body), appending to `out` and saying what the
/// connection does next.
pub trait App: Send + Sync + 'static {
    /// Answers one request.
    fn route(
        &self,
        worker: &Worker,
        head: &RequestHead<'_>,
        body: &[u8],
        out: &mut BytesMut,
        keep_alive: bool,
    ) -> Action;
}
