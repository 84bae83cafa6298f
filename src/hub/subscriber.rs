//! One subscriber connection as the hub sees it: its rooms and its position
//! in each (the resume cursor), and its bounded write queue of shared frames.
//!
//! Delivering a message pushes a clone of the shared `Bytes` (a reference
//! count, not a copy) and kicks the connection's task, which drains the queue
//! with one vectored write. A subscriber whose queue would pass
//! `hub.max_queued_bytes` is marked dropped and disconnected; it can resume
//! from history.
//!
//! Replay (resuming from history) is paced by the queue: the home hands
//! what a subscriber missed over in pieces, [`Subscriber::pace_replay`]
//! queues them while the queue is under the replay budget and
//! asks for the next piece once a piece is queued, and the connection calls
//! it again as its writes drain the queue. Meanwhile the room's live
//! messages are skipped (the history brings them, in order); the room goes
//! live when a piece reaching the room's head is queued whole. So a replay
//! is bounded by the history, not by the queue limit.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{Gap, Published, RoomName};
use crate::config::Envelope;
use crate::io::signal::Signal;

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
    /// Its history is still being replayed: live messages of the room are
    /// skipped (the replay brings them, in order).
    pub replaying: bool,
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

/// How a replay is paced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLimits {
    /// Replayed frames are queued while the queue holds less than this
    /// (and one at a time when it is empty); also the size of a piece of
    /// history asked from a home.
    pub budget: usize,
    /// How many messages a room's history keeps (`hub.history_size`).
    pub history_size: usize,
}

/// The history a subscriber is still to receive, room by room.
#[derive(Default)]
struct Replay {
    rooms: Vec<RoomReplay>,
    limits: ReplayLimits,
}

/// One room's replay.
struct RoomReplay {
    /// The room's index in the subscriber's rooms.
    idx: usize,
    /// Received from the room's home, not yet queued.
    ready: VecDeque<Arc<Published>>,
    /// The history goes on after `ready`: once it is queued, ask for more.
    more: bool,
    /// The next piece was asked for and has not arrived.
    asked: bool,
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
    /// History still to be queued (only while resuming).
    replay: Option<Box<Replay>>,
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
    /// A room's history is being replayed (the replay itself is in the outbox).
    replaying: Cell<bool>,
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
            replaying: false,
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
            replaying: Cell::new(false),
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
    /// was nothing to write); the next frame makes a new one. An outbox that
    /// holds a replay waiting for its next piece stays.
    pub fn release_idle(&self) -> bool {
        let out = self.out.take();
        let empty = (out.as_ref()).is_none_or(|o| o.is_empty());
        if !empty || out.as_ref().is_some_and(|o| o.replay.is_some()) {
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
        self.enqueue_as(b, false)
    }

    /// Queues; over the limit a live frame drops the subscriber, while a
    /// replayed one (which [`Subscriber::pace_replay`] queues only below the
    /// replay budget, or alone) is always taken.
    fn enqueue_as(&self, b: Bytes, replayed: bool) -> bool {
        if self.closing.get() != Closing::Open {
            return false;
        }
        let n = self.queued.get() as usize + b.len();
        if n > self.max_queued as usize && !replayed {
            self.close_with(Closing::SlowConsumer);
            return false;
        }
        self.queued.set(u32::try_from(n).unwrap_or(u32::MAX));
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
        self.deliver_as(p, idx, cache, false)
    }

    /// [`Subscriber::deliver_with`] for a live message, or for one from the
    /// room's history (`replayed`).
    #[inline]
    fn deliver_as(
        &self,
        p: &Published,
        idx: usize,
        cache: &mut CursorCache,
        replayed: bool,
    ) -> bool {
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
            if r.replaying && !replayed {
                let pos = r.pos;
                drop(rooms);
                return self.skip_live(p.seq, idx, pos);
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
                return self.enqueue_as(p.ws_frame(envelope, deflate), replayed);
            }
            if rooms.len() == 1 {
                p.sse.clone()
            } else {
                cache.frame(&rooms, p)
            }
        };
        self.enqueue_as(frame, replayed)
    }

