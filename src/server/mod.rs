//! The process around the workers: binds the SO_REUSEPORT listeners, raises
//! the file-descriptor limit, picks the io driver, starts one thread per
//! worker (optionally pinned to a core), and drains them on shutdown.

pub mod signals;
pub mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::auth::Auth;
use crate::config::{Config, ConfigError, IoDriver};
use crate::conn::access;
use crate::conn::limits::{Limits, PerIp};
use crate::conn::sse::OnConnect;
pub use crate::conn::worker::Shared;
use crate::conn::ws::WsRoute;
use crate::error::Error;
use crate::hub::{Bus, Hub, PublishRules};
use crate::io::cpu::{allowed_cpus, pin_to_cpu};
use crate::io::stats::WorkerStats;
use crate::io::tls::certs::TlsContext;
use crate::io::Driver;
pub use signals::ShutdownSignals;
use worker::Control;

/// File descriptors kept back from the connection ceiling (listeners, rings, files, logs).
const FD_RESERVE: usize = 64;

/// A configured server, ready to start.
pub struct Server {
    cfg: Config,
    sse_on_connect: Option<Arc<OnConnect>>,
    ws_routes: Vec<WsRoute>,
}

/// A running server: its address, its [`Hub`], and the means to drain and
/// wait for it ([`ServerHandle::stop`], [`ServerHandle::run_until_signal`]).
pub struct ServerHandle {
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    controls: Vec<flume::Sender<Control>>,
    threads: Vec<JoinHandle<()>>,
    done: std::sync::mpsc::Receiver<usize>,
    driver: Driver,
    access: Option<access::Writer>,
}

/// Checks a configuration completely: [`Config::validate`] (each section's
/// own rules), then the rules that belong to the layers above it: the
/// auto-join room's name (the hub's naming rule) and `[auth]` (its key
/// rules, the secret resolved, from the environment too).
pub fn check_config(cfg: &Config) -> Result<(), ConfigError> {
    cfg.validate()?;
    let hub = &cfg.hub;
    if !hub.auto_join_room.is_empty()
        && !crate::hub::valid_room_name(&hub.auto_join_room, hub.max_room_name)
    {
        return Err(ConfigError(format!(
            "hub.auto_join_room = {:?} is not a valid room name (A-Z a-z 0-9 _ - . : @, at most hub.max_room_name bytes)",
            hub.auto_join_room
        )));
    }
    Auth::from_config(cfg).map(drop)
}

impl Server {
    /// Checks `cfg` ([`check_config`]) and returns a server that can be
    /// started. A bad configuration is an [`Error::Config`] naming the key.
    pub fn new(cfg: Config) -> Result<Server, Error> {
        check_config(&cfg)?;
        let mut ws_routes = Vec::new();
        if !cfg.ws.echo.path.is_empty() {
            ws_routes.push(WsRoute {
                path: cfg.ws.echo.path.clone(),
                endpoint: cfg.ws.echo.clone(),
                handler: Arc::new(|c| Box::pin(crate::conn::ws::handler::echo(c))),
            });
        }
        Ok(Server {
            cfg,
            sse_on_connect: None,
            ws_routes,
        })
    }

