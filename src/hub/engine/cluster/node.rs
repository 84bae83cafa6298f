//! The link's thread: every room this node has subscribers in, what it
//! has delivered of each, and the work that keeps that in step with Redis
//! (see the [module documentation](super)).
//!
//! One task owns the rooms and handles, in order: the workers' commands,
//! what the subscription connections receive, and the answers of the reads
//! it started (each read runs in its own task, so a slow read holds up
//! nothing else). A room's messages go to the workers in the room's order:
//! the next one directly from its channel, anything else (a skip, a loss of
//! the subscription, a change of base) by reading the stream from the last
//! delivered id, during which the channel's messages of the room wait in
//! Redis's stream instead.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::pubsub::{self, PubsubCtl, PubsubEvent, Target};
use super::store::{self, Entry, Limits, Names, Pos, StoreError};
use super::{LinkStats, Shard};
use crate::hub::bus::{HistoryReply, JoinReply, ReplayReply, SubRef};
use crate::hub::{Bus, BusMsg, Gap, HubError, Published, RoomInfo, RoomName};
use crate::io::stats::WorkerStats;

/// A worker's request.
pub enum Cmd {
    Join(JoinReq),
    Replay {
        room: RoomName,
        worker: usize,
        sub: SubRef,
        after: u64,
        budget: usize,
    },
    Leave {
        room: RoomName,
        worker: usize,
    },
    Info {
        room: RoomName,
        reply: flume::Sender<Result<RoomInfo, HubError>>,
    },
    History {
        room: RoomName,
        since: u64,
        reply: flume::Sender<Result<HistoryReply, HubError>>,
    },
    Quiesce {
        worker: usize,
    },
    /// The node stops: its subscriber counts are removed from Redis, then `done`.
    Stop {
        done: flume::Sender<()>,
    },
}

/// A publish handed over to the link (see [`super::Link::submit`]).
pub struct PublishReq {
    pub room: RoomName,
    /// The message as kept in Redis ([`store::encode_body`]).
    pub body: Vec<u8>,
    pub reply: flume::Sender<Result<Pos, StoreError>>,
}

/// Publishes at most this many in one round trip to Redis.
const PUBLISH_BATCH: usize = 256;

/// Sends one instance's publishes to it in the order they came, all those
/// waiting in one pipeline, one pipeline at a time.
async fn publisher(
    shard: Arc<Shard>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<PublishReq>,
    names: Names,
    limits: Limits,
    timeout: Duration,
) {
    let mut batch: Vec<PublishReq> = Vec::new();
    let mut items: Vec<(RoomName, Vec<u8>)> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < PUBLISH_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        items.clear();
        items.extend(
            batch
                .iter_mut()
                .map(|r| (r.room.clone(), std::mem::take(&mut r.body))),
        );
        let result = match shard.conn() {
            Some(mut conn) => {
                store::within(timeout, store::publish(&mut conn, &names, &limits, &items)).await
            }
            None => Err(StoreError {
                why: format!(
                    "Redis {} is unreachable: {}",
                    shard.name,
                    shard.down_reason()
                ),
                link_lost: false,
            }),
        };
        match result {
            Ok(places) => {
                for (r, pos) in batch.drain(..).zip(places) {
                    let _ = r.reply.send(Ok(pos));
                }
            }
            Err(e) => {
                for r in batch.drain(..) {
                    let _ = r.reply.send(Err(StoreError {
                        why: e.why.clone(),
                        link_lost: e.link_lost,
                    }));
                }
            }
        }
        batch.clear();
    }
}

/// A subscriber of worker `worker` joins `room`, resuming after `since`.
pub struct JoinReq {
    pub room: RoomName,
    pub worker: usize,
    pub sub: SubRef,
    pub since: Option<u64>,
    pub budget: usize,
}

/// What the link thread is given at start.
pub struct Setup {
    pub urls: Vec<String>,
    pub shards: Vec<Arc<Shard>>,
    pub names: Names,
    pub limits: Limits,
    pub timeout: Duration,
    pub presence_ttl: Duration,
    pub read_batch: usize,
    pub node_id: String,
    pub max_frame: usize,
    pub bus: Arc<Bus>,
    pub stats: Arc<LinkStats>,
    /// The workers' counters (joins refused by `hub.max_rooms`).
    pub worker_stats: Vec<Arc<WorkerStats>>,
    /// `hub.max_rooms` (changes on reload): rooms this node subscribes to at most.
    pub max_rooms: Arc<AtomicUsize>,
    /// Each instance's publishes, in order.
    pub publishes: Vec<tokio::sync::mpsc::UnboundedReceiver<PublishReq>>,
}

/// The Redis instance of a room: rendezvous hashing of its name over the
/// instances' names (the same on every node that lists the same URLs).
pub fn shard_of(shards: &[Arc<Shard>], room: &str) -> usize {
    if shards.len() < 2 {
        return 0;
    }
    let mut best = (0u64, 0usize);
    for (i, s) in shards.iter().enumerate() {
        let w = fnv1a(s.name.as_bytes(), room.as_bytes());
        if w > best.0 || i == 0 {
            best = (w, i);
        }
    }
    best.1
}