    /// A live message of a room still replaying is skipped: the replay
    /// brings it, in order. False (and dropped as a slow consumer) when it
    /// shows that the history has moved past what the replay still needs:
    /// the subscriber reads more slowly than the room goes.
    #[cold]
    fn skip_live(&self, seq: u64, idx: usize, pos: u64) -> bool {
        let Some(replay) = self.outbox(|o| o.replay.take()) else {
            return true;
        };
        let behind = replay.rooms.iter().find(|r| r.idx == idx).is_some_and(|r| {
            // the next piece will be asked from here (unless one is on its way)
            let next_after = r.ready.back().map_or(pos, |p| p.seq);
            let keep = replay.limits.history_size as u64;
            !r.asked && keep > 0 && seq.saturating_sub(next_after) > keep
        });
        self.outbox(|o| o.replay = Some(replay));
        if behind {
            self.close_with(Closing::SlowConsumer);
            return false;
        }
        true
    }

    /// The most bytes its queue may hold (`hub.max_queued_bytes`, for a
    /// WebSocket plus room for answers to what it accepted).
    pub fn max_queued(&self) -> usize {
        self.max_queued as usize
    }

    /// A room's history is being replayed (the connection calls
    /// [`HubLocal::pace_replay`](super::local::HubLocal::pace_replay) after
    /// its writes).
    pub fn replaying(&self) -> bool {
        self.replaying.get()
    }

    /// Takes a piece of room `idx`'s history from its home (the first one
    /// with the join): the room replays until a piece that reaches its head
    /// is queued whole. Queue it with [`Subscriber::pace_replay`].
    pub fn replay_piece(
        &self,
        idx: usize,
        piece: Vec<Arc<Published>>,
        more: bool,
        limits: ReplayLimits,
    ) {
        if self.closing.get() != Closing::Open {
            return;
        }
        match self.rooms.borrow_mut().get_mut(idx) {
            Some(r) => r.replaying = true,
            None => return,
        }
        let mut replay = self.outbox(|o| o.replay.take()).unwrap_or_default();
        replay.limits = limits;
        let room = match replay.rooms.iter().position(|r| r.idx == idx) {
            Some(i) => &mut replay.rooms[i],
            None => {
                replay.rooms.push(RoomReplay {
                    idx,
                    ready: VecDeque::new(),
                    more,
                    asked: false,
                });
                replay.rooms.last_mut().expect("just pushed")
            }
        };
        room.ready.extend(piece);
        room.more = more;
        room.asked = false;
        self.outbox(|o| o.replay = Some(replay));
        self.replaying.set(true);
    }

    /// Stops replaying room `idx` (the subscriber left it).
    pub fn cancel_replay(&self, idx: usize) {
        if !self.replaying.get() {
            return;
        }
        if let Some(r) = self.rooms.borrow_mut().get_mut(idx) {
            r.replaying = false;
        }
        if let Some(mut replay) = self.outbox(|o| o.replay.take()) {
            replay.rooms.retain(|r| r.idx != idx);
            if replay.rooms.is_empty() {
                self.replaying.set(false);
            } else {
                self.outbox(|o| o.replay = Some(replay));
            }
        }
    }

