//! The engine: where each room's order, ids and history live.
//!
//! A worker's hub ([`super::local::HubLocal`]) keeps its own connections'
//! membership and delivers to them; everything that must be the same for
//! every subscriber of a room (the order of its messages, their ids, the
//! history a resuming client replays from) is the engine's. The hub talks
//! to it through [`Engine`] alone, and the engine answers through the
//! hub's [`Deliveries`], so another engine (one shared by several nodes)
//! fits under the hub without the connection drivers changing.
//!
//! Two engines fit under it:
//! - [`HomeEngine`] (the default): every room has a home worker in this
//!   process (`hash(room) % workers`) that numbers its messages and keeps
//!   its history ([`rooms`]); the workers reach it over the cross-core
//!   [`Bus`](super::Bus).
//! - [`ClusterEngine`] (`[cluster] engine = "redis"`): Redis numbers and
//!   keeps every room's messages for every node that shares it
//!   ([`cluster`]).

pub mod cluster;
pub mod home;
pub mod rooms;

use std::sync::Arc;

use super::bus::{HistoryReply, JoinReply, ReplayReply, SubRef};
use super::{HubError, Message, Published, RoomInfo, RoomName};

pub use cluster::ClusterEngine;
pub use home::HomeEngine;

/// The engine a worker runs: this process's home workers (the default), or
/// Redis shared by several nodes (`[cluster] engine = "redis"`), which keeps
/// the rooms that describe this node alone ([`node_local`]) in the process.
pub enum WorkerEngine {
    Home(HomeEngine),
    Cluster {
        shared: ClusterEngine,
        local: HomeEngine,
    },
}

/// Rooms that stay in the process whatever the engine: the dashboard's feed
/// (the figures of the node the viewer is connected to).
pub fn node_local(room: &str) -> bool {
    room == crate::hub::DASHBOARD_ROOM
}

/// Runs `$body` with `$e` bound to the engine that keeps `$room`.
macro_rules! by_room {
    ($self:ident, $room:expr, $e:ident => $body:expr) => {
        match $self {
            WorkerEngine::Home($e) => $body,
            WorkerEngine::Cluster { local: $e, .. } if node_local(&$room) => $body,
            WorkerEngine::Cluster { shared: $e, .. } => $body,
        }
    };
}

impl WorkerEngine {
    /// Worker `worker`'s part of the engine: Redis through `cluster` when
    /// given, else this process's home workers.
    pub fn new(
        worker: usize,
        bus: Arc<super::Bus>,
        cfg: &crate::config::Config,
        room_count: Arc<std::sync::atomic::AtomicUsize>,
        max_rooms: Arc<std::sync::atomic::AtomicUsize>,
        stats: Arc<crate::io::stats::WorkerStats>,
        cluster: Option<Arc<cluster::Link>>,
    ) -> WorkerEngine {
        let home = HomeEngine::new(worker, bus, cfg, room_count, max_rooms, stats.clone());
        match cluster {
            Some(link) => WorkerEngine::Cluster {
                shared: ClusterEngine::new(worker, link, cfg, stats),
                local: home,
            },
            None => WorkerEngine::Home(home),
        }
    }

    /// Serves the requests that the bus brings this worker.
    pub async fn serve_requests(
        &self,
        rx: flume::Receiver<super::BusMsg>,
        deliveries: &dyn Deliveries,
    ) {
        use super::BusMsg;
        let (shared, local) = match self {
            WorkerEngine::Home(h) => return h.serve_requests(rx, deliveries).await,
            WorkerEngine::Cluster { shared, local } => (shared, local),
        };
        while let Ok(msg) = rx.recv_async().await {
            let in_process = match &msg {
                // the drain barrier of the rooms kept in the process
                BusMsg::Quiesce { .. } => true,
                m => m.room().is_some_and(|r| node_local(r)),
            };
            if in_process {
                if local.handle_request(msg, deliveries).await.is_err() {
                    return;
                }
            } else {
                shared.handle_request(msg).await;
            }
        }
    }
}

impl Engine for WorkerEngine {
    async fn publish(
        &self,
        room: RoomName,
        msg: Message,
        local: &dyn Deliveries,
    ) -> Result<u64, HubError> {
        by_room!(self, room, e => e.publish(room, msg, local).await)
    }

    async fn join(
        &self,
        room: RoomName,
        sub: SubRef,
        since: Option<u64>,
        budget: usize,
    ) -> Result<Reply<JoinReply>, HubError> {
        by_room!(self, room, e => e.join(room, sub, since, budget).await)
    }

    fn join_from_now(&self, room: RoomName, sub: SubRef) -> Reply<JoinReply> {
        by_room!(self, room, e => e.join_from_now(room, sub))
    }

