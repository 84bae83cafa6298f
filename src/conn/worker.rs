//! What a connection sees of its worker: the [`Worker`] (connection table,
//! parking, the waker of parked connections, drain state, buffer pool, the
//! worker's part of the hub) and the [`ConnGuard`] each connection holds;
//! plus [`Shared`], the state every worker reads. The worker threads
//! themselves (runtime, accept loop) are started by [`crate::server`].

use std::cell::{Cell, RefCell};
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use arc_swap::ArcSwap;
use slab::Slab;

use super::access::AccessLog;
use super::limits::{Limits, PerIp};
use super::sse::OnConnect;
use super::App;
use crate::auth::Auth;
use crate::config::Config;
use crate::hub::engine::WorkerEngine;
use crate::hub::local::HubLocal;
use crate::hub::{Bus, PublishRules};
use crate::io::bufpool::BufPool;
use crate::io::clock::clock_ms;
use crate::io::ready::Epoll;
use crate::io::signal::{LocalEvent, Signal};
use crate::io::stats::WorkerStats;
use crate::io::transport::Transport;
use crate::io::Driver;

/// State every worker can read: the configuration, the global connection count, the counters.
pub struct Shared {
    pub cfg: Arc<Config>,
    /// Connections open in the whole process.
    pub conns: AtomicUsize,
    /// The limits a SIGHUP may change.
    pub limits: Limits,
    /// Connections and handshake buckets per client IP (used only when those limits are on).
    pub per_ip: PerIp,
    /// `static.dir`, canonicalised at start-up.
    pub static_root: Option<PathBuf>,
    /// One entry per worker.
    pub stats: Vec<Arc<WorkerStats>>,
    /// The cross-core bus of the rooms.
    pub bus: Arc<Bus>,
    /// Rooms in the whole process.
    pub room_count: Arc<AtomicUsize>,
    /// The embedding application's first events for every new SSE stream.
    pub sse_on_connect: Option<Arc<OnConnect>>,
    /// The io driver every worker runs.
    pub driver: Driver,
    /// The access-log writer's channel (`log.access`), if on.
    pub access_tx: Option<flume::Sender<Vec<u8>>>,
    /// Who may subscribe and publish; swapped whole on reload (a request
    /// reads it once, without a lock). Shared with the access logs, which
    /// redact the token query parameter it names.
    pub auth: Arc<ArcSwap<Auth>>,
    /// What every publish is checked against.
    pub publish_rules: PublishRules,
    /// What each request is answered with (the application's endpoint table).
    pub app: Box<dyn App>,
    /// The TLS listener's certificates and configuration (`[tls]`), if on.
    pub tls: Option<Arc<crate::io::tls::certs::TlsContext>>,
    /// The TLS listener's port (for the plain listener's redirect), 0 if none.
    pub tls_port: u16,
    /// The link to the cluster's Redis (`[cluster] engine = "redis"`), if on.
    pub cluster: Option<Arc<crate::hub::engine::cluster::Link>>,
}

impl Shared {
    /// Whether the live demos run: `demo.enabled` on the built-in pages (no `static.dir`).
    pub fn demos_on(&self) -> bool {
        self.cfg.demo.enabled && self.static_root.is_none()
    }
}

/// One connection in the worker's table.
struct Entry {
    signal: Rc<Signal>,
    /// A parked connection: no task, only its state, resumed (a task spawned
    /// again) by the first wake-up of its signal. See [`Worker::park`].
    parked: Option<Box<dyn FnOnce()>>,
}

/// A worker's own state, shared by its tasks (never leaves its thread).
pub struct Worker {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub stats: Arc<WorkerStats>,
    pub pool: BufPool,
    /// This worker's part of the rooms.
    pub hub: Rc<HubLocal>,
    /// Every open connection: its signal, so the worker can reach them all
    /// (drain, deadlines, readiness), and the state of a parked one.
    conns: RefCell<Slab<Entry>>,
    draining: Cell<bool>,
    /// Streams close (after the drain barrier: see [`Worker::drain`]).
    closing_streams: Cell<bool>,
    /// Set when draining starts.
    pub drain: LocalEvent,
    /// Notified whenever a connection closes.
    closed: LocalEvent,
    /// This worker's access log (`log.access`), if on.
    pub access: Option<AccessLog>,
    /// Read readiness of every connection (see [`crate::io::ready`]).
    epoll: Epoll,
}

