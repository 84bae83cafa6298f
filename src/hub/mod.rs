//! Rooms: a message published once reaches every subscriber of its room, in
//! the same order for all of them, on every worker.
//!
//! - [`engine`]: where each room's order, ids and history live, behind one
//!   interface ([`engine::Engine`]). Today's engine gives each room a home
//!   worker (`hash(room) % workers`) that numbers its messages, keeps its
//!   history and knows which workers have subscribers.
//! - [`local`]: a worker's hub: its subscribers, their membership
//!   ([`shard`]: `room -> local subscribers`), delivery to them in chunks,
//!   resume pacing, the drain barrier.
//! - [`bus`]: one pair of bounded inboxes per worker carries publishes, joins
//!   and deliveries across cores as `Arc`s (nothing is copied per subscriber).
//! - [`subscriber`]: a connection's bounded write queue and resume positions.
//! - [`Hub`]: the handle to publish and query from anywhere, any thread.
//!
//! The hub makes no system calls and knows one thing of wire formats: a
//! message is encoded once per format its subscribers need ([`Published`]).

pub mod bus;
pub mod engine;
pub mod local;
pub mod shard;
pub mod subscriber;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::config::Envelope;
use crate::proto::ws::frame::OpCode;

pub use bus::{Bus, BusMsg};

/// A room's name, shared cheaply.
pub type RoomName = Arc<str>;

/// Whether `name` may name a room: 1 to `max` bytes of `A-Z a-z 0-9 _ - . : @`.
pub fn valid_room_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@'))
}

/// The id of the element an `htmx` envelope swaps in with the message's id.
pub const HTMX_CURSOR_ID: &str = "ringcast-cursor";

/// The room of the server's dashboard feed: only the server publishes to it.
pub const DASHBOARD_ROOM: &str = "__dashboard";

/// Why clients may not publish to `room` (HTTP or WebSocket), if they may not:
/// rooms the server feeds itself are reserved.
pub fn reserved_room(room: &str) -> Option<&'static str> {
    (room == DASHBOARD_ROOM)
        .then_some("room __dashboard is reserved for the server's dashboard feed")
}

/// What a message must be to be published, besides a valid room name:
/// checked before it is numbered, on every path (HTTP, WebSocket clients,
/// the library), so no message can break a subscriber's stream.
#[derive(Clone, Copy, Debug)]
pub struct PublishRules {
    pub max_room_name: usize,
    /// Every room's data must be UTF-8: WebSocket subscribers get it in a
    /// text frame (`ws.rooms.envelope` is `json` or `htmx`).
    pub utf8_everywhere: bool,
    /// A room whose data must be UTF-8 whatever the envelope (the demo
    /// chat's, delivered with the htmx envelope).
    pub utf8_room: Option<&'static str>,
}

impl PublishRules {
    /// The rules of `cfg`, with `utf8_room` (a room delivered in text
    /// frames whatever `ws.rooms.envelope` says, e.g. the demo chat's).
    pub fn new(cfg: &crate::config::Config, utf8_room: Option<&'static str>) -> PublishRules {
        PublishRules {
            max_room_name: cfg.hub.max_room_name,
            utf8_everywhere: cfg.ws.rooms.envelope != Envelope::Raw,
            utf8_room,
        }
    }

    /// The room's name, or why the room or the message cannot be published.
    pub fn check(&self, room: &str, msg: &Message) -> Result<RoomName, HubError> {
        if !valid_room_name(room, self.max_room_name) {
            return Err(HubError::BadRoom(room.to_string()));
        }
        self.check_message(room, msg)?;
        Ok(Arc::from(room))
    }

    /// Why `msg` cannot be published to `room` (a valid name), if it cannot.
    pub fn check_message(&self, room: &str, msg: &Message) -> Result<(), HubError> {
        msg.check()?;
        if self.utf8_everywhere || self.utf8_room == Some(room) {
            if let Err(e) = std::str::from_utf8(&msg.data) {
                return Err(HubError::BadMessage(format!(
                    "the data is not UTF-8 (invalid byte at offset {}); room {room:?} is delivered in WebSocket text frames",
                    e.valid_up_to()
                )));
            }
        }
        Ok(())
    }
}

/// What a stream (SSE, or a WebSocket on the rooms endpoint) subscribes to:
/// its rooms and where it resumes in each.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Rooms in the request's order, the auto-join room last.
    pub rooms: Vec<RoomName>,
    /// Positions to resume after, one per room (`Last-Event-ID` or
    /// `last_event_id`).
    pub resume: Option<Vec<u64>>,
}