    fn replay(&self, room: RoomName, sub: SubRef, after: u64, budget: usize) -> Reply<ReplayReply> {
        by_room!(self, room, e => e.replay(room, sub, after, budget))
    }

    fn leave(&self, room: RoomName) {
        by_room!(self, room, e => e.leave(room))
    }

    async fn info(&self, room: RoomName) -> Result<RoomInfo, HubError> {
        by_room!(self, room, e => e.info(room).await)
    }

    async fn history(&self, room: RoomName, since: u64) -> Result<HistoryReply, HubError> {
        by_room!(self, room, e => e.history(room, since).await)
    }

    async fn quiesce(&self, deliveries: &dyn Deliveries) {
        match self {
            WorkerEngine::Home(h) => h.quiesce(deliveries).await,
            WorkerEngine::Cluster { shared, local } => {
                local.quiesce(deliveries).await;
                shared.quiesce(deliveries).await;
            }
        }
    }

    fn quiesce_parts(&self) -> usize {
        match self {
            WorkerEngine::Home(h) => h.quiesce_parts(),
            WorkerEngine::Cluster { shared, local } => {
                shared.quiesce_parts() + local.quiesce_parts()
            }
        }
    }

    fn history_size(&self) -> usize {
        match self {
            WorkerEngine::Home(h) => h.history_size(),
            WorkerEngine::Cluster { shared, .. } => shared.history_size(),
        }
    }

    fn sweep(&self) {
        match self {
            WorkerEngine::Home(h) => h.sweep(),
            WorkerEngine::Cluster { local, .. } => local.sweep(),
        }
    }
}

/// An engine's answer to a join or a replay request: here now, or later
/// through the worker's [`Deliveries`].
pub enum Reply<T> {
    Now(T),
    Later,
}

/// What an engine hands a worker's hub: the room's messages, in order, and
/// the answers it owes.
pub trait Deliveries {
    /// A numbered message for this worker's subscribers of its room.
    fn deliver(&self, p: &Arc<Published>);
    /// The answer to a join that came back as [`Reply::Later`].
    fn joined(&self, r: JoinReply);
    /// The answer to a replay request that came back as [`Reply::Later`].
    fn replayed(&self, r: ReplayReply);
    /// One part of the drain barrier (see [`Engine::quiesce`]) has completed.
    fn quiesced(&self);
}

/// Where rooms are ordered and kept (see the module documentation). One
/// instance per worker; `local` is that worker's hub.
#[allow(async_fn_in_trait)] // one worker's engine: its futures never leave the thread
pub trait Engine {
    /// Numbers `msg` in `room`, keeps it in the room's history and sends it
    /// to every worker with subscribers of the room (this one through
    /// `local`); returns its id.
    async fn publish(
        &self,
        room: RoomName,
        msg: Message,
        local: &dyn Deliveries,
    ) -> Result<u64, HubError>;

    /// A subscriber of this worker joins `room`, resuming after `since`; the
    /// answer's replay is at most `budget` bytes. From the answer on, the
    /// room's messages reach this worker.
    async fn join(
        &self,
        room: RoomName,
        sub: SubRef,
        since: Option<u64>,
        budget: usize,
    ) -> Result<Reply<JoinReply>, HubError>;

    /// Joins like [`Engine::join`], from the room's head (no replay),
    /// without waiting: the library's join for a connection.
    fn join_from_now(&self, room: RoomName, sub: SubRef) -> Reply<JoinReply>;

    /// The next piece (at most `budget` bytes) of a replay of `room` that has reached `after`.
    fn replay(&self, room: RoomName, sub: SubRef, after: u64, budget: usize) -> Reply<ReplayReply>;

    /// One subscriber of this worker left `room`.
    fn leave(&self, room: RoomName);

    /// How a room is.
    async fn info(&self, room: RoomName) -> Result<RoomInfo, HubError>;

    /// A room's history after `since`.
    async fn history(&self, room: RoomName, since: u64) -> Result<HistoryReply, HubError>;

    /// The drain barrier: this worker publishes nothing more. Once every
    /// message published before has been delivered here, `local` hears
    /// [`Deliveries::quiesced`] (once per part of the engine: see
    /// [`Engine::quiesce_parts`]).
    async fn quiesce(&self, local: &dyn Deliveries);

    /// How many [`Deliveries::quiesced`] calls complete the drain barrier.
    fn quiesce_parts(&self) -> usize;

    /// Messages a room's history holds at most (`hub.history_size`).
    fn history_size(&self) -> usize;

    /// Expires history and forgets empty rooms (every slice of `hub.history_ttl`).
    fn sweep(&self);
}