impl Worker {
    /// A worker of the current runtime (its epoll instance is registered there).
    pub fn new(id: usize, shared: Arc<Shared>) -> io::Result<Rc<Worker>> {
        let cfg = &shared.cfg;
        // at most 64 spare buffers per worker (4 MiB at the default size)
        let pool = BufPool::new(cfg.http.read_buffer_size.get(), 64);
        let stats = shared.stats[id].clone();
        let access = shared
            .access_tx
            .clone()
            .map(|tx| AccessLog::new(tx, shared.cfg.log.format, shared.auth.clone()));
        let engine = WorkerEngine::new(
            id,
            shared.bus.clone(),
            cfg,
            shared.room_count.clone(),
            shared.limits.max_rooms.clone(),
            stats.clone(),
            shared.cluster.clone(),
        );
        let hub = Rc::new(HubLocal::new(
            id,
            cfg,
            shared.publish_rules,
            stats.clone(),
            engine,
        ));
        Ok(Rc::new(Worker {
            id,
            hub,
            stats,
            shared,
            pool,
            conns: RefCell::new(Slab::new()),
            draining: Cell::new(false),
            closing_streams: Cell::new(false),
            drain: LocalEvent::new(),
            closed: LocalEvent::new(),
            access,
            epoll: Epoll::new()?,
        }))
    }

    /// Parks connection `key`: its task ends and `resume` (which holds its
    /// state) runs on the first wake-up of its signal (input, a kick, a
    /// deadline), spawning the task again. An idle connection then costs
    /// its state alone, not a task and its future.
    pub fn park(&self, key: u32, resume: Box<dyn FnOnce()>) {
        let mut conns = self.conns.borrow_mut();
        let Some(e) = conns.get_mut(key as usize) else {
            return;
        };
        e.parked = Some(resume);
        e.signal.resume_with(unpark_waker(key));
        self.stats.parked.inc();
    }

    /// Works through [`LATER`] after the other ready tasks have run (one
    /// task per worker): connections to read again are marked readable,
    /// parked connections whose signals woke are resumed.
    pub async fn run_later(self: Rc<Self>) {
        let mut batch = Later::default();
        loop {
            std::future::poll_fn(|cx| {
                LATER.with(|l| {
                    let mut l = l.borrow_mut();
                    if l.read.is_empty() && l.unpark.is_empty() {
                        l.task = Some(cx.waker().clone());
                        Poll::Pending
                    } else {
                        std::mem::swap(&mut batch.read, &mut l.read);
                        std::mem::swap(&mut batch.unpark, &mut l.unpark);
                        Poll::Ready(())
                    }
                })
            })
            .await;
            for key in batch.read.drain(..) {
                if let Some(e) = self.conns.borrow().get(key as usize) {
                    e.signal.mark_readable(false);
                }
            }
            for key in batch.unpark.drain(..) {
                // (taken out before it runs: resuming touches the table)
                let resume = self
                    .conns
                    .borrow_mut()
                    .get_mut(key as usize)
                    .and_then(|e| e.parked.take());
                if let Some(resume) = resume {
                    self.stats.parked.sub(1);
                    resume();
                }
            }
        }
    }