/// A message to publish: optional SSE event name and the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The SSE `event:` name (WebSocket subscribers get it in the `json` envelope).
    pub event: Option<String>,
    /// The data, as published.
    pub data: Bytes,
}

impl Message {
    /// A message without an event name.
    pub fn new(data: impl Into<Bytes>) -> Message {
        Message {
            event: None,
            data: data.into(),
        }
    }

    /// A message with an SSE event name.
    pub fn with_event(event: impl Into<String>, data: impl Into<Bytes>) -> Message {
        Message {
            event: Some(event.into()),
            data: data.into(),
        }
    }

    /// Whether the message can be written as an SSE event: an event name is
    /// 1 to 128 bytes without CR or LF (a line break would let it forge
    /// `id:` or `data:` lines). Any data can: each of its lines becomes a
    /// `data:` line.
    pub fn check(&self) -> Result<(), HubError> {
        match &self.event {
            Some(e) if !crate::proto::sse::encode::valid_event_name(e) => {
                Err(HubError::BadMessage(format!(
                    "event name {e:?} must be 1 to 128 bytes without CR or LF"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// A published message: numbered by its room's home, encoded once per wire
/// format, shared by every subscriber on every worker.
#[derive(Debug)]
pub struct Published {
    pub room: RoomName,
    /// The room's sequence id of this message.
    pub seq: u64,
    /// Non-zero when the same message went to several rooms at once
    /// ([`Hub::publish_many`]): a connection in several of them gets it once.
    pub group: u64,
    pub event: Option<Arc<str>>,
    pub data: Bytes,
    pub at: Instant,
    /// The SSE frame with its `id:` line: what a single-room stream sends.
    pub sse: Bytes,
    /// Where the frame continues after the `id:` line.
    sse_body_at: usize,
    /// WebSocket frames, each encoded on first use by any worker and then shared.
    ws: [OnceLock<Bytes>; 6],
}

impl Published {
    /// Numbers and encodes a message.
    pub fn encode(room: RoomName, seq: u64, group: u64, msg: Message) -> Published {
        let mut buf = BytesMut::with_capacity(msg.data.len() + 48);
        let mut id = itoa::Buffer::new();
        buf.extend_from_slice(b"id: ");
        buf.extend_from_slice(id.format(seq).as_bytes());
        buf.extend_from_slice(b"\n");
        let body_at = buf.len();
        crate::proto::sse::encode::event(&mut buf, None, msg.event.as_deref(), &msg.data);
        Published {
            room,
            seq,
            group,
            event: msg.event.map(Arc::from),
            data: msg.data,
            at: Instant::now(),
            sse: buf.freeze(),
            sse_body_at: body_at,
            ws: Default::default(),
        }
    }

    /// The WebSocket frame of this message for an envelope and a deflate
    /// choice: encoded once, shared by every subscriber that needs it. Data
    /// that is not UTF-8 goes in a binary frame.
    pub fn ws_frame(&self, envelope: Envelope, deflate: bool) -> Bytes {
        let slot = match (envelope, deflate) {
            (Envelope::Raw, false) => 0,
            (Envelope::Raw, true) => 1,
            (Envelope::Json, false) => 2,
            (Envelope::Json, true) => 3,
            (Envelope::Htmx, false) => 4,
            (Envelope::Htmx, true) => 5,
        };
        self.ws[slot]
            .get_or_init(|| {
                let json;
                let (opcode, payload): (OpCode, &[u8]) = match envelope {
                    Envelope::Raw => match std::str::from_utf8(&self.data) {
                        Ok(_) => (OpCode::Text, &self.data),
                        Err(_) => (OpCode::Binary, &self.data),
                    },
                    Envelope::Json => {
                        json = serde_json::to_vec(&serde_json::json!({
                            "room": &*self.room,
                            "id": self.seq,
                            "event": self.event.as_deref(),
                            "data": String::from_utf8_lossy(&self.data),
                        }))
                        .unwrap_or_default();
                        (OpCode::Text, &json)
                    }
                    Envelope::Htmx => {
                        // a text frame is UTF-8 whatever was published (the
                        // publish rules refuse other data for htmx rooms)
                        json = [
                            String::from_utf8_lossy(&self.data).as_bytes(),
                            format!(
                                "<div id=\"{HTMX_CURSOR_ID}\" hx-swap-oob=\"true\" hidden data-last-event-id=\"{}\"></div>",
                                self.seq
                            )
                            .as_bytes(),
                        ]
                        .concat();
                        (OpCode::Text, &json)
                    }
                };
                if deflate {
                    crate::proto::ws::deflate::deflate_frame_once(opcode, payload, 15)
                } else {
                    crate::proto::ws::frame::frame_bytes(opcode, payload)
                }
            })
            .clone()
    }

    /// The SSE frame without its `id:` line (a multi-room stream writes its own cursor in front).
    pub fn sse_body(&self) -> Bytes {
        self.sse.slice(self.sse_body_at..)
    }
}

/// Why a publish or query failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// The room name breaks the naming rule.
    BadRoom(String),
    /// `hub.max_rooms` rooms exist already.
    TooManyRooms,
    /// The target worker's inbox is full (only from the non-waiting [`Hub::publish`]).
    Busy,
    /// The server is shutting down.
    Closed,
    /// The message breaks a rule (see [`PublishRules`]); the text says which.
    BadMessage(String),
    /// The connection's token does not allow this room.
    Forbidden(String),
    /// A blocking call was made on a worker thread, where it would stall
    /// every connection of the worker (use the async form there).
    OnWorker(&'static str),
    /// The engine that orders the room cannot be reached (the cluster's
    /// Redis): nothing was published; try again later.
    Unavailable(String),
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HubError::BadRoom(r) => write!(f, "invalid room name {r:?}"),
            HubError::TooManyRooms => f.write_str("hub.max_rooms reached"),
            HubError::Busy => f.write_str("the room's home worker inbox is full"),
            HubError::Closed => f.write_str("the server is shutting down"),
            HubError::BadMessage(why) => f.write_str(why),
            HubError::Forbidden(r) => write!(f, "the token does not allow room {r:?}"),
            HubError::Unavailable(why) => write!(f, "the rooms' engine is unavailable: {why}"),
            HubError::OnWorker(call) => write!(
                f,
                "{call} blocks and was called on a worker thread (use the async form there)"
            ),
        }
    }
}
impl std::error::Error for HubError {}

/// What a room looks like right now, across all workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// Subscribers on every worker.
    pub subscribers: u64,
    /// The last message's id, if any message is in the history.
    pub last_id: Option<u64>,
    /// Messages in the history.
    pub history_len: usize,
}

/// Tells a resuming client that part of what it missed is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The room.
    pub room: RoomName,
    /// The client's position.
    pub since: u64,
    /// The oldest message still available (the client gets it and what follows).
    pub resume_from: Option<u64>,
    /// "evicted": history no longer reaches back; "reset": the room was created
    /// after the client's position (restart, or the room expired meanwhile).
    pub reason: &'static str,
}

/// A handle to the rooms: publish and query from anywhere (any thread).
/// Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    bus: Arc<Bus>,
    rules: PublishRules,
}

static GROUPS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Set on the worker threads: blocking calls refuse to run there.
    static ON_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as a worker (its blocking hub calls then fail
/// with [`HubError::OnWorker`] instead of stalling or deadlocking it).
pub(crate) fn mark_worker_thread() {
    ON_WORKER.with(|w| w.set(true));
}

/// A [`Hub::publish_many`] that stopped part-way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishManyError {
    /// Rooms the message was handed to before the failure: it will be
    /// delivered there. Retry only the other rooms.
    pub published: Vec<RoomName>,
    /// Why the next room failed.
    pub error: HubError,
}

impl std::fmt::Display for PublishManyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (published to {} room(s) before it)",
            self.error,
            self.published.len()
        )
    }
}
impl std::error::Error for PublishManyError {}