    /// Registers a WebSocket handler for `path`: called once per connection,
    /// on the worker that owns it, with a [`crate::conn::ws::handler::WsConn`].
    /// `endpoint` holds the path's subprotocols, allowed origins, deflate and
    /// rate limit (its `path` field is ignored).
    pub fn ws_handler<F, Fut>(
        mut self,
        path: &str,
        endpoint: crate::config::WsEndpoint,
        handler: F,
    ) -> Server
    where
        F: Fn(crate::conn::ws::handler::WsConn) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        self.ws_routes.retain(|r| r.path != path);
        self.ws_routes.push(WsRoute {
            path: path.to_string(),
            endpoint,
            handler: Arc::new(move |c| Box::pin(handler(c))),
        });
        self
    }

    /// Events to send first on every new SSE stream (after `retry:`), e.g. a
    /// welcome or the current state. The default binary sends none.
    pub fn on_sse_connect(
        mut self,
        hook: impl Fn(&crate::conn::sse::SseConnect<'_>) -> Vec<crate::hub::Message>
            + Send
            + Sync
            + 'static,
    ) -> Server {
        self.sse_on_connect = Some(Arc::new(hook));
        self
    }

    /// Binds the listeners and starts the workers (and, when the
    /// configuration has them on, the demos' publisher and the dashboard's
    /// feed). Fails with [`Error::Io`] when the address cannot be bound, the
    /// io driver asked for is unavailable, or `static.dir`/`log.access`
    /// cannot be opened.
    pub fn start(self) -> Result<ServerHandle, Error> {
        let Server {
            cfg,
            sse_on_connect,
            ws_routes,
        } = self;
        let cpus = allowed_cpus();
        let workers = if cfg.server.workers == 0 {
            cpus.len().max(1)
        } else {
            cfg.server.workers
        };

        if !cfg.server.huge_pages {
            disable_huge_pages();
        }
        let nofile = raise_nofile_limit();
        let ceiling = (nofile as usize)
            .saturating_sub(FD_RESERVE + 4 * workers)
            .max(1);
        let n = cfg.server.max_connections;
        if n > ceiling {
            log::warn!(
                "server.max_connections = {n} is above the file-descriptor ceiling of {ceiling}; accept will back off at the ceiling"
            );
        }
        let limits = Limits::new(&cfg, ceiling);
        let max_connections = limits.max_connections.load(Ordering::Relaxed);
        let max_connections_per_worker = limits.max_connections_per_worker.load(Ordering::Relaxed);
        log::info!(
            "connection ceiling {max_connections} (RLIMIT_NOFILE {nofile}), {max_connections_per_worker} per worker"
        );

        let static_root = match &cfg.static_files.dir {
            Some(d) => Some(std::fs::canonicalize(d).map_err(|e| {
                io::Error::new(e.kind(), format!("static.dir {}: {e}", d.display()))
            })?),
            None => None,
        };

        let access = match access::Sink::open(&cfg.log.access) {
            Ok(Some(sink)) => Some(access::Writer::start(sink)?),
            Ok(None) => None,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("log.access {:?}: {e}", cfg.log.access),
                )
                .into())
            }
        };
        let tls = match cfg.tls.listen_addr() {
            Some(_) => Some(Arc::new(
                TlsContext::from_config(&cfg.tls).map_err(|e| Error::Config(ConfigError(e)))?,
            )),
            None => None,
        };
        let listeners = bind_listeners(
            cfg.server.listen,
            workers,
            cfg.server.backlog,
            "server.listen",
        )?;
        let addr = listeners[0].local_addr()?;
        let mut tls_listeners: Vec<Option<std::net::TcpListener>> = match cfg.tls.listen_addr() {
            Some(a) => bind_listeners(a, workers, cfg.server.backlog, "tls.listen")?
                .into_iter()
                .map(Some)
                .collect(),
            None => (0..workers).map(|_| None).collect(),
        };
        let tls_addr = match &tls_listeners[0] {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let driver = choose_driver(cfg.server.io_driver, cfg.server.io_uring_entries)?;

        let auth = Auth::from_config(&cfg)?;
        let (bus, inboxes) = Bus::new(workers, cfg.hub.bus_capacity);
        let demos = cfg.demo.enabled && static_root.is_none();
        let (demo_jobs, demo_feed) = if demos {
            let (jobs, rx, active) = crate::app::demo::Jobs::new();
            (Some(jobs), Some((rx, active)))
        } else {
            (None, None)
        };
        let publish_rules = PublishRules::new(&cfg, demos.then_some(crate::app::demo::CHAT_ROOM));
        let stats: Vec<Arc<WorkerStats>> = (0..workers)
            .map(|_| Arc::new(WorkerStats::default()))
            .collect();
        let cluster = if cfg.cluster.is_redis() {
            Some(crate::hub::engine::cluster::Link::start(
                &cfg,
                bus.clone(),
                stats.clone(),
                limits.max_rooms.clone(),
            )?)
        } else {
            None
        };
        let app = crate::app::router::Router::new(&cfg, &ws_routes, demo_jobs);
        let shared = Arc::new(Shared {
            publish_rules,
            cfg: Arc::new(cfg),
            conns: AtomicUsize::new(0),
            limits,
            per_ip: PerIp::default(),
            static_root,
            stats,
            bus,
            room_count: Arc::new(AtomicUsize::new(0)),
            sse_on_connect,
            driver,
            access_tx: access.as_ref().map(|a| a.sender()),
            auth: Arc::new(ArcSwap::from_pointee(auth)),
            app: Box::new(app),
            tls,
            tls_port: tls_addr.map_or(0, |a| a.port()),
            cluster,
        });

        let (done_tx, done) = std::sync::mpsc::channel();
        let mut controls = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        let pin = shared.cfg.server.pin_workers;
        for (id, (listener, inbox)) in listeners.into_iter().zip(inboxes).enumerate() {
            let tls_listener = tls_listeners[id].take();
            let (tx, rx) = flume::unbounded();
            controls.push(tx);
            let shared = shared.clone();
            let done_tx = done_tx.clone();
            let cpu = if pin {
                cpus.get(id % cpus.len().max(1)).copied()
            } else {
                None
            };
            let t = std::thread::Builder::new()
                .name(format!("worker-{id}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        match pin_to_cpu(cpu) {
                            Ok(()) => log::info!("worker {id} pinned to cpu {cpu}"),
                            Err(e) => log::warn!("worker {id}: cannot pin to cpu {cpu}: {e}"),
                        }
                    }
                    if let Err(e) = worker::run(worker::WorkerStart {
                        id,
                        shared,
                        listener,
                        tls_listener,
                        inbox,
                        control: rx,
                        driver,
                    }) {
                        log::error!("worker {id} stopped: {e}");
                    }
                    let _ = done_tx.send(id);
                })?;
            threads.push(t);
        }
        let hub = Hub::new(shared.bus.clone(), shared.publish_rules);
        if let Some((rx, active)) = demo_feed {
            crate::app::demo::spawn(shared.clone(), hub.clone(), rx, active)?;
        }
        if shared.cfg.dashboard.enabled {
            crate::app::dashboard::spawn(shared.clone(), hub)?;
        }
        log::info!(
            "listening on {addr} with {workers} worker{} ({} driver)",
            if workers == 1 { "" } else { "s" },
            driver.name()
        );
        if let (Some(a), Some(ctx)) = (tls_addr, &shared.tls) {
            for c in ctx.store.info() {
                log::info!(
                    "tls: listening on {a}; certificate {} for {} (valid until {})",
                    c.file,
                    c.names.join(", "),
                    httpdate::fmt_http_date(
                        std::time::UNIX_EPOCH + Duration::from_secs(c.not_after.max(0) as u64)
                    )
                );
            }
        }
        Ok(ServerHandle {
            addr,
            tls_addr,
            shared,
            controls,
            threads,
            done,
            driver,
            access,
        })
    }
}