    /// Drops what is still parked (the worker ends): their sockets close.
    pub fn drop_parked(&self) {
        let parked: Vec<Box<dyn FnOnce()>> = self
            .conns
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, e)| e.parked.take())
            .collect();
        self.stats.parked.sub(parked.len() as u64);
        drop(parked);
    }

    /// Marks connections readable as their epoll events arrive (one task per worker).
    pub async fn watch_readiness(self: Rc<Self>) {
        let mut events = Vec::new();
        loop {
            if let Err(e) = self.epoll.readable().await {
                log::error!("worker {}: waiting on epoll failed: {e}", self.id);
                continue;
            }
            let conns = self.conns.borrow();
            let mark = |key: u64, ended: bool| {
                if let Some(e) = conns.get(key as usize) {
                    e.signal.mark_readable(ended);
                }
            };
            if let Err(e) = self.epoll.take_events(&mut events, mark) {
                log::error!("worker {}: epoll_wait failed: {e}", self.id);
            }
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Connections this worker holds right now.
    pub fn live(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Streams (SSE, WebSocket) end now: everything published before the drain has arrived.
    pub fn closing_streams(&self) -> bool {
        self.closing_streams.get()
    }

    /// Starts the drain: the accept loop stops and every connection is kicked
    /// so that idle ones close and busy ones close after their request.
    /// Streams stay open until [`Worker::close_streams`].
    pub fn begin_drain(&self) {
        if self.draining.replace(true) {
            return;
        }
        self.drain.set();
        self.kick_all();
    }

    /// Ends every stream: each writes what it has queued, then its goodbye
    /// (SSE `retry:`, WebSocket close 1001).
    pub fn close_streams(&self) {
        self.closing_streams.set(true);
        self.kick_all();
    }

    fn kick_all(&self) {
        for s in self.signals() {
            s.kick();
        }
    }

    /// Every open connection's signal (a copy: kicking one may touch the table).
    fn signals(&self) -> Vec<Rc<Signal>> {
        self.conns
            .borrow()
            .iter()
            .map(|(_, e)| e.signal.clone())
            .collect()
    }

    /// Plain HTTP connections open right now (not streams).
    fn http_live(&self) -> usize {
        let streams = self.stats.sse_open.get() + self.stats.ws_open.get();
        self.live().saturating_sub(streams as usize)
    }

    /// The drain, in order: stop accepting and answer what is in flight;
    /// once no plain HTTP connection is left (no publish can be in flight
    /// here), tell every room home; once every home has answered (every
    /// message published before has been delivered here), close the streams.
    /// Each wait is bounded by half of `shutdown_timeout`.
    pub async fn drain(self: &Rc<Self>) {
        let grace = self.shared.cfg.server.shutdown_timeout.0 / 2;
        self.begin_drain();
        // (polled as well: a connection that became a stream does not notify `closed`)
        let in_flight = async {
            while self.http_live() > 0 {
                monoio::select! {
                    _ = self.closed.wait_until(|| self.http_live() == 0) => {}
                    _ = monoio::time::sleep(std::time::Duration::from_millis(10)) => {}
                }
            }
        };
        monoio::select! {
            _ = in_flight => {}
            _ = monoio::time::sleep(grace) => {
                log::warn!("worker {}: requests still in flight after {grace:?}; closing streams anyway", self.id);
            }
        }
        monoio::select! {
            _ = async {
                self.hub.quiesce().await;
                self.hub.quiesced.wait().await;
            } => {}
            _ = monoio::time::sleep(grace) => {
                log::warn!("worker {}: the drain barrier did not complete in {grace:?}", self.id);
            }
        }
        self.close_streams();
        self.closed.wait_until(|| self.live() == 0).await;
    }

    /// Enforces connection deadlines: every `tick`, kicks the connections whose deadline passed.
    pub async fn sweep_deadlines(self: Rc<Self>, tick: std::time::Duration) {
        let mut collected = Instant::now();
        loop {
            monoio::time::sleep(tick).await;
            let now = Instant::now();
            if now.duration_since(collected) >= std::time::Duration::from_secs(1) {
                crate::io::release_free_memory();
                collected = now;
            }
            let now_ms = clock_ms();
            for s in self.signals() {
                s.expire_if_due(now_ms);
            }
        }
    }

    /// Registers a new connection on `io` from `peer`; the returned
    /// guard unregisters it when dropped (and, if `ip_counted`, forgets it in
    /// the per-IP table).
    pub fn register(
        self: &Rc<Self>,
        io: &Transport,
        peer: IpAddr,
        ip_counted: bool,
    ) -> io::Result<ConnGuard> {
        let signal = Rc::new(Signal::default());
        let key = {
            let mut conns = self.conns.borrow_mut();
            let entry = conns.vacant_entry();
            let key = entry.key();
            self.epoll.add(io.readiness_fd(), key as u64)?;
            entry.insert(Entry {
                signal: signal.clone(),
                parked: None,
            });
            key
        };
        self.stats.open.inc();
        self.stats.accepted.inc();
        Ok(ConnGuard {
            worker: self.clone(),
            key: key as u32 | if ip_counted { IP_COUNTED } else { 0 },
            signal,
            peer: match peer {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            },
            opened_ms: clock_ms(),
            sent: Cell::new(0),
        })
    }
}

/// Holds a connection's place in the worker and the global count.
pub struct ConnGuard {
    pub worker: Rc<Worker>,
    /// The worker's slab key, and [`IP_COUNTED`].
    key: u32,
    pub signal: Rc<Signal>,
    /// The client's address (IPv4 as mapped IPv6: the guard is kept per connection, so compact).
    peer: std::net::Ipv6Addr,
    /// When it was accepted, in [`clock_ms`] (compact: this is kept per connection).
    opened_ms: u32,
    /// Bytes a stream has written (for its access-log line).
    sent: Cell<u64>,
}

/// Work for [`Worker::run_later`], for this thread's worker.
#[derive(Default)]
struct Later {
    /// Connections that stopped reading with input left (a full buffer).
    read: Vec<u32>,
    /// Parked connections whose signals woke.
    unpark: Vec<u32>,
    task: Option<std::task::Waker>,
}

thread_local! {
    static LATER: RefCell<Later> = RefCell::new(Later::default());
}

/// Queues work for [`Worker::run_later`] and wakes it.
fn later(add: impl FnOnce(&mut Later)) {
    LATER.with(|l| {
        let mut l = l.borrow_mut();
        add(&mut l);
        if let Some(t) = l.task.take() {
            t.wake();
        }
    });
}

/// The waker a parked connection's signal holds: waking it queues `key`
/// for [`Worker::run_later`] (no allocation: the key is the data).
fn unpark_waker(key: u32) -> std::task::Waker {
    use std::task::{RawWaker, RawWakerVTable, Waker};
    fn clone(data: *const ()) -> RawWaker {
        RawWaker::new(data, &VTABLE)
    }
    fn wake(data: *const ()) {
        later(|l| l.unpark.push(data as usize as u32));
    }
    fn drop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);
    // SAFETY: the vtable's functions only read the key from the data
    // pointer, which is never dereferenced; the signal holding this waker
    // never leaves its worker's thread (it is in an `Rc`).
    unsafe { Waker::from_raw(RawWaker::new(key as usize as *const (), &VTABLE)) }
}

/// A guard's key flag: the connection is counted in the per-IP table.
const IP_COUNTED: u32 = 1 << 31;

impl ConnGuard {
    /// The client's address.
    pub fn peer(&self) -> IpAddr {
        self.peer.to_canonical()
    }

    /// Counts `n` bytes a stream wrote.
    #[inline]
    pub fn wrote(&self, n: usize) {
        self.worker.stats.bytes_out.add(n as u64);
        self.sent.set(self.sent.get() + n as u64);
    }

    /// After a read of `n` bytes where up to `want` fitted: a short read
    /// drained the socket (the next epoll event says when more arrives); a
    /// full one may have left input, read again once the worker's other
    /// ready tasks have had their turn. So is one whose transport saw the
    /// end of the input behind the bytes it returned (a TLS close_notify),
    /// which no epoll event will announce.
    pub fn read_done(&self, n: usize, want: usize, ended: bool) {
        self.signal.drained();
        if n >= want || ended {
            later(|l| l.read.push(self.key()));
        }
    }

    /// This connection's key in its worker's table (see [`Worker::park`]).
    pub fn key(&self) -> u32 {
        self.key & !IP_COUNTED
    }

    /// The stream's close line in the access log (`kind` "sse" or "ws").
    pub fn log_stream_close(&self, kind: &str, end: &'static str) {
        if let Some(log) = &self.worker.access {
            log.stream_close(
                &self.worker.stats,
                kind,
                self.peer(),
                std::time::Duration::from_millis(u64::from(
                    clock_ms().wrapping_sub(self.opened_ms),
                )),
                self.sent.get(),
                end,
            );
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let w = &self.worker;
        w.conns
            .borrow_mut()
            .remove((self.key & !IP_COUNTED) as usize);
        w.shared.conns.fetch_sub(1, Ordering::Relaxed);
        w.stats.open.sub(1);
        w.stats.closed.inc();
        if self.key & IP_COUNTED != 0 {
            w.shared.per_ip.close(self.peer(), &w.shared.limits);
        }
        w.closed.notify();
    }
}
