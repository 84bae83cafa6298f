//! The hub inside one worker: its share of room membership, its
//! subscribers, delivery to them, and the tasks that serve its inboxes.
//! Publishing, joining and the rooms' history go through the worker's
//! [`engine`](super::engine): its answers come inline or on this worker's
//! delivery inbox, in order with the room's messages.
//!
//! A resuming subscriber's replay comes the same way, a piece at a time:
//! the join's answer brings the first piece, and [`HubLocal::pace_replay`]
//! (called again as the connection's writes drain its queue) queues what
//! fits and asks the engine for the next piece. A piece that reaches the
//! room's head arrives ahead of every later message of the room, so the
//! replay hands over to live delivery with nothing lost or repeated.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use slab::Slab;

use super::bus::{HistoryReply, Inbox, JoinReply, ReplayReply, SubRef};
use super::engine::{Deliveries, Engine, Reply, WorkerEngine};
use super::shard::LocalRooms;
use super::subscriber::{Closing, LocalKey, ReplayLimits, Subscriber};
use super::{BusMsg, HubError, Message, PublishRules, Published, RoomInfo, RoomName};
use crate::config::Config;
use crate::io::signal::{spawn_until, LocalEvent};
use crate::io::stats::WorkerStats;

/// The hub state of one worker.
pub struct HubLocal {
    pub worker: usize,
    rules: PublishRules,
    /// Where the rooms are ordered and kept.
    pub engine: WorkerEngine,
    shard: RefCell<LocalRooms>,
    subs: RefCell<Slab<Rc<Subscriber>>>,
    generation: Cell<u32>,
    stats: Arc<WorkerStats>,
    /// Subscribers with something to write, waiting to be woken (in order).
    to_wake: RefCell<VecDeque<Rc<Subscriber>>>,
    /// Set when `to_wake` becomes non-empty.
    wake_more: LocalEvent,
    /// Drain barrier: homes whose `Quiesced` arrived here.
    quiesced_homes: Cell<usize>,
    /// Set when every home's `Quiesced` has arrived: every message published
    /// before the drain has been delivered to this worker's subscribers.
    pub quiesced: LocalEvent,
    /// `hub.max_queued_bytes`: a replay fills at most half of it.
    max_queued: usize,
}

impl HubLocal {
    /// Worker `worker`'s hub, over its part of the engine.
    pub fn new(
        worker: usize,
        cfg: &Config,
        rules: PublishRules,
        stats: Arc<WorkerStats>,
        engine: WorkerEngine,
    ) -> HubLocal {
        HubLocal {
            worker,
            rules,
            engine,
            shard: RefCell::new(LocalRooms::default()),
            subs: RefCell::new(Slab::new()),
            generation: Cell::new(0),
            stats,
            to_wake: RefCell::new(VecDeque::new()),
            wake_more: LocalEvent::new(),
            quiesced_homes: Cell::new(0),
            quiesced: LocalEvent::new(),
            max_queued: cfg.hub.max_queued_bytes.get(),
        }
    }

    // ---------------------------------------------------------------- publish

    /// Publishes a message to a room; returns its id in the room.
    pub async fn publish(&self, room: RoomName, msg: Message) -> Result<u64, HubError> {
        self.rules.check_message(&room, &msg)?;
        self.engine.publish(room, msg, self).await
    }

    /// Whether the engine of `room` numbers publishes in the order they
    /// are handed over without waiting for each ([`HubLocal::submit_publish`]).
    pub fn takes_publishes_in_order(&self, room: &str) -> bool {
        matches!(self.engine, WorkerEngine::Cluster { .. }) && !super::engine::node_local(room)
    }

