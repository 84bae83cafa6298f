//! The runtime, the listener and the accept loop: a tokio runtime
//! (`current_thread` for `--threads 1`, `multi_thread` otherwise), one
//! listener, one hyper HTTP/1.1 connection task per accepted socket (with
//! upgrades, for WebSocket), the ready line, and exit on SIGTERM/SIGINT.
//!
//! With `--tls-listen` (feature `tls`) a second listener serves the same
//! router over TLS: each accepted socket's task runs the TLS handshake
//! (tokio-rustls, bounded by [`crate::tls::HANDSHAKE_TIMEOUT`]) and then the
//! same hyper connection over the TLS stream. The plain listener's path is
//! the same code as without TLS.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

use crate::{rooms, Args, Body, Rooms};

/// Listen backlog asked for; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: u32 = 65535;

/// Runs the server until SIGTERM or SIGINT, then exits the process.
///
/// `router` answers every request; it gets the rooms of the process.
pub fn run<R, Fut>(args: Args, router: R) -> !
where
    R: Fn(Request<Incoming>, Arc<Rooms>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    raise_nofile_limit();
    let mut builder = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => fail(&format!("cannot start the tokio runtime: {e}")),
    };

    runtime.block_on(async move {
        let listener = match bind(args.listen) {
            Ok(l) => l,
            Err(e) => fail(&format!("cannot listen on {}: {e}", args.listen)),
        };
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            _ => fail("cannot install signal handlers"),
        };
        let addr = listener.local_addr().unwrap_or(args.listen);
        let rooms = Arc::new(Rooms::new(args.room_capacity));
        let router = Arc::new(router);
        let tls_addr = args
            .tls
            .as_ref()
            .map(|tls| start_tls(tls, rooms.clone(), router.clone()));
        tokio::spawn(accept_loop(listener, rooms, router));

        let mut out = std::io::stdout().lock();
        if let Some(a) = tls_addr {
            let _ = writeln!(out, "listening on {a} (TLS)");
        }
        let _ = writeln!(out, "listening on {addr}");
        let _ = out.flush();
        drop(out);

        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    });

    let (events, missed) = rooms::lag_totals();
    if events > 0 {
        eprintln!("exit: {events} lag events, {missed} messages missed by lagging subscribers");
    }
    std::process::exit(0)
}

fn http_builder() -> http1::Builder {
    let mut http = http1::Builder::new();
    // Responses to pipelined requests leave in one write.
    http.pipeline_flush(true);
    http
}

/// The next accepted socket, with `TCP_NODELAY` on.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(e) => {
                // Typically EMFILE: back off a little instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One connection's HTTP/1.1 (with upgrades): a future that serves it until
/// it ends (the builder is only read here; the connection owns its settings).
fn serve<I, R, Fut>(
    http: &http1::Builder,
    io: I,
    rooms: Arc<Rooms>,
    router: Arc<R>,
) -> impl Future<Output = ()> + Send + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Fn(Request<Incoming>, Arc<Rooms>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |req| {
        let fut = (*router)(req, rooms.clone());
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    async move {
        // Errors here are clients going away mid-request; nothing to do.
        let _ = conn.await;
    }
}

async fn accept_loop<R, Fut>(listener: TcpListener, rooms: Arc<Rooms>, router: Arc<R>)
where
    R: Fn(Request<Incoming>, Arc<Rooms>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let http = http_builder();
    loop {
        let stream = accept(&listener).await;
        tokio::spawn(serve(&http, stream, rooms.clone(), router.clone()));
    }
}

/// Binds the TLS listener and starts its accept loop; returns its address.
/// Exits the process if the listener or the certificate is unusable.
#[cfg(feature = "tls")]
fn start_tls<R, Fut>(tls: &crate::args::TlsArgs, rooms: Arc<Rooms>, router: Arc<R>) -> SocketAddr
where
    R: Fn(Request<Incoming>, Arc<Rooms>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let acceptor = match crate::tls::acceptor(&tls.cert, &tls.key) {
        Ok(a) => a,
        Err(e) => fail(&e),
    };
    let listener = match bind(tls.listen) {
        Ok(l) => l,
        Err(e) => fail(&format!("cannot listen on {}: {e}", tls.listen)),
    };
    let addr = listener.local_addr().unwrap_or(tls.listen);
    tokio::spawn(async move {
        let http = Arc::new(http_builder());
        loop {
            let stream = accept(&listener).await;
            let (acceptor, http) = (acceptor.clone(), http.clone());
            let (rooms, router) = (rooms.clone(), router.clone());
            tokio::spawn(async move {
                let handshake = acceptor.accept(stream);
                let Ok(Ok(tls)) =
                    tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, handshake).await
                else {
                    return;
                };
                serve(&http, tls, rooms, router).await;
            });
        }
    });
    addr
}

#[cfg(not(feature = "tls"))]
fn start_tls<R>(_tls: &crate::args::TlsArgs, _rooms: Arc<Rooms>, _router: Arc<R>) -> SocketAddr {
    fail("--tls-listen: this peer is built without TLS (peer-common's \"tls\" feature)")
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Lifts the soft limit on open files to the hard limit, so a test with tens
/// of thousands of connections is not capped by a default of 1024.
fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit only read/write the struct passed in.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(1)
}
