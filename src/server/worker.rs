//! One worker: a thread with its own monoio runtime (io_uring, or the epoll
//! driver as fallback), its own SO_REUSEPORT listener, and every connection
//! it accepts for that connection's whole life.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use slab::Slab;

use super::access::AccessLog;
use super::Shared;
use crate::hub::bus::Inbox;
use crate::hub::local::HubLocal;
use crate::io::bufpool::BufPool;
use crate::io::clock::clock_ms;
use crate::io::ready::Epoll;
use crate::io::signal::{spawn_until, LocalEvent, Signal};
use crate::io::sock;
use crate::io::stats::WorkerStats;

/// Messages from the main thread to a worker.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Stop accepting, finish in-flight requests, close idle connections, then exit.
    Drain,
}

/// The io driver a worker ended up running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Legacy,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Legacy => "epoll",
        }
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
        let hub = Rc::new(HubLocal::new(
            id,
            shared.bus.clone(),
            cfg,
            shared.publish_rules,
            shared.room_count.clone(),
            shared.limits.max_rooms.clone(),
            stats.clone(),
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
    async fn run_later(self: Rc<Self>) {
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
    fn drop_parked(&self) {
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
    async fn watch_readiness(self: Rc<Self>) {
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
    async fn drain(self: &Rc<Self>) {
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
    async fn sweep_deadlines(self: Rc<Self>, tick: std::time::Duration) {
        let mut collected = Instant::now();
        loop {
            monoio::time::sleep(tick).await;
            let now = Instant::now();
            if now.duration_since(collected) >= std::time::Duration::from_secs(1) {
                release_free_memory();
                collected = now;
            }
            let now_ms = clock_ms();
            for s in self.signals() {
                s.expire_if_due(now_ms);
            }
        }
    }

    /// Registers a new connection on socket `fd` from `peer`; the returned
    /// guard unregisters it when dropped (and, if `ip_counted`, forgets it in
    /// the per-IP table).
    pub fn register(
        self: &Rc<Self>,
        fd: RawFd,
        peer: IpAddr,
        ip_counted: bool,
    ) -> io::Result<ConnGuard> {
        let signal = Rc::new(Signal::default());
        let key = {
            let mut conns = self.conns.borrow_mut();
            let entry = conns.vacant_entry();
            let key = entry.key();
            self.epoll.add(fd, key as u64)?;
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

/// Hands this thread's free allocator pages back to the kernel. mimalloc
/// purges freed memory lazily, during later allocations; a worker whose
/// connections went quiet (and parked, freeing their tasks) makes few, so
/// it asks once a second. Cheap when there is nothing to purge.
fn release_free_memory() {
    // (mimalloc is linked into every build of ringcast, whichever allocator
    // the process uses: a heap it never used has nothing to purge)
    // SAFETY: mimalloc's collect takes no pointers; it only looks at this
    // thread's own heap (a no-op for memory another allocator handed out).
    unsafe { libmimalloc_sys::mi_collect(true) }
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
    /// ready tasks have had their turn.
    pub fn read_done(&self, n: usize, want: usize) {
        self.signal.drained();
        if n >= want {
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

/// Everything a worker thread starts with.
pub struct WorkerStart {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub listener: std::net::TcpListener,
    pub inbox: Inbox,
    pub control: flume::Receiver<Control>,
    pub driver: Driver,
}

/// The worker thread's body: builds the runtime for its driver and runs the worker until drained.
pub fn run(start: WorkerStart) -> io::Result<()> {
    let (id, shared) = (start.id, &start.shared);
    crate::hub::mark_worker_thread();
    let entries = shared.cfg.server.io_uring_entries;
    match start.driver {
        Driver::IoUring => {
            let (mut rt, mode) = build_uring_runtime(entries, shared.cfg.server.io_uring_taskrun)?;
            log::info!("worker {id}: io_uring task-run mode {mode:?}");
            rt.block_on(worker_main(start))
        }
        Driver::Legacy => {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()?;
            rt.block_on(worker_main(start))
        }
    }
}

/// The io_uring runtime of a worker. Completion work is deferred to the
/// worker's own `io_uring_enter` (DEFER_TASKRUN) or at least not signalled
/// with an interrupt while it runs (COOP_TASKRUN): without that, every
/// readiness event costs the busy worker an inter-processor interrupt.
/// Falls back to the next mode where the kernel refuses one.
pub fn build_uring_runtime(
    entries: u32,
    taskrun: crate::config::Taskrun,
) -> io::Result<(
    monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>,
    crate::config::Taskrun,
)> {
    use crate::config::Taskrun;
    let modes: &[Taskrun] = match taskrun {
        Taskrun::Defer => &[Taskrun::Defer, Taskrun::Coop, Taskrun::Plain],
        Taskrun::Coop => &[Taskrun::Coop, Taskrun::Plain],
        Taskrun::Plain => &[Taskrun::Plain],
    };
    let mut last = None;
    for &mode in modes {
        let mut urb = io_uring::IoUring::builder();
        match mode {
            Taskrun::Defer => {
                urb.setup_single_issuer().setup_defer_taskrun();
            }
            Taskrun::Coop => {
                urb.setup_coop_taskrun().setup_taskrun_flag();
            }
            Taskrun::Plain => {}
        }
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(entries)
            .uring_builder(urb)
            .enable_timer()
            .build()
        {
            Ok(rt) => return Ok((rt, mode)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("io_uring setup failed")))
}

async fn worker_main(start: WorkerStart) -> io::Result<()> {
    let WorkerStart {
        id,
        shared,
        listener,
        inbox,
        control,
        driver,
    } = start;
    let worker = Worker::new(id, shared)?;
    // The worker's service tasks end once it has drained (see spawn_until).
    let stop = Rc::new(LocalEvent::new());
    let mut services = vec![
        spawn_until(&stop, worker.clone().watch_readiness()),
        spawn_until(&stop, worker.clone().run_later()),
    ];
    services.extend(crate::hub::local::spawn_tasks(
        &worker.hub,
        inbox,
        &worker.shared.cfg,
        &stop,
    ));
    let http = &worker.shared.cfg.http;
    let shortest = http
        .header_timeout
        .0
        .min(http.keepalive_timeout.0)
        .min(http.body_timeout.0);
    let tick = (shortest / 8).clamp(
        std::time::Duration::from_millis(10),
        std::time::Duration::from_millis(250),
    );
    services.push(spawn_until(&stop, worker.clone().sweep_deadlines(tick)));
    if worker.access.is_some() {
        let w = worker.clone();
        services.push(spawn_until(&stop, async move {
            loop {
                monoio::time::sleep(std::time::Duration::from_secs(1)).await;
                if let Some(log) = &w.access {
                    log.flush(&w.stats);
                }
            }
        }));
    }
    let listener = monoio::net::TcpListener::from_std(listener)?;
    log::info!("worker {id} running on the {} driver", driver.name());
    let acceptor = monoio::spawn(accept_loop(worker.clone(), listener));
    // Either a Drain message or the handle being dropped ends the worker.
    let _ = control.recv_async().await;
    worker.drain().await;
    acceptor.await;
    worker.drop_parked();
    if let Some(log) = &worker.access {
        log.flush(&worker.stats);
    }
    stop.set();
    for s in services {
        s.await;
    }
    // Let the ring submit what dropped sockets queued (their closes) before
    // the runtime goes: unsubmitted entries would leave those descriptors open.
    monoio::time::sleep(std::time::Duration::from_millis(1)).await;
    log::debug!("worker {id} drained");
    Ok(())
}

fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Accepts connections until the drain starts. Waits for readiness, then
/// accepts with non-blocking `accept4` until the queue is empty.
async fn accept_loop(worker: Rc<Worker>, listener: monoio::net::TcpListener) {
    let lfd = listener.as_raw_fd();
    accept_until_drain(&worker, &listener, lfd).await;
    // Stop listening now (new connections are refused at once); the runtime
    // closes the descriptor when the listener is dropped.
    // SAFETY: plain syscall on the listener's own descriptor, still open.
    unsafe { libc::shutdown(lfd, libc::SHUT_RDWR) };
}

async fn accept_until_drain(worker: &Rc<Worker>, listener: &monoio::net::TcpListener, lfd: RawFd) {
    let backoff = worker.shared.cfg.server.accept_backoff.0;
    let mut last_resource_log: Option<Instant> = None;
    loop {
        monoio::select! {
            r = listener.readable(false) => {
                if let Err(e) = r {
                    log::warn!("worker {}: waiting on the listener failed: {e}", worker.id);
                    monoio::time::sleep(backoff).await;
                }
            }
            _ = worker.drain.wait() => break,
        }
        loop {
            if worker.draining() {
                return;
            }
            // SAFETY: sockaddr_storage is plain data large enough for any address.
            let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut addr_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: plain syscall; the returned fd is owned below.
            let fd = unsafe {
                libc::accept4(
                    lfd,
                    (&mut addr as *mut libc::sockaddr_storage).cast(),
                    &mut addr_len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => continue,
                    _ if is_resource_error(&e) => {
                        worker.stats.accept_resource_errors.inc();
                        let now = Instant::now();
                        if last_resource_log.is_none_or(|t| now.duration_since(t).as_secs() >= 5) {
                            log::warn!(
                                "worker {}: accept failed ({e}); backing off {:?}, existing connections keep running",
                                worker.id, backoff
                            );
                            last_resource_log = Some(now);
                        }
                        monoio::select! {
                            _ = monoio::time::sleep(backoff) => {}
                            _ = worker.drain.wait() => return,
                        }
                        break;
                    }
                    _ => {
                        log::warn!("worker {}: accept failed: {e}", worker.id);
                        monoio::time::sleep(backoff).await;
                        break;
                    }
                }
            }
            // SAFETY: accept4 returned a fresh socket that nothing else owns.
            let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
            admit(worker, std_stream, peer_ip(&addr));
        }
    }
}

/// The client address `accept4` filled in (unspecified for other families).
fn peer_ip(addr: &libc::sockaddr_storage) -> IpAddr {
    match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4)
        }
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    }
}

/// Applies the connection limits, then starts the connection's task or
/// refuses it (503 for the server's limits, 429 for the client's own).
fn admit(worker: &Rc<Worker>, std_stream: std::net::TcpStream, peer: IpAddr) {
    let shared = &worker.shared;
    let limits = &shared.limits;
    let global = shared.conns.fetch_add(1, Ordering::Relaxed) + 1;
    let over_global = global > limits.max_connections.load(Ordering::Relaxed);
    let over_local = worker.live() >= limits.max_connections_per_worker.load(Ordering::Relaxed);
    if over_global || over_local {
        shared.conns.fetch_sub(1, Ordering::Relaxed);
        worker.stats.rejected_max_connections.inc();
        let which = if over_global {
            "server.max_connections"
        } else {
            "server.max_connections_per_worker"
        };
        refuse(std_stream, 503, which);
        return;
    }
    let per_ip = limits.max_connections_per_ip.load(Ordering::Relaxed);
    let ip_counted = per_ip > 0;
    if ip_counted && !shared.per_ip.try_open(peer, per_ip, limits) {
        shared.conns.fetch_sub(1, Ordering::Relaxed);
        worker.stats.rejected_per_ip.inc();
        refuse(std_stream, 429, "server.max_connections_per_ip");
        return;
    }
    let _ = std_stream.set_nodelay(true);
    // send_timeout also bounds bytes already handed to the kernel: the send
    // buffer autotunes to megabytes, so a peer that stopped reading (or
    // vanished) would otherwise hold them for minutes without a write
    // ever blocking. The kernel then fails the socket with ETIMEDOUT.
    let _ = socket2::SockRef::from(&std_stream)
        .set_tcp_user_timeout(Some(shared.cfg.http.send_timeout.0));
    let stream = match monoio::net::TcpStream::from_std(std_stream) {
        Ok(s) => s,
        Err(e) => {
            shared.conns.fetch_sub(1, Ordering::Relaxed);
            if ip_counted {
                shared.per_ip.close(peer, limits);
            }
            log::warn!("worker {}: cannot register a connection: {e}", worker.id);
            return;
        }
    };
    let guard = match worker.register(stream.as_raw_fd(), peer, ip_counted) {
        Ok(g) => g,
        Err(e) => {
            shared.conns.fetch_sub(1, Ordering::Relaxed);
            if ip_counted {
                shared.per_ip.close(peer, limits);
            }
            worker.stats.accept_resource_errors.inc();
            log::warn!("worker {}: cannot watch a connection: {e}", worker.id);
            return;
        }
    };
    let fut = crate::http::conn::serve(stream, guard);
    log::trace!("connection future: {} bytes", std::mem::size_of_val(&fut));
    super::panic::spawn_guarded("connection", fut);
}

/// Answers a connection over a limit (503 or 429) and closes it gracefully.
fn refuse(stream: std::net::TcpStream, status: u16, limit: &str) {
    let reason = crate::proto::http::response::reason(status);
    let body = format!("{status} {reason}: connection limit {limit} reached\n");
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: ringcast\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock::send(stream.as_raw_fd(), resp.as_bytes());
    // The refused socket lingers at most half a second, outside the connection count.
    if let Ok(s) = monoio::net::TcpStream::from_std(stream) {
        monoio::spawn(async move {
            sock::linger_close(&s, std::time::Duration::from_millis(500)).await;
        });
    }
}