impl ServerHandle {
    /// The address the workers listen on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS listener's address (`tls.listen`), if there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The certificates the TLS listener uses now (empty without one).
    pub fn tls_certificates(&self) -> Vec<crate::io::tls::certs::CertInfo> {
        self.shared
            .tls
            .as_ref()
            .map_or(Vec::new(), |t| t.store.info())
    }

    /// Loads the certificates `cfg` names (its `[tls]` section) for new
    /// handshakes; open connections keep theirs. On an error (naming the
    /// file) the running certificates stay. Without a TLS listener, nothing to do.
    pub fn reload_tls(&self, cfg: &Config) -> Result<(), Error> {
        match &self.shared.tls {
            Some(ctx) => ctx
                .reload(&cfg.tls)
                .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e))),
            None => Ok(()),
        }
    }

    /// The io driver the workers run.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Counters of every worker.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The rooms: publish and query from any thread.
    pub fn hub(&self) -> Hub {
        Hub::new(self.shared.bus.clone(), self.shared.publish_rules)
    }

    /// Applies the `[auth]` section and `hub.publish_token` of `cfg` to new
    /// requests from now on (SIGHUP). `cfg` is validated first; on error the
    /// rules in force stay. Streams already open keep what they were granted.
    pub fn reload_auth(&self, cfg: &Config) -> Result<(), Error> {
        check_config(cfg)?;
        let auth = Auth::from_config(cfg)?;
        self.shared.auth.store(Arc::new(auth));
        Ok(())
    }

    /// Starts the drain on every worker: stop accepting, finish in-flight
    /// requests, close idle connections.
    pub fn shutdown(&self) {
        for c in &self.controls {
            let _ = c.send(Control::Drain);
        }
    }

    /// Waits for the workers to finish, at most `timeout`. True if all finished.
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut finished = 0;
        while finished < self.threads.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(left) {
                Ok(_) => finished += 1,
                Err(_) => return false,
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(link) = &self.shared.cluster {
            link.stop();
        }
        // Every worker has handed over its last access-log lines: write them.
        if let Some(a) = &mut self.access {
            a.finish(deadline.saturating_duration_since(Instant::now()));
        }
        true
    }

    /// Applies the limits of `cfg` (the keys in [`crate::conn::limits::LIVE_KEYS`]) to the
    /// running server: later connections, handshakes and joins obey them.
    pub fn apply_limits(&self, cfg: &Config) {
        self.shared.limits.apply(cfg);
    }

    /// Drains and waits for the workers, at most `shutdown_timeout`.
    pub fn stop(mut self) -> bool {
        self.shutdown();
        let t = self.shared.cfg.server.shutdown_timeout.0;
        self.wait_timeout(t)
    }
}

