//! Hardening of the HTTP edge on a real server: token values never reach
//! the access log or the server's log (query parameter, also percent-encoded
//! or renamed on reload; `Authorization`; the token cookie; the secrets of
//! the configuration); `Host` must be `uri-host [":" port]`; a WebSocket
//! upgrade needs HTTP/1.1; an HTTP/1.0 connection kept open says so.

mod common;
use common::*;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every secret of this file contains this marker, so one search finds any leak.
const MARK: &str = "SECRET";
const JWT_SECRET: &str = "jwt-SECRET-of-at-least-32-bytes!!!";

/// An HS256 token for `rooms`, valid for ten minutes.
fn jwt(rooms: &[&str]) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let p = URL_SAFE_NO_PAD.encode(json!({"rooms": rooms, "exp": exp}).to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{p}.{s}")
}

fn auth_config(access: &str, query_param: &str, publish_token: &str) -> String {
    format!(
        "[log]\naccess = {access:?}\nlevel = \"debug\"\n\
         [hub]\npublish_token = {publish_token:?}\n\
         [auth]\njwt_secret = {JWT_SECRET:?}\nsubscribe = true\npublish = \"token_or_jwt\"\n\
         query_param = {query_param:?}\n"
    )
}

/// One request on `c` with extra header lines; its response.
fn get(c: &mut Client, target: &str, headers: &str) -> Response {
    c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n"));
    c.read_response()
}

#[test]
fn token_values_and_secrets_never_reach_a_log() {
    let dir = TempDir::new("redact");
    let access = dir.0.join("access.log");
    let access_s = access.to_str().unwrap();
    let mut srv = TestServer::start(&auth_config(access_s, "token", "publish-SECRET-1"));
    let good = jwt(&["r"]);
    let signature = good.rsplit('.').next().unwrap().to_string();

    // a stream with a good token in the query
    let sse = SseClient::open(srv.addr, &format!("/sse?room=r&token={good}"), "");
    let mut c = srv.connect();
    // a bad one
    assert_eq!(get(&mut c, "/sse?room=r&token=SECRET-sse", "").status, 401);
    // room reads: good token in the query, bad ones in the header, the cookie,
    // and a query parameter whose name is percent-encoded
    assert_eq!(
        get(&mut c, &format!("/rooms/r?token={good}"), "").status,
        200
    );
    let bearer = "Authorization: Bearer SECRET-bearer\r\n";
    assert_eq!(get(&mut c, "/rooms/r", bearer).status, 401);
    let cookie = "Cookie: a=b; ringcast_token=SECRET-cookie\r\n";
    assert_eq!(get(&mut c, "/rooms/r", cookie).status, 401);
    assert_eq!(
        get(&mut c, "/rooms/r?%74oken=SECRET-encoded", "").status,
        401
    );
    // a refused upgrade
    let (mut ws, r) = WsClient::handshake(srv.addr, "/ws?room=r&token=SECRET-ws", "");
    assert_eq!(r.status, 401, "{}", r.head);
    assert!(ws.closed_by_server());
    // a publish with the static token
    c.send(
        "POST /publish/r HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer publish-SECRET-1\r\n\
         Content-Length: 1\r\n\r\nx",
    );
    assert_eq!(c.read_response().status, 202);

    // another parameter name (and publish token), applied live on SIGHUP
    std::fs::write(
        srv.config_path(),
        auth_config(access_s, "access_token", "publish-SECRET-2"),
    )
    .unwrap();
    srv.signal(libc::SIGHUP);
    srv.wait_log("SIGHUP: auth.query_param");
    let mut c = srv.connect();
    let r = get(&mut c, &format!("/rooms/r?access_token={good}"), "");
    assert_eq!(r.status, 200, "the renamed parameter carries the token");
    assert_eq!(
        get(&mut c, "/rooms/r?access_token=SECRET-custom", "").status,
        401
    );

    // the log file is complete once the server has exited
    drop((sse, c));
    srv.signal(libc::SIGTERM);
    assert!(srv.wait_exit(Duration::from_secs(15)).is_some());
    let stderr = srv.log_after_exit().join("\n");
    let log = std::fs::read_to_string(&access).unwrap();

    for line in [
        " sse open \"/sse?room=r&token=[redacted]\"",
        "\"GET /sse?room=r&token=[redacted] HTTP/1.1\" 401 ",
        "\"GET /rooms/r?token=[redacted] HTTP/1.1\" 200 ",
        "\"GET /rooms/r HTTP/1.1\" 401 ",
        "\"GET /rooms/r?%74oken=[redacted] HTTP/1.1\" 401 ",
        "\"GET /ws?room=r&token=[redacted] HTTP/1.1\" 401 ",
        "\"POST /publish/r HTTP/1.1\" 202 ",
        "\"GET /rooms/r?access_token=[redacted] HTTP/1.1\" 200 ",
        "\"GET /rooms/r?access_token=[redacted] HTTP/1.1\" 401 ",
    ] {
        assert!(log.contains(line), "no {line:?} in the access log:\n{log}");
    }
    assert_eq!(log.matches("\"GET /rooms/r HTTP/1.1\" 401 ").count(), 2);
    for (what, text) in [("access log", &log), ("server log", &stderr)] {
        for secret in [MARK, good.as_str(), signature.as_str()] {
            assert!(!text.contains(secret), "{what} holds {secret:?}:\n{text}");
        }
    }
    // the reload named the changed secret without its value
    assert!(
        stderr.contains("SIGHUP: hub.publish_token: (secret) -> (secret)"),
        "{stderr}"
    );
}

