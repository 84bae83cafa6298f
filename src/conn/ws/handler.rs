//! The WebSocket handler API: an application registers a handler for a path
//! and gets a [`WsConn`] per connection, on the connection's worker:
//!
//! ```no_run
//! # use ringcast::WsConn;
//! async fn echo(conn: WsConn) {
//!     while let Some(msg) = conn.recv().await {
//!         if conn.send(&msg).is_err() {
//!             break;
//!         }
//!     }
//! }
//! ```
//!
//! `recv` yields whole messages (fragments reassembled, deflate undone, text
//! validated). `send_*` append frames to the connection's cork: everything
//! sent while handling what one read produced leaves in one write.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;

use crate::conn::worker::Worker;
use crate::hub::subscriber::Subscriber;
use crate::hub::{ConnId, HubError};
use crate::proto::ws::codec::Encoder;
use crate::proto::ws::frame::OpCode;

/// Payloads from this size on are queued by reference rather than copied.
const ZERO_COPY_MIN: usize = 4096;

/// A whole message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// Valid UTF-8, checked as it arrived.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl WsMessage {
    /// The text, if it is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            // SAFETY-free: text messages were validated as UTF-8 by the decoder.
            WsMessage::Text(b) => std::str::from_utf8(b).ok(),
            WsMessage::Binary(_) => None,
        }
    }

    /// The message's bytes, text or binary.
    pub fn bytes(&self) -> &Bytes {
        match self {
            WsMessage::Text(b) | WsMessage::Binary(b) => b,
        }
    }
}

/// Why a send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closing or closed.
    Closed,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the WebSocket connection is closed")
    }
}
impl std::error::Error for SendError {}

/// What the driver and the handler share for one connection.
pub(crate) struct Shared {
    pub sub: Rc<Subscriber>,
    pub worker: Rc<Worker>,
    pub encoder: RefCell<Encoder>,
    /// No more messages will arrive (the client closed, or the connection failed).
    pub ended: Cell<bool>,
    /// What only a connection with a handler has (boxed: a room subscriber,
    /// most connections, has none).
    pub h: Option<Box<HandlerSide>>,
}

/// The handler's side of a connection: its inbox and what it can ask.
pub(crate) struct HandlerSide {
    pub inbox: RefCell<VecDeque<WsMessage>>,
    pub inbox_bytes: Cell<usize>,
    /// The driver stopped reading because the inbox is full.
    pub reading_paused: Cell<bool>,
    pub handler_waker: Cell<Option<Waker>>,
    /// The handler asked to close with this code and reason.
    pub close_request: RefCell<Option<(u16, String)>>,
    /// A close decided while the handler still holds accepted messages: sent
    /// once it has taken them, so their answers go out first.
    pub deferred_close: Cell<Option<(u16, &'static str)>>,
    pub tag: RefCell<String>,
    pub id: ConnId,
    pub path: String,
    pub query: String,
    pub protocol: Option<String>,
    /// The rooms the client's token lets it subscribe to (`[auth]`, or all
    /// when the endpoint's `auth` is "off"): [`WsConn::join`] keeps to them.
    pub grant: crate::auth::Grant,
}

impl Shared {
    pub fn wake_handler(&self) {
        if let Some(h) = &self.h {
            if let Some(w) = h.handler_waker.take() {
                w.wake();
            }
        }
    }

    /// The handler's side (only connections with a handler are given to one).
    pub fn handler_side(&self) -> &HandlerSide {
        self.h.as_deref().expect("a connection with a handler")
    }
}

/// One WebSocket connection as a handler sees it. Cheap to clone; lives on
/// the connection's worker.
#[derive(Clone)]
pub struct WsConn {
    pub(crate) shared: Rc<Shared>,
}

impl WsConn {
    /// The next whole message; `None` once the client closed or the connection ended.
    pub async fn recv(&self) -> Option<WsMessage> {
        let s = &self.shared;
        let h = s.handler_side();
        std::future::poll_fn(|cx| {
            if let Some(m) = h.inbox.borrow_mut().pop_front() {
                let left = h.inbox_bytes.get() - m.bytes().len();
                h.inbox_bytes.set(left);
                if h.reading_paused.get() {
                    s.sub.signal.kick(); // room again: the driver may read on
                }
                return Poll::Ready(Some(m));
            }
            if s.ended.get() {
                return Poll::Ready(None);
            }
            // kept while it is the same task's (no clone per message)
            match h.handler_waker.take() {
                Some(w) if w.will_wake(cx.waker()) => h.handler_waker.set(Some(w)),
                _ => h.handler_waker.set(Some(cx.waker().clone())),
            }
            Poll::Pending
        })
        .await
    }