/// Opts the process out of transparent huge pages (`server.huge_pages = false`):
/// a huge page is resident as a whole once any byte of it is touched, and a
/// heap of many small per-connection allocations touches most of them.
fn disable_huge_pages() {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        log::warn!(
            "cannot opt out of transparent huge pages: {}",
            io::Error::last_os_error()
        );
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the resulting soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: rlimit is plain data.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
        rl.rlim_cur
    }
}

/// One listener per worker on the same address (SO_REUSEPORT); port 0 is
/// resolved by the first bind and shared by the rest.
fn bind_listeners(
    addr: SocketAddr,
    workers: usize,
    backlog: u32,
    key: &str,
) -> io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Socket, Type};
    let mut addr = addr;
    let mut out = Vec::with_capacity(workers);
    for _ in 0..workers {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        s.set_cloexec(true)?;
        s.bind(&addr.into()).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {addr} ({key}): {e}"))
        })?;
        s.listen(backlog.min(i32::MAX as u32) as i32)?;
        let l: std::net::TcpListener = s.into();
        if addr.port() == 0 {
            addr = l.local_addr()?;
        }
        out.push(l);
    }
    Ok(out)
}

/// Picks the io driver once for all workers, logging a fallback once.
fn choose_driver(wanted: IoDriver, entries: u32) -> io::Result<Driver> {
    let uring_works = || {
        monoio::utils::detect_uring()
            && worker::build_uring_runtime(entries, crate::config::Taskrun::Plain).is_ok()
    };
    match wanted {
        IoDriver::Legacy => {
            log::info!("server.io_driver = \"legacy\": workers run the epoll driver");
            Ok(Driver::Legacy)
        }
        IoDriver::IoUring => {
            if uring_works() {
                Ok(Driver::IoUring)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "server.io_driver = \"io_uring\" but io_uring cannot be used here (old kernel, seccomp, or kernel.io_uring_disabled)",
                ))
            }
        }
        IoDriver::Auto => {
            if uring_works() {
                Ok(Driver::IoUring)
            } else {
                log::warn!("io_uring is unavailable here; falling back to the epoll driver");
                Ok(Driver::Legacy)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_keys_are_checked_and_named() {
        // a parse error, or what the complete check says
        let err = |t: &str| match Config::from_toml(t, "t.toml") {
            Ok(cfg) => check_config(&cfg).unwrap_err().0,
            Err(e) => e.0,
        };
        let secret = "jwt_secret = \"0123456789abcdef0123456789abcdef\"\n";
        assert!(err("[auth]\nsubscribe = true\n").contains("auth.jwt_secret"));
        assert!(err("[auth]\npublish = \"jwt\"\n").contains("auth.jwt_secret"));
        assert!(err("[auth]\npublish = \"token\"\n").contains("hub.publish_token"));
        assert!(err("[auth]\npublish = \"token_or_jwt\"\n").contains("hub.publish_token"));
        assert!(
            err("[hub]\npublish_token = \"x\"\n[auth]\npublish = \"off\"\n")
                .contains("hub.publish_token")
        );
        assert!(err("[auth]\njwt_secret = \"short\"\n").contains("32 bytes"));
        assert!(err(&format!("[auth]\n{secret}jwt_secret_env = \"X\"\n"))
            .contains("auth.jwt_secret_env"));
        let e =
            err("[auth]\nsubscribe = true\njwt_secret_env = \"RINGCAST_TEST_SURELY_UNSET_VAR\"\n");
        assert!(e.contains("RINGCAST_TEST_SURELY_UNSET_VAR"), "{e}");
        assert!(err(&format!("[auth]\n{secret}rooms_claim = \"\"\n")).contains("auth.rooms_claim"));
        assert!(
            err(&format!("[auth]\n{secret}publish_claim = \"\"\n")).contains("auth.publish_claim")
        );
        assert!(err(&format!("[auth]\n{secret}cookie = \"a b\"\n")).contains("auth.cookie"));
        assert!(
            err(&format!("[auth]\n{secret}query_param = \"room\"\n")).contains("auth.query_param")
        );
        assert!(err(&format!("[auth]\n{secret}leeway = \"1h\"\n")).contains("auth.leeway"));
        assert!(err("[auth]\npublish = \"maybe\"\n").contains("maybe"));
        Config::from_toml(
            &format!("[auth]\n{secret}subscribe = true\npublish = \"jwt\"\n"),
            "t",
        )
        .unwrap();
    }

    #[test]
    fn the_auto_join_room_is_a_valid_room_name() {
        let cfg = Config::from_toml("[hub]\nauto_join_room = \"a b\"\n", "t.toml").unwrap();
        assert!(check_config(&cfg)
            .unwrap_err()
            .0
            .contains("hub.auto_join_room"));
    }
}