    /// Hands a publish over now, numbered after every publish handed over
    /// before; the future gives its id. Only for an engine that
    /// [takes publishes in order](HubLocal::takes_publishes_in_order); any
    /// other publishes with [`HubLocal::publish`].
    pub fn submit_publish(
        &self,
        room: RoomName,
        msg: Message,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, HubError>>>> {
        if let Err(e) = self.rules.check_message(&room, &msg) {
            return Box::pin(std::future::ready(Err(e)));
        }
        match &self.engine {
            WorkerEngine::Cluster { shared, .. } if !super::engine::node_local(&room) => {
                Box::pin(shared.submit(room, msg))
            }
            _ => Box::pin(std::future::ready(Err(HubError::OnWorker(
                "HubLocal::submit_publish on an engine that does not take publishes in order",
            )))),
        }
    }

    fn deliver_here(&self, p: &Arc<Published>) {
        let was_empty = self.to_wake.borrow().is_empty();
        let d = self
            .shard
            .borrow()
            .deliver(p, &mut self.to_wake.borrow_mut());
        self.stats.messages_delivered.add(d.delivered);
        if was_empty && !self.to_wake.borrow().is_empty() {
            self.wake_more.set();
        }
    }

    fn gap_here(&self, g: &super::Gap) {
        self.shard.borrow().gap(g);
    }

    /// Waits for the subscriber's turn to write: it joins the list that
    /// [`HubLocal::wake_subscribers`] works through in chunks.
    pub async fn wait_turn(&self, sub: &Rc<Subscriber>) {
        if sub.stage() {
            let was_empty = self.to_wake.borrow().is_empty();
            self.to_wake.borrow_mut().push_back(sub.clone());
            if was_empty {
                self.wake_more.set();
            }
        }
        sub.signal.kicked().await;
    }

    /// Wakes the subscribers that have something to write, `WAKE_CHUNK` at a
    /// time, yielding between chunks.
    ///
    /// Waking all of a big room's subscribers at once would queue every one of
    /// them ahead of everything else: the worker would write to all of them
    /// before it next looked at its sockets, so publishers (and everyone else)
    /// would wait a whole round of writes. In chunks, the worker's other
    /// connections run in between, and a subscriber woken later finds more
    /// messages queued for the same write.
    pub async fn wake_subscribers(self: Rc<Self>) {
        loop {
            self.wake_more.wait().await;
            loop {
                let chunk: Vec<Rc<Subscriber>> = {
                    let mut q = self.to_wake.borrow_mut();
                    let n = q.len().min(WAKE_CHUNK);
                    q.drain(..n).collect()
                };
                if chunk.is_empty() {
                    break;
                }
                for s in chunk {
                    s.wake_staged();
                }
                if self.to_wake.borrow().is_empty() {
                    break;
                }
                // Let the worker look at its sockets before the next chunk:
                // a timer (not a self-wake, which would run this task again
                // first) so that the run queue empties and the io driver is
                // polled (with io_uring DEFER_TASKRUN, completions are only
                // reaped there). Under load the chunk's writes take longer
                // than the timer, so this adds no delay.
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            self.wake_more.reset();
        }
    }

    // ------------------------------------------------------------ drain barrier

    /// Tells the engine that this worker publishes nothing more; `quiesced`
    /// is set once every message published before has been delivered here.
    pub async fn quiesce(&self) {
        self.engine.quiesce(self).await;
    }

    fn home_quiesced(&self) {
        self.quiesced_homes.set(self.quiesced_homes.get() + 1);
        if self.quiesced_homes.get() == self.engine.quiesce_parts() {
            self.quiesced.set();
        }
    }

    // ------------------------------------------------------------ membership

    /// Registers a subscriber with this worker (before it joins rooms).
    pub fn add_subscriber(&self, sub: &Rc<Subscriber>) {
        let key = self.subs.borrow_mut().insert(sub.clone());
        sub.set_key(key);
    }

    /// A fresh generation number for a new subscriber.
    pub fn next_generation(&self) -> u32 {
        let g = self.generation.get().wrapping_add(1);
        self.generation.set(g);
        g
    }

    /// Joins room `idx` of a subscriber, resuming after `since` when given.
    pub async fn join(
        &self,
        sub: &Rc<Subscriber>,
        idx: usize,
        since: Option<u64>,
    ) -> Result<(), HubError> {
        let room = {
            let mut rooms = sub.rooms_mut();
            rooms[idx].counted = true;
            rooms[idx].name.clone()
        };
        let sref = sub_ref(sub, idx);
        let budget = self.replay_limits(sub).budget;
        match self.engine.join(room, sref, since, budget).await {
            Ok(Reply::Now(reply)) => {
                self.apply_joined(reply);
                Ok(())
            }
            Ok(Reply::Later) => Ok(()),
            Err(e) => {
                sub.rooms_mut()[idx].counted = false;
                Err(e)
            }
        }
    }

    /// The subscriber a reply is for, if it is still there.
    fn subscriber(&self, r: SubRef) -> Option<Rc<Subscriber>> {
        match self.subs.borrow().get(r.key) {
            Some(s) if s.generation == r.generation => Some(s.clone()),
            _ => None, // gone meanwhile; its leave is already on the way
        }
    }

    /// Completes a join on this worker: the gap notice, the replay's first
    /// piece, then live membership (the room's live messages are skipped
    /// until its replay is all queued).
    fn apply_joined(&self, r: JoinReply) {
        let Some(sub) = self.subscriber(r.sub) else {
            return;
        };
        if r.refused {
            sub.close_with(Closing::Refused);
            return;
        }
        if let Some(g) = &r.gap {
            sub.push_gap(g);
        }
        let replay = !r.replay.is_empty() || r.more;
        if replay {
            sub.replay_piece(r.sub.idx, r.replay, r.more, self.replay_limits(&sub));
        } else if r.gap.is_none() {
            let mut rooms = sub.rooms_mut();
            let slot = &mut rooms[r.sub.idx];
            if slot.pos < r.head {
                slot.pos = r.head;
            }
        }
        let (key, name) = self.shard.borrow_mut().add(&r.room, sub.clone(), r.sub.idx);
        {
            let mut rooms = sub.rooms_mut();
            rooms[r.sub.idx].local_key = LocalKey::new(key);
            // one copy of the name per worker, not one per subscriber
            rooms[r.sub.idx].name = name;
        }
        if replay {
            self.pace_replay(&sub);
        }
    }

    /// How a subscriber's replay is paced: at most half of
    /// `hub.max_queued_bytes` (and of the subscriber's own limit) is queued
    /// history, the other half stays free for its other rooms and its own
    /// frames.
    fn replay_limits(&self, sub: &Subscriber) -> ReplayLimits {
        ReplayLimits {
            budget: (self.max_queued.min(sub.max_queued()) / 2).max(1),
            history_size: self.engine.history_size(),
        }
    }

    /// Hands a subscriber the next piece of a replay from a home.
    fn apply_replayed(&self, r: ReplayReply) {
        let Some(sub) = self.subscriber(r.sub) else {
            return;
        };
        if self.give_piece(&sub, r.sub.idx, r.piece) {
            self.pace_replay(&sub);
        }
    }

    /// Gives a subscriber the next piece of its replay of room `idx`; false
    /// (and the subscriber dropped) when the piece is lost.
    fn give_piece(
        &self,
        sub: &Subscriber,
        idx: usize,
        piece: Option<(Vec<Arc<Published>>, bool)>,
    ) -> bool {
        match piece {
            Some((piece, more)) => {
                sub.replay_piece(idx, piece, more, self.replay_limits(sub));
                true
            }
            None => {
                // The history moved on past the replay while the subscriber
                // took it in: it is too slow for the room. Resuming again, it
                // gets the gap notice.
                log::debug!(
                    "worker {}: a replay fell behind the history of its room",
                    self.worker
                );
                sub.close_with(Closing::SlowConsumer);
                false
            }
        }
    }

    /// Moves a resuming subscriber's replay on: queues what fits of the
    /// history it holds and asks the homes for the next pieces. Connections
    /// call it after writing while [`Subscriber::replaying`].
    pub fn pace_replay(&self, sub: &Rc<Subscriber>) {
        let mut asks = Vec::new();
        loop {
            sub.pace_replay(&mut asks);
            if asks.is_empty() {
                return;
            }
            for (idx, after) in asks.drain(..) {
                let room = sub.rooms()[idx].name.clone();
                let sref = sub_ref(sub, idx);
                let budget = self.replay_limits(sub).budget;
                if let Reply::Now(r) = self.engine.replay(room, sref, after, budget) {
                    if !self.give_piece(sub, idx, r.piece) {
                        return;
                    }
                }
            }
        }
    }

    /// Removes a subscriber from every room it is in and from this worker.
    pub fn remove_subscriber(&self, sub: &Rc<Subscriber>) {
        let rooms: Vec<(RoomName, Option<usize>, bool)> = sub
            .rooms_mut()
            .iter_mut()
            .map(|r| {
                (
                    r.name.clone(),
                    r.local_key.take(),
                    std::mem::take(&mut r.counted),
                )
            })
            .collect();
        for (room, key, counted) in rooms {
            if let Some(k) = key {
                self.shard.borrow_mut().remove(&room, k);
            }
            if counted {
                self.engine.leave(room);
            }
        }
        let key = sub.key();
        let mut subs = self.subs.borrow_mut();
        if subs.get(key).is_some_and(|s| Rc::ptr_eq(s, sub)) {
            subs.remove(key);
        }
    }

    // --------------------------------------------------------------- queries

    /// How a room is.
    pub async fn info(&self, room: RoomName) -> Result<RoomInfo, HubError> {
        self.engine.info(room).await
    }

    /// A room's history after `since`.
    pub async fn history(&self, room: RoomName, since: u64) -> Result<HistoryReply, HubError> {
        self.engine.history(room, since).await
    }

    /// Subscribers of this worker (for the keep-alive tick and drain).
    pub fn subscribers(&self) -> Vec<Rc<Subscriber>> {
        self.subs.borrow().iter().map(|(_, s)| s.clone()).collect()
    }

    // ----------------------------------------------------------------- tasks

    /// Serves deliveries to this worker's subscribers. Never waits on anything
    /// but its inbox, so homes that wait for delivery space always progress.
    pub async fn serve_deliveries(self: Rc<Self>, rx: flume::Receiver<BusMsg>) {
        while let Ok(msg) = rx.recv_async().await {
            match msg {
                BusMsg::Deliver(p) => self.deliver_here(&p),
                BusMsg::DeliverMany(ps) => {
                    for p in &ps {
                        self.deliver_here(p);
                    }
                }
                BusMsg::Joined(r) => self.apply_joined(r),
                BusMsg::Replayed(r) => self.apply_replayed(r),
                BusMsg::ConnRoom { conn, room, join } => self.conn_room(conn, room, join),
                BusMsg::Quiesced => self.home_quiesced(),
                BusMsg::RoomGap(g) => self.gap_here(&g),
                _ => log::error!(
                    "worker {}: a request arrived on the delivery inbox",
                    self.worker
                ),
            }
        }
    }

    /// The library's join/leave for a connection, by id.
    fn conn_room(&self, conn: super::ConnId, room: RoomName, join: bool) {
        let sub = match self.subs.borrow().get(conn.key) {
            Some(s) if s.generation == conn.generation => s.clone(),
            _ => return,
        };
        self.set_room(&sub, room, join);
    }

    /// Adds a subscriber of this worker to a room (from now on), or removes it.
    pub fn set_room(&self, sub: &Rc<Subscriber>, room: RoomName, join: bool) {
        let existing = sub.rooms().iter().position(|r| r.name == room);
        if join {
            let idx = {
                let mut rooms = sub.rooms_mut();
                match existing {
                    Some(i) if rooms[i].counted => return, // already in it
                    Some(i) => {
                        rooms[i].counted = true;
                        i
                    }
                    None => {
                        rooms.push(super::subscriber::SubRoom {
                            name: room.clone(),
                            pos: 0,
                            local_key: LocalKey::default(),
                            counted: true,
                            replaying: false,
                        });
                        rooms.len() - 1
                    }
                }
            };
            let sref = sub_ref(sub, idx);
            if let Reply::Now(reply) = self.engine.join_from_now(room, sref) {
                self.apply_joined(reply);
            }
        } else if let Some(idx) = existing {
            sub.cancel_replay(idx);
            let (key, counted) = {
                let mut rooms = sub.rooms_mut();
                (
                    rooms[idx].local_key.take(),
                    std::mem::take(&mut rooms[idx].counted),
                )
            };
            if let Some(k) = key {
                self.shard.borrow_mut().remove(&room, k);
            }
            if counted {
                self.engine.leave(room);
            }
        }
    }

    /// Every `hub.history_ttl` slice: expire history, remove empty rooms.
    pub async fn sweep_rooms(self: Rc<Self>, every: Duration) {
        loop {
            monoio::time::sleep(every).await;
            self.engine.sweep();
        }
    }
}

impl Deliveries for HubLocal {
    fn deliver(&self, p: &Arc<Published>) {
        self.deliver_here(p);
    }

    fn joined(&self, r: JoinReply) {
        self.apply_joined(r);
    }

    fn replayed(&self, r: ReplayReply) {
        self.apply_replayed(r);
    }

    fn quiesced(&self) {
        self.home_quiesced();
    }
}

/// Subscribers woken at a time by [`HubLocal::wake_subscribers`].
const WAKE_CHUNK: usize = 1024;

/// Starts the hub tasks of a worker; they end when `stop` is set.
pub fn spawn_tasks(
    hub: &Rc<HubLocal>,
    inbox: Inbox,
    cfg: &Config,
    stop: &Rc<LocalEvent>,
) -> Vec<monoio::task::JoinHandle<()>> {
    let sweep =
        (cfg.hub.history_ttl.0 / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    vec![
        spawn_until(stop, {
            let hub = hub.clone();
            async move { hub.engine.serve_requests(inbox.requests, &*hub).await }
        }),
        spawn_until(stop, hub.clone().serve_deliveries(inbox.deliveries)),
        spawn_until(stop, hub.clone().wake_subscribers()),
        spawn_until(stop, hub.clone().sweep_rooms(sweep)),
    ]
}

/// The bus's name for room slot `idx` of a subscriber of this worker.
fn sub_ref(sub: &Subscriber, idx: usize) -> SubRef {
    SubRef {
        key: sub.key(),
        generation: sub.generation,
        idx,
    }
}
