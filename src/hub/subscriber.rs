//! One subscriber connection as the hub sees it: its rooms and its position
//! in each (the resume cursor), and its bounded write queue of shared frames.
//!
//! Delivering a message pushes a clone of the shared `Bytes` (a reference
//! count, not a copy) and kicks the connection's task, which drains the queue
//! with one vectored write. A subscriber whose queue would pass
//! `hub.max_queued_bytes` is marked dropped and disconnected; it can resume
//! from history.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::{Gap, Published, RoomName};
use crate::config::Envelope;
use crate::server::event::Signal;

/// How many recent multi-room message groups a subscriber remembers, to receive each once.
const RECENT_GROUPS: usize = 64;

/// One of a subscriber's rooms.
#[derive(Debug)]
pub struct SubRoom {
    pub name: RoomName,
    /// The last sequence id received from this room (the room's head at join when not resuming).
    pub pos: u64,
    /// Its place in the worker's local room, once the join is complete.
    pub local_key: LocalKey,
    /// The room's home counts this subscriber (a join was sent and no leave yet).
    pub counted: bool,
}

/// A key in a worker's local room, or none, in 4 bytes (a subscriber keeps
/// one per room; keys count connections, far below 2^32).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LocalKey(Option<std::num::NonZeroU32>);

impl LocalKey {
    pub fn new(key: usize) -> LocalKey {
        let k = u32::try_from(key + 1)
            .ok()
            .and_then(std::num::NonZeroU32::new);
        debug_assert!(k.is_some(), "local room key {key} out of range");
        LocalKey(k)
    }

    pub fn take(&mut self) -> Option<usize> {
        std::mem::take(self).0.map(|k| k.get() as usize - 1)
    }
}

/// The wire format a subscriber receives room messages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sse,
    Ws { envelope: Envelope, deflate: bool },
}

/// Why a subscriber must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Open,
    /// It fell more than `hub.max_queued_bytes` behind.
    SlowConsumer,
    /// A room could not be joined (`hub.max_rooms`).
    Refused,
    /// Nothing more may be queued (a close frame is the last); what is queued is still written.
    Sealed,
}

/// The last frame built during one delivery (one message): subscribers whose
/// cursors are equal share one `id:` line + body, not one each.
#[derive(Default)]
pub struct CursorCache {
    positions: Vec<u64>,
    frame: Option<Bytes>,
}

impl CursorCache {
    /// The whole SSE frame of `p` with these rooms' positions as its `id:`.
    fn frame(&mut self, rooms: &[SubRoom], p: &Published) -> Bytes {
        let same = self.frame.is_some()
            && self.positions.len() == rooms.len()
            && self.positions.iter().zip(rooms).all(|(a, r)| *a == r.pos);
        if !same {
            self.positions.clear();
            self.positions.extend(rooms.iter().map(|r| r.pos));
            let body = p.sse_body();
            let mut frame = BytesMut::with_capacity(8 + 17 * rooms.len() + body.len());
            frame.extend_from_slice(b"id: ");
            let mut buf = itoa::Buffer::new();
            for (i, r) in rooms.iter().enumerate() {
                if i > 0 {
                    frame.extend_from_slice(b".");
                }
                frame.extend_from_slice(buf.format(r.pos).as_bytes());
            }
            frame.extend_from_slice(b"\n");
            frame.extend_from_slice(&body);
            self.frame = Some(frame.freeze());
        }
        self.frame.clone().expect("set above")
    }
}

/// What a subscriber has waiting to be written. Boxed, and dropped when a
/// quiet connection parks (see [`Subscriber::release_idle`]): an idle
/// subscriber holds no queue.
#[derive(Default)]
struct Outbox {
    /// Frames the connection produces itself (echoes, pongs, closes), kept in
    /// order with room frames: moved to the queue before any room frame.
    cork: BytesMut,
    queue: VecDeque<Bytes>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.cork.is_empty() && self.queue.is_empty()
    }

    /// Moves corked frames to the queue (keeps the order with what follows).
    fn uncork(&mut self) {
        if !self.cork.is_empty() {
            let chunk = self.cork.split().freeze();
            self.queue.push_back(chunk);
        }
    }
}

