//! The rooms a worker is home of: each room's sequence ids, its history
//! ring (`hub.history_size`, `hub.history_ttl`), and how many subscribers
//! every worker has in it. Plain data, no I/O: the worker's hub glue
//! ([`super::home::HomeEngine`]) calls it and does the sending.
//!
//! Sequence ids: a room created now starts at "microseconds since the Unix
//! epoch" and counts up by one per message, so ids grow across restarts and
//! a cursor from before a restart is known to be older than the room.
//!
//! Replay: what a resuming subscriber missed is handed out in pieces of a
//! byte budget ([`HomeRooms::join`], then [`HomeRooms::replay`] after each
//! piece), so a replay never needs more than the subscriber's queue may hold.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hub::bus::HistoryReply;
use crate::hub::{Gap, HubError, Message, Published, RoomInfo, RoomName};

struct HomeRoom {
    /// The id before the room's first message.
    base: u64,
    /// The last id given out (== base while no message was published).
    head: u64,
    history: VecDeque<Arc<Published>>,
    /// Subscribers per worker.
    subs: Vec<u32>,
    total: u64,
}

impl HomeRoom {
    fn new(workers: usize, base: u64) -> HomeRoom {
        HomeRoom {
            base,
            head: base,
            history: VecDeque::new(),
            subs: vec![0; workers],
            total: 0,
        }
    }

    fn evict_expired(&mut self, now: Instant, ttl: Duration) {
        while let Some(front) = self.history.front() {
            if now.duration_since(front.at) >= ttl {
                self.history.pop_front();
            } else {
                break;
            }
        }
    }

    /// What a client at position `since` missed, and whether part of it is
    /// gone: the messages after `since` up to `budget` bytes (at least one),
    /// and whether the history holds more after them.
    /// `since == 0` asks for everything from the room's first message.
    fn since(&self, since: u64, budget: usize) -> (Vec<Arc<Published>>, Option<Gap>, bool) {
        let since = if since == 0 { self.base } else { since };
        if since >= self.head {
            return (Vec::new(), None, false);
        }
        let oldest = self.history.front().map(|p| p.seq);
        let gap = |reason, resume_from| Gap {
            room: self
                .history
                .front()
                .map(|p| p.room.clone())
                .unwrap_or_else(|| Arc::from("")),
            since,
            resume_from,
            reason,
        };
        let gap = if since < self.base {
            Some(gap("reset", oldest))
        } else {
            match oldest {
                Some(o) if since + 1 < o => Some(gap("evicted", Some(o))),
                None => Some(gap("evicted", None)),
                _ => None,
            }
        };
        let skip = match oldest {
            Some(o) if since >= o => (since + 1 - o) as usize,
            _ => 0,
        };
        let (piece, more) = piece(self.history.iter().skip(skip), budget);
        (piece, gap, more)
    }
}

/// The first messages of `rest` that fit in `budget` bytes of SSE frames
/// (at least one), and whether any are left.
fn piece<'a>(
    rest: impl Iterator<Item = &'a Arc<Published>>,
    budget: usize,
) -> (Vec<Arc<Published>>, bool) {
    let mut rest = rest.peekable();
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while let Some(p) =
        rest.next_if(|p| out.is_empty() || bytes.saturating_add(p.sse.len()) <= budget)
    {
        bytes = bytes.saturating_add(p.sse.len());
        out.push(p.clone());
    }
    (out, rest.peek().is_some())
}

/// Result of a join at the home.
pub struct Joined {
    pub head: u64,
    /// The first piece of what the subscriber missed.
    pub replay: Vec<Arc<Published>>,
    /// The history holds more after `replay` (ask with [`HomeRooms::replay`]).
    pub more: bool,
    pub gap: Option<Gap>,
}

/// All rooms one worker is home of.
pub struct HomeRooms {
    rooms: HashMap<RoomName, HomeRoom>,
    workers: usize,
    history_size: usize,
    history_ttl: Duration,
    /// `hub.max_rooms`, changed live by a reload.
    max_rooms: Arc<AtomicUsize>,
    /// Rooms in the whole process (shared by every home).
    room_count: Arc<AtomicUsize>,
    /// The last base given out, so bases keep growing even if the clock does not.
    last_base: u64,
}

impl HomeRooms {
    pub fn new(
        workers: usize,
        history_size: usize,
        history_ttl: Duration,
        max_rooms: Arc<AtomicUsize>,
        room_count: Arc<AtomicUsize>,
    ) -> HomeRooms {
        HomeRooms {
            rooms: HashMap::new(),
            workers,
            history_size,
            history_ttl,
            max_rooms,
            room_count,
            last_base: 0,
        }
    }

