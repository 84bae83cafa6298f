//! Rooms: one `tokio::sync::broadcast` channel per room, and the per-room
//! message id. A published message becomes one [`Event`] behind an `Arc`,
//! built once (body and SSE frame); every subscriber gets a clone of the
//! `Arc`, never a copy of the bytes.
//!
//! Rooms are created on first use (subscribe or publish) and kept for the
//! life of the process, so ids keep counting up across subscribers coming
//! and going.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::sse;

/// One published message, shared by every subscriber of the room.
#[derive(Debug)]
pub struct Event {
    /// Sequence number within the room, from 1.
    pub id: u64,
    /// The published body, verbatim. Always valid UTF-8 (checked when it
    /// was published), so it can be sent as a WebSocket text frame.
    pub text: Bytes,
    /// The whole SSE event, `id: N\ndata: ...\n\n`, encoded once.
    pub sse: Bytes,
}

/// What a room's channel carries.
pub type Shared = Arc<Event>;

struct Room {
    tx: broadcast::Sender<Shared>,
    /// Last id handed out. Held while sending, so channel order = id order
    /// even with several publishers on several threads.
    last_id: Mutex<u64>,
}

/// All rooms of the process.
pub struct Rooms {
    capacity: usize,
    map: RwLock<HashMap<Box<str>, Arc<Room>>>,
}

impl Rooms {
    /// Rooms whose channels have `capacity` slots each.
    pub fn new(capacity: usize) -> Rooms {
        Rooms {
            capacity,
            map: RwLock::new(HashMap::new()),
        }
    }

    fn room(&self, name: &str) -> Arc<Room> {
        if let Some(room) = self.map.read().expect("rooms lock").get(name) {
            return room.clone();
        }
        let mut map = self.map.write().expect("rooms lock");
        map.entry(name.into())
            .or_insert_with(|| {
                let (tx, _) = broadcast::channel(self.capacity);
                Arc::new(Room {
                    tx,
                    last_id: Mutex::new(0),
                })
            })
            .clone()
    }

    /// A new subscriber of `name`: it receives every message published from
    /// now on.
    pub fn subscribe(&self, name: &str) -> broadcast::Receiver<Shared> {
        self.room(name).tx.subscribe()
    }

    /// Publishes `text` (valid UTF-8) to `name` and returns its id.
    pub fn publish(&self, name: &str, text: Bytes) -> u64 {
        let room = self.room(name);
        let mut last = room.last_id.lock().expect("room lock");
        *last += 1;
        let id = *last;
        let sse = sse::encode(id, &text);
        // No subscriber is not an error: the message just goes nowhere.
        let _ = room.tx.send(Arc::new(Event { id, text, sse }));
        id
    }
}

static LAG_EVENTS: AtomicU64 = AtomicU64::new(0);
static LAG_MISSED: AtomicU64 = AtomicU64::new(0);

/// Records that a subscriber fell more than the channel capacity behind and
/// missed `missed` messages. Logs the 1st, 2nd, 4th, 8th... such event, so a
/// stampede of slow subscribers cannot flood stderr.
pub fn note_lag(missed: u64) {
    let n = LAG_EVENTS.fetch_add(1, Ordering::Relaxed) + 1;
    let total = LAG_MISSED.fetch_add(missed, Ordering::Relaxed) + missed;
    if n.is_power_of_two() {
        eprintln!(
            "lagged subscriber: missed {missed} messages \
             ({n} lag events, {total} messages missed in all)"
        );
    }
}

/// (lag events, messages missed) so far.
pub fn lag_totals() -> (u64, u64) {
    (
        LAG_EVENTS.load(Ordering::Relaxed),
        LAG_MISSED.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_per_room_and_subscribers_see_them_in_order() {
        let rooms = Rooms::new(16);
        let mut rx = rooms.subscribe("a");
        assert_eq!(rooms.publish("a", Bytes::from_static(b"x")), 1);
        assert_eq!(rooms.publish("b", Bytes::from_static(b"y")), 1);
        assert_eq!(rooms.publish("a", Bytes::from_static(b"z")), 2);
        let e1 = rx.try_recv().unwrap();
        let e2 = rx.try_recv().unwrap();
        assert_eq!((e1.id, &e1.text[..]), (1, &b"x"[..]));
        assert_eq!((e2.id, &e2.sse[..]), (2, &b"id: 2\ndata: z\n\n"[..]));
        assert!(rx.try_recv().is_err());
    }
}