    /// Queues replayed history while the queue is under the replay budget
    /// ([`ReplayLimits`]; when it is empty, one message however big). A room whose history
    /// is all queued goes live; a room that needs its next piece is added to
    /// `asks` as (room index, the position its replay has reached), once per
    /// piece.
    pub fn pace_replay(&self, asks: &mut Vec<(usize, u64)>) {
        if !self.replaying.get() || self.closing.get() != Closing::Open {
            return;
        }
        let Some(mut replay) = self.outbox(|o| o.replay.take()) else {
            self.replaying.set(false);
            return;
        };
        let budget = replay.limits.budget;
        let mut queued_any = false;
        'rooms: for room in &mut replay.rooms {
            while let Some(p) = room.ready.front() {
                let queued = self.queued.get() as usize;
                if queued > 0 && queued + self.frame_len(p) > budget {
                    break 'rooms;
                }
                let p = room.ready.pop_front().expect("looked at");
                queued_any |= self.deliver_as(&p, room.idx, &mut CursorCache::default(), true);
            }
        }
        if self.closing.get() != Closing::Open {
            return;
        }
        let mut rooms = self.rooms.borrow_mut();
        replay.rooms.retain_mut(|room| {
            if !room.ready.is_empty() {
                // Not all queued: the room's live messages are skipped from
                // now on, so they must come from the history too.
                room.more = true;
                return true;
            }
            if room.more {
                if !room.asked {
                    room.asked = true;
                    asks.push((room.idx, rooms[room.idx].pos));
                }
                return true;
            }
            rooms[room.idx].replaying = false; // all of it queued: live from here
            false
        });
        drop(rooms);
        if replay.rooms.is_empty() {
            self.replaying.set(false);
        } else {
            self.outbox(|o| o.replay = Some(replay));
        }
        if queued_any {
            self.signal.kick();
        }
    }

    /// The most bytes the frame of `p` takes in this subscriber's queue.
    fn frame_len(&self, p: &Published) -> usize {
        match self.format {
            Format::Ws { envelope, deflate } => p.ws_frame(envelope, deflate).len(),
            // a multi-room stream writes its cursor (one position per room) in the `id:` line
            Format::Sse => match self.rooms.borrow().len() {
                1 => p.sse.len(),
                n => p.sse.len() + 21 * n,
            },
        }
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
            Format::Sse => crate::proto::sse::encode::event(
                &mut out,
                None,
                Some("ringcast-gap"),
                data.to_string().as_bytes(),
            ),
            Format::Ws { .. } => {
                data["event"] = "ringcast-gap".into();
                crate::proto::ws::frame::encode_frame(
                    crate::proto::ws::frame::OpCode::Text,
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

    /// Hands the corked frames to `send` (one non-blocking write) when nothing else is
    /// queued (`None`: there was nothing to send that way): no queue entry
    /// and no shared buffer per write, which is what a connection answering
    /// one message at a time (an echo) does most. Bytes left after a partial
    /// send stay corked, in order. The caller counts what was sent
    /// ([`Subscriber::written`]), as for any other write.
    pub fn send_cork(
        &self,
        send: impl FnOnce(&[u8]) -> std::io::Result<usize>,
    ) -> Option<std::io::Result<usize>> {
        let mut out = self.out.take()?;
        let r = (out.queue.is_empty() && !out.cork.is_empty()).then(|| {
            let r = send(&out.cork);
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
        assert!(
            s.send_cork(|b| crate::io::sock::send(a.as_raw_fd(), b))
                .is_none(),
            "nothing corked"
        );
        let big: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
        assert!(s.cork(|out| out.extend_from_slice(&big)));
        let first = s
            .send_cork(|b| crate::io::sock::send(a.as_raw_fd(), b))
            .unwrap()
            .unwrap();
        assert!(first > 0 && first < big.len(), "a partial send: {first}");
        s.written(first);
        assert!(s.push(Bytes::from_static(b"room")));
        assert!(
            s.send_cork(|b| crate::io::sock::send(a.as_raw_fd(), b))
                .is_none(),
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

    /// A budget of `budget` bytes, a history of 1000 messages.
    fn limits(budget: usize) -> ReplayLimits {
        ReplayLimits {
            budget,
            history_size: 1000,
        }
    }

    /// Writes everything queued (as the connection does) and returns it.
    fn write_all(s: &Subscriber) -> String {
        let mut q = VecDeque::new();
        s.take_queue(&mut q);
        let n = q.iter().map(|b| b.len()).sum();
        s.written(n);
        q.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    fn piece(room: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<Arc<Published>> {
        seqs.map(|i| Arc::new(msg(room, i, 0, "0123456789")))
            .collect()
    }

    /// The frame of `msg(room, seq, 0, "0123456789")`: 24 or 25 bytes.
    fn frame(seq: u64) -> String {
        format!("id: {seq}\ndata: 0123456789\n\n")
    }

    /// A replay bigger than the queue limit is queued as the queue drains,
    /// never past the replay budget, and the subscriber is not dropped.
    #[test]
    fn a_replay_is_queued_as_the_queue_drains() {
        let s = sub(&[("a", 10)], 100); // budget 50: two 24-byte frames
                                        // the home: history 11..=27, pieces of three messages
        let history = piece("a", 11..=27);
        let next = |after: u64| {
            let rest: Vec<_> = history.iter().filter(|p| p.seq > after).cloned().collect();
            let more = rest.len() > 3;
            (rest.into_iter().take(3).collect::<Vec<_>>(), more)
        };
        let (first, more) = next(10);
        s.replay_piece(0, first, more, limits(50));
        let mut asks = Vec::new();
        let mut got = String::new();
        for _ in 0..100 {
            s.pace_replay(&mut asks);
            assert!(s.queued.get() <= 50, "queued {}", s.queued.get());
            assert!(asks.len() <= 1, "one piece at a time");
            for (idx, after) in asks.drain(..) {
                let (p, more) = next(after);
                s.replay_piece(idx, p, more, limits(50));
            }
            got += &write_all(&s);
            if !s.replaying() {
                break;
            }
        }
        assert_eq!(got, (11..=27).map(frame).collect::<String>());
        assert_eq!(s.closing(), Closing::Open);
        assert!(!s.rooms()[0].replaying, "live again");
        assert!(s.deliver(&msg("a", 28, 0, "live"), 0));
        assert_eq!(drain(&s), "id: 28\ndata: live\n\n");
    }

    /// An empty queue takes one replayed message however big (the queue is
    /// at most the limit plus one message).
    #[test]
    fn an_empty_queue_takes_one_message_of_any_size() {
        let s = sub(&[("a", 10)], 40); // budget 20: less than one frame
        let mut asks = Vec::new();
        s.replay_piece(0, piece("a", 11..=12), false, limits(20));
        s.pace_replay(&mut asks);
        assert_eq!(write_all(&s), frame(11));
        s.pace_replay(&mut asks);
        assert_eq!(write_all(&s), frame(12));
        // 12 was not queued with the piece: whatever came live meanwhile
        // comes from the history (here: nothing more)
        assert_eq!(asks, [(0, 12)]);
        s.replay_piece(0, Vec::new(), false, limits(50));
        s.pace_replay(&mut asks);
        assert!(!s.replaying() && s.closing() == Closing::Open);
    }

    /// While a room replays, its live messages are skipped (the history
    /// brings them); the next piece is asked for once, from where the replay
    /// is; the room goes live when a piece reaching the head is queued.
    #[test]
    fn live_messages_during_a_replay_come_from_the_history() {
        let s = sub(&[("a", 10)], 1000);
        let mut asks = Vec::new();
        s.replay_piece(0, piece("a", 11..=12), true, limits(500));
        s.pace_replay(&mut asks);
        assert_eq!(asks, [(0, 12)], "the next piece, after 12");
        s.pace_replay(&mut asks);
        assert_eq!(asks.len(), 1, "asked once per piece");
        asks.clear();
        // live 13 and 14 arrive before the piece that holds them
        assert!(s.deliver(&msg("a", 13, 0, "0123456789"), 0));
        assert!(s.deliver(&msg("a", 14, 0, "0123456789"), 0));
        s.replay_piece(0, piece("a", 13..=14), false, limits(500));
        s.pace_replay(&mut asks);
        assert!(asks.is_empty() && !s.replaying());
        // 14 again (a live copy after the piece) is not repeated
        assert!(s.deliver(&msg("a", 14, 0, "0123456789"), 0));
        assert!(s.deliver(&msg("a", 15, 0, "0123456789"), 0));
        assert_eq!(drain(&s), (11..=15).map(frame).collect::<String>());
    }

    /// A piece that reaches the head but cannot be queued whole keeps the
    /// room replaying: the live messages skipped meanwhile are asked from
    /// the history once the piece is queued.
    #[test]
    fn a_last_piece_that_does_not_fit_asks_for_more() {
        let s = sub(&[("a", 10)], 100); // budget 50
        let mut asks = Vec::new();
        s.replay_piece(0, piece("a", 11..=14), false, limits(50));
        s.pace_replay(&mut asks);
        assert!(asks.is_empty() && s.replaying());
        assert!(s.deliver(&msg("a", 15, 0, "0123456789"), 0), "skipped");
        let mut got = write_all(&s);
        s.pace_replay(&mut asks);
        assert_eq!(
            asks,
            [(0, 14)],
            "13 and 14 queued, then the history after 14"
        );
        got += &write_all(&s);
        s.replay_piece(0, piece("a", 15..=15), false, limits(50));
        s.pace_replay(&mut asks);
        assert!(!s.replaying());
        got += &write_all(&s);
        assert_eq!(got, (11..=15).map(frame).collect::<String>());
    }

    /// Two rooms replaying at once: each in its own order, the cursor of
    /// every frame is the stream's, and a message published to both rooms
    /// arrives once.
    #[test]
    fn multi_room_replay_keeps_the_cursor_and_the_groups() {
        let s = sub(&[("a", 10), ("b", 20)], 1 << 20);
        let mut asks = Vec::new();
        s.replay_piece(
            0,
            vec![Arc::new(msg("a", 11, 7, "both"))],
            false,
            limits(1 << 20),
        );
        s.replay_piece(
            1,
            vec![
                Arc::new(msg("b", 21, 7, "both")),
                Arc::new(msg("b", 22, 0, "b")),
            ],
            false,
            limits(1 << 20),
        );
        s.pace_replay(&mut asks);
        assert!(asks.is_empty() && !s.replaying());
        assert_eq!(drain(&s), "id: 11.20\ndata: both\n\nid: 11.22\ndata: b\n\n");
    }

    /// Leaving a room stops its replay; a piece for it arriving later is
    /// still taken only if the room replays again.
    #[test]
    fn cancelled_replay_goes_live() {
        let s = sub(&[("a", 10)], 1000);
        s.replay_piece(0, piece("a", 11..=11), true, limits(50));
        s.cancel_replay(0);
        assert!(!s.replaying() && !s.rooms()[0].replaying);
        s.pace_replay(&mut Vec::new());
        assert_eq!(drain(&s), "");
    }

    /// A live (not replaying) consumer over the limit is still dropped while
    /// another room of it replays.
    #[test]
    fn live_traffic_over_the_limit_drops_a_replaying_subscriber() {
        let s = sub(&[("a", 10), ("b", 20)], 100);
        s.replay_piece(0, piece("a", 11..=19), false, limits(50));
        s.pace_replay(&mut Vec::new());
        let mut seq = 21;
        while s.deliver(&msg("b", seq, 0, "0123456789"), 1) {
            seq += 1;
        }
        assert_eq!(s.closing(), Closing::SlowConsumer);
    }

    /// A replay that stopped taking its history (the connection does not
    /// write) is dropped as a slow consumer once the room's live messages
    /// show the history has moved past the piece it would ask for next.
    #[test]
    fn a_replay_left_behind_by_the_history_is_dropped() {
        let s = sub(&[("a", 10)], 100); // budget 50
        let mut asks = Vec::new();
        s.replay_piece(
            0,
            piece("a", 11..=14),
            true,
            ReplayLimits {
                budget: 50,
                history_size: 5,
            },
        );
        s.pace_replay(&mut asks); // 11 and 12 queued, 13 and 14 ready
        assert!(asks.is_empty());
        // history of 5: 19 still keeps 15 (the next to ask for)
        for seq in 15..=19 {
            assert!(s.deliver(&msg("a", seq, 0, "0123456789"), 0), "{seq}");
        }
        assert_eq!(s.closing(), Closing::Open);
        // 20 pushes 15 out
        assert!(!s.deliver(&msg("a", 20, 0, "0123456789"), 0));
        assert_eq!(s.closing(), Closing::SlowConsumer);
    }

    /// While a piece is on its way, the reply decides (it may reach far enough).
    #[test]
    fn a_replay_waiting_for_a_piece_is_not_judged_by_live_messages() {
        let s = sub(&[("a", 10)], 1000);
        let mut asks = Vec::new();
        s.replay_piece(
            0,
            piece("a", 11..=11),
            true,
            ReplayLimits {
                budget: 50,
                history_size: 5,
            },
        );
        s.pace_replay(&mut asks);
        assert_eq!(asks, [(0, 11)]);
        assert!(s.deliver(&msg("a", 30, 0, "0123456789"), 0));
        assert_eq!(s.closing(), Closing::Open);
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
