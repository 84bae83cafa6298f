//! One worker thread: its own monoio runtime (io_uring, or the epoll driver
//! as fallback), its own SO_REUSEPORT listener, and every connection it
//! accepts for that connection's whole life. The runtime is built here, the
//! accept loop admits or refuses connections, and the drain ends the thread.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::conn::liveness;
use crate::conn::worker::{Shared, Worker};
use crate::hub::bus::Inbox;
use crate::io::signal::{spawn_until, LocalEvent};
use crate::io::sock;
use crate::io::transport::Transport;
use crate::io::Driver;

/// Messages from the main thread to a worker.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Stop accepting, finish in-flight requests, close idle connections, then exit.
    Drain,
}

/// Everything a worker thread starts with.
pub struct WorkerStart {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub listener: std::net::TcpListener,
    /// This worker's TLS listener (`[tls]`), if on.
    pub tls_listener: Option<std::net::TcpListener>,
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
        tls_listener,
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
    let cfg = &worker.shared.cfg;
    services.push(spawn_until(
        &stop,
        liveness::sse_keepalive(worker.hub.clone(), cfg.sse.keepalive.0),
    ));
    services.push(spawn_until(
        &stop,
        liveness::ws_pings(
            worker.hub.clone(),
            cfg.ws.ping_interval.0,
            cfg.ws.pong_timeout.0,
        ),
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
    let tls_listener = tls_listener
        .map(monoio::net::TcpListener::from_std)
        .transpose()?;
    log::info!("worker {id} running on the {} driver", driver.name());
    let acceptor = monoio::spawn(accept_loop(worker.clone(), listener, false));
    let tls_acceptor = tls_listener.map(|l| monoio::spawn(accept_loop(worker.clone(), l, true)));
    // Either a Drain message or the handle being dropped ends the worker.
    let _ = control.recv_async().await;
    worker.drain().await;
    acceptor.await;
    if let Some(a) = tls_acceptor {
        a.await;
    }
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
async fn accept_loop(worker: Rc<Worker>, listener: monoio::net::TcpListener, tls: bool) {
    let lfd = listener.as_raw_fd();
    accept_until_drain(&worker, &listener, lfd, tls).await;
    // Stop listening now (new connections are refused at once); the runtime
    // closes the descriptor when the listener is dropped.
    // SAFETY: plain syscall on the listener's own descriptor, still open.
    unsafe { libc::shutdown(lfd, libc::SHUT_RDWR) };
}

async fn accept_until_drain(
    worker: &Rc<Worker>,
    listener: &monoio::net::TcpListener,
    lfd: RawFd,
    tls: bool,
) {
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
            admit(worker, std_stream, peer_ip(&addr), tls);
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
/// refuses it (503 for the server's limits, 429 for the client's own; a
/// TLS connection over `tls.max_handshakes_per_worker` is closed at once,
/// since it cannot be answered before its handshake).
fn admit(worker: &Rc<Worker>, std_stream: std::net::TcpStream, peer: IpAddr, tls: bool) {
    let shared = &worker.shared;
    let limits = &shared.limits;
    let session = match (tls, &shared.tls) {
        (false, _) => None,
        (true, Some(ctx)) => {
            if worker.stats.tls_handshaking.get() >= shared.cfg.tls.max_handshakes_per_worker as u64
            {
                worker.stats.tls_rejected_handshake_limit.inc();
                return;
            }
            match crate::io::tls::TlsSession::new(ctx.config.clone()) {
                Ok(s) => Some(s),
                Err(e) => {
                    log::warn!("worker {}: cannot start a TLS session: {e}", worker.id);
                    return;
                }
            }
        }
        (true, None) => return,
    };
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
        refuse(std_stream, 503, which, tls);
        return;
    }
    let per_ip = limits.max_connections_per_ip.load(Ordering::Relaxed);
    let ip_counted = per_ip > 0;
    if ip_counted && !shared.per_ip.try_open(peer, per_ip, limits) {
        shared.conns.fetch_sub(1, Ordering::Relaxed);
        worker.stats.rejected_per_ip.inc();
        refuse(std_stream, 429, "server.max_connections_per_ip", tls);
        return;
    }
    let _ = std_stream.set_nodelay(true);
    // send_timeout also bounds bytes already handed to the kernel: the send
    // buffer autotunes to megabytes, so a peer that stopped reading (or
    // vanished) would otherwise hold them for minutes without a write
    // ever blocking. The kernel then fails the socket with ETIMEDOUT.
    let _ = socket2::SockRef::from(&std_stream)
        .set_tcp_user_timeout(Some(shared.cfg.http.send_timeout.0));
    let io = match monoio::net::TcpStream::from_std(std_stream) {
        Ok(s) => match session {
            None => Transport::tcp(s),
            Some(session) => Transport::tls(s, session),
        },
        Err(e) => {
            shared.conns.fetch_sub(1, Ordering::Relaxed);
            if ip_counted {
                shared.per_ip.close(peer, limits);
            }
            log::warn!("worker {}: cannot register a connection: {e}", worker.id);
            return;
        }
    };
    let guard = match worker.register(&io, peer, ip_counted) {
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
    if tls {
        // (counted here, not when the task first runs: an accept batch sees it)
        worker.stats.tls_handshaking.inc();
        crate::io::panic::spawn_guarded("tls connection", crate::conn::tls::serve(io, guard));
    } else {
        let fut = crate::conn::http::serve(io, guard);
        log::trace!("connection future: {} bytes", std::mem::size_of_val(&fut));
        crate::io::panic::spawn_guarded("connection", fut);
    }
}

/// Answers a connection over a limit (503 or 429) and closes it gracefully.
/// A TLS connection cannot be answered before its handshake, which is
/// what the limit saves: it is closed without a word.
fn refuse(stream: std::net::TcpStream, status: u16, limit: &str, tls: bool) {
    if tls {
        return;
    }
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
