//! The Redis engine: several ringcast nodes share every room's order, ids
//! and history through Redis (`[cluster] engine = "redis"`).
//!
//! - **Publishing.** A publish on any node runs one script in the room's
//!   Redis ([`store`]): next number, `XADD` to the room's history stream
//!   (at most `hub.history_size`, expiring after `hub.history_ttl`),
//!   `PUBLISH` on the room's channel. The publisher's answer (`202` with the
//!   id) comes only after Redis ran it; when Redis cannot be reached the
//!   answer is `503` with `Retry-After` and nothing was published.
//! - **Delivering.** Each node subscribes ([`pubsub`]) to the channels of
//!   the rooms it has subscribers in and hands each message, numbered by
//!   Redis, to its workers in order. A message that does not follow the
//!   last one delivered (the subscription connection dropped, Redis
//!   restarted) makes the node read the room's stream from the last id it
//!   delivered: what was missed is delivered in order before anything newer
//!   ("recovered"); what Redis no longer holds is announced to the room's
//!   subscribers as a `ringcast-gap` (never a silent hole).
//! - **Resuming.** A client's cursor means the same on every node, so a
//!   client may resume on any of them: its replay is read from the stream.
//! - **Several Redis instances.** Each room lives on one, chosen by
//!   rendezvous hashing of its name over the URLs, so every node must list
//!   the same URLs; losing one affects only its rooms.
//!
//! The Redis side runs on one thread of this process (the link: a small
//! tokio runtime, in `node.rs`); the workers reach it through a bounded channel
//! and it answers on their delivery inboxes, like a home worker.

mod node;
pub mod pubsub;
pub mod store;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;

use super::{Deliveries, Engine, Reply};
use crate::config::{redact_url, Config};
use crate::hub::bus::{HistoryReply, JoinReply, ReplayReply, SubRef};
use crate::hub::{Bus, BusMsg, HubError, Message, RoomInfo, RoomName};
use crate::io::stats::WorkerStats;

use node::Cmd;

/// Publish latency buckets (upper bounds, microseconds) of `/metrics`.
pub const LATENCY_BUCKETS_US: [u64; 10] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

/// Counters of the link, for `/metrics`.
#[derive(Default)]
pub struct LinkStats {
    /// Publishes Redis accepted.
    pub publishes: AtomicU64,
    /// Publishes refused because Redis could not be reached or failed.
    pub publish_failures: AtomicU64,
    /// Publishes refused because `cluster.max_inflight_publishes` were waiting.
    pub publish_overflow: AtomicU64,
    /// Sum of accepted publishes' latencies (microseconds).
    pub publish_latency_us: AtomicU64,
    /// Accepted publishes per latency bucket ([`LATENCY_BUCKETS_US`], then +Inf).
    pub publish_latency_buckets: [AtomicU64; 11],
    /// Subscription connections made again after a loss (each resubscribes every room).
    pub resubscriptions: AtomicU64,
    /// Messages delivered by reading a room's stream after a loss or a skip.
    pub recovered: AtomicU64,
    /// Gap notices sent to live subscribers (Redis no longer held what they missed).
    pub catchup_gaps: AtomicU64,
    /// Rooms this node is subscribed to (at most `hub.max_rooms`).
    pub rooms: AtomicU64,
}

