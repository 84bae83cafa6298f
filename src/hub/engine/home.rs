//! The home-worker engine: every room has a home worker in this process
//! (`hash(room) % workers`) that numbers its messages, keeps its history
//! ([`HomeRooms`]) and knows which workers have subscribers. A worker that
//! is a room's home does its work inline; the others send it requests over
//! the [`Bus`], and the home answers on their delivery inboxes, in order
//! with the room's messages.

use std::cell::{Cell, RefCell};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use super::rooms::HomeRooms;
use super::{Deliveries, Engine, Reply};
use crate::config::Config;
use crate::hub::bus::{HistoryReply, JoinReply, ReplayReply, SubRef};
use crate::hub::{Bus, BusMsg, HubError, Message, RoomInfo, RoomName};
use crate::io::stats::WorkerStats;

/// One worker's part of the home-worker engine.
pub struct HomeEngine {
    worker: usize,
    bus: Arc<Bus>,
    rooms: RefCell<HomeRooms>,
    stats: Arc<WorkerStats>,
    /// Drain barrier: workers that told this home they publish nothing more.
    quiesce_heard: Cell<usize>,
}

impl HomeEngine {
    /// Worker `worker`'s part: the rooms whose home it is.
    pub fn new(
        worker: usize,
        bus: Arc<Bus>,
        cfg: &Config,
        room_count: Arc<AtomicUsize>,
        max_rooms: Arc<AtomicUsize>,
        stats: Arc<WorkerStats>,
    ) -> HomeEngine {
        HomeEngine {
            worker,
            rooms: RefCell::new(HomeRooms::new(
                bus.workers(),
                cfg.hub.history_size,
                cfg.hub.history_ttl.0,
                max_rooms,
                room_count,
            )),
            bus,
            stats,
            quiesce_heard: Cell::new(0),
        }
    }

    fn is_home(&self, room: &str) -> bool {
        self.bus.home_of(room) == self.worker
    }

    fn count_refusal(&self, e: &HubError) {
        if matches!(e, HubError::TooManyRooms) {
            self.stats.rejected_max_rooms.inc();
        }
    }

    /// Numbers and keeps a message of a room whose home this is, and sends
    /// it to every worker with subscribers.
    async fn publish_at_home(
        &self,
        room: RoomName,
        msg: Message,
        group: u64,
        local: &dyn Deliveries,
    ) -> Result<u64, HubError> {
        let (p, targets) = self
            .rooms
            .borrow_mut()
            .publish(&room, msg, group, Instant::now())
            .inspect_err(|e| self.count_refusal(e))?;
        self.stats.messages_published.inc();
        for w in targets {
            if w == self.worker {
                local.deliver(&p);
            } else {
                self.bus.deliver(w, BusMsg::Deliver(p.clone())).await?;
            }
        }
        Ok(p.seq)
    }

    fn join_at_home(
        &self,
        room: RoomName,
        from: usize,
        sub: SubRef,
        since: Option<u64>,
        budget: usize,
    ) -> JoinReply {
        match self
            .rooms
            .borrow_mut()
            .join(&room, from, since, budget, Instant::now())
        {
            Ok(j) => JoinReply {
                room,
                sub,
                head: j.head,
                replay: j.replay,
                more: j.more,
                gap: j.gap,
                refused: false,
            },
            Err(e) => {
                self.count_refusal(&e);
                JoinReply::refused(room, sub)
            }
        }
    }

    fn replay_at_home(
        &self,
        room: &RoomName,
        sub: SubRef,
        after: u64,
        budget: usize,
    ) -> ReplayReply {
        let piece = self
            .rooms
            .borrow_mut()
            .replay(room, after, budget, Instant::now());
        ReplayReply { sub, piece }
    }

    async fn heard_quiesce(&self, local: &dyn Deliveries) {
        self.quiesce_heard.set(self.quiesce_heard.get() + 1);
        if self.quiesce_heard.get() != self.bus.workers() {
            return;
        }
        for w in 0..self.bus.workers() {
            if w == self.worker {
                local.quiesced();
            } else if self.bus.deliver(w, BusMsg::Quiesced).await.is_err() {
                return;
            }
        }
    }

    /// Serves the requests other workers (and the [`crate::hub::Hub`]
    /// handle) send to the rooms whose home this worker is.
    pub async fn serve_requests(&self, rx: flume::Receiver<BusMsg>, local: &dyn Deliveries) {
        while let Ok(msg) = rx.recv_async().await {
            if self.handle_request(msg, local).await.is_err() {
                return;
            }
        }
    }

