//! Rooms: a message published once reaches every subscriber of its room, in
//! the same order for all of them, on every worker.
//!
//! - [`home`]: each room has a home worker (`hash(room) % workers`) that
//!   numbers its messages, keeps its history and knows which workers have
//!   subscribers.
//! - [`shard`]: each worker keeps its own connections' membership
//!   (`room -> local subscribers`) and delivers to them.
//! - [`bus`]: one pair of bounded inboxes per worker carries publishes, joins
//!   and deliveries across cores as `Arc`s (nothing is copied per subscriber).
//! - [`subscriber`]: a connection's bounded write queue and resume positions.
//! - [`Hub`]: the handle to publish and query from anywhere, any thread.

pub mod bus;
pub mod home;
pub mod local;
pub mod shard;
pub mod subscriber;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::config::Envelope;
use crate::ws::frame::OpCode;

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

/// A message to publish: optional SSE event name and the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub event: Option<String>,
    pub data: Bytes,
}

impl Message {
    pub fn new(data: impl Into<Bytes>) -> Message {
        Message {
            event: None,
            data: data.into(),
        }
    }

    pub fn with_event(event: impl Into<String>, data: impl Into<Bytes>) -> Message {
        Message {
            event: Some(event.into()),
            data: data.into(),
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
        crate::sse::encode::event(&mut buf, None, msg.event.as_deref(), &msg.data);
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
                        json = [
                            &self.data[..],
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
                    crate::ws::deflate::deflate_frame_once(opcode, payload, 15)
                } else {
                    crate::ws::frame::frame_bytes(opcode, payload)
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
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HubError::BadRoom(r) => write!(f, "invalid room name {r:?}"),
            HubError::TooManyRooms => f.write_str("hub.max_rooms reached"),
            HubError::Busy => f.write_str("the room's home worker inbox is full"),
            HubError::Closed => f.write_str("the server is shutting down"),
        }
    }
}
impl std::error::Error for HubError {}

/// What a room looks like right now, across all workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub subscribers: u64,
    /// The last message's id, if any message is in the history.
    pub last_id: Option<u64>,
    /// Messages in the history.
    pub history_len: usize,
}

/// Tells a resuming client that part of what it missed is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
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
    max_room_name: usize,
}

static GROUPS: AtomicU64 = AtomicU64::new(1);

impl Hub {
    pub(crate) fn new(bus: Arc<Bus>, max_room_name: usize) -> Hub {
        Hub { bus, max_room_name }
    }

    fn check(&self, room: &str) -> Result<RoomName, HubError> {
        if valid_room_name(room, self.max_room_name) {
            Ok(Arc::from(room))
        } else {
            Err(HubError::BadRoom(room.to_string()))
        }
    }

    /// Publishes without waiting: errors with [`HubError::Busy`] when the
    /// room's home inbox is full.
    pub fn publish(&self, room: &str, msg: Message) -> Result<(), HubError> {
        let room = self.check(room)?;
        self.bus.try_request(BusMsg::Publish {
            room,
            msg,
            group: 0,
            reply: None,
        })
    }

    /// Publishes, waiting for inbox space, and returns the message's id in the room.
    pub async fn publish_async(&self, room: &str, msg: Message) -> Result<u64, HubError> {
        let room = self.check(room)?;
        self.bus.publish_and_wait(room, msg).await
    }

    /// Publishes one message to several rooms; a connection in several of
    /// them receives it once. Each room numbers it in its own order.
    pub fn publish_many(&self, rooms: &[&str], msg: Message) -> Result<(), HubError> {
        let names: Vec<RoomName> = rooms
            .iter()
            .map(|r| self.check(r))
            .collect::<Result<_, _>>()?;
        let group = GROUPS.fetch_add(1, Ordering::Relaxed);
        for room in names {
            self.bus.try_request(BusMsg::Publish {
                room,
                msg: msg.clone(),
                group,
                reply: None,
            })?;
        }
        Ok(())
    }

    /// Subscribers (all workers), last id and history length of a room.
    pub async fn room_info(&self, room: &str) -> Result<RoomInfo, HubError> {
        let room = self.check(room)?;
        self.bus.room_info(room).await
    }

    /// [`Hub::room_info`] for threads outside the workers (blocks).
    pub fn room_info_blocking(&self, room: &str) -> Result<RoomInfo, HubError> {
        let room = self.check(room)?;
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
        let room = self.check(room)?;
        self.bus
            .try_deliver(conn.worker, BusMsg::ConnRoom { conn, room, join })
    }
}

/// Identifies a subscriber connection across the process: its worker and its place there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub worker: usize,
    pub key: usize,
    pub generation: u32,
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