impl LinkStats {
    fn record_latency(&self, d: Duration) {
        let us = d.as_micros() as u64;
        self.publish_latency_us.fetch_add(us, Ordering::Relaxed);
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.publish_latency_buckets[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// One Redis instance as the node sees it.
pub struct Shard {
    /// Its URL without the password.
    pub name: String,
    conn: ArcSwapOption<MultiplexedConnection>,
    /// Set when a command found the connection gone: the manager makes another.
    broken: tokio::sync::Notify,
    /// The command connection is up.
    pub cmd_up: AtomicBool,
    /// The subscription connection is up.
    pub sub_up: AtomicBool,
    /// Why the link is down, when it is.
    pub last_error: Mutex<String>,
    /// Publishes for this instance, in the order they were handed over.
    publishes: tokio::sync::mpsc::UnboundedSender<node::PublishReq>,
}

impl Shard {
    fn new(name: String, publishes: tokio::sync::mpsc::UnboundedSender<node::PublishReq>) -> Shard {
        Shard {
            name,
            conn: ArcSwapOption::empty(),
            broken: tokio::sync::Notify::new(),
            cmd_up: AtomicBool::new(false),
            sub_up: AtomicBool::new(false),
            last_error: Mutex::new("not connected yet".into()),
            publishes,
        }
    }

    fn conn(&self) -> Option<MultiplexedConnection> {
        self.conn.load_full().map(|c| (*c).clone())
    }

    fn failed(&self, e: &store::StoreError) {
        if e.link_lost {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e.why.clone();
            self.broken.notify_one();
        }
    }

    fn down_reason(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Both connections are up.
    pub fn up(&self) -> bool {
        self.cmd_up.load(Ordering::Relaxed) && self.sub_up.load(Ordering::Relaxed)
    }
}

/// The node's link to Redis: shared by every worker, running on its own thread.
pub struct Link {
    cmds: flume::Sender<Cmd>,
    pub shards: Vec<Arc<Shard>>,
    names: store::Names,
    limits: store::Limits,
    /// `cluster.command_timeout`.
    timeout: Duration,
    max_inflight: usize,
    inflight: AtomicUsize,
    pub stats: Arc<LinkStats>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Link {
    /// Starts the link's thread. It connects in the background: a node
    /// whose Redis is down starts anyway, reports itself unhealthy and
    /// answers publishes with 503 until Redis is back.
    pub fn start(
        cfg: &Config,
        bus: Arc<Bus>,
        worker_stats: Vec<Arc<WorkerStats>>,
        max_rooms: Arc<AtomicUsize>,
    ) -> std::io::Result<Arc<Link>> {
        let c = &cfg.cluster;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let mut publishes = Vec::new();
        let shards: Vec<Arc<Shard>> = c
            .redis
            .iter()
            .map(|url| {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                publishes.push(rx);
                Arc::new(Shard::new(redact_url(url), tx))
            })
            .collect();
        let node_id = if c.node_id.is_empty() {
            random_node_id()
        } else {
            c.node_id.clone()
        };
        let (tx, rx) = flume::bounded(cfg.hub.bus_capacity.max(64));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let link = Arc::new(Link {
            cmds: tx,
            shards,
            names: store::Names::new(&c.prefix),
            limits: store::Limits {
                history_size: cfg.hub.history_size,
                history_ttl: cfg.hub.history_ttl.0,
            },
            timeout: c.command_timeout.0,
            max_inflight: c.max_inflight_publishes,
            inflight: AtomicUsize::new(0),
            stats: Arc::new(LinkStats::default()),
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(None),
        });
        let setup = node::Setup {
            urls: c.redis.clone(),
            shards: link.shards.clone(),
            names: link.names.clone(),
            limits: link.limits.clone(),
            timeout: c.command_timeout.0,
            presence_ttl: c.presence_ttl.0,
            read_batch: c.read_batch,
            node_id: node_id.clone(),
            max_frame: cfg.hub.max_message_size.get() * 2 + 4096,
            bus,
            stats: link.stats.clone(),
            worker_stats,
            max_rooms,
            publishes,
        };
        let thread = std::thread::Builder::new()
            .name("cluster-link".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        _ = node::run(setup, rx) => {}
                        _ = stop_rx => {}
                    }
                });
            })?;
        *link.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        log::info!(
            "cluster: node {node_id} on {} Redis instance{}: {}",
            link.shards.len(),
            if link.shards.len() == 1 { "" } else { "s" },
            link.shards
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(link)
    }

    /// Stops the link's thread (after the workers stopped): first removes
    /// this node's subscriber counts from Redis (within `cluster.command_timeout`).
    pub fn stop(&self) {
        let (done, withdrawn) = flume::bounded(1);
        if self.cmds.try_send(Cmd::Stop { done }).is_ok() {
            let _ = withdrawn.recv_timeout(self.timeout + Duration::from_millis(100));
        }
        if let Some(tx) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }

    /// Whether every Redis instance is reachable; why not when one is not.
    pub fn health(&self) -> Result<(), String> {
        let down: Vec<String> = self
            .shards
            .iter()
            .filter(|s| !s.up())
            .map(|s| format!("Redis {} is unreachable: {}", s.name, s.down_reason()))
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(down.join("; "))
        }
    }

    /// Hands a publish over now and gives its id later: publishes handed
    /// over one after the other are numbered in that order (each instance's
    /// publishes go to Redis in order, several in one round trip).
    pub fn submit(
        self: &Arc<Self>,
        room: RoomName,
        msg: Message,
    ) -> impl std::future::Future<Output = Result<u64, HubError>> + 'static {
        let link = self.clone();
        let shard = self.shards[node::shard_of(&self.shards, &room)].clone();
        let started = Instant::now();
        let handed = if !shard.cmd_up.load(Ordering::Relaxed) {
            Err(format!(
                "Redis {} is unreachable: {}",
                shard.name,
                shard.down_reason()
            ))
        } else if self.inflight.fetch_add(1, Ordering::AcqRel) >= self.max_inflight {
            self.inflight.fetch_sub(1, Ordering::AcqRel);
            self.stats.publish_overflow.fetch_add(1, Ordering::Relaxed);
            Err(format!(
                "{} publishes are waiting for Redis (cluster.max_inflight_publishes)",
                self.max_inflight
            ))
        } else {
            let (tx, rx) = flume::bounded(1);
            let req = node::PublishReq {
                body: store::encode_body(&msg),
                room,
                reply: tx,
            };
            match shard.publishes.send(req) {
                Ok(()) => Ok(rx),
                Err(_) => {
                    self.inflight.fetch_sub(1, Ordering::AcqRel);
                    Err("the cluster link has stopped".into())
                }
            }
        };
        async move {
            let rx = match handed {
                Ok(rx) => rx,
                Err(why) => {
                    link.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(HubError::Unavailable(why));
                }
            };
            let r = rx.recv_async().await;
            link.inflight.fetch_sub(1, Ordering::AcqRel);
            match r {
                Ok(Ok(pos)) => {
                    link.stats.publishes.fetch_add(1, Ordering::Relaxed);
                    link.stats.record_latency(started.elapsed());
                    Ok(pos.id())
                }
                Ok(Err(e)) => {
                    link.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                    shard.failed(&e);
                    Err(HubError::Unavailable(format!("Redis {}: {e}", shard.name)))
                }
                Err(_) => Err(HubError::Closed),
            }
        }
    }