    fn send_data(&self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        let s = &self.shared;
        if s.handler_side().close_request.borrow().is_some() {
            return Err(SendError::Closed);
        }
        let mut enc = s.encoder.borrow_mut();
        if s.sub.cork(|out| {
            enc.data(opcode, payload, out);
        }) {
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }

    /// Sends a text message.
    pub fn send_text(&self, text: &str) -> Result<(), SendError> {
        self.send_data(OpCode::Text, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&self, data: &[u8]) -> Result<(), SendError> {
        self.send_data(OpCode::Binary, data)
    }

    /// Sends a message of the same kind (echo). A large payload that goes
    /// out uncompressed is not copied: its `Bytes` are queued behind the
    /// frame header and written from where they are.
    pub fn send(&self, msg: &WsMessage) -> Result<(), SendError> {
        let (opcode, payload) = match msg {
            WsMessage::Text(b) => (OpCode::Text, b),
            WsMessage::Binary(b) => (OpCode::Binary, b),
        };
        let s = &self.shared;
        if payload.len() < ZERO_COPY_MIN || s.encoder.borrow().compresses() {
            return self.send_data(opcode, payload);
        }
        if s.handler_side().close_request.borrow().is_some() {
            return Err(SendError::Closed);
        }
        let header_ok = s.sub.cork(|out| {
            crate::proto::ws::frame::encode_header(true, false, opcode, payload.len() as u64, out)
        });
        if header_ok && s.sub.push(payload.clone()) {
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }

    /// Starts the close handshake with `code` (1000, or 3000–4999 for the
    /// application) and a reason (cut to 123 bytes).
    pub fn close(&self, code: u16, reason: &str) {
        let s = &self.shared;
        let h = s.handler_side();
        if h.close_request.borrow().is_none() {
            *h.close_request.borrow_mut() = Some((code, reason.to_string()));
            s.sub.signal.kick();
        }
    }

    /// Joins a room: from now on its messages arrive as frames on this connection.
    /// With `auth.subscribe` on (and the endpoint's `auth` = "server"), only
    /// a room the client's token lists: else [`HubError::Forbidden`].
    pub fn join(&self, room: &str) -> Result<(), HubError> {
        let s = &self.shared;
        let max = s.worker.shared.cfg.hub.max_room_name;
        if !crate::hub::valid_room_name(room, max) {
            return Err(HubError::BadRoom(room.to_string()));
        }
        if !s.handler_side().grant.allows(room) {
            return Err(HubError::Forbidden(room.to_string()));
        }
        s.worker.hub.set_room(&s.sub, room.into(), true);
        Ok(())
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        let s = &self.shared;
        s.worker.hub.set_room(&s.sub, room.into(), false);
    }

    /// This connection's id (also usable with [`crate::Hub::join`] from other threads).
    pub fn id(&self) -> ConnId {
        self.shared.handler_side().id
    }

    /// A free-form label the application can set (a user name, a session id).
    pub fn tag(&self) -> String {
        self.shared.handler_side().tag.borrow().clone()
    }

    /// Sets the tag (see [`WsConn::tag`]).
    pub fn set_tag(&self, tag: impl Into<String>) {
        *self.shared.handler_side().tag.borrow_mut() = tag.into();
    }

    /// The request path and query the connection was opened with.
    pub fn path(&self) -> &str {
        &self.shared.handler_side().path
    }

    /// The query string the connection was opened with (without `?`).
    pub fn query(&self) -> &str {
        &self.shared.handler_side().query
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.shared.handler_side().protocol.as_deref()
    }

    /// A hub handle to publish from the handler.
    pub fn hub(&self) -> crate::Hub {
        let shared = &self.shared.worker.shared;
        crate::Hub::new(shared.bus.clone(), shared.publish_rules)
    }
}

/// A registered handler: called once per connection, on its worker.
pub type Handler = dyn Fn(WsConn) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync;

/// The echo endpoint, written with the handler API.
pub async fn echo(conn: WsConn) {
    while let Some(msg) = conn.recv().await {
        if conn.send(&msg).is_err() {
            break;
        }
    }
}