fn fnv1a(a: &[u8], b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &x in a.iter().chain([0u8].iter()).chain(b) {
        h ^= x as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    // finish (splitmix64) so that close inputs spread
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58476d1ce4e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d049bb133111eb);
    h ^ (h >> 31)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// `SUBSCRIBE` sent, not confirmed yet.
    Subscribing,
    /// Subscribed; the room's head is being read.
    Reading,
    /// Messages are delivered.
    Live,
}

struct Room {
    shard: usize,
    subs: Vec<u32>,
    total: u64,
    phase: Phase,
    /// The last message delivered (`None`: none yet, Redis had no such room).
    pos: Option<Pos>,
    /// A stream read of the room is in flight.
    catching: bool,
    /// Something arrived that the next read must look at.
    again: bool,
    /// Joins waiting for the room to be live.
    waiting: Vec<JoinReq>,
}

/// Why a stream read was made.
enum ReadFor {
    Head,
    CatchUp,
    Join(JoinReq),
    Replay {
        worker: usize,
        sub: SubRef,
        after: u64,
        budget: usize,
    },
}

enum Ev {
    Pubsub(usize, PubsubEvent),
    Read {
        room: RoomName,
        why: ReadFor,
        result: Result<(Option<Pos>, Vec<Entry>), StoreError>,
    },
    QuiesceHeads {
        worker: usize,
        rooms: Vec<RoomName>,
        result: Result<Vec<Option<Pos>>, StoreError>,
    },
}

struct Node {
    s: Setup,
    rooms: HashMap<RoomName, Room>,
    ctl: Vec<tokio::sync::mpsc::UnboundedSender<PubsubCtl>>,
    evs: tokio::sync::mpsc::UnboundedSender<Ev>,
    /// Rooms whose failed read is tried again at the next tick.
    retry: HashSet<RoomName>,
    retry_joins: Vec<JoinReq>,
    /// Rooms whose subscriber count changed since the counts were last written.
    presence_dirty: HashSet<RoomName>,
    /// Drain barriers: a worker and the ids its rooms must reach.
    barriers: Vec<(usize, Vec<(RoomName, Pos)>)>,
    /// A subscription connection went down and has not come back yet.
    sub_was_down: Vec<bool>,
    /// Messages for each worker, sent together at the end of a turn (or
    /// before anything else for the worker, which must come after them).
    outbox: Vec<Vec<Arc<Published>>>,
    /// Stream reads in flight at most ([`MAX_READS`]): what reads hold is
    /// bounded, however many clients resume at once (the others wait).
    reads: Arc<tokio::sync::Semaphore>,
}

/// Stream reads (joins, replays, catch-ups, history) in flight at once: at
/// most this many times `cluster.read_batch` messages are held by reads.
const MAX_READS: usize = 32;

/// Runs the link until the workers are gone.
pub async fn run(mut s: Setup, cmds: flume::Receiver<Cmd>) {
    for (shard, rx) in s.shards.iter().zip(std::mem::take(&mut s.publishes)) {
        tokio::spawn(publisher(
            shard.clone(),
            rx,
            s.names.clone(),
            s.limits.clone(),
            s.timeout,
        ));
    }
    let (ps_tx, mut ps_rx) = tokio::sync::mpsc::channel(1024);
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut ctl = Vec::new();
    for (i, url) in s.urls.iter().enumerate() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        ctl.push(tx);
        let client = redis::Client::open(url.as_str()).ok();
        let target = client
            .as_ref()
            .and_then(|c| Target::of(c.get_connection_info()));
        match (client, target) {
            (Some(client), Some(target)) => {
                tokio::spawn(manage_commands(client, s.shards[i].clone(), s.timeout));
                tokio::spawn(pubsub::run(
                    i,
                    target,
                    s.timeout,
                    s.max_frame,
                    rx,
                    ps_tx.clone(),
                ));
            }
            // the configuration checks URLs: kept as a reason, the instance stays down
            _ => {
                *s.shards[i]
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = "not a TCP redis:// URL".into();
            }
        }
    }
    drop(ps_tx);
    let shards = s.shards.len();
    let mut node = Node {
        s,
        rooms: HashMap::new(),
        ctl,
        evs: ev_tx,
        retry: HashSet::new(),
        retry_joins: Vec::new(),
        presence_dirty: HashSet::new(),
        barriers: Vec::new(),
        sub_was_down: vec![false; shards],
        outbox: Vec::new(),
        reads: Arc::new(tokio::sync::Semaphore::new(MAX_READS)),
    };
    node.outbox = vec![Vec::new(); node.workers()];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let refresh_every = node.s.presence_ttl / 3;
    let mut refreshed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            c = cmds.recv_async() => match c {
                Ok(c) => node.command(c).await,
                Err(_) => return,
            },
            Some((shard, e)) = ps_rx.recv() => {
                node.event(Ev::Pubsub(shard, e)).await;
                // take what else has arrived, so that a burst reaches the
                // workers as one batch (one wake-up, one write per subscriber)
                for _ in 0..TURN {
                    match ps_rx.try_recv() {
                        Ok((shard, e)) => node.event(Ev::Pubsub(shard, e)).await,
                        Err(_) => break,
                    }
                }
            }
            Some(e) = ev_rx.recv() => node.event(e).await,
            _ = tick.tick() => {
                let all = refreshed.elapsed() >= refresh_every;
                if all {
                    refreshed = tokio::time::Instant::now();
                }
                node.tick(all);
            }
        }
        node.flush().await;
        node.check_barriers().await;
    }
}