    async fn send(&self, cmd: Cmd) -> Result<(), HubError> {
        self.cmds
            .send_async(cmd)
            .await
            .map_err(|_| HubError::Closed)
    }

    /// Sends without making the caller wait: from a task when the channel is full.
    fn send_soon(&self, cmd: Cmd) {
        match self.cmds.try_send(cmd) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(cmd)) => {
                let tx = self.cmds.clone();
                monoio::spawn(async move {
                    let _ = tx.send_async(cmd).await;
                });
            }
            Err(flume::TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.get_mut().ok().and_then(Option::take) {
            let _ = tx.send(());
        }
    }
}

fn random_node_id() -> String {
    let mut b = [0u8; 6];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        b = (std::process::id() as u64 ^ crate::hub::room_base_now()).to_le_bytes()[..6]
            .try_into()
            .unwrap_or_default();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One worker's side of the Redis engine.
pub struct ClusterEngine {
    worker: usize,
    link: Arc<Link>,
    stats: Arc<WorkerStats>,
    history_size: usize,
}

impl ClusterEngine {
    pub fn new(worker: usize, link: Arc<Link>, cfg: &Config, stats: Arc<WorkerStats>) -> Self {
        ClusterEngine {
            worker,
            link,
            stats,
            history_size: cfg.hub.history_size,
        }
    }

    /// Serves one request of the [`crate::hub::Hub`] handle: a publish or
    /// a query, passed on to Redis.
    pub async fn handle_request(&self, msg: BusMsg) {
        match msg {
            BusMsg::Publish {
                room, msg, reply, ..
            } => {
                // handed over in the order they came; answered as Redis takes them
                let answer = self.submit(room, msg);
                monoio::spawn(async move {
                    let r = answer.await;
                    if let Some(tx) = reply {
                        let _ = tx.try_send(r);
                    }
                });
            }
            BusMsg::Info { room, reply } => {
                if let Ok(info) = self.info(room).await {
                    let _ = reply.try_send(info);
                }
            }
            BusMsg::History { room, since, reply } => {
                if let Ok(h) = self.history(room, since).await {
                    let _ = reply.try_send(h);
                }
            }
            _ => log::error!(
                "worker {}: a request the Redis engine does not take arrived",
                self.worker
            ),
        }
    }
}

impl ClusterEngine {
    /// [`Link::submit`], counted in this worker's published messages.
    pub fn submit(
        &self,
        room: RoomName,
        msg: Message,
    ) -> impl std::future::Future<Output = Result<u64, HubError>> + 'static {
        let stats = self.stats.clone();
        let id = self.link.submit(room, msg);
        async move {
            let id = id.await?;
            stats.messages_published.inc();
            Ok(id)
        }
    }
}