    /// Serves one request; an error when the bus has closed.
    pub async fn handle_request(
        &self,
        msg: BusMsg,
        local: &dyn Deliveries,
    ) -> Result<(), HubError> {
        match msg {
            BusMsg::Publish {
                room,
                msg,
                group,
                reply,
            } => {
                let r = self.publish_at_home(room, msg, group, local).await;
                if let Some(tx) = reply {
                    let _ = tx.try_send(r);
                }
            }
            BusMsg::Join {
                room,
                from,
                sub,
                since,
                budget,
            } => {
                let reply = self.join_at_home(room, from, sub, since, budget);
                if from == self.worker {
                    local.joined(reply);
                } else {
                    self.bus.deliver(from, BusMsg::Joined(reply)).await?;
                }
            }
            BusMsg::Replay {
                room,
                from,
                sub,
                after,
                budget,
            } => {
                let reply = self.replay_at_home(&room, sub, after, budget);
                if from == self.worker {
                    local.replayed(reply);
                } else {
                    self.bus.deliver(from, BusMsg::Replayed(reply)).await?;
                }
            }
            BusMsg::Leave { room, from } => self.rooms.borrow_mut().leave(&room, from),
            BusMsg::Quiesce { .. } => self.heard_quiesce(local).await,
            BusMsg::Info { room, reply } => {
                let _ = reply.try_send(self.rooms.borrow_mut().info(&room, Instant::now()));
            }
            BusMsg::History { room, since, reply } => {
                let _ = reply.try_send(self.rooms.borrow_mut().history(
                    &room,
                    since,
                    Instant::now(),
                ));
            }
            _ => log::error!(
                "worker {}: a delivery arrived on the request inbox",
                self.worker
            ),
        }
        Ok(())
    }
}

impl Engine for HomeEngine {
    async fn publish(
        &self,
        room: RoomName,
        msg: Message,
        local: &dyn Deliveries,
    ) -> Result<u64, HubError> {
        if self.is_home(&room) {
            return self.publish_at_home(room, msg, 0, local).await;
        }
        self.bus.publish_and_wait(room, msg).await
    }

    async fn join(
        &self,
        room: RoomName,
        sub: SubRef,
        since: Option<u64>,
        budget: usize,
    ) -> Result<Reply<JoinReply>, HubError> {
        if self.is_home(&room) {
            return Ok(Reply::Now(self.join_at_home(
                room,
                self.worker,
                sub,
                since,
                budget,
            )));
        }
        self.bus
            .request(BusMsg::Join {
                room,
                from: self.worker,
                sub,
                since,
                budget,
            })
            .await
            .map(|()| Reply::Later)
    }

    fn join_from_now(&self, room: RoomName, sub: SubRef) -> Reply<JoinReply> {
        if self.is_home(&room) {
            return Reply::Now(self.join_at_home(room, self.worker, sub, None, 0));
        }
        // The home is elsewhere: ask from a task so the caller never waits.
        let (bus, from) = (self.bus.clone(), self.worker);
        monoio::spawn(async move {
            let req = BusMsg::Join {
                room,
                from,
                sub,
                since: None,
                budget: 0,
            };
            let _ = bus.request(req).await;
        });
        Reply::Later
    }

    fn replay(&self, room: RoomName, sub: SubRef, after: u64, budget: usize) -> Reply<ReplayReply> {
        if self.is_home(&room) {
            return Reply::Now(self.replay_at_home(&room, sub, after, budget));
        }
        let ask = || BusMsg::Replay {
            room: room.clone(),
            from: self.worker,
            sub,
            after,
            budget,
        };
        if let Err(HubError::Busy) = self.bus.try_request(ask()) {
            // The home's inbox is full: wait for space in a task.
            let (bus, ask) = (self.bus.clone(), ask());
            monoio::spawn(async move {
                let _ = bus.request(ask).await;
            });
        }
        Reply::Later
    }

    fn leave(&self, room: RoomName) {
        if self.is_home(&room) {
            self.rooms.borrow_mut().leave(&room, self.worker);
        } else {
            let bus = self.bus.clone();
            let from = self.worker;
            monoio::spawn(async move {
                let _ = bus.request(BusMsg::Leave { room, from }).await;
            });
        }
    }

    async fn info(&self, room: RoomName) -> Result<RoomInfo, HubError> {
        if self.is_home(&room) {
            return Ok(self.rooms.borrow_mut().info(&room, Instant::now()));
        }
        self.bus.room_info(room).await
    }

    async fn history(&self, room: RoomName, since: u64) -> Result<HistoryReply, HubError> {
        if self.is_home(&room) {
            return Ok(self
                .rooms
                .borrow_mut()
                .history(&room, since, Instant::now()));
        }
        let (tx, rx) = flume::bounded(1);
        self.bus
            .request(BusMsg::History {
                room,
                since,
                reply: tx,
            })
            .await?;
        rx.recv_async().await.map_err(|_| HubError::Closed)
    }

    /// Tells every home that this worker publishes nothing more; each home
    /// answers `Quiesced` on every worker's delivery inbox once it has heard
    /// this from all of them, behind every delivery it sent before.
    async fn quiesce(&self, local: &dyn Deliveries) {
        for home in 0..self.bus.workers() {
            if home == self.worker {
                self.heard_quiesce(local).await;
            } else if self.bus.quiesce(home, self.worker).await.is_err() {
                return;
            }
        }
    }

    fn quiesce_parts(&self) -> usize {
        self.bus.workers()
    }

    fn history_size(&self) -> usize {
        self.rooms.borrow().history_size()
    }

    fn sweep(&self) {
        let mut rooms = self.rooms.borrow_mut();
        rooms.sweep(Instant::now());
        self.stats
            .history_messages
            .set(rooms.history_messages() as u64);
        self.stats.home_rooms.set(rooms.len() as u64);
    }
}
