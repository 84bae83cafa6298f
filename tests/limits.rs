//! Per-client limits (connections and handshake rate per IP), the room
//! limits, and changing limits on a running server with SIGHUP. Other client
//! addresses are made by binding to 127.0.0.x, which loopback accepts.

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

#[test]
fn connections_per_ip_are_limited_with_429_and_other_ips_are_untouched() {
    let srv = TestServer::start("[server]\nworkers = 2\nmax_connections_per_ip = 2\n");
    let mut a = connect_from("127.0.0.5", srv.addr);
    let mut b = connect_from("127.0.0.5", srv.addr);
    assert_eq!(a.get("/healthz").status, 200);
    assert_eq!(b.get("/healthz").status, 200);

    // the third from the same address is refused at once
    let mut c = connect_from("127.0.0.5", srv.addr);
    let r = c.read_response();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert!(
        r.text().contains("server.max_connections_per_ip"),
        "{}",
        r.text()
    );
    assert!(c.closed_by_server());

    // other addresses are served as usual, and the first two still are
    let mut other = connect_from("127.0.0.6", srv.addr);
    assert_eq!(other.get("/healthz").status, 200);
    assert_eq!(a.get("/healthz").status, 200);

    // closing one frees its place
    drop(b);
    eventually("a free place for 127.0.0.5", || {
        let mut d = connect_from("127.0.0.5", srv.addr);
        d.try_send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .is_ok()
            && d.read_response().status == 200
    });
    assert!(
        metric(
            srv.addr,
            "ringcast_limit_hits_total",
            "limit=\"max_connections_per_ip\""
        ) >= 1.0
    );
}

