//! Hostile clients and publishers: what one of them does stays bounded and
//! reaches nobody else. Each test is an attack that once worked.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// Polls `cond` until it holds or 10 s pass.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

const ASSET: &str = "/assets/htmx-2.0.11.min.js";

#[test]
fn pipelined_answers_wait_while_the_client_does_not_read() {
    let srv =
        TestServer::start("[http]\nmax_pending_output = \"64KiB\"\nsend_timeout = \"120s\"\n");
    let file = Client::connect(srv.addr).get(ASSET);
    assert_eq!(file.status, 200);
    let requests = || metric(srv.addr, "ringcast_http_requests_total", "");
    let pauses = || {
        metric(
            srv.addr,
            "ringcast_limit_hits_total",
            "limit=\"max_pending_output\"",
        )
    };
    let rss_before = rss(srv.child.id());
    let answered_before = requests();

    // 1,000 requests for a 50 KB file in one write, and no read
    let n = 1000;
    let one = format!("GET {ASSET} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut hostile = non_reading_client(srv.addr, &one.repeat(n));
    eventually("the connection's output to reach its bound", || {
        pauses() >= 1.0
    });
    // The server answers no more of them while the client does not read: what
    // was answered fits in the bound plus the kernel's socket buffers (the
    // metrics requests of this test are counted too).
    let answered = requests() - answered_before;
    assert!(
        answered < 150.0,
        "{answered} of {n} pipelined requests answered for a client that reads nothing"
    );
    assert!(
        rss(srv.child.id()) < rss_before + (16 << 20),
        "server memory grew from {rss_before} to {} bytes",
        rss(srv.child.id())
    );
    // other clients are served meanwhile
    assert_eq!(Client::connect(srv.addr).get("/healthz").status, 200);

    // once the client reads, every answer arrives, whole and in order
    for i in 0..n {
        let r = hostile.read_response();
        assert_eq!(r.status, 200, "answer {i}");
        assert_eq!(r.body, file.body, "answer {i}");
    }
    assert!(pauses() >= 1.0);
}