pub struct Subscriber {
    /// Its key in the worker's subscriber table (u32: one per connection).
    key: Cell<u32>,
    pub generation: u32,
    pub format: Format,
    /// A ping was sent and its pong has not come back (WebSocket).
    pub awaiting_pong: Cell<bool>,
    rooms: RefCell<Vec<SubRoom>>,
    /// Taken out while in use (a `Cell`: no borrow flag, one per connection).
    out: Cell<Option<Box<Outbox>>>,
    /// Bytes waiting (u32: the limit is kept below 4 GiB, see [`Subscriber::new`]).
    queued: Cell<u32>,
    max_queued: u32,
    closing: Cell<Closing>,
    pub signal: Rc<Signal>,
    /// Something was written since the last keep-alive tick.
    active: Cell<bool>,
    /// Waiting in the worker's list of subscribers to wake (see `HubLocal::stage`).
    staged: Cell<bool>,
    /// Made on the first multi-room message (most subscribers never get one).
    // boxed: 8 bytes in every subscriber instead of a 32-byte empty list
    #[allow(clippy::box_collection)]
    recent_groups: Cell<Option<Box<VecDeque<u64>>>>,
}

impl Subscriber {
    /// A subscriber of `rooms`, each from its `resume` position (none: from
    /// the room's head at join).
    pub fn new(
        rooms: &[RoomName],
        resume: Option<&[u64]>,
        max_queued: usize,
        signal: Rc<Signal>,
        generation: u32,
    ) -> Subscriber {
        // exactly sized, with no list in between: this one lives as long as the connection
        let mut list = Vec::with_capacity(rooms.len());
        list.extend(rooms.iter().enumerate().map(|(i, name)| SubRoom {
            name: name.clone(),
            pos: resume.and_then(|c| c.get(i).copied()).unwrap_or(0),
            local_key: LocalKey::default(),
            counted: false,
        }));
        Subscriber {
            key: Cell::new(u32::MAX),
            generation,
            format: Format::Sse,
            awaiting_pong: Cell::new(false),
            rooms: RefCell::new(list),
            out: Cell::new(None),
            queued: Cell::new(0),
            // a limit of 4 GiB or more per connection is no limit in practice
            max_queued: u32::try_from(max_queued).unwrap_or(u32::MAX),
            closing: Cell::new(Closing::Open),
            signal,
            active: Cell::new(false),
            staged: Cell::new(false),
            recent_groups: Cell::new(None),
        }
    }

    /// Its key in the worker's subscriber table.
    pub fn key(&self) -> usize {
        self.key.get() as usize
    }

    pub fn set_key(&self, key: usize) {
        debug_assert!(key < u32::MAX as usize, "subscriber key {key} out of range");
        self.key.set(key as u32);
    }

    /// The same subscriber receiving room messages as WebSocket frames.
    pub fn with_format(mut self, format: Format) -> Subscriber {
        self.format = format;
        self
    }

    /// Appends frames the connection produces itself; false (and closing) over the limit.
    pub fn cork(&self, f: impl FnOnce(&mut BytesMut)) -> bool {
        if self.closing.get() != Closing::Open {
            return false;
        }
        let added = self.outbox(|out| {
            let before = out.cork.len();
            f(&mut out.cork);
            out.cork.len() - before
        });
        let n = self.queued.get() as usize + added;
        if n > self.max_queued as usize {
            self.close_with(Closing::SlowConsumer);
            return false;
        }
        self.queued.set(n as u32);
        self.signal.kick();
        true
    }

    /// Runs `f` on the outbox (made if there is none).
    fn outbox<R>(&self, f: impl FnOnce(&mut Outbox) -> R) -> R {
        let mut out = self.out.take().unwrap_or_default();
        let r = f(&mut out);
        self.out.set(Some(out));
        r
    }

    /// Drops the empty outbox of a connection about to park (true if there
    /// was nothing to write); the next frame makes a new one.
    pub fn release_idle(&self) -> bool {
        let out = self.out.take();
        let empty = (out.as_ref()).is_none_or(|o| o.is_empty());
        if !empty {
            self.out.set(out);
        }
        empty
    }