/// Channel messages handled in one turn at most before the workers get them.
const TURN: usize = 1024;

/// Keeps one command connection to a Redis instance: connects, checks it
/// every second, and makes another when a command found it gone.
async fn manage_commands(client: redis::Client, shard: Arc<Shard>, timeout: Duration) {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    let mut backoff = Duration::from_millis(50);
    loop {
        match client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
        {
            Ok(conn) => {
                backoff = Duration::from_millis(50);
                shard.conn.store(Some(Arc::new(conn.clone())));
                shard.cmd_up.store(true, Ordering::Relaxed);
                log::info!("cluster: connected to Redis {}", shard.name);
                let why = loop {
                    tokio::select! {
                        _ = shard.broken.notified() => break shard.down_reason(),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {
                            let mut c = conn.clone();
                            let ping = store::within(timeout, async {
                                redis::cmd("PING").query_async::<String>(&mut c).await.map_err(|e| StoreError {
                                    why: e.to_string(),
                                    link_lost: true,
                                })
                            }).await;
                            if let Err(e) = ping {
                                break e.why;
                            }
                        }
                    }
                };
                shard.conn.store(None);
                shard.cmd_up.store(false, Ordering::Relaxed);
                *shard.last_error.lock().unwrap_or_else(|p| p.into_inner()) = why.clone();
                log::warn!("cluster: lost Redis {}: {why}", shard.name);
            }
            Err(e) => {
                *shard.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                    format!("cannot connect: {e}");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

impl Node {
    fn workers(&self) -> usize {
        self.s.bus.workers()
    }

    /// Sends the messages waiting for worker `w`, as one batch.
    async fn flush_to(&mut self, w: usize) {
        if self.outbox[w].is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.outbox[w]);
        let msg = if batch.len() == 1 {
            BusMsg::Deliver(batch.into_iter().next().expect("one"))
        } else {
            BusMsg::DeliverMany(batch)
        };
        let _ = self.s.bus.deliver(w, msg).await;
    }

    async fn flush(&mut self) {
        for w in 0..self.outbox.len() {
            self.flush_to(w).await;
        }
    }

    /// Sends worker `w` something that follows every message before it.
    async fn send(&mut self, w: usize, msg: BusMsg) {
        self.flush_to(w).await;
        let _ = self.s.bus.deliver(w, msg).await;
    }

    // ------------------------------------------------------------ commands

    async fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Join(j) => self.join(j).await,
            Cmd::Replay {
                room,
                worker,
                sub,
                after,
                budget,
            } => self.read_since(
                room,
                after,
                ReadFor::Replay {
                    worker,
                    sub,
                    after,
                    budget,
                },
            ),
            Cmd::Leave { room, worker } => self.leave(room, worker),
            Cmd::Info { room, reply } => self.info(room, reply),
            Cmd::History { room, since, reply } => self.history(room, since, reply),
            Cmd::Quiesce { worker } => self.quiesce(worker),
            Cmd::Stop { done } => {
                self.withdraw().await;
                let _ = done.send(());
            }
        }
    }

    async fn join(&mut self, j: JoinReq) {
        let workers = self.workers();
        if !self.rooms.contains_key(&j.room)
            && self.rooms.len() >= self.s.max_rooms.load(Ordering::Relaxed)
        {
            self.s.worker_stats[j.worker].rejected_max_rooms.inc();
            let reply = JoinReply::refused(j.room, j.sub);
            self.send(j.worker, BusMsg::Joined(reply)).await;
            return;
        }
        let shard = shard_of(&self.s.shards, &j.room);
        let room = self.rooms.entry(j.room.clone()).or_insert_with(|| Room {
            shard,
            subs: vec![0; workers],
            total: 0,
            phase: Phase::Subscribing,
            pos: None,
            catching: false,
            again: false,
            waiting: Vec::new(),
        });
        room.subs[j.worker] += 1;
        room.total += 1;
        self.presence_dirty.insert(j.room.clone());
        if room.total == 1 && room.phase == Phase::Subscribing && room.waiting.is_empty() {
            self.s.stats.rooms.fetch_add(1, Ordering::Relaxed);
            if let Some(ctl) = self.ctl.get(shard) {
                let _ = ctl.send(PubsubCtl::Subscribe(vec![self.s.names.channel(&j.room)]));
            }
        }
        if room.phase == Phase::Live {
            self.join_live(j).await;
        } else {
            room.waiting.push(j);
        }
    }

    /// A join of a live room: at once when it resumes from nothing the
    /// node has not delivered, else after reading what it missed.
    async fn join_live(&mut self, j: JoinReq) {
        let Some(room) = self.rooms.get(&j.room) else {
            return;
        };
        let head = room.pos.map_or(0, Pos::id);
        let caught_up = match (j.since, room.pos) {
            (None, _) => true,
            (Some(s), Some(p)) => s >= p.id() && s >= p.base,
            (Some(_), None) => false,
        };
        if caught_up {
            let reply = JoinReply::at_head(j.room, j.sub, head);
            self.send(j.worker, BusMsg::Joined(reply)).await;
            return;
        }
        let since = j.since.unwrap_or(0);
        self.read_since(j.room.clone(), since, ReadFor::Join(j));
    }

    fn leave(&mut self, name: RoomName, worker: usize) {
        let Some(room) = self.rooms.get_mut(&name) else {
            return;
        };
        room.subs[worker] = room.subs[worker].saturating_sub(1);
        room.total = room.total.saturating_sub(1);
        self.presence_dirty.insert(name.clone());
        if room.total == 0 {
            let shard = room.shard;
            self.rooms.remove(&name);
            self.retry.remove(&name);
            self.s.stats.rooms.fetch_sub(1, Ordering::Relaxed);
            if let Some(ctl) = self.ctl.get(shard) {
                let _ = ctl.send(PubsubCtl::Unsubscribe(vec![self.s.names.channel(&name)]));
            }
        }
    }

    fn conn(&self, shard: usize) -> Result<redis::aio::MultiplexedConnection, StoreError> {
        self.s.shards[shard].conn().ok_or_else(|| StoreError {
            why: format!(
                "Redis {} is unreachable: {}",
                self.s.shards[shard].name,
                self.s.shards[shard].down_reason()
            ),
            link_lost: false,
        })
    }

    fn info(&self, room: RoomName, reply: flume::Sender<Result<RoomInfo, HubError>>) {
        let shard = shard_of(&self.s.shards, &room);
        let local = self.rooms.get(&room).map_or(0, |r| r.total);
        let conn = self.conn(shard);
        let (names, node, timeout) = (self.s.names.clone(), self.s.node_id.clone(), self.s.timeout);
        let shard = self.s.shards[shard].clone();
        tokio::spawn(async move {
            let r = async {
                let mut conn = conn?;
                store::within(
                    timeout,
                    store::info(&mut conn, &names, &room, &node, local, store::now_ms()),
                )
                .await
            }
            .await;
            let _ = reply.send(match r {
                Ok((subscribers, head, history_len)) => Ok(RoomInfo {
                    subscribers,
                    last_id: head.map(Pos::id),
                    history_len,
                }),
                Err(e) => {
                    shard.failed(&e);
                    Err(HubError::Unavailable(e.why))
                }
            });
        });
    }

    fn history(
        &self,
        room: RoomName,
        since: u64,
        reply: flume::Sender<Result<HistoryReply, HubError>>,
    ) {
        let shard = shard_of(&self.s.shards, &room);
        let conn = self.conn(shard);
        let (names, count, timeout) = (
            self.s.names.clone(),
            self.s.limits.history_size.max(1),
            self.s.timeout,
        );
        let ttl = self.s.limits.history_ttl;
        let shard = self.s.shards[shard].clone();
        let reads = self.reads.clone();
        tokio::spawn(async move {
            let _turn = reads.acquire().await;
            let r = async {
                let mut conn = conn?;
                store::within(timeout, read_after(&mut conn, &names, &room, since, count)).await
            }
            .await;
            let _ = reply.send(match r {
                Ok((head, mut entries)) => {
                    expire(&mut entries, ttl);
                    let gap = missed(&room, since, head, &entries);
                    Ok(HistoryReply {
                        messages: entries.into_iter().map(|e| publish_of(&room, e)).collect(),
                        gap,
                        exists: head.is_some(),
                    })
                }
                Err(e) => {
                    shard.failed(&e);
                    Err(HubError::Unavailable(e.why))
                }
            });
        });
    }

    /// Reads `room`'s history after id `since` in a task; the answer comes
    /// back as an [`Ev::Read`].
    fn read_since(&self, room: RoomName, since: u64, why: ReadFor) {
        let shard = shard_of(&self.s.shards, &room);
        let conn = self.conn(shard);
        let (names, count, timeout) = (self.s.names.clone(), self.s.read_batch, self.s.timeout);
        let (evs, reads) = (self.evs.clone(), self.reads.clone());
        tokio::spawn(async move {
            let _turn = reads.acquire().await;
            let result = async {
                let mut conn = conn?;
                store::within(timeout, read_after(&mut conn, &names, &room, since, count)).await
            }
            .await;
            let _ = evs.send(Ev::Read { room, why, result });
        });
    }

    /// Reads `room`'s head and what follows `from` (`None`: from the oldest) in a task.
    fn read_from(&self, room: RoomName, from: Option<Pos>, why: ReadFor) {
        let shard = shard_of(&self.s.shards, &room);
        let conn = self.conn(shard);
        let (names, timeout) = (self.s.names.clone(), self.s.timeout);
        let count = match why {
            ReadFor::Head => 0,
            _ => self.s.read_batch,
        };
        let (evs, reads) = (self.evs.clone(), self.reads.clone());
        tokio::spawn(async move {
            let _turn = reads.acquire().await;
            let result = async {
                let mut conn = conn?;
                if count == 0 {
                    let heads = store::within(
                        timeout,
                        store::heads(&mut conn, &names, std::slice::from_ref(&room)),
                    )
                    .await?;
                    return Ok((heads.into_iter().next().flatten(), Vec::new()));
                }
                store::within(timeout, store::read(&mut conn, &names, &room, from, count)).await
            }
            .await;
            let _ = evs.send(Ev::Read { room, why, result });
        });
    }

    fn quiesce(&self, worker: usize) {
        let rooms: Vec<RoomName> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.subs[worker] > 0)
            .map(|(n, _)| n.clone())
            .collect();
        let mut by_shard: HashMap<usize, Vec<RoomName>> = HashMap::new();
        for r in rooms {
            by_shard
                .entry(shard_of(&self.s.shards, &r))
                .or_default()
                .push(r);
        }
        let conns: Vec<_> = by_shard
            .into_iter()
            .map(|(shard, rooms)| (self.conn(shard), rooms))
            .collect();
        let (names, timeout, evs) = (self.s.names.clone(), self.s.timeout, self.evs.clone());
        tokio::spawn(async move {
            let mut all_rooms = Vec::new();
            let mut all_heads = Vec::new();
            let mut failed = None;
            for (conn, rooms) in conns {
                let r = async {
                    let mut conn = conn?;
                    store::within(timeout, store::heads(&mut conn, &names, &rooms)).await
                }
                .await;
                match r {
                    Ok(h) => {
                        all_heads.extend(h);
                        all_rooms.extend(rooms);
                    }
                    Err(e) => failed = Some(e),
                }
            }
            let result = match failed {
                Some(e) => Err(e),
                None => Ok(all_heads),
            };
            let _ = evs.send(Ev::QuiesceHeads {
                worker,
                rooms: all_rooms,
                result,
            });
        });
    }

    // -------------------------------------------------------------- events

    async fn event(&mut self, e: Ev) {
        match e {
            Ev::Pubsub(shard, PubsubEvent::Up) => {
                self.s.shards[shard].sub_up.store(true, Ordering::Relaxed);
                if std::mem::take(&mut self.sub_was_down[shard]) {
                    self.s.stats.resubscriptions.fetch_add(1, Ordering::Relaxed);
                    log::info!(
                        "cluster: subscribed again to Redis {}; catching up every room",
                        self.s.shards[shard].name
                    );
                }
            }
            Ev::Pubsub(shard, PubsubEvent::Down(why)) => {
                if self.s.shards[shard].sub_up.swap(false, Ordering::Relaxed)
                    || !self.sub_was_down[shard]
                {
                    log::warn!(
                        "cluster: subscription to Redis {} lost: {why}",
                        self.s.shards[shard].name
                    );
                }
                *self.s.shards[shard]
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = why;
                self.sub_was_down[shard] = true;
                // the command connection to the same Redis is most likely
                // gone too: check it now rather than at its next ping
                self.s.shards[shard].broken.notify_one();
            }
            Ev::Pubsub(_, PubsubEvent::Subscribed(channel)) => self.subscribed(&channel),
            Ev::Pubsub(_, PubsubEvent::Message { channel, payload }) => {
                self.message(&channel, &payload).await
            }
            Ev::Read { room, why, result } => self.read_done(room, why, result).await,
            Ev::QuiesceHeads {
                worker,
                rooms,
                result,
            } => match result {
                Ok(heads) => {
                    let mut want = Vec::new();
                    for (room, head) in rooms.into_iter().zip(heads) {
                        if let Some(h) = head {
                            want.push((room, h));
                        }
                    }
                    for (room, _) in &want {
                        self.catch_up(room);
                    }
                    self.barriers.push((worker, want));
                }
                Err(e) => {
                    log::warn!("cluster: drain cannot read the rooms' heads ({e}); this node delivers nothing more");
                    self.send(worker, BusMsg::Quiesced).await;
                }
            },
        }
    }

    fn subscribed(&mut self, channel: &Bytes) {
        let Some(name) = self.s.names.room_of_channel(channel) else {
            return;
        };
        let Some((key, room)) = self.rooms.get_key_value(name) else {
            return;
        };
        let key = key.clone();
        match room.phase {
            Phase::Subscribing => {
                if let Some(r) = self.rooms.get_mut(&key) {
                    r.phase = Phase::Reading;
                }
                self.read_from(key, None, ReadFor::Head);
            }
            // subscribed again (the connection was lost): read what was missed
            Phase::Live => self.catch_up(&key),
            Phase::Reading => {}
        }
    }

    async fn message(&mut self, channel: &Bytes, payload: &Bytes) {
        let Some(name) = self.s.names.room_of_channel(channel) else {
            return;
        };
        let Some((key, room)) = self.rooms.get_key_value(name) else {
            return;
        };
        let key = key.clone();
        let Some((pos, msg)) = store::decode_announce(payload) else {
            log::warn!(
                "cluster: a message on {} is not in ringcast's format; ignored",
                String::from_utf8_lossy(channel)
            );
            return;
        };
        if room.phase != Phase::Live || room.catching {
            if let Some(r) = self.rooms.get_mut(&key) {
                r.again = true;
            }
            return;
        }
        let next = match room.pos {
            Some(p) if p.base == pos.base => {
                if pos.n <= p.n {
                    return; // delivered already
                }
                pos.n == p.n + 1
            }
            Some(_) => false,
            None => pos.n == 1,
        };
        if next {
            let p = Arc::new(Published::encode(key.clone(), pos.id(), 0, msg));
            self.deliver(&key, p, pos);
        } else {
            self.catch_up(&key);
        }
    }

    /// Starts reading the room's stream from its last delivered message
    /// (unless a read is in flight: it is then read again after it).
    fn catch_up(&mut self, name: &RoomName) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        if room.phase != Phase::Live {
            room.again = true;
            return;
        }
        if room.catching {
            room.again = true;
            return;
        }
        room.catching = true;
        room.again = false;
        let from = room.pos;
        self.read_from(name.clone(), from, ReadFor::CatchUp);
    }

    fn deliver(&mut self, name: &RoomName, p: Arc<Published>, pos: Pos) {
        let Some(r) = self.rooms.get_mut(name) else {
            return;
        };
        r.pos = Some(pos);
        for (w, &n) in r.subs.iter().enumerate() {
            if n > 0 {
                self.outbox[w].push(p.clone());
            }
        }
    }

    async fn gap(&mut self, name: &RoomName, gap: Gap) {
        let targets: Vec<usize> = match self.rooms.get(name) {
            Some(r) => (0..r.subs.len()).filter(|&w| r.subs[w] > 0).collect(),
            None => return,
        };
        self.s.stats.catchup_gaps.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "cluster: room {name}: messages after {} are gone from Redis ({}); its subscribers get a gap notice",
            gap.since,
            gap.reason
        );
        for w in targets {
            self.send(w, BusMsg::RoomGap(gap.clone())).await;
        }
    }

    async fn read_done(
        &mut self,
        name: RoomName,
        why: ReadFor,
        result: Result<(Option<Pos>, Vec<Entry>), StoreError>,
    ) {
        let shard = shard_of(&self.s.shards, &name);
        let (head, entries) = match result {
            Ok(r) => r,
            Err(e) => {
                self.s.shards[shard].failed(&e);
                log::debug!("cluster: reading room {name} failed: {e}");
                match why {
                    ReadFor::Head => {
                        self.retry.insert(name);
                    }
                    ReadFor::CatchUp => {
                        if let Some(r) = self.rooms.get_mut(&name) {
                            r.catching = false;
                            r.again = true;
                        }
                        self.retry.insert(name);
                    }
                    ReadFor::Join(j) => self.retry_joins.push(j),
                    ReadFor::Replay { worker, sub, .. } => {
                        // the subscriber resumes again when it reconnects
                        let reply = ReplayReply { sub, piece: None };
                        self.send(worker, BusMsg::Replayed(reply)).await;
                    }
                }
                return;
            }
        };
        match why {
            ReadFor::Head => {
                let Some(room) = self.rooms.get_mut(&name) else {
                    return;
                };
                room.pos = head;
                room.phase = Phase::Live;
                let waiting = std::mem::take(&mut room.waiting);
                let again = std::mem::take(&mut room.again);
                for j in waiting {
                    self.join_live(j).await;
                }
                if again {
                    self.catch_up(&name);
                }
            }
            ReadFor::CatchUp => self.caught_up(name, head, entries).await,
            ReadFor::Join(j) => self.joined(j, head, entries).await,
            ReadFor::Replay {
                worker,
                sub,
                after,
                budget,
            } => {
                let mut entries = entries;
                expire(&mut entries, self.s.limits.history_ttl);
                // the history must still continue right after `after`
                let continues = match (head, entries.first()) {
                    (Some(h), Some(first)) => {
                        first.pos.base == h.base && first.pos.id() == after + 1
                    }
                    (Some(h), None) => h.id() <= after,
                    (None, _) => false,
                };
                let piece = continues.then(|| self.piece(&name, entries, after, budget));
                let reply = ReplayReply { sub, piece };
                self.send(worker, BusMsg::Replayed(reply)).await;
            }
        }
    }

    /// The part of `entries` that fits `budget` (at least one) as published
    /// messages, and whether the subscriber must ask for more: the read
    /// stopped short, or this node has delivered past what it saw (those
    /// messages went to the worker before the subscriber was in the room).
    fn piece(
        &self,
        name: &RoomName,
        entries: Vec<Entry>,
        after: u64,
        budget: usize,
    ) -> (Vec<Arc<Published>>, bool) {
        let full = entries.len() >= self.s.read_batch;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut rest = false;
        for e in entries {
            let p = publish_of(name, e);
            if !out.is_empty() && bytes.saturating_add(p.sse.len()) > budget {
                rest = true;
                break;
            }
            bytes = bytes.saturating_add(p.sse.len());
            out.push(p);
        }
        let last = out.last().map_or(after, |p| p.seq);
        let delivered = self.rooms.get(name).and_then(|r| r.pos).map_or(0, Pos::id);
        (out, rest || full || delivered > last)
    }

    async fn joined(&mut self, j: JoinReq, head: Option<Pos>, mut entries: Vec<Entry>) {
        expire(&mut entries, self.s.limits.history_ttl);
        let since = j.since.unwrap_or(0);
        let gap = missed(&j.room, since, head, &entries);
        let (replay, more) = self.piece(&j.room, entries, since, j.budget.max(1));
        let delivered = self
            .rooms
            .get(&j.room)
            .and_then(|r| r.pos)
            .map_or(0, Pos::id);
        let reply = JoinReply {
            room: j.room,
            sub: j.sub,
            head: delivered.max(head.map_or(0, Pos::id)),
            replay,
            more,
            gap,
            refused: false,
        };
        self.send(j.worker, BusMsg::Joined(reply)).await;
    }

    async fn caught_up(&mut self, name: RoomName, head: Option<Pos>, entries: Vec<Entry>) {
        let Some(room) = self.rooms.get_mut(&name) else {
            return;
        };
        room.catching = false;
        let full = entries.len() >= self.s.read_batch;
        let mut pos = room.pos;
        // a base older than the one delivered (a clock went back): read it from its start
        if let (Some(h), Some(p)) = (head, pos) {
            if h.base < p.base && entries.is_empty() {
                room.pos = None;
                room.again = true;
                let since = p.id();
                self.gap(
                    &name,
                    Gap {
                        room: name.clone(),
                        since,
                        resume_from: None,
                        reason: "reset",
                    },
                )
                .await;
                self.catch_up(&name);
                return;
            }
        }
        let mut recovered = 0u64;
        for e in entries {
            let gap = match pos {
                Some(p) if e.pos.base == p.base => {
                    if e.pos.n <= p.n {
                        continue;
                    }
                    (e.pos.n > p.n + 1).then_some("evicted")
                }
                Some(p) if e.pos.base < p.base => continue,
                Some(_) => Some("reset"),
                None => None,
            };
            if let (Some(reason), Some(p)) = (gap, pos) {
                self.gap(
                    &name,
                    Gap {
                        room: name.clone(),
                        since: p.id(),
                        resume_from: Some(e.pos.id()),
                        reason,
                    },
                )
                .await;
            }
            pos = Some(e.pos);
            let p = e.pos;
            self.deliver(&name, publish_of(&name, e), p);
            recovered += 1;
        }
        self.s
            .stats
            .recovered
            .fetch_add(recovered, Ordering::Relaxed);
        // the stream no longer holds messages numbered after the last delivered
        if let (Some(h), Some(p)) = (head, pos) {
            if h.base == p.base && h.n > p.n && !full {
                self.gap(
                    &name,
                    Gap {
                        room: name.clone(),
                        since: p.id(),
                        resume_from: None,
                        reason: "evicted",
                    },
                )
                .await;
                if let Some(r) = self.rooms.get_mut(&name) {
                    r.pos = Some(h);
                }
            }
        }
        let again = self
            .rooms
            .get_mut(&name)
            .map(|r| std::mem::take(&mut r.again))
            .unwrap_or(false);
        if full || again {
            self.catch_up(&name);
        }
    }

    /// Removes every count of this node from Redis (the node is stopping),
    /// so the others stop counting its subscribers at once.
    async fn withdraw(&mut self) {
        let mut by_shard: HashMap<usize, Vec<(RoomName, u64)>> = HashMap::new();
        for r in self.rooms.keys().chain(self.presence_dirty.iter()) {
            by_shard
                .entry(shard_of(&self.s.shards, r))
                .or_default()
                .push((r.clone(), 0));
        }
        for (shard, counts) in by_shard {
            if let Ok(mut conn) = self.conn(shard) {
                let _ = store::within(
                    self.s.timeout,
                    store::presence(
                        &mut conn,
                        &self.s.names,
                        &self.s.node_id,
                        &counts,
                        self.s.presence_ttl,
                        store::now_ms(),
                    ),
                )
                .await;
            }
        }
    }

    // ---------------------------------------------------------------- tick

    fn tick(&mut self, refresh_all: bool) {
        for name in std::mem::take(&mut self.retry) {
            let Some(room) = self.rooms.get(&name) else {
                continue;
            };
            match room.phase {
                Phase::Reading => self.read_from(name, None, ReadFor::Head),
                Phase::Live => self.catch_up(&name),
                Phase::Subscribing => {}
            }
        }
        for j in std::mem::take(&mut self.retry_joins) {
            if self.rooms.contains_key(&j.room) {
                let since = j.since.unwrap_or(0);
                self.read_since(j.room.clone(), since, ReadFor::Join(j));
            }
        }
        let rooms: Vec<RoomName> = if refresh_all {
            self.presence_dirty.clear();
            self.rooms.keys().cloned().collect()
        } else {
            self.presence_dirty.drain().collect()
        };
        if rooms.is_empty() {
            return;
        }
        let mut by_shard: HashMap<usize, Vec<(RoomName, u64)>> = HashMap::new();
        for r in rooms {
            let count = self.rooms.get(&r).map_or(0, |x| x.total);
            by_shard
                .entry(shard_of(&self.s.shards, &r))
                .or_default()
                .push((r, count));
        }
        for (shard, counts) in by_shard {
            let Ok(mut conn) = self.conn(shard) else {
                continue;
            };
            let (names, node, ttl, timeout) = (
                self.s.names.clone(),
                self.s.node_id.clone(),
                self.s.presence_ttl,
                self.s.timeout,
            );
            tokio::spawn(async move {
                let _ = store::within(
                    timeout,
                    store::presence(&mut conn, &names, &node, &counts, ttl, store::now_ms()),
                )
                .await;
            });
        }
    }

    /// Answers each drain barrier whose rooms have all been delivered up to
    /// the heads read when it was asked.
    async fn check_barriers(&mut self) {
        if self.barriers.is_empty() {
            return;
        }
        let mut done = Vec::new();
        let rooms = &self.rooms;
        self.barriers.retain(|(worker, want)| {
            let reached = want.iter().all(|(name, head)| match rooms.get(name) {
                None => true,
                Some(r) => r
                    .pos
                    .is_some_and(|p| p.base > head.base || (p.base == head.base && p.n >= head.n)),
            });
            if reached {
                done.push(*worker);
            }
            !reached
        });
        for w in done {
            self.send(w, BusMsg::Quiesced).await;
        }
    }
}