#[test]
fn host_must_be_uri_host_and_optional_port() {
    let srv = TestServer::start("");
    for (host_lines, rule) in [
        ("Host: a b\r\n", "whitespace"),
        ("Host: user@evil.example\r\n", "userinfo"),
        ("Host: [::1\r\n", "IP-literal"),
        ("Host: <x>\r\n", "reg-name"),
        ("Host: a:99999\r\n", "65535"),
        ("Host: a:x\r\n", "port"),
        ("Host: a\r\nHost: a\r\n", "more than one Host"),
        ("", "without a Host"),
    ] {
        let mut c = srv.connect();
        c.send(format!("GET /healthz HTTP/1.1\r\n{host_lines}\r\n"));
        let r = c.read_response();
        assert_eq!(r.status, 400, "{host_lines:?}: {}", r.head);
        assert!(r.text().contains(rule), "{host_lines:?}: {}", r.text());
        assert_eq!(r.header("connection").as_deref(), Some("close"));
        assert!(c.closed_by_server(), "{host_lines:?}: still open");
    }
    let mut c = srv.connect();
    for host in [
        "example.com",
        "example.com:8080",
        "127.0.0.1:1",
        "[::1]:8080",
        "xn--bcher-kva.example",
    ] {
        c.send(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        let r = c.read_response();
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{host}");
    }
}

#[test]
fn websocket_upgrade_over_http10_is_refused() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    c.send(format!(
        "GET /echo HTTP/1.0\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ));
    let r = c.read_response();
    assert_eq!(r.status, 400, "{}", r.head);
    assert!(r.header("sec-websocket-accept").is_none());
    assert!(r.text().contains("RFC 6455 §4.2.1"), "{}", r.text());
    assert!(c.closed_by_server());
    let refused = metric(
        srv.addr,
        "ringcast_rejected_handshakes_total",
        "reason=\"websocket\"",
    );
    assert_eq!(refused, 1.0);
    // the same upgrade over HTTP/1.1 is accepted
    WsClient::connect(srv.addr, "/echo", "");
}

#[test]
fn http10_keep_alive_is_announced_and_kept_until_the_server_closes() {
    let srv = TestServer::start("[http]\nmax_requests_per_connection = 3\n");
    let mut c = srv.connect();
    let keep = "Connection: keep-alive\r\n";
    // answered at once, and after a hub round trip
    for target in ["/healthz", "/rooms/r"] {
        c.send(format!("GET {target} HTTP/1.0\r\n{keep}\r\n"));
        let r = c.read_response();
        assert_eq!(r.status, 200, "{target}");
        assert_eq!(
            r.header("connection").as_deref(),
            Some("keep-alive"),
            "{target}: {}",
            r.head
        );
    }
    // the server's limit closes it: the answer must not claim keep-alive
    c.send(format!("GET /healthz HTTP/1.0\r\n{keep}\r\n"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(c.closed_by_server());
    // without keep-alive an HTTP/1.0 connection closes after its answer
    let mut c = srv.connect();
    c.send("GET /healthz HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_ne!(r.header("connection").as_deref(), Some("keep-alive"));
    assert!(c.closed_by_server());
}
