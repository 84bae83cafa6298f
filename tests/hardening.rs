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

/// POSTs raw bytes to `/publish/{room}`.
fn publish_bytes(addr: std::net::SocketAddr, room: &str, body: &[u8]) -> Response {
    let mut c = Client::connect(addr);
    let mut req = format!(
        "POST /publish/{room} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    c.send(req);
    c.read_response()
}

#[test]
fn text_frames_never_carry_invalid_utf8() {
    // the demo chat (htmx envelope) is on with the defaults
    let srv = TestServer::start("");
    let mut chat = WsClient::connect(srv.addr, "/demo/chat/ws", "");
    wait_subscribers(srv.addr, "demo-chat", 1);
    let r = publish_bytes(srv.addr, "demo-chat", b"<p>\xff\xfe</p>");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("offset 3"), "{}", r.text());
    assert!(r.text().contains("not UTF-8"), "{}", r.text());
    // what is UTF-8 goes through, and is the first thing the chat receives
    assert_eq!(
        publish_bytes(srv.addr, "demo-chat", "<p>é</p>".as_bytes()).status,
        202
    );
    let f = chat.next_data();
    assert_eq!(f.opcode, 1);
    assert!(f.text().starts_with("<p>é</p>"), "{}", f.text());
    // raw rooms may carry bytes: their subscribers get a binary frame
    let mut raw = WsClient::connect(srv.addr, "/ws?room=bin", "");
    wait_subscribers(srv.addr, "bin", 1);
    assert_eq!(publish_bytes(srv.addr, "bin", b"\xff\x00").status, 202);
    let f = raw.next_data();
    assert_eq!((f.opcode, f.payload), (2, vec![0xff, 0x00]));
}

#[test]
fn a_json_envelope_makes_every_room_text_only() {
    let srv = TestServer::start("[ws.rooms]\nenvelope = \"json\"\n");
    let mut ws = WsClient::connect(srv.addr, "/ws?room=j", "");
    wait_subscribers(srv.addr, "j", 1);
    let r = publish_bytes(srv.addr, "j", b"abc\xc3(");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("offset 3"), "{}", r.text());
    assert_eq!(publish_bytes(srv.addr, "j", b"fine").status, 202);
    let v: serde_json::Value = serde_json::from_str(&ws.next_data().text()).unwrap();
    assert_eq!(v["data"], "fine");
    assert_eq!(
        metric(srv.addr, "ringcast_rejected_handshakes_total", "hub_rules"),
        1.0
    );
}

#[test]
fn clients_cannot_publish_into_reserved_rooms() {
    let srv = TestServer::start(
        "[ws.rooms]\nclient_publish = true\n[dashboard]\nenabled = false\n[hub]\nauto_join_room = \"\"\n",
    );
    let mut ws = WsClient::connect(srv.addr, "/ws?room=__dashboard", "");
    ws.send_text("<div id=\"fake\">forged</div>");
    let (code, reason) = ws.expect_close();
    assert_eq!(code, Some(1008));
    assert!(reason.contains("reserved"), "{reason}");
    let info = room_info(srv.addr, "__dashboard");
    assert_eq!(info["history"], 0, "{info}");
    // HTTP publishing is refused the same way
    assert_eq!(publish_bytes(srv.addr, "__dashboard", b"x").status, 403);
    // other rooms take client publishes as before
    let mut ok = WsClient::connect(srv.addr, "/ws?room=open", "");
    ok.send_text("hello");
    assert_eq!(ok.next_data().text(), "hello");
}