    /// Accepts nothing more; what is queued stays and is written.
    pub fn seal(&self) {
        if self.closing.get() == Closing::Open {
            self.closing.set(Closing::Sealed);
        }
    }

    pub fn closing(&self) -> Closing {
        self.closing.get()
    }

    /// The hub dropped this subscriber (too slow, or refused): its
    /// connection ends without writing what it still had.
    pub fn dropped(&self) -> bool {
        matches!(self.closing.get(), Closing::SlowConsumer | Closing::Refused)
    }

    pub fn close_with(&self, why: Closing) {
        if self.closing.get() == Closing::Open {
            self.closing.set(why);
            self.out.set(None);
            self.queued.set(0);
        }
        self.signal.kick();
    }

    /// The rooms, in the stream's order.
    pub fn rooms(&self) -> std::cell::Ref<'_, Vec<SubRoom>> {
        self.rooms.borrow()
    }

    pub fn rooms_mut(&self) -> std::cell::RefMut<'_, Vec<SubRoom>> {
        self.rooms.borrow_mut()
    }

    /// Queues bytes for the connection and wakes it; false (and closing) when over the limit.
    pub fn push(&self, b: Bytes) -> bool {
        let ok = self.enqueue(b);
        if ok {
            self.signal.kick();
        }
        ok
    }

    /// Queues without waking (the caller kicks once after several frames).
    fn enqueue(&self, b: Bytes) -> bool {
        if self.closing.get() != Closing::Open {
            return false;
        }
        let n = self.queued.get() as usize + b.len();
        if n > self.max_queued as usize {
            self.close_with(Closing::SlowConsumer);
            return false;
        }
        self.queued.set(n as u32);
        self.outbox(|out| {
            out.uncork();
            out.queue.push_back(b);
        });
        true
    }

    /// Delivers a room message (room `idx` of this subscriber). Messages at
    /// or before the room position are skipped (no duplicate at the seam
    /// between history and live). Returns false if the subscriber was dropped.
    pub fn deliver(&self, p: &Published, idx: usize) -> bool {
        let ok = self.deliver_with(p, idx, &mut CursorCache::default());
        self.signal.kick();
        ok
    }

    /// Marks the subscriber as waiting to be woken; false if it already was.
    pub fn stage(&self) -> bool {
        !self.staged.replace(true)
    }

    /// Wakes a staged subscriber: it writes everything queued so far.
    pub fn wake_staged(&self) {
        self.staged.set(false);
        self.signal.kick();
    }

    /// Queues a room message without waking the connection (the caller wakes
    /// it, see [`Subscriber::stage`]), sharing multi-room frames between
    /// subscribers whose positions are equal (one `Bytes` for all of them).
    pub fn deliver_with(&self, p: &Published, idx: usize, cache: &mut CursorCache) -> bool {
        if self.closing.get() != Closing::Open {
            return false;
        }
        let frame = {
            let mut rooms = self.rooms.borrow_mut();
            let Some(r) = rooms.get_mut(idx) else {
                return true;
            };
            if p.seq <= r.pos {
                return true;
            }
            r.pos = p.seq;
            if p.group != 0 {
                let mut recent = self.recent_groups.take().unwrap_or_default();
                let seen = recent.contains(&p.group);
                if !seen {
                    if recent.len() == RECENT_GROUPS {
                        recent.pop_front();
                    }
                    recent.push_back(p.group);
                }
                self.recent_groups.set(Some(recent));
                if seen {
                    return true; // already received through another room; the cursor moved on anyway
                }
            }
            if let Format::Ws { envelope, deflate } = self.format {
                drop(rooms);
                return self.enqueue(p.ws_frame(envelope, deflate));
            }
            if rooms.len() == 1 {
                p.sse.clone()
            } else {
                cache.frame(&rooms, p)
            }
        };
        self.enqueue(frame)
    }

    /// Tells the client that part of what it missed is gone: an SSE event
    /// `ringcast-gap`, or for a WebSocket a text frame
    /// `{"event":"ringcast-gap",...}`, with the same fields.
    pub fn push_gap(&self, gap: &Gap) -> bool {
        let mut data = serde_json::json!({
            "room": &*gap.room,
            "since": gap.since,
            "resume_from": gap.resume_from,
            "reason": gap.reason,
        });
        let mut out = BytesMut::new();
        match self.format {
            Format::Sse => crate::sse::encode::event(
                &mut out,
                None,
                Some("ringcast-gap"),
                data.to_string().as_bytes(),
            ),
            Format::Ws { .. } => {
                data["event"] = "ringcast-gap".into();
                crate::ws::frame::encode_frame(
                    crate::ws::frame::OpCode::Text,
                    data.to_string().as_bytes(),
                    &mut out,
                );
            }
        }
        self.push(out.freeze())
    }

    /// Moves the queued frames out for writing.
    pub fn take_queue(&self, into: &mut VecDeque<Bytes>) {
        let Some(mut out) = self.out.take() else {
            return;
        };
        out.uncork();
        if into.is_empty() {
            std::mem::swap(&mut out.queue, into);
        } else {
            into.extend(out.queue.drain(..));
        }
        self.out.set(Some(out));
    }

    /// Sends the corked frames straight from the cork when nothing else is
    /// queued (`None`: there was nothing to send that way): no queue entry
    /// and no shared buffer per write, which is what a connection answering
    /// one message at a time (an echo) does most. Bytes left after a partial
    /// send stay corked, in order. The caller counts what was sent
    /// ([`Subscriber::written`]), as for any other write.
    pub fn send_cork(&self, fd: std::os::fd::RawFd) -> Option<std::io::Result<usize>> {
        let mut out = self.out.take()?;
        let r = (out.queue.is_empty() && !out.cork.is_empty()).then(|| {
            let r = crate::io::sock::send(fd, &out.cork);
            if let Ok(n) = r {
                if n == out.cork.len() {
                    out.cork.clear();
                } else {
                    bytes::Buf::advance(&mut out.cork, n);
                }
            }
            r
        });
        self.out.set(Some(out));
        r
    }

    /// Frames have left the queue for the socket: `n` bytes are no longer queued.
    pub fn written(&self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.queued.set(self.queued.get().saturating_sub(n));
        self.active.set(true);
    }

    pub fn has_queued(&self) -> bool {
        let out = self.out.take();
        let queued = (out.as_ref()).is_some_and(|o| !o.is_empty());
        self.out.set(out);
        queued
    }

    /// For the keep-alive tick: true if nothing was written since the last call.
    pub fn idle_since_last_tick(&self) -> bool {
        !self.active.replace(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Message;
    use std::sync::Arc;

    fn sub(rooms: &[(&str, u64)], max: usize) -> Subscriber {
        let names: Vec<RoomName> = rooms.iter().map(|(n, _)| Arc::from(*n)).collect();
        let positions: Vec<u64> = rooms.iter().map(|(_, p)| *p).collect();
        Subscriber::new(&names, Some(&positions), max, Rc::new(Signal::default()), 0)
    }

    /// Corked frames sent straight from the cork: a partial send leaves the
    /// rest corked, ahead of a room frame queued after it; with a room frame
    /// queued the cork is not sent that way (order).
    #[test]
    fn cork_sent_directly_keeps_the_order() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let s = sub(&[("r", 0)], 64 << 20);
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        assert!(s.send_cork(a.as_raw_fd()).is_none(), "nothing corked");
        let big: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
        assert!(s.cork(|out| out.extend_from_slice(&big)));
        let first = s.send_cork(a.as_raw_fd()).unwrap().unwrap();
        assert!(first > 0 && first < big.len(), "a partial send: {first}");
        s.written(first);
        assert!(s.push(Bytes::from_static(b"room")));
        assert!(
            s.send_cork(a.as_raw_fd()).is_none(),
            "a room frame is queued"
        );
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            got
        });
        let mut q = VecDeque::new();
        s.take_queue(&mut q);
        while !q.is_empty() {
            match crate::io::writeq::write_queue(a.as_raw_fd(), &mut q) {
                Ok(n) => s.written(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        drop(a);
        let mut want = big;
        want.extend_from_slice(b"room");
        assert!(reader.join().unwrap() == want, "bytes out of order");
        assert!(!s.has_queued());
    }

    fn drain(s: &Subscriber) -> String {
        let mut q = VecDeque::new();
        s.take_queue(&mut q);
        q.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    fn msg(room: &str, seq: u64, group: u64, data: &str) -> Published {
        Published::encode(Arc::from(room), seq, group, Message::new(data.to_string()))
    }

    #[test]
    fn single_room_frames_are_the_shared_bytes() {
        let s = sub(&[("a", 10)], 1 << 20);
        let p = msg("a", 11, 0, "hi");
        assert!(s.deliver(&p, 0));
        let mut q = VecDeque::new();
        s.take_queue(&mut q);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].as_ptr(), p.sse.as_ptr(), "no copy per subscriber");
        assert_eq!(&q[0][..], b"id: 11\ndata: hi\n\n");
    }

    #[test]
    fn multi_room_id_is_the_cursor() {
        let s = sub(&[("a", 10), ("b", 20)], 1 << 20);
        s.deliver(&msg("b", 21, 0, "x"), 1);
        s.deliver(&msg("a", 11, 0, "y"), 0);
        assert_eq!(drain(&s), "id: 10.21\ndata: x\n\nid: 11.21\ndata: y\n\n");
    }

    #[test]
    fn equal_cursors_share_one_frame() {
        let a = sub(&[("a", 10), ("b", 20)], 1 << 20);
        let b = sub(&[("a", 10), ("b", 20)], 1 << 20);
        let c = sub(&[("a", 10), ("b", 25)], 1 << 20);
        let p = msg("a", 11, 0, "x");
        let mut cache = CursorCache::default();
        for s in [&a, &b, &c] {
            s.deliver_with(&p, 0, &mut cache);
        }
        let (mut qa, mut qb) = (VecDeque::new(), VecDeque::new());
        a.take_queue(&mut qa);
        b.take_queue(&mut qb);
        assert_eq!(qa.len(), 1, "one frame per delivery");
        assert_eq!(
            qa[0].as_ptr(),
            qb[0].as_ptr(),
            "one frame for equal cursors"
        );
        assert_eq!(
            drain(&c),
            "id: 11.25\ndata: x\n\n",
            "a different cursor gets its own line"
        );
    }

    #[test]
    fn duplicates_at_the_seam_are_skipped() {
        let s = sub(&[("a", 10)], 1 << 20);
        s.deliver(&msg("a", 11, 0, "1"), 0);
        s.deliver(&msg("a", 11, 0, "1"), 0);
        s.deliver(&msg("a", 9, 0, "old"), 0);
        s.deliver(&msg("a", 12, 0, "2"), 0);
        assert_eq!(drain(&s), "id: 11\ndata: 1\n\nid: 12\ndata: 2\n\n");
    }

    #[test]
    fn a_group_arrives_once_but_moves_every_cursor() {
        let s = sub(&[("a", 10), ("b", 20)], 1 << 20);
        s.deliver(&msg("a", 11, 7, "once"), 0);
        s.deliver(&msg("b", 21, 7, "once"), 1);
        s.deliver(&msg("b", 22, 0, "next"), 1);
        assert_eq!(
            drain(&s),
            "id: 11.20\ndata: once\n\nid: 11.22\ndata: next\n\n"
        );
    }

    #[test]
    fn slow_consumer_is_dropped_at_the_limit() {
        let s = sub(&[("a", 0)], 40);
        assert!(s.deliver(&msg("a", 1, 0, "0123456789"), 0)); // 24 bytes
        assert!(!s.deliver(&msg("a", 2, 0, "0123456789"), 0)); // would be 48
        assert_eq!(s.closing(), Closing::SlowConsumer);
        assert!(!s.has_queued(), "its queue is released");
        assert!(!s.deliver(&msg("a", 3, 0, "x"), 0));
    }
}
