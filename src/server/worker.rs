//! One worker: a thread with its own monoio runtime (io_uring, or the epoll
//! driver as fallback), its own SO_REUSEPORT listener, and every connection
//! it accepts for that connection's whole life.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use slab::Slab;

use super::event::{LocalEvent, Signal};
use super::stats::WorkerStats;
use super::Shared;
use crate::hub::bus::Inbox;
use crate::hub::local::HubLocal;
use crate::io::bufpool::BufPool;
use crate::io::sock;

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

/// A worker's own state, shared by its tasks (never leaves its thread).
pub struct Worker {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub stats: Arc<WorkerStats>,
    pub pool: BufPool,
    /// This worker's part of the rooms.
    pub hub: Rc<HubLocal>,
    /// Every open connection's signal, so the worker can reach them all (drain).
    conns: RefCell<Slab<Rc<Signal>>>,
    draining: Cell<bool>,
    /// Set when draining starts.
    pub drain: LocalEvent,
    /// Notified whenever a connection closes.
    closed: LocalEvent,
}

impl Worker {
    pub fn new(id: usize, shared: Arc<Shared>) -> Rc<Worker> {
        let cfg = &shared.cfg;
        // at most 64 spare buffers per worker (4 MiB at the default size)
        let pool = BufPool::new(cfg.http.read_buffer_size.get(), 64);
        let stats = shared.stats[id].clone();
        let hub = Rc::new(HubLocal::new(
            id,
            shared.bus.clone(),
            cfg,
            shared.room_count.clone(),
            stats.clone(),
        ));
        Rc::new(Worker {
            id,
            hub,
            stats,
            shared,
            pool,
            conns: RefCell::new(Slab::new()),
            draining: Cell::new(false),
            drain: LocalEvent::new(),
            closed: LocalEvent::new(),
        })
    }

    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Connections this worker holds right now.
    pub fn live(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Starts the drain: the accept loop stops and every connection is kicked
    /// so that idle ones close and busy ones close after their request.
    pub fn begin_drain(&self) {
        if self.draining.replace(true) {
            return;
        }
        self.drain.set();
        let signals: Vec<Rc<Signal>> = self.conns.borrow().iter().map(|(_, s)| s.clone()).collect();
        for s in signals {
            s.kick();
        }
    }

    /// Enforces connection deadlines: every `tick`, kicks the connections whose deadline passed.
    async fn sweep_deadlines(self: Rc<Self>, tick: std::time::Duration) {
        loop {
            monoio::time::sleep(tick).await;
            let now = Instant::now();
            let signals: Vec<Rc<Signal>> =
                self.conns.borrow().iter().map(|(_, s)| s.clone()).collect();
            for s in signals {
                s.expire_if_due(now);
            }
        }
    }

    /// Registers a new connection; the returned guard unregisters it when dropped.
    pub fn register(self: &Rc<Self>) -> ConnGuard {
        let signal = Rc::new(Signal::default());
        let key = self.conns.borrow_mut().insert(signal.clone());
        self.stats.open.inc();
        self.stats.accepted.inc();
        ConnGuard {
            worker: self.clone(),
            key,
            signal,
        }
    }
}

/// Holds a connection's place in the worker and the global count.
pub struct ConnGuard {
    pub worker: Rc<Worker>,
    key: usize,
    pub signal: Rc<Signal>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let w = &self.worker;
        w.conns.borrow_mut().remove(self.key);
        w.shared.conns.fetch_sub(1, Ordering::Relaxed);
        w.stats.open.sub(1);
        w.stats.closed.inc();
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
    let worker = Worker::new(id, shared);
    crate::hub::local::spawn_tasks(&worker.hub, inbox, &worker.shared.cfg);
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
    monoio::spawn(worker.clone().sweep_deadlines(tick));
    let listener = monoio::net::TcpListener::from_std(listener)?;
    log::info!("worker {id} running on the {} driver", driver.name());
    let acceptor = monoio::spawn(accept_loop(worker.clone(), listener));
    // Either a Drain message or the handle being dropped ends the worker.
    let _ = control.recv_async().await;
    worker.begin_drain();
    acceptor.await;
    worker.closed.wait_until(|| worker.live() == 0).await;
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
            // SAFETY: plain syscall; the returned fd is owned below.
            let fd = unsafe {
                libc::accept4(
                    lfd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
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
            admit(&worker, std_stream);
        }
    }
}

/// Applies the connection limits, then starts the connection's task or refuses it with 503.
fn admit(worker: &Rc<Worker>, std_stream: std::net::TcpStream) {
    let shared = &worker.shared;
    let global = shared.conns.fetch_add(1, Ordering::Relaxed) + 1;
    let over_global = global > shared.max_connections;
    let over_local = worker.live() >= shared.max_connections_per_worker;
    if over_global || over_local {
        shared.conns.fetch_sub(1, Ordering::Relaxed);
        worker.stats.rejected_max_connections.inc();
        let which = if over_global {
            "server.max_connections"
        } else {
            "server.max_connections_per_worker"
        };
        refuse(std_stream, which);
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
            log::warn!("worker {}: cannot register a connection: {e}", worker.id);
            return;
        }
    };
    let guard = worker.register();
    let fut = crate::http::conn::serve(stream, guard);
    log::trace!("connection future: {} bytes", std::mem::size_of_val(&fut));
    super::panic::spawn_guarded("connection", fut);
}

/// Answers 503 on a connection over a limit and closes it gracefully.
fn refuse(stream: std::net::TcpStream, limit: &str) {
    let body = format!("503 Service Unavailable: connection limit {limit} reached\n");
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\nServer: ringcast\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