impl Hub {
    pub(crate) fn new(bus: Arc<Bus>, rules: PublishRules) -> Hub {
        Hub { bus, rules }
    }

    /// Publishes without waiting: errors with [`HubError::Busy`] when the
    /// room's home inbox is full, and with [`HubError::BadMessage`] when the
    /// message breaks a [`PublishRules`] rule (nothing is published then).
    pub fn publish(&self, room: &str, msg: Message) -> Result<(), HubError> {
        let room = self.rules.check(room, &msg)?;
        self.bus.try_request(BusMsg::Publish {
            room,
            msg,
            group: 0,
            reply: None,
        })
    }

    /// Publishes, waiting for inbox space, and returns the message's id in the room.
    pub async fn publish_async(&self, room: &str, msg: Message) -> Result<u64, HubError> {
        let room = self.rules.check(room, &msg)?;
        self.bus.publish_and_wait(room, msg).await
    }

    /// Publishes one message to several rooms; a connection in several of
    /// them receives it once. Each room numbers it in its own order.
    ///
    /// Every room and the message are checked first: a bad one publishes
    /// nothing. A full inbox ([`HubError::Busy`]) can still stop it part-way;
    /// the error then lists the rooms it was published to, so a retry can
    /// leave them out and nobody gets it twice.
    pub fn publish_many(&self, rooms: &[&str], msg: Message) -> Result<(), PublishManyError> {
        let names: Vec<RoomName> = rooms
            .iter()
            .map(|r| self.rules.check(r, &msg))
            .collect::<Result<_, _>>()
            .map_err(|error| PublishManyError {
                published: Vec::new(),
                error,
            })?;
        let group = GROUPS.fetch_add(1, Ordering::Relaxed);
        for (i, room) in names.iter().enumerate() {
            let sent = self.bus.try_request(BusMsg::Publish {
                room: room.clone(),
                msg: msg.clone(),
                group,
                reply: None,
            });
            if let Err(error) = sent {
                return Err(PublishManyError {
                    published: names[..i].to_vec(),
                    error,
                });
            }
        }
        Ok(())
    }

