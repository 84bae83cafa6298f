//! The cross-core bus: every worker has two bounded inboxes.
//!
//! - **requests** (publish, join, leave, queries) go to a room's home worker;
//!   a sender waits when the inbox is full.
//! - **deliveries** (numbered messages, join replies, connection room
//!   changes) go from a home to the workers with subscribers. The task that
//!   handles deliveries never waits on anything, so a home that waits for
//!   delivery space always makes progress: the two inboxes cannot deadlock.
//!
//! Wake-ups cross cores through the receiving runtime's waker (monoio's
//! `sync` feature); a woken inbox task drains its inbox in batches, so a
//! burst of messages costs one wake.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::{ConnId, Gap, HubError, Message, Published, RoomInfo, RoomName};

/// A message on the bus.
pub enum BusMsg {
    // ---- requests, to a room's home ----
    Publish {
        room: RoomName,
        msg: Message,
        group: u64,
        reply: Option<flume::Sender<Result<u64, HubError>>>,
    },
    /// A subscriber on worker `from` joins `room`, resuming after `since`
    /// (the first piece of the replay at most `budget` bytes).
    Join {
        room: RoomName,
        from: usize,
        sub: SubRef,
        since: Option<u64>,
        budget: usize,
    },
    /// The next piece (`budget` bytes) of a subscriber's replay of `room`,
    /// which has reached `after`.
    Replay {
        room: RoomName,
        from: usize,
        sub: SubRef,
        after: u64,
        budget: usize,
    },
    /// One subscriber on worker `from` left `room`.
    Leave {
        room: RoomName,
        from: usize,
    },
    Info {
        room: RoomName,
        reply: flume::Sender<RoomInfo>,
    },
    History {
        room: RoomName,
        since: u64,
        reply: flume::Sender<HistoryReply>,
    },
    /// Worker `from` is draining and will publish nothing more (see [`Bus::quiesce`]).
    Quiesce {
        from: usize,
    },
    // ---- deliveries, from a home to subscriber workers ----
    Deliver(Arc<Published>),
    /// Several numbered messages, in order (a burst from the cluster's Redis).
    DeliverMany(Vec<Arc<Published>>),
    /// A home has heard `Quiesce` from every worker: everything it numbered
    /// before has been sent ahead of this.
    Quiesced,
    Joined(JoinReply),
    Replayed(ReplayReply),
    /// Part of a room is gone for its live subscribers too (the cluster's
    /// Redis lost or trimmed it while this node was not reading): each
    /// gets the gap notice, then the room's next messages.
    RoomGap(Gap),
    /// The library asks a connection to join or leave a room.
    ConnRoom {
        conn: ConnId,
        room: RoomName,
        join: bool,
    },
}

impl BusMsg {
    /// The room of a request about one room.
    pub fn room(&self) -> Option<&RoomName> {
        match self {
            BusMsg::Publish { room, .. }
            | BusMsg::Join { room, .. }
            | BusMsg::Replay { room, .. }
            | BusMsg::Leave { room, .. }
            | BusMsg::Info { room, .. }
            | BusMsg::History { room, .. } => Some(room),
            _ => None,
        }
    }
}

/// Which subscriber (on the joining worker) a join is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRef {
    pub key: usize,
    pub generation: u32,
    /// The subscriber's index for this room in its own room list.
    pub idx: usize,
}

/// A home's answer to a join: where the room is, and what the subscriber missed.
pub struct JoinReply {
    pub room: RoomName,
    pub sub: SubRef,
    /// The room's last sequence id (the joiner's position if it asked for no replay).
    pub head: u64,
    /// The first piece of what it missed.
    pub replay: Vec<Arc<Published>>,
    /// The history holds more after `replay`.
    pub more: bool,
    pub gap: Option<Gap>,
    /// The join was refused (`hub.max_rooms`).
    pub refused: bool,
}

impl JoinReply {
    /// A join answered without a replay: live from `head`.
    pub fn at_head(room: RoomName, sub: SubRef, head: u64) -> JoinReply {
        JoinReply {
            room,
            sub,
            head,
            replay: Vec::new(),
            more: false,
            gap: None,
            refused: false,
        }
    }

    /// A join refused (`hub.max_rooms`).
    pub fn refused(room: RoomName, sub: SubRef) -> JoinReply {
        JoinReply {
            refused: true,
            ..JoinReply::at_head(room, sub, 0)
        }
    }
}

/// A home's answer to [`BusMsg::Replay`].
pub struct ReplayReply {
    pub sub: SubRef,
    /// The next piece and whether the history holds more after it; `None`:
    /// the history no longer reaches back to where the replay was.
    pub piece: Option<(Vec<Arc<Published>>, bool)>,
}