/// Reads a room's head and what follows id `since` (0: from the oldest).
async fn read_after(
    conn: &mut redis::aio::MultiplexedConnection,
    names: &Names,
    room: &str,
    since: u64,
    count: usize,
) -> Result<(Option<Pos>, Vec<Entry>), StoreError> {
    let heads = store::heads(conn, names, &[RoomName::from(room)]).await?;
    let Some(h) = heads.into_iter().next().flatten() else {
        return Ok((None, Vec::new()));
    };
    let from = (since > h.base).then(|| Pos {
        base: h.base,
        n: since - h.base,
    });
    let (head, mut entries) = store::read(conn, names, room, from, count).await?;
    entries.retain(|e| e.pos.id() > since || since < h.base);
    Ok((head, entries))
}

/// Drops the entries older than `hub.history_ttl` (they count as evicted).
fn expire(entries: &mut Vec<Entry>, ttl: Duration) {
    let cutoff = store::now_ms().saturating_sub(ttl.as_millis() as u64);
    let old = entries.iter().take_while(|e| e.at_ms < cutoff).count();
    entries.drain(..old);
}

/// The gap notice a client at `since` gets, when part of what it missed is gone.
fn missed(room: &RoomName, since: u64, head: Option<Pos>, entries: &[Entry]) -> Option<Gap> {
    if since == 0 {
        return None;
    }
    let gap = |reason, resume_from| {
        Some(Gap {
            room: room.clone(),
            since,
            resume_from,
            reason,
        })
    };
    let oldest = entries.first().map(|e| e.pos.id());
    match head {
        None => gap("reset", None),
        Some(h) if since < h.base => gap("reset", oldest),
        Some(h) => match oldest {
            Some(o) if o > since + 1 => gap("evicted", Some(o)),
            None if h.id() > since => gap("evicted", None),
            _ => None,
        },
    }
}

