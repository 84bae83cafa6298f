//! Stopping an embedded server leaves nothing behind: its port refuses
//! connections and every descriptor it opened is closed, on both io
//! drivers. One test in its own binary: it counts the whole process's
//! descriptors, which tests running beside it would change.

mod common;
use common::*;
use ringcast::config::Config;
use ringcast::{Server, ServerHandle};

/// Descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn start(driver: &str) -> ServerHandle {
    let mut cfg = Config::bare();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 2;
    cfg.server.io_driver = serde_json::from_value(serde_json::json!(driver)).unwrap();
    Server::new(cfg).unwrap().start().unwrap()
}

#[test]
fn a_stopped_server_leaves_no_port_and_no_descriptor_open() {
    for driver in ["io_uring", "legacy"] {
        let run = || {
            let srv = start(driver);
            let addr = srv.local_addr();
            assert_eq!(Client::connect(addr).get("/healthz").status, 200);
            assert!(srv.stop(), "{driver}: drained in time");
            let e = std::net::TcpStream::connect(addr).expect_err("the port still accepts");
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused,
                "{driver}: {e}"
            );
        };
        run(); // the first start opens process-wide descriptors once
        let before = open_fds();
        for _ in 0..3 {
            run();
        }
        let open: Vec<String> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            open_fds(),
            before,
            "{driver}: left open by start/stop: {open:?}"
        );
    }
}