    fn room_mut(&mut self, room: &RoomName) -> Result<&mut HomeRoom, HubError> {
        if !self.rooms.contains_key(room) {
            let n = self.room_count.fetch_add(1, Ordering::Relaxed);
            if n >= self.max_rooms.load(Ordering::Relaxed) {
                self.room_count.fetch_sub(1, Ordering::Relaxed);
                return Err(HubError::TooManyRooms);
            }
            // A new room's ids start above anything this process gave out before.
            let base = crate::hub::room_base_now().max(self.last_base + 1);
            self.last_base = base;
            self.rooms
                .insert(room.clone(), HomeRoom::new(self.workers, base));
        }
        Ok(self.rooms.get_mut(room).expect("just inserted"))
    }

    /// Numbers a message, keeps it in the history, and returns it with the
    /// workers that have subscribers in the room.
    pub fn publish(
        &mut self,
        room: &RoomName,
        msg: Message,
        group: u64,
        now: Instant,
    ) -> Result<(Arc<Published>, Vec<usize>), HubError> {
        let (history_size, ttl) = (self.history_size, self.history_ttl);
        let r = self.room_mut(room)?;
        r.head += 1;
        let p = Arc::new(Published::encode(room.clone(), r.head, group, msg));
        if history_size > 0 {
            if r.history.len() == history_size {
                r.history.pop_front();
            }
            r.history.push_back(p.clone());
        }
        r.evict_expired(now, ttl);
        let targets = r
            .subs
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(w, _)| w)
            .collect();
        Ok((p, targets))
    }

    /// Counts a subscriber of worker `from` in, and returns the first piece
    /// (`budget` bytes) of what it missed since `since` (nothing when `since`
    /// is None: it starts at the head).
    pub fn join(
        &mut self,
        room: &RoomName,
        from: usize,
        since: Option<u64>,
        budget: usize,
        now: Instant,
    ) -> Result<Joined, HubError> {
        let ttl = self.history_ttl;
        let r = self.room_mut(room)?;
        r.subs[from] += 1;
        r.total += 1;
        r.evict_expired(now, ttl);
        let (replay, mut gap, more) = match since {
            Some(s) => r.since(s, budget),
            None => (Vec::new(), None, false),
        };
        if let Some(g) = gap.as_mut() {
            g.room = room.clone();
        }
        Ok(Joined {
            head: r.head,
            replay,
            more,
            gap,
        })
    }

    /// The next piece (`budget` bytes) of a replay that has reached `after`,
    /// and whether the history holds more after it. `None`: the history no
    /// longer reaches back to `after` (the replay fell behind it) or the room
    /// is gone.
    pub fn replay(
        &mut self,
        room: &RoomName,
        after: u64,
        budget: usize,
        now: Instant,
    ) -> Option<(Vec<Arc<Published>>, bool)> {
        let ttl = self.history_ttl;
        let r = self.rooms.get_mut(room)?;
        r.evict_expired(now, ttl);
        match r.since(after, budget) {
            (piece, None, more) => Some((piece, more)),
            (_, Some(_), _) => None,
        }
    }

    /// Counts a subscriber of worker `from` out.
    pub fn leave(&mut self, room: &RoomName, from: usize) {
        if let Some(r) = self.rooms.get_mut(room) {
            if r.subs[from] > 0 {
                r.subs[from] -= 1;
                r.total -= 1;
            }
        }
    }

    pub fn info(&mut self, room: &RoomName, now: Instant) -> RoomInfo {
        let ttl = self.history_ttl;
        match self.rooms.get_mut(room) {
            Some(r) => {
                r.evict_expired(now, ttl);
                RoomInfo {
                    subscribers: r.total,
                    last_id: (r.head > r.base).then_some(r.head),
                    history_len: r.history.len(),
                }
            }
            None => RoomInfo {
                subscribers: 0,
                last_id: None,
                history_len: 0,
            },
        }
    }

    /// The history after `since`, with a gap when part of it is gone.
    pub fn history(&mut self, room: &RoomName, since: u64, now: Instant) -> HistoryReply {
        let ttl = self.history_ttl;
        match self.rooms.get_mut(room) {
            Some(r) => {
                r.evict_expired(now, ttl);
                let (messages, mut gap, _) = r.since(since, usize::MAX);
                if let Some(g) = gap.as_mut() {
                    g.room = room.clone();
                }
                HistoryReply {
                    messages,
                    gap,
                    exists: true,
                }
            }
            None => HistoryReply {
                messages: Vec::new(),
                gap: None,
                exists: false,
            },
        }
    }

    /// Drops expired history and removes rooms with no subscribers and no history.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let ttl = self.history_ttl;
        let before = self.rooms.len();
        self.rooms.retain(|_, r| {
            r.evict_expired(now, ttl);
            r.total > 0 || !r.history.is_empty()
        });
        let removed = before - self.rooms.len();
        self.room_count.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// How many messages a room's history keeps (`hub.history_size`).
    pub fn history_size(&self) -> usize {
        self.history_size
    }

    /// Rooms this worker is home of.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Messages held in all histories of this home.
    pub fn history_messages(&self) -> usize {
        self.rooms.values().map(|r| r.history.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(size: usize, ttl_ms: u64, max_rooms: usize) -> HomeRooms {
        HomeRooms::new(
            2,
            size,
            Duration::from_millis(ttl_ms),
            Arc::new(AtomicUsize::new(max_rooms)),
            Arc::new(AtomicUsize::new(0)),
        )
    }

    fn room(n: &str) -> RoomName {
        Arc::from(n)
    }

    #[test]
    fn ids_count_up_and_targets_follow_subscribers() {
        let mut h = home(10, 60_000, 10);
        let now = Instant::now();
        let r = room("a");
        let (p1, t) = h.publish(&r, Message::new("x"), 0, now).unwrap();
        assert!(t.is_empty(), "no subscriber yet");
        let j = h.join(&r, 1, None, 0, now).unwrap();
        assert_eq!(j.head, p1.seq);
        let (p2, t) = h.publish(&r, Message::new("y"), 0, now).unwrap();
        assert_eq!(p2.seq, p1.seq + 1);
        assert_eq!(t, vec![1]);
        h.leave(&r, 1);
        let (_, t) = h.publish(&r, Message::new("z"), 0, now).unwrap();
        assert!(t.is_empty());
        assert_eq!(h.info(&r, now).subscribers, 0);
    }

    #[test]
    fn resume_replays_exactly_what_was_missed() {
        let mut h = home(10, 60_000, 10);
        let now = Instant::now();
        let r = room("a");
        let seqs: Vec<u64> = (0..5)
            .map(|i| {
                h.publish(&r, Message::new(format!("{i}")), 0, now)
                    .unwrap()
                    .0
                    .seq
            })
            .collect();
        let j = h.join(&r, 0, Some(seqs[1]), usize::MAX, now).unwrap();
        assert_eq!(
            j.replay.iter().map(|p| p.seq).collect::<Vec<_>>(),
            &seqs[2..]
        );
        assert!(j.gap.is_none());
        let j = h.join(&r, 0, Some(seqs[4]), usize::MAX, now).unwrap();
        assert!(j.replay.is_empty() && j.gap.is_none());
    }

    #[test]
    fn a_replay_comes_in_pieces_of_the_budget() {
        let mut h = home(100, 60_000, 10);
        let now = Instant::now();
        let r = room("a");
        let seqs: Vec<u64> = (0..10)
            .map(|_| {
                h.publish(&r, Message::new("0123456789"), 0, now)
                    .unwrap()
                    .0
                    .seq
            })
            .collect();
        let frame = h.history(&r, seqs[0], now).messages[0].sse.len();
        // three frames fill the budget; the join's piece, then the next ones
        let j = h.join(&r, 0, Some(seqs[0]), 3 * frame, now).unwrap();
        let ids = |v: &[Arc<Published>]| v.iter().map(|p| p.seq).collect::<Vec<_>>();
        assert_eq!((ids(&j.replay), j.more), (seqs[1..4].to_vec(), true));
        let (p, more) = h.replay(&r, seqs[3], 3 * frame, now).unwrap();
        assert_eq!((ids(&p), more), (seqs[4..7].to_vec(), true));
        let (p, more) = h.replay(&r, seqs[6], 3 * frame, now).unwrap();
        assert_eq!((ids(&p), more), (seqs[7..].to_vec(), false));
        // a budget smaller than one message still moves on, one at a time
        let (p, more) = h.replay(&r, seqs[8], 1, now).unwrap();
        assert_eq!((ids(&p), more), (vec![seqs[9]], false));
        let (p, more) = h.replay(&r, seqs[9], 1, now).unwrap();
        assert!(p.is_empty() && !more, "nothing after the head");
    }

    #[test]
    fn a_replay_behind_the_history_is_lost() {
        let mut h = home(3, 60_000, 10);
        let now = Instant::now();
        let r = room("a");
        let seqs: Vec<u64> = (0..3)
            .map(|_| h.publish(&r, Message::new("m"), 0, now).unwrap().0.seq)
            .collect();
        assert!(h.replay(&r, seqs[0], 1, now).is_some());
        h.publish(&r, Message::new("m"), 0, now).unwrap();
        h.publish(&r, Message::new("m"), 0, now).unwrap();
        // seqs[1] and seqs[2] are gone: a replay at seqs[0] cannot go on
        assert!(h.replay(&r, seqs[0], 1, now).is_none());
        assert!(h.replay(&r, seqs[2], 1, now).is_some());
        assert!(h.replay(&room("nowhere"), 1, 1, now).is_none());
    }

    #[test]
    fn evicted_history_is_a_gap() {
        let mut h = home(3, 60_000, 10);
        let now = Instant::now();
        let r = room("a");
        let seqs: Vec<u64> = (0..6)
            .map(|_| h.publish(&r, Message::new("m"), 0, now).unwrap().0.seq)
            .collect();
        let j = h.join(&r, 0, Some(seqs[0]), usize::MAX, now).unwrap();
        let g = j.gap.expect("gap");
        assert_eq!(
            (g.reason, g.resume_from, &*g.room),
            ("evicted", Some(seqs[3]), "a")
        );
        assert_eq!(j.replay.len(), 3);
    }

    #[test]
    fn since_zero_is_everything_kept() {
        let mut h = home(2, 60_000, 10);
        let now = Instant::now();
        let r = room("a");
        h.publish(&r, Message::new("1"), 0, now).unwrap();
        let j = h.join(&r, 0, Some(0), usize::MAX, now).unwrap();
        assert!(j.gap.is_none());
        assert_eq!(j.replay.len(), 1);
        h.publish(&r, Message::new("2"), 0, now).unwrap();
        h.publish(&r, Message::new("3"), 0, now).unwrap();
        let hist = h.history(&r, 0, now);
        assert_eq!(hist.messages.len(), 2);
        assert_eq!(hist.gap.unwrap().reason, "evicted");
    }

    #[test]
    fn a_cursor_older_than_the_room_is_a_reset() {
        let mut h = home(10, 60_000, 10);
        let now = Instant::now();
        let r = room("a");
        let p = h.publish(&r, Message::new("m"), 0, now).unwrap().0;
        let j = h.join(&r, 0, Some(5), usize::MAX, now).unwrap();
        assert_eq!(j.gap.unwrap().reason, "reset");
        assert_eq!(j.replay.iter().map(|p| p.seq).collect::<Vec<_>>(), [p.seq]);
    }

    #[test]
    fn ttl_expires_history_and_sweep_removes_empty_rooms() {
        let mut h = home(10, 50, 10);
        let t0 = Instant::now();
        let r = room("a");
        h.publish(&r, Message::new("m"), 0, t0).unwrap();
        assert_eq!(h.info(&r, t0).history_len, 1);
        let later = t0 + Duration::from_millis(60);
        assert_eq!(h.info(&r, later).history_len, 0);
        assert_eq!(h.sweep(later), 1);
        assert!(h.is_empty());
    }

    #[test]
    fn max_rooms_is_enforced_and_freed() {
        let mut h = home(10, 10, 1);
        let t0 = Instant::now();
        h.publish(&room("a"), Message::new("m"), 0, t0).unwrap();
        assert_eq!(
            h.publish(&room("b"), Message::new("m"), 0, t0).unwrap_err(),
            HubError::TooManyRooms
        );
        h.sweep(t0 + Duration::from_millis(20));
        assert!(h.publish(&room("b"), Message::new("m"), 0, t0).is_ok());
    }

    #[test]
    fn a_recreated_room_starts_above_the_old_ids() {
        let mut h = home(10, 10, 10);
        let t0 = Instant::now();
        let old = h
            .publish(&room("a"), Message::new("m"), 0, t0)
            .unwrap()
            .0
            .seq;
        h.sweep(t0 + Duration::from_millis(20));
        let new = h
            .publish(&room("a"), Message::new("m"), 0, t0)
            .unwrap()
            .0
            .seq;
        assert!(new > old);
    }
}
