//! `ServerHandle::run_until_signal[_with]` in the test process itself: SIGHUP
//! calls the reload hook, SIGTERM drains (open streams end) and returns.
//!
//! A test binary of its own: the signals go to the whole process. Every
//! signal is sent only once handlers are installed (a caught signal never
//! ends the process), and the plain `run_until_signal`, which installs its
//! own when called, is signalled again only when it cannot have seen the
//! first one (it returns within `server.shutdown_timeout` of one it saw).

mod common;
use common::*;
use ringcast::config::Config;
use ringcast::server::ShutdownSignals;
use ringcast::Server;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn bare() -> Config {
    let mut cfg = Config::bare();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 1;
    cfg.server.shutdown_timeout = ringcast::config::Period::from_secs(1);
    cfg
}

fn send(sig: i32) {
    // SAFETY: kill(2) on our own pid; the handlers are installed.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

#[test]
fn signals_reload_then_drain() {
    // Caught before the server starts, as the binary does; kept until the
    // end so that no signal of this test can end the process.
    let _net = ShutdownSignals::catch().unwrap();

    // run_until_signal_with: SIGHUP -> hook (which asks for the stop), SIGTERM -> drain
    let signals = ShutdownSignals::catch().unwrap();
    signals.catch_reload().unwrap();
    let srv = Server::new(bare()).unwrap().start().unwrap();
    let addr = srv.local_addr();
    let mut sse = SseClient::open(addr, "/sse?room=r", "");
    wait_subscribers(addr, "r", 1);
    send(libc::SIGHUP); // kept by `signals` until the wait starts
    let reloads = Arc::new(AtomicUsize::new(0));
    let seen = reloads.clone();
    let drained = srv.run_until_signal_with(signals, move |server| {
        assert_eq!(server.local_addr(), addr);
        seen.fetch_add(1, Ordering::SeqCst);
        send(libc::SIGTERM);
    });
    assert!(drained, "an idle SSE stream drains within shutdown_timeout");
    assert_eq!(reloads.load(Ordering::SeqCst), 1);
    // the stream was told to go (a retry hint) and closed
    while sse.next_block().is_some() {}

    // run_until_signal on its own thread
    let srv = Server::new(bare()).unwrap().start().unwrap();
    let run = std::thread::spawn(move || srv.run_until_signal());
    std::thread::sleep(Duration::from_millis(200)); // most likely caught by then
    let mut sent = 0;
    while !run.is_finished() {
        assert!(sent < 5, "run_until_signal never saw SIGTERM");
        send(libc::SIGTERM);
        sent += 1;
        // it returns within shutdown_timeout (1s) of a signal it caught
        for _ in 0..30 {
            if run.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(run.join().unwrap().unwrap());
}