impl Engine for ClusterEngine {
    async fn publish(
        &self,
        room: RoomName,
        msg: Message,
        _local: &dyn Deliveries,
    ) -> Result<u64, HubError> {
        self.submit(room, msg).await
    }

    async fn join(
        &self,
        room: RoomName,
        sub: SubRef,
        since: Option<u64>,
        budget: usize,
    ) -> Result<Reply<JoinReply>, HubError> {
        self.link
            .send(Cmd::Join(node::JoinReq {
                room,
                worker: self.worker,
                sub,
                since,
                budget,
            }))
            .await?;
        Ok(Reply::Later)
    }

    fn join_from_now(&self, room: RoomName, sub: SubRef) -> Reply<JoinReply> {
        self.link.send_soon(Cmd::Join(node::JoinReq {
            room,
            worker: self.worker,
            sub,
            since: None,
            budget: 0,
        }));
        Reply::Later
    }

    fn replay(&self, room: RoomName, sub: SubRef, after: u64, budget: usize) -> Reply<ReplayReply> {
        self.link.send_soon(Cmd::Replay {
            room,
            worker: self.worker,
            sub,
            after,
            budget,
        });
        Reply::Later
    }

    fn leave(&self, room: RoomName) {
        self.link.send_soon(Cmd::Leave {
            room,
            worker: self.worker,
        });
    }

    async fn info(&self, room: RoomName) -> Result<RoomInfo, HubError> {
        let (tx, rx) = flume::bounded(1);
        self.link.send(Cmd::Info { room, reply: tx }).await?;
        rx.recv_async().await.map_err(|_| HubError::Closed)?
    }

    async fn history(&self, room: RoomName, since: u64) -> Result<HistoryReply, HubError> {
        let (tx, rx) = flume::bounded(1);
        self.link
            .send(Cmd::History {
                room,
                since,
                reply: tx,
            })
            .await?;
        rx.recv_async().await.map_err(|_| HubError::Closed)?
    }

    /// The link answers `Quiesced` once this node has delivered every
    /// message its rooms had in Redis when it asked.
    async fn quiesce(&self, _local: &dyn Deliveries) {
        let _ = self
            .link
            .send(Cmd::Quiesce {
                worker: self.worker,
            })
            .await;
    }

    fn quiesce_parts(&self) -> usize {
        1
    }

    fn history_size(&self) -> usize {
        self.history_size
    }

    fn sweep(&self) {}
}
