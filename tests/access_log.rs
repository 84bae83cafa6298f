//! The access log (`log.access`): a line per HTTP request and per stream
//! open/close, as text or JSON, to stderr or a file, and nothing lost at exit.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// Splits a text line `TS PEER "REQUEST" STATUS BYTES DURms` into its fields.
fn http_fields(line: &str) -> (String, String, u16, u64, f64) {
    let (pre, rest) = line.split_once(" \"").unwrap();
    let (request, post) = rest.split_once("\" ").unwrap();
    let peer = pre.split_whitespace().nth(1).unwrap().to_string();
    let mut it = post.split_whitespace();
    let status = it.next().unwrap().parse().unwrap();
    let bytes = it.next().unwrap().parse().unwrap();
    let ms = it.next().unwrap().trim_end_matches("ms").parse().unwrap();
    (peer, request.to_string(), status, bytes, ms)
}

#[test]
fn text_lines_for_requests_and_streams() {
    let mut srv = TestServer::start("[log]\naccess = \"stderr\"\n");
    let mut c = srv.connect();
    let ok = c.get("/healthz");
    assert_eq!(ok.status, 200);
    assert_eq!(c.get("/nope").status, 404);
    publish(srv.addr, "r", None, "hello");

    let line = srv.wait_log("\"GET /healthz HTTP/1.1\"");
    // the time: RFC 3339, UTC, to the millisecond (`2026-12-04T06:40:12.345Z`)
    let ts = line.split(' ').next().unwrap();
    assert_eq!(
        (ts.len(), ts.as_bytes()[19], ts.as_bytes()[23]),
        (24, b'.', b'Z'),
        "{line}"
    );
    assert!(humantime::parse_rfc3339(ts).is_ok(), "{line}");
    let (peer, request, status, bytes, ms) = http_fields(&line);
    assert_eq!(peer, "127.0.0.1");
    assert_eq!(request, "GET /healthz HTTP/1.1");
    assert_eq!(status, 200);
    assert_eq!(bytes as usize, ok.head.len() + ok.body.len());
    assert!((0.0..10_000.0).contains(&ms), "{line}");
    let (_, _, status, _, _) = http_fields(&srv.wait_log("\"GET /nope HTTP/1.1\""));
    assert_eq!(status, 404);
    let (_, _, status, _, _) = http_fields(&srv.wait_log("\"POST /publish/r HTTP/1.1\""));
    assert_eq!(status, 202);

    // a stream: its open line, then on close its duration, bytes and end
    let mut s = SseClient::open(srv.addr, "/sse?room=a", "");
    wait_subscribers(srv.addr, "a", 1);
    publish(srv.addr, "a", None, "x");
    assert_eq!(s.next_event().data, "x");
    drop(s);
    let open = srv.wait_log(" sse open \"/sse?room=a\"");
    assert!(open.contains(" 127.0.0.1 sse open"), "{open}");
    let close = srv.wait_log(" sse close ");
    let f: Vec<&str> = close.split_whitespace().collect();
    // TS PEER sse close BYTES DURms END
    assert_eq!(f[1], "127.0.0.1");
    assert!(f[4].parse::<u64>().unwrap() > 0, "{close}");
    assert!(f[5].ends_with("ms"), "{close}");
    assert_eq!(f[6], "client", "{close}");

    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.send_text("hi");
    assert_eq!(ws.next_data().text(), "hi");
    ws.send_close(1000, "");
    ws.expect_close();
    srv.wait_log(" ws open \"/echo\"");
    let close = srv.wait_log(" ws close ");
    assert!(close.ends_with(" closed"), "{close}");
}

/// Each answer's line carries the status the client got and the bytes it
/// was sent, whatever wrote the answer: the endpoint table (405, 304, a
/// refused upgrade, a refused token), the hub (503), or the driver (413).
#[test]
fn every_answer_is_logged_with_the_status_sent() {
    let mut srv = TestServer::start(
        "[log]\naccess = \"stderr\"\n[http]\nmax_body_size = \"16B\"\n[auth]\nsubscribe = true\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n",
    );
    let cases: [(&str, &str); 5] = [
        ("POST /healthz", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        ("GET /sse?room=a", "GET /sse?room=a HTTP/1.1\r\nHost: x\r\n\r\n"),
        (
            "GET /echo",
            "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        ),
        (
            "GET /favicon.svg",
            "GET /favicon.svg HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n\r\n",
        ),
        (
            "POST /publish/r",
            "POST /publish/r HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n01234567890123456",
        ),
    ];
    for (request, raw) in cases {
        let mut c = srv.connect();
        c.send(raw);
        let r = c.read_response();
        let line = srv.wait_log(&format!("\"{request} HTTP/1.1\""));
        let (_, _, status, bytes, _) = http_fields(&line);
        assert_eq!(status, r.status, "{line}");
        assert_eq!(bytes as usize, r.head.len() + r.body.len(), "{line}");
    }
}

#[test]
fn json_lines_and_refusals_are_logged() {
    let mut srv = TestServer::start("[log]\naccess = \"stderr\"\nformat = \"json\"\n");
    let mut c = srv.connect();
    c.send("BAD\r\n\r\n");
    assert_eq!(c.read_response().status, 400);
    let mut c = srv.connect();
    assert_eq!(c.get("/healthz?x=%22q%22").status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = (false, false);
    while seen != (true, true) {
        assert!(
            Instant::now() < deadline,
            "lines missing: {:?}",
            srv.log_now()
        );
        for line in srv.log_now().to_vec() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["status"] == 400 {
                assert_eq!(v["target"], "-");
                seen.0 = true;
            }
            if v["target"] == "/healthz?x=%22q%22" {
                assert_eq!(v["status"], 200);
                assert_eq!(v["method"], "GET");
                assert_eq!(v["peer"], "127.0.0.1");
                assert!(v["bytes"].as_u64().unwrap() > 0);
                assert!(v["duration_ms"].as_f64().is_some());
                seen.1 = true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn file_log_keeps_every_line_through_shutdown() {
    let dir = TempDir::new("access");
    let path = dir.0.join("access.log");
    let mut srv = TestServer::start(&format!(
        "[server]\nworkers = 2\n[log]\naccess = {:?}\n",
        path.to_str().unwrap()
    ));
    let mut c = srv.connect();
    for i in 0..500 {
        assert_eq!(c.get(&format!("/healthz?n={i}")).status, 200);
    }
    drop(c);
    srv.signal(libc::SIGTERM);
    let status = srv.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success());
    // everything handed over before exit was written
    let text = std::fs::read_to_string(&path).unwrap();
    for i in 0..500 {
        assert!(
            text.contains(&format!("\"GET /healthz?n={i} HTTP/1.1\" 200 ")),
            "line {i} missing"
        );
    }
}

#[test]
fn an_unwritable_access_log_stops_start_up_naming_the_key() {
    let dir = TempDir::new("badaccess");
    let cfg = dir.0.join("c.toml");
    std::fs::write(&cfg, "[log]\naccess = \"/nonexistent-dir/x/access.log\"\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log.access"), "{err}");
}
