//! HTTP/1.1 on a real server: routes, keep-alive, pipelining, HEAD,
//! `Connection: close`, bodies and `Expect: 100-continue`, and every error
//! status with the limit that produces it.

mod common;
use common::*;

#[test]
fn healthz_answers_ok() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    let r = c.get("/healthz");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    assert_eq!(r.header("content-length").as_deref(), Some("2"));
    assert_eq!(r.header("server").as_deref(), Some("ringcast"));
    assert!(r.header("date").unwrap().ends_with("GMT"));
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    let r = c.get("/no/such/thing");
    assert_eq!(r.status, 404);
    c.send("DELETE /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("GET, HEAD"));
    // the connection is still usable after both
    assert_eq!(c.get("/healthz").status, 200);
}

#[test]
fn head_has_headers_and_no_body() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    c.send("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_for(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length").as_deref(), Some("2"));
    // The next response starts right after the head: no body bytes in between.
    let r = c.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    c.send(
        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /nope HTTP/1.1\r\nHost: t\r\n\r\n\
         POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
         GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let statuses: Vec<u16> = (0..4).map(|_| c.read_response().status).collect();
    assert_eq!(statuses, [200, 404, 405, 200]);
    // and the connection stays open for more
    assert_eq!(c.get("/healthz").status, 200);
}

#[test]
fn pipelined_requests_split_at_every_byte_still_parse() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    let req = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n\r\n";
    for b in req {
        c.send([*b]);
    }
    assert_eq!(c.read_response().status, 200);
}

#[test]
fn connection_close_and_http10_close_after_response() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    c.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(c.closed_by_server());

    let mut c = srv.connect();
    c.send("GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert!(c.closed_by_server());

    let mut c = srv.connect();
    c.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_eq!(c.get("/healthz").status, 200);
}

#[test]
fn expect_100_continue_then_body() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    c.send(
        "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = c.read_response();
    assert_eq!(interim.status, 100);
    c.send("abcd");
    let r = c.read_response();
    assert_eq!(r.status, 405);
    assert_eq!(c.get("/healthz").status, 200);
}

#[test]
fn malformed_request_is_400_and_closes() {
    let srv = TestServer::start("");
    for bad in [
        "GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
        "G@T / HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/7.0\r\nHost: t\r\n\r\n",
        "GET nopath HTTP/1.1\r\nHost: t\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03\r\n\r\n",
    ] {
        let mut c = srv.connect();
        c.send(bad);
        let r = c.read_response();
        assert_eq!(r.status, 400, "for {bad:?}");
        assert_eq!(r.header("connection").as_deref(), Some("close"));
        assert!(r.text().starts_with("400 Bad Request: "), "{}", r.text());
        assert!(c.closed_by_server(), "for {bad:?}");
    }
}

#[test]
fn chunked_request_body_is_refused_not_misread() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    c.send("POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 501);
    assert!(
        c.closed_by_server(),
        "nothing after the refusal: the chunk is never read as a request"
    );
}

#[test]
fn limits_give_413_414_431() {
    let srv = TestServer::start(
        "[http]\nmax_body_size = 100\nmax_request_line = 64\nmax_header_bytes = 256\nmax_headers = 8\n",
    );
    // body over the limit: refused from the header, without reading the body
    let mut c = srv.connect();
    c.send("POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 413);
    assert!(c.closed_by_server());
    // exactly at the limit is fine
    let mut c = srv.connect();
    c.send(format!(
        "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{}",
        "x".repeat(100)
    ));
    assert_eq!(c.read_response().status, 405);
    // request line too long
    let mut c = srv.connect();
    c.send(format!(
        "GET /{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(80)
    ));
    assert_eq!(c.read_response().status, 414);
    assert!(c.closed_by_server());
    // head too large
    let mut c = srv.connect();
    c.send(format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(300)
    ));
    assert_eq!(c.read_response().status, 431);
    assert!(c.closed_by_server());
    // too many headers
    let mut c = srv.connect();
    let many: String = (0..9).map(|i| format!("X-{i}: v\r\n")).collect();
    c.send(format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n"));
    let r = c.read_response();
    assert_eq!(r.status, 431);
    assert!(r.text().contains("http.max_headers"), "{}", r.text());
}

#[test]
fn a_limit_hit_does_not_disturb_other_connections() {
    let srv = TestServer::start("[http]\nmax_body_size = 10\n");
    let mut good = srv.connect();
    assert_eq!(good.get("/healthz").status, 200);
    let mut bad = Vec::new();
    for _ in 0..20 {
        let mut c = srv.connect();
        c.send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
        bad.push(c);
    }
    for c in &mut bad {
        assert_eq!(c.read_response().status, 413);
    }
    // a half-sent request on another connection does not block anyone
    let mut slow = srv.connect();
    slow.send("GET /healthz HTTP/1.1\r\nHo");
    assert_eq!(good.get("/healthz").status, 200);
    slow.send("st: t\r\n\r\n");
    assert_eq!(slow.read_response().status, 200);
}

#[test]
fn idle_client_is_closed_after_header_timeout() {
    let srv = TestServer::start("[http]\nheader_timeout = \"300ms\"\n");
    // a connection that never sends anything
    let mut silent = srv.connect();
    assert!(silent.closed_by_server());
    // a slow client that never finishes its head gets 408 then close
    let mut slow = srv.connect();
    slow.send("GET /healthz HTTP/1.1\r\n");
    let r = slow.read_response();
    assert_eq!(r.status, 408);
    assert!(slow.closed_by_server());
}

#[test]
fn keepalive_timeout_closes_idle_keepalive_connection() {
    let srv = TestServer::start("[http]\nkeepalive_timeout = \"300ms\"\n");
    let mut c = srv.connect();
    assert_eq!(c.get("/healthz").status, 200);
    assert!(c.closed_by_server());
}

#[test]
fn max_requests_per_connection_closes_after_the_last() {
    let srv = TestServer::start("[http]\nmax_requests_per_connection = 2\n");
    let mut c = srv.connect();
    assert_eq!(c.get("/healthz").header("connection"), None);
    let r = c.get("/healthz");
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(c.closed_by_server());
}

#[test]
fn embedded_index_page_when_no_static_dir() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(r.text().contains("ringcast"));
    assert_eq!(c.get("/index.html").status, 200);
}