    fn room(&self, room: &str) -> Result<RoomName, HubError> {
        if valid_room_name(room, self.rules.max_room_name) {
            Ok(Arc::from(room))
        } else {
            Err(HubError::BadRoom(room.to_string()))
        }
    }

    /// Subscribers (all workers), last id and history length of a room.
    pub async fn room_info(&self, room: &str) -> Result<RoomInfo, HubError> {
        let room = self.room(room)?;
        self.bus.room_info(room).await
    }

    /// [`Hub::room_info`] for threads outside the workers (blocks). On a
    /// worker thread (in a handler) it fails with [`HubError::OnWorker`]:
    /// waiting there would stall the worker, and deadlock it when it is the
    /// room's home; use `room_info(..).await` there.
    pub fn room_info_blocking(&self, room: &str) -> Result<RoomInfo, HubError> {
        if ON_WORKER.with(|w| w.get()) {
            return Err(HubError::OnWorker("Hub::room_info_blocking"));
        }
        let room = self.room(room)?;
        let (tx, rx) = flume::bounded(1);
        self.bus
            .request_blocking(BusMsg::Info { room, reply: tx })?;
        rx.recv().map_err(|_| HubError::Closed)
    }

    /// Adds a connection (by id, as handlers see it) to a room.
    pub fn join(&self, conn: ConnId, room: &str) -> Result<(), HubError> {
        self.conn_room(conn, room, true)
    }

    /// Removes a connection from a room.
    pub fn leave(&self, conn: ConnId, room: &str) -> Result<(), HubError> {
        self.conn_room(conn, room, false)
    }

    fn conn_room(&self, conn: ConnId, room: &str, join: bool) -> Result<(), HubError> {
        let room = self.room(room)?;
        self.bus
            .try_deliver(conn.worker, BusMsg::ConnRoom { conn, room, join })
    }
}

/// Identifies a subscriber connection across the process: its worker and its place there.
///
/// Displays as `worker.key.generation` (e.g. `1.42.3`), stable for the
/// connection's life: fit for logs and as a map key's text.
///
/// ```
/// let id = ringcast::ConnId { worker: 1, key: 42, generation: 3 };
/// assert_eq!(id.to_string(), "1.42.3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// The worker that owns the connection.
    pub worker: usize,
    /// Its place in that worker's table.
    pub key: usize,
    /// Tells it from an earlier connection in the same place.
    pub generation: u32,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.worker, self.key, self.generation)
    }
}

/// The first room-sequence id of a room created now: microseconds since the
/// Unix epoch, so ids keep growing across restarts and a client's old cursor
/// is recognised as older than anything the new process has.
pub fn room_base_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert!(valid_room_name("news", 128));
        assert!(valid_room_name("user:42@eu-west.1_a", 128));
        assert!(!valid_room_name("", 128));
        assert!(!valid_room_name("a b", 128));
        assert!(!valid_room_name("a/b", 128));
        assert!(!valid_room_name("é", 128));
        assert!(!valid_room_name(&"a".repeat(129), 128));
    }

    #[test]
    fn published_is_encoded_once_with_and_without_id() {
        let p = Published::encode(Arc::from("r"), 42, 0, Message::with_event("tick", "a\nb"));
        assert_eq!(&p.sse[..], b"id: 42\nevent: tick\ndata: a\ndata: b\n\n");
        assert_eq!(&p.sse_body()[..], b"event: tick\ndata: a\ndata: b\n\n");
        // the body is a view of the same allocation, not a copy
        assert_eq!(p.sse_body().as_ptr(), p.sse[7..].as_ptr());
    }
}