fn publish_of(room: &RoomName, e: Entry) -> Arc<Published> {
    Arc::new(Published::encode(room.clone(), e.pos.id(), 0, e.msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(name: &str) -> Arc<Shard> {
        Arc::new(Shard::new(
            name.into(),
            tokio::sync::mpsc::unbounded_channel().0,
        ))
    }

    #[test]
    fn rooms_spread_over_instances_and_stay_when_one_is_added() {
        let two = vec![shard("redis://a:1"), shard("redis://b:2")];
        let three = vec![
            shard("redis://a:1"),
            shard("redis://b:2"),
            shard("redis://c:3"),
        ];
        let rooms: Vec<String> = (0..1000).map(|i| format!("room-{i}")).collect();
        let on_first = rooms.iter().filter(|r| shard_of(&two, r) == 0).count();
        assert!(
            (400..600).contains(&on_first),
            "{on_first} of 1000 on the first"
        );
        // a room moves only to the new instance, never between the old ones
        for r in &rooms {
            let after = shard_of(&three, r);
            assert!(after == 2 || after == shard_of(&two, r), "{r}");
        }
    }

    fn entry(base: u64, n: u64) -> Entry {
        Entry {
            pos: Pos { base, n },
            msg: crate::hub::Message::new("x"),
            at_ms: 0,
        }
    }

    #[test]
    fn gaps_say_reset_or_evicted() {
        let room: RoomName = Arc::from("r");
        let h = Some(Pos { base: 1000, n: 10 });
        assert_eq!(missed(&room, 1005, h, &[entry(1000, 6)]), None);
        let g = missed(&room, 1002, h, &[entry(1000, 6)]).unwrap();
        assert_eq!((g.reason, g.resume_from), ("evicted", Some(1006)));
        let g = missed(&room, 900, h, &[entry(1000, 1)]).unwrap();
        assert_eq!((g.reason, g.resume_from), ("reset", Some(1001)));
        let g = missed(&room, 1002, h, &[]).unwrap();
        assert_eq!((g.reason, g.resume_from), ("evicted", None));
        assert_eq!(missed(&room, 1010, h, &[]), None);
        assert_eq!(missed(&room, 0, h, &[]), None);
        assert_eq!(missed(&room, 5, None, &[]).unwrap().reason, "reset");
    }
}