#[test]
fn handshake_rate_per_ip_answers_429_with_retry_after() {
    let srv =
        TestServer::start("[server]\nhandshake_rate_per_ip = 1\nhandshake_burst_per_ip = 2\n");
    let sse = "GET /sse?room=r HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut s1 = SseClient::open_on(connect_from("127.0.0.7", srv.addr), "/sse?room=r", "");
    let (_ws, r) = {
        let mut c = connect_from("127.0.0.7", srv.addr);
        c.send(
            "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        let r = c.read_response();
        (c, r)
    };
    assert_eq!(r.status, 101);

    // the burst is spent: the next stream and the next upgrade are refused
    let mut s3 = connect_from("127.0.0.7", srv.addr);
    s3.send(sse);
    let r = s3.read_response();
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert!(
        r.text().contains("server.handshake_rate_per_ip"),
        "{}",
        r.text()
    );
    let mut w = connect_from("127.0.0.7", srv.addr);
    w.send(
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert_eq!(w.read_response().status, 429);

    // plain requests are not handshakes; another address has its own bucket
    assert_eq!(
        connect_from("127.0.0.7", srv.addr).get("/healthz").status,
        200
    );
    let _s4 = SseClient::open_on(connect_from("127.0.0.8", srv.addr), "/sse?room=r", "");

    // the open stream keeps receiving
    wait_subscribers(srv.addr, "r", 2);
    publish(srv.addr, "r", None, "still here");
    assert_eq!(s1.next_event().data, "still here");

    // the bucket refills at the rate; every refusal is counted
    let mut refused = 2;
    eventually("a refilled bucket", || {
        let mut c = connect_from("127.0.0.7", srv.addr);
        c.send(sse);
        let ok = c.read_response_for(true).status == 200;
        refused += usize::from(!ok);
        ok
    });
    assert_eq!(
        metric(
            srv.addr,
            "ringcast_limit_hits_total",
            "limit=\"handshake_rate_per_ip\""
        ),
        refused as f64
    );
}

#[test]
fn max_rooms_refuses_new_rooms_and_counts_it() {
    let srv = TestServer::start("[hub]\nmax_rooms = 2\nauto_join_room = \"\"\n");
    let mut c = srv.connect();
    for room in ["one", "two"] {
        c.send(format!(
            "POST /publish/{room} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
        ));
        assert_eq!(c.read_response().status, 202);
    }
    c.send("POST /publish/three HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx");
    let r = c.read_response();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("hub.max_rooms"), "{}", r.text());
    // existing rooms keep working
    c.send("POST /publish/one HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\ny");
    assert_eq!(c.read_response().status, 202);
    assert_eq!(
        metric(srv.addr, "ringcast_limit_hits_total", "limit=\"max_rooms\""),
        1.0
    );
}

#[test]
fn too_many_rooms_in_one_request_is_counted() {
    let srv = TestServer::start("[sse]\nmax_rooms_per_connection = 1\n");
    let mut c = srv.connect();
    c.send("GET /sse?room=a&room=b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().status, 400);
    assert_eq!(
        metric(
            srv.addr,
            "ringcast_limit_hits_total",
            "limit=\"max_rooms_per_connection\""
        ),
        1.0
    );
}

#[test]
fn sighup_changes_limits_on_the_running_server() {
    let mut srv = TestServer::start("[server]\nworkers = 1\n");
    let mut held = connect_from("127.0.0.9", srv.addr);
    assert_eq!(held.get("/healthz").status, 200);
    assert_eq!(
        connect_from("127.0.0.9", srv.addr).get("/healthz").status,
        200
    );

    std::fs::write(
        srv.config_path(),
        "[server]\nworkers = 1\nmax_connections_per_ip = 1\n[hub]\nmax_rooms = 5\n",
    )
    .unwrap();
    srv.signal(libc::SIGHUP);
    let line = srv.wait_log("SIGHUP: server.max_connections_per_ip");
    assert!(line.contains("0 -> 1 (applied)"), "{line}");
    let line = srv.wait_log("SIGHUP: hub.max_rooms");
    assert!(line.contains("-> 5 (applied)"), "{line}");

    // connections made after the reload are counted: one per address
    let mut first = connect_from("127.0.0.10", srv.addr);
    assert_eq!(first.get("/healthz").status, 200);
    let mut second = connect_from("127.0.0.10", srv.addr);
    assert_eq!(second.read_response().status, 429);
    // the connection from before the reload is not cut
    assert_eq!(held.get("/healthz").status, 200);

    // and back: a reload that lifts the limit applies too
    std::fs::write(srv.config_path(), "[server]\nworkers = 1\n").unwrap();
    srv.signal(libc::SIGHUP);
    let line = srv.wait_log("SIGHUP: server.max_connections_per_ip: 1 -> 0");
    assert!(line.ends_with("(applied)"), "{line}");
    assert_eq!(
        connect_from("127.0.0.10", srv.addr).get("/healthz").status,
        200
    );
}

#[test]
fn sighup_changes_the_publish_token_without_logging_it() {
    let old = "old-token-0123456789";
    let new = "new-token-9876543210";
    let mut srv = TestServer::start(&format!("[hub]\npublish_token = \"{old}\"\n"));
    let addr = srv.addr;
    let publish_with = |token: &str| {
        let mut c = Client::connect(addr);
        c.send(format!(
            "POST /publish/r HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 1\r\n\r\nx"
        ));
        c.read_response().status
    };
    assert_eq!(publish_with(old), 202);
    assert_eq!(publish_with(new), 401);
    std::fs::write(
        srv.config_path(),
        format!("[hub]\npublish_token = \"{new}\"\n"),
    )
    .unwrap();
    srv.signal(libc::SIGHUP);
    let line = srv.wait_log("SIGHUP: hub.publish_token");
    assert!(line.ends_with("(applied)"), "{line}");
    assert_eq!(publish_with(new), 202);
    assert_eq!(publish_with(old), 401);
    for l in srv.log_now() {
        assert!(
            !l.contains(old) && !l.contains(new),
            "a token was logged: {l}"
        );
    }
}