/// A home's answer to a history query.
pub struct HistoryReply {
    pub messages: Vec<Arc<Published>>,
    pub gap: Option<Gap>,
    pub exists: bool,
}

/// The inboxes of every worker.
pub struct Bus {
    requests: Vec<flume::Sender<BusMsg>>,
    deliveries: Vec<flume::Sender<BusMsg>>,
}

/// One worker's receiving ends.
pub struct Inbox {
    pub requests: flume::Receiver<BusMsg>,
    pub deliveries: flume::Receiver<BusMsg>,
}

impl Bus {
    /// A bus for `workers` workers with inboxes of `capacity` messages each.
    pub fn new(workers: usize, capacity: usize) -> (Arc<Bus>, Vec<Inbox>) {
        let mut requests = Vec::with_capacity(workers);
        let mut deliveries = Vec::with_capacity(workers);
        let mut inboxes = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (rtx, rrx) = flume::bounded(capacity);
            let (dtx, drx) = flume::bounded(capacity);
            requests.push(rtx);
            deliveries.push(dtx);
            inboxes.push(Inbox {
                requests: rrx,
                deliveries: drx,
            });
        }
        (
            Arc::new(Bus {
                requests,
                deliveries,
            }),
            inboxes,
        )
    }

    pub fn workers(&self) -> usize {
        self.requests.len()
    }

    /// The home worker of a room (stable for the life of the process).
    pub fn home_of(&self, room: &str) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        room.hash(&mut h);
        (h.finish() % self.requests.len() as u64) as usize
    }

    fn home_of_msg(&self, msg: &BusMsg) -> usize {
        match msg {
            BusMsg::Quiesce { .. } => unreachable!("Quiesce goes to every home"),
            _ => self.home_of(msg.room().expect("not a request")),
        }
    }

    /// Sends a request to its room's home, waiting for space.
    pub async fn request(&self, msg: BusMsg) -> Result<(), HubError> {
        let home = self.home_of_msg(&msg);
        self.requests[home]
            .send_async(msg)
            .await
            .map_err(|_| HubError::Closed)
    }

    /// Tells home `home` that worker `from` publishes nothing more.
    ///
    /// The drain barrier: once a home has this from every worker, it sends
    /// `Quiesced` to every worker behind all the deliveries it sent before
    /// (each inbox is first in, first out). A worker that has `Quiesced` from
    /// every home has received every message published before the drain.
    pub async fn quiesce(&self, home: usize, from: usize) -> Result<(), HubError> {
        self.requests[home]
            .send_async(BusMsg::Quiesce { from })
            .await
            .map_err(|_| HubError::Closed)
    }

    /// Publishes through the room's home and waits for the message's id.
    pub async fn publish_and_wait(&self, room: RoomName, msg: Message) -> Result<u64, HubError> {
        let (tx, rx) = flume::bounded(1);
        let req = BusMsg::Publish {
            room,
            msg,
            group: 0,
            reply: Some(tx),
        };
        self.request(req).await?;
        rx.recv_async().await.map_err(|_| HubError::Closed)?
    }

    /// Asks a room's home how the room is.
    pub async fn room_info(&self, room: RoomName) -> Result<RoomInfo, HubError> {
        let (tx, rx) = flume::bounded(1);
        self.request(BusMsg::Info { room, reply: tx }).await?;
        rx.recv_async().await.map_err(|_| HubError::Closed)
    }

    /// Sends a request without waiting.
    pub fn try_request(&self, msg: BusMsg) -> Result<(), HubError> {
        let home = self.home_of_msg(&msg);
        self.requests[home].try_send(msg).map_err(|e| match e {
            flume::TrySendError::Full(_) => HubError::Busy,
            flume::TrySendError::Disconnected(_) => HubError::Closed,
        })
    }

    /// Sends a request from a thread outside the workers (blocks for space).
    pub fn request_blocking(&self, msg: BusMsg) -> Result<(), HubError> {
        let home = self.home_of_msg(&msg);
        self.requests[home].send(msg).map_err(|_| HubError::Closed)
    }

    /// Sends a delivery to a worker, waiting for space.
    pub async fn deliver(&self, worker: usize, msg: BusMsg) -> Result<(), HubError> {
        self.deliveries[worker]
            .send_async(msg)
            .await
            .map_err(|_| HubError::Closed)
    }

    /// Sends a delivery without waiting.
    pub fn try_deliver(&self, worker: usize, msg: BusMsg) -> Result<(), HubError> {
        if worker >= self.deliveries.len() {
            return Err(HubError::Closed);
        }
        self.deliveries[worker].try_send(msg).map_err(|e| match e {
            flume::TrySendError::Full(_) => HubError::Busy,
            flume::TrySendError::Disconnected(_) => HubError::Closed,
        })
    }
}
