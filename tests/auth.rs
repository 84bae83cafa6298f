//! Signed-token auth ([auth]) over real sockets: SSE, the /ws handshake,
//! /rooms reads and /publish with the token in the header, the query or a
//! cookie; good tokens stream and publish, expired, badly signed, `alg:
//! none`, malformed and missing ones get 401 (no stream, no 101), rooms the
//! token does not list get 403; wildcards; the static publish token; /ws
//! client publishes; the rejection metrics; the secret from the
//! environment; a token minted by PyJWT; and `ServerHandle::reload_auth`.

mod common;
use common::*;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &str = "test-secret-of-at-least-32-bytes!!";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A JWT with this header, signed with HMAC-SHA256 over the base64url parts.
fn sign_with(header: &Value, claims: &Value, secret: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{p}.{s}")
}

/// An HS256 token with `claims` plus an `exp` ten minutes ahead.
fn token(mut claims: Value) -> String {
    claims["exp"] = json!(now() + 600);
    sign_with(&json!({"alg": "HS256", "typ": "JWT"}), &claims, SECRET)
}

fn expired(claims: Value) -> String {
    let mut claims = claims;
    claims["exp"] = json!(now() - 3600);
    sign_with(&json!({"alg": "HS256"}), &claims, SECRET)
}

fn alg_none(claims: Value) -> String {
    let mut claims = claims;
    claims["exp"] = json!(now() + 600);
    let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{h}.{p}.")
}

fn config(extra: &str) -> String {
    format!("[auth]\njwt_secret = \"{SECRET}\"\n{extra}")
}

/// Sends one request with extra header lines and reads the response.
fn request(c: &mut Client, method: &str, target: &str, headers: &str, body: &str) -> Response {
    c.send(format!(
        "{method} {target} HTTP/1.1\r\nHost: t\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    c.read_response()
}

fn bearer(t: &str) -> String {
    format!("Authorization: Bearer {t}\r\n")
}

/// Sum over workers of `ringcast_rejected_handshakes_total{reason=...}`.
fn rejected(addr: std::net::SocketAddr, reason: &str) -> u64 {
    let mut c = Client::connect(addr);
    let text = c.get("/metrics").text();
    let prefix = format!("ringcast_rejected_handshakes_total{{reason=\"{reason}\",");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Asserts a 401 naming `reason` in the body and the WWW-Authenticate challenge.
fn assert_401(r: &Response, reason: &str) {
    assert_eq!(r.status, 401, "{}{}", r.head, r.text());
    assert!(r.text().contains(reason), "{}", r.text());
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(
        challenge.starts_with("Bearer realm=\"ringcast\""),
        "{challenge}"
    );
    if reason != "missing token" {
        assert!(
            challenge.contains("error=\"invalid_token\"")
                && challenge.contains("error_description=\"")
                && challenge.contains(reason),
            "{challenge}"
        );
    }
}

#[test]
fn sse_streams_with_a_good_token_from_header_query_or_cookie() {
    let srv = TestServer::start(&config("subscribe = true\n"));
    let t = token(json!({"rooms": ["news"]}));
    let mut streams = vec![
        SseClient::open(srv.addr, "/sse?room=news", &bearer(&t)),
        SseClient::open(srv.addr, &format!("/sse?room=news&token={t}"), ""),
        SseClient::open(
            srv.addr,
            "/sse?room=news",
            &format!("Cookie: theme=dark; ringcast_token={t}; x=y\r\n"),
        ),
    ];
    // with the token on, /rooms reads need it too
    let mut c = srv.connect();
    for _ in 0..500 {
        let r = request(&mut c, "GET", "/rooms/news", &bearer(&t), "");
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        if v["subscribers"] == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let id = publish(srv.addr, "news", Some("headline"), "hello");
    for s in &mut streams {
        let e = s.next_event();
        // the id is a cursor over the stream's rooms (news, then __all)
        assert!(e.id.unwrap().starts_with(&format!("{id}.")));
        assert_eq!(e.event.as_deref(), Some("headline"));
        assert_eq!(e.data, "hello");
    }
    let r = request(
        &mut c,
        "GET",
        "/rooms/news/messages?since=0",
        &bearer(&t),
        "",
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("hello"), "{}", r.text());
}

#[test]
fn sse_refusals_are_answers_not_streams() {
    let srv = TestServer::start(&config("subscribe = true\n"));
    let good = token(json!({"rooms": ["news", "chat.*"]}));
    let wrong_key = sign_with(
        &json!({"alg": "HS256"}),
        &json!({"exp": now() + 600, "rooms": ["news"]}),
        "another-secret-of-at-least-32-bytes",
    );
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "missing token"),
        (
            bearer(&expired(json!({"rooms": ["news"]}))),
            "token expired",
        ),
        (bearer(&wrong_key), "bad signature"),
        (
            bearer(&alg_none(json!({"rooms": ["news"]}))),
            "wrong algorithm",
        ),
        (bearer("not-a-jwt"), "malformed token"),
        (
            bearer("!.e30.x"),
            "malformed token: the header is not base64url",
        ),
        // "WzFd" is [1]
        (
            bearer("WzFd.e30.x"),
            "malformed token: the header is not a JSON object",
        ),
        (
            bearer(&sign_with(
                &json!({"alg": "HS256"}),
                &json!({"rooms": ["news"]}),
                SECRET,
            )),
            "the exp claim is required",
        ),
    ];
    // One keep-alive connection: each refusal is a complete response, no stream opened.
    let mut c = srv.connect();
    for (headers, reason) in &cases {
        let r = request(&mut c, "GET", "/sse?room=news", headers, "");
        assert_401(&r, reason);
        assert_ne!(
            r.header("content-type").as_deref(),
            Some("text/event-stream; charset=utf-8")
        );
    }
    let r = request(
        &mut c,
        "GET",
        "/sse?room=news&room=sport",
        &bearer(&good),
        "",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.text(),
        "403 Forbidden: the token does not allow subscribing to room sport\n"
    );
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    // wildcard: chat.* allows chat.anything but not chatroom
    let r = request(&mut c, "GET", "/sse?room=chatroom", &bearer(&good), "");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("room chatroom"));
    assert_eq!(
        c.get("/healthz").status,
        200,
        "the connection is still usable"
    );
    let mut s = SseClient::open(srv.addr, "/sse?room=chat.lobby&room=news", &bearer(&good));
    let star = token(json!({"rooms": "*"}));
    let mut any = SseClient::open(srv.addr, "/sse?room=anything", &bearer(&star));
    wait_room(srv.addr, "chat.lobby", &good, 1);
    wait_room(srv.addr, "anything", &star, 1);
    publish(srv.addr, "chat.lobby", None, "hi");
    publish(srv.addr, "anything", None, "there");
    assert_eq!(s.next_event().data, "hi");
    assert_eq!(any.next_event().data, "there");
    // the auto-join room (__all) is joined without being listed
    publish(srv.addr, "__all", None, "everyone");
    assert_eq!(s.next_event().data, "everyone");
    assert_eq!(rejected(srv.addr, "unauthorized"), cases.len() as u64);
    assert_eq!(rejected(srv.addr, "forbidden"), 2);
}

/// Polls `GET /rooms/{room}` (with a token) until it counts `n` subscribers.
fn wait_room(addr: std::net::SocketAddr, room: &str, token: &str, n: u64) {
    let mut c = Client::connect(addr);
    for _ in 0..500 {
        let r = request(&mut c, "GET", &format!("/rooms/{room}"), &bearer(token), "");
        assert_eq!(r.status, 200, "{}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        if v["subscribers"] == n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("room {room} never reached {n} subscribers");
}

#[test]
fn rooms_reads_need_a_token_for_the_room() {
    let srv = TestServer::start(&config("subscribe = true\n"));
    let t = token(json!({"rooms": ["news"]}));
    let mut c = srv.connect();
    assert_401(&c.get("/rooms/news"), "missing token");
    assert_401(&c.get("/rooms/news/messages?since=0"), "missing token");
    let r = request(&mut c, "GET", "/rooms/sport", &bearer(&t), "");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("room sport"));
    let r = request(&mut c, "GET", &format!("/rooms/news?token={t}"), "", "");
    assert_eq!(r.status, 200);
    // HEAD refusals carry no body
    let r = {
        c.send("HEAD /rooms/sport HTTP/1.1\r\nHost: t\r\n".to_string() + &bearer(&t) + "\r\n");
        c.read_response_for(true)
    };
    assert_eq!(r.status, 403);
    assert_eq!(c.get("/healthz").status, 200);
    assert_eq!(rejected(srv.addr, "unauthorized"), 2);
    assert_eq!(rejected(srv.addr, "forbidden"), 2);
}

#[test]
fn websocket_handshake_refusals_come_before_the_101() {
    let srv = TestServer::start(&config("subscribe = true\n"));
    let t = token(json!({"rooms": ["live"]}));
    for (target, headers, status, reason) in [
        ("/ws?room=live", String::new(), 401, "missing token"),
        (
            "/ws?room=live",
            bearer(&expired(json!({"rooms": ["live"]}))),
            401,
            "token expired",
        ),
        (
            "/ws?room=live",
            bearer(&alg_none(json!({"rooms": ["live"]}))),
            401,
            "wrong algorithm",
        ),
        ("/ws?room=other", bearer(&t), 403, "room other"),
    ] {
        let (mut c, r) = WsClient::handshake(srv.addr, target, &headers);
        assert_eq!(r.status, status, "{target} {headers}: {}", r.head);
        assert!(r.header("sec-websocket-accept").is_none());
        assert_eq!(r.header("connection").as_deref(), Some("close"));
        let len: usize = r.header("content-length").unwrap().parse().unwrap();
        let body = String::from_utf8(c.read_exact_bytes(len)).unwrap();
        assert!(body.contains(reason), "{body}");
        assert!(
            c.closed_by_server(),
            "the refused upgrade's connection is closed"
        );
    }
    // good tokens: header, query and cookie
    let mut socks = vec![
        WsClient::connect(srv.addr, "/ws?room=live", &bearer(&t)),
        WsClient::connect(srv.addr, &format!("/ws?room=live&token={t}"), ""),
        WsClient::connect(
            srv.addr,
            "/ws?room=live",
            &format!("Cookie: ringcast_token={t}\r\nOrigin: http://t\r\n"),
        ),
    ];
    wait_room(srv.addr, "live", &t, 3);
    publish(srv.addr, "live", None, "frame");
    for s in &mut socks {
        assert_eq!(s.next_data().text(), "frame");
    }
    assert_eq!(rejected(srv.addr, "unauthorized"), 3);
    assert_eq!(rejected(srv.addr, "forbidden"), 1);
    // auth refusals are not counted again as WebSocket protocol refusals
    assert_eq!(rejected(srv.addr, "websocket"), 0);
}

#[test]
fn publish_with_a_jwt_listing_the_room() {
    let srv = TestServer::start(&config("publish = \"jwt\"\n"));
    let t = token(json!({"publish": ["news", "chat.*"], "rooms": ["*"]}));
    let mut sub = SseClient::open(srv.addr, "/sse?room=news", "");
    wait_subscribers(srv.addr, "news", 1);
    let mut c = srv.connect();
    let r = request(&mut c, "POST", "/publish/news", &bearer(&t), "by jwt");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(sub.next_event().data, "by jwt");
    let r = request(
        &mut c,
        "POST",
        &format!("/publish/chat.x?token={t}"),
        "",
        "q",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let cookie = format!("Cookie: ringcast_token={t}\r\n");
    let r = request(&mut c, "POST", "/publish/chat.y", &cookie, "c");
    assert_eq!(r.status, 202, "{}", r.text());
    // a room not in the publish claim (the rooms claim does not count)
    let r = request(&mut c, "POST", "/publish/sport", &bearer(&t), "x");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        "403 Forbidden: the token does not allow publishing to room sport\n"
    );
    assert_401(
        &request(&mut c, "POST", "/publish/news", "", "x"),
        "missing token",
    );
    let old = expired(json!({"publish": ["news"]}));
    assert_401(
        &request(&mut c, "POST", "/publish/news", &bearer(&old), "x"),
        "token expired",
    );
    let forged = sign_with(
        &json!({"alg": "HS256"}),
        &json!({"exp": now() + 60, "publish": ["*"]}),
        "not-the-secret-but-32-bytes-long!!",
    );
    assert_401(
        &request(&mut c, "POST", "/publish/news", &bearer(&forged), "x"),
        "bad signature",
    );
    // subscribing needs no token here (auth.subscribe is off)
    assert_eq!(c.get("/rooms/news").status, 200);
    assert_eq!(rejected(srv.addr, "unauthorized"), 3);
    assert_eq!(rejected(srv.addr, "forbidden"), 1);
}

#[test]
fn static_publish_token_alone_or_with_jwt() {
    // hub.publish_token alone: the static bearer token (auth.publish = "auto")
    let srv = TestServer::start("[hub]\npublish_token = \"s3cret-static\"\n");
    let mut c = srv.connect();
    assert_eq!(
        request(&mut c, "POST", "/publish/a", &bearer("s3cret-static"), "x").status,
        202
    );
    assert_401(
        &request(&mut c, "POST", "/publish/a", &bearer("s3cret"), "x"),
        "not the publish token",
    );
    assert_eq!(
        request(&mut c, "POST", "/publish/a?token=s3cret-static", "", "x").status,
        202
    );
    drop(srv);

    let srv = TestServer::start(&config(
        "publish = \"token_or_jwt\"\n[hub]\npublish_token = \"s3cret-static\"\n",
    ));
    let mut c = srv.connect();
    let t = token(json!({"publish": ["a"]}));
    for (headers, status) in [
        (bearer("s3cret-static"), 202),
        (bearer(&t), 202),
        (bearer(&expired(json!({"publish": ["a"]}))), 401),
        (String::new(), 401),
    ] {
        let r = request(&mut c, "POST", "/publish/a", &headers, "x");
        assert_eq!(r.status, status, "{headers}: {}", r.text());
    }
    // the static token publishes anywhere; the JWT only where it says
    assert_eq!(
        request(&mut c, "POST", "/publish/b", &bearer("s3cret-static"), "x").status,
        202
    );
    assert_eq!(
        request(&mut c, "POST", "/publish/b", &bearer(&t), "x").status,
        403
    );
}

#[test]
fn websocket_client_publish_is_limited_to_the_publish_claim() {
    let srv = TestServer::start(&config(
        "publish = \"jwt\"\n[ws.rooms]\nclient_publish = true\n",
    ));
    let t = token(json!({"publish": ["a"]}));
    let mut sub = SseClient::open(srv.addr, "/sse?room=a&room=b", "");
    let mut ws = WsClient::connect(srv.addr, "/ws?room=a&room=b", &bearer(&t));
    wait_subscribers(srv.addr, "b", 2);
    ws.send_text(r#"{"room":"a","text":"allowed"}"#);
    assert_eq!(sub.next_event().data, r#"{"room":"a","text":"allowed"}"#);
    ws.send_text(r#"{"room":"b","text":"not allowed"}"#);
    let (code, reason) = ws.expect_close();
    assert_eq!(code, Some(1008));
    assert_eq!(reason, "the token does not allow publishing to this room");
    // without a token the connection subscribes but may not publish
    let mut anon = WsClient::connect(srv.addr, "/ws?room=a", "");
    anon.send_text("hi");
    assert_eq!(anon.expect_close(), (Some(1008), reason.clone()));
    publish_authorized(srv.addr, "a", &t, "after");
    assert_eq!(sub.next_event().data, "after", "nothing else was published");
    assert_eq!(rejected(srv.addr, "forbidden"), 2);
}

fn publish_authorized(addr: std::net::SocketAddr, room: &str, t: &str, data: &str) {
    let mut c = Client::connect(addr);
    let r = request(
        &mut c,
        "POST",
        &format!("/publish/{room}"),
        &bearer(t),
        data,
    );
    assert_eq!(r.status, 202, "{}", r.text());
}

#[test]
fn secret_from_the_environment() {
    let srv = TestServer::start_with(Opts {
        config: "[auth]\njwt_secret_env = \"RINGCAST_TEST_JWT_SECRET\"\nsubscribe = true\n".into(),
        env: vec![("RINGCAST_TEST_JWT_SECRET".into(), SECRET.into())],
        ..Default::default()
    });
    let t = token(json!({"rooms": ["e"]}));
    let _s = SseClient::open(srv.addr, "/sse?room=e", &bearer(&t));
    let mut c = srv.connect();
    assert_401(&c.get("/sse?room=e"), "missing token");
    drop(srv);

    // unset: start-up fails naming the variable
    let dir = TempDir::new("auth-env");
    let cfg = dir.0.join("ringcast.toml");
    std::fs::write(
        &cfg,
        "[auth]\njwt_secret_env = \"RINGCAST_TEST_UNSET_SECRET\"\nsubscribe = true\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_remove("RINGCAST_TEST_UNSET_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth.jwt_secret_env") && err.contains("RINGCAST_TEST_UNSET_SECRET"),
        "{err}"
    );
    // a short secret is refused too
    std::fs::write(&cfg, "[auth]\njwt_secret = \"too-short\"\n").unwrap();
    let out = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth.jwt_secret") && err.contains("32 bytes"),
        "{err}"
    );
}

/// A token minted by PyJWT.
fn pyjwt(py: &str, claims: &Value, secret: &str, alg: &str) -> String {
    let out = Command::new(py)
        .args([
            "-c",
            "import json, sys, jwt; print(jwt.encode(json.loads(sys.argv[1]), sys.argv[2], algorithm=sys.argv[3]))",
            &claims.to_string(),
            secret,
            alg,
        ])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "PyJWT failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn tokens_minted_by_pyjwt_are_accepted() {
    let py = test_clients_python();
    let srv = TestServer::start(&config("subscribe = true\npublish = \"jwt\"\n"));
    let claims = json!({"exp": now() + 600, "nbf": now() - 5, "iat": now(), "rooms": ["py.*"], "publish": ["py.room"]});
    let t = pyjwt(&py, &claims, SECRET, "HS256");
    let mut s = SseClient::open(srv.addr, &format!("/sse?room=py.room&token={t}"), "");
    wait_room(srv.addr, "py.room", &t, 1);
    publish_authorized(srv.addr, "py.room", &t, "from python's token");
    assert_eq!(s.next_event().data, "from python's token");
    // PyJWT with another secret, another algorithm, or an expired token: 401
    let mut c = srv.connect();
    let other = pyjwt(&py, &claims, "a-different-secret-32-bytes-long!!", "HS256");
    assert_401(
        &request(&mut c, "GET", "/sse?room=py.room", &bearer(&other), ""),
        "bad signature",
    );
    let hs512 = pyjwt(&py, &claims, SECRET, "HS512");
    assert_401(
        &request(&mut c, "GET", "/sse?room=py.room", &bearer(&hs512), ""),
        "wrong algorithm",
    );
    let mut old_claims = claims.clone();
    old_claims["exp"] = json!(now() - 120);
    let old = pyjwt(&py, &old_claims, SECRET, "HS256");
    assert_401(
        &request(&mut c, "GET", "/sse?room=py.room", &bearer(&old), ""),
        "token expired",
    );
    let r = request(&mut c, "GET", "/sse?room=other", &bearer(&t), "");
    assert_eq!(r.status, 403);
}

#[test]
fn reload_auth_applies_new_rules_to_new_requests() {
    use ringcast::config::Config;
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 2;
    let srv = ringcast::Server::new(cfg.clone()).unwrap().start().unwrap();
    let addr = srv.local_addr();
    let t = token(json!({"rooms": ["r"], "publish": ["r"]}));
    let mut c = Client::connect(addr);
    // open at first
    let _before = SseClient::open(addr, "/sse?room=r", "");
    assert_eq!(request(&mut c, "POST", "/publish/r", "", "x").status, 202);

    // a configuration that does not validate is refused, naming the key; the rules stay
    let mut bad = cfg.clone();
    bad.auth.subscribe = true;
    let e = srv.reload_auth(&bad).unwrap_err();
    assert!(matches!(e, ringcast::Error::Config(_)), "{e}");
    assert!(e.to_string().contains("auth.jwt_secret"), "{e}");
    assert_eq!(c.get("/rooms/r").status, 200);

    let mut on = cfg.clone();
    on.auth.jwt_secret = SECRET.into();
    on.auth.subscribe = true;
    on.hub.publish_token = "static-after-reload".into();
    srv.reload_auth(&on).unwrap();
    // every worker sees the new rules: several connections, spread over both
    for _ in 0..8 {
        let mut c = Client::connect(addr);
        assert_401(
            &request(&mut c, "GET", "/sse?room=r", "", ""),
            "missing token",
        );
        assert_401(
            &request(&mut c, "POST", "/publish/r", "", "x"),
            "missing token",
        );
    }
    let _after = SseClient::open(addr, "/sse?room=r", &bearer(&t));
    assert_eq!(
        request(
            &mut c,
            "POST",
            "/publish/r",
            &bearer("static-after-reload"),
            "x"
        )
        .status,
        202
    );

    // and back off again
    srv.reload_auth(&cfg).unwrap();
    let _open = SseClient::open(addr, "/sse?room=r", "");
    assert_eq!(request(&mut c, "POST", "/publish/r", "", "x").status, 202);
    assert!(srv.stop());
}

/// Reads a refused upgrade's body and checks that the connection closes.
fn refused_body(c: &mut Client, r: &Response) -> String {
    let len: usize = r.header("content-length").unwrap().parse().unwrap();
    let body = String::from_utf8(c.read_exact_bytes(len)).unwrap();
    assert!(
        c.closed_by_server(),
        "a refused upgrade's connection closes"
    );
    body
}

#[test]
fn demo_chat_and_handler_endpoints_obey_subscribe_auth() {
    let srv = TestServer::start(&config("subscribe = true\n"));
    for target in ["/demo/chat/ws", "/echo"] {
        let (mut c, r) = WsClient::handshake(srv.addr, target, "");
        assert_eq!(r.status, 401, "{target}: {}", r.head);
        assert!(refused_body(&mut c, &r).contains("missing token"));
    }
    let other = token(json!({"rooms": ["other"]}));
    let (mut c, r) = WsClient::handshake(srv.addr, "/demo/chat/ws", &bearer(&other));
    assert_eq!(r.status, 403, "{}", r.head);
    assert!(refused_body(&mut c, &r).contains("demo-chat"));
    assert_eq!(rejected(srv.addr, "unauthorized"), 2);
    assert_eq!(rejected(srv.addr, "forbidden"), 1);

    // a token listing the room: its live messages
    let t = token(json!({"rooms": ["demo-chat"]}));
    let mut chat = WsClient::connect(srv.addr, "/demo/chat/ws", &bearer(&t));
    wait_room(srv.addr, "demo-chat", &t, 1);
    publish(srv.addr, "demo-chat", None, "<p>live</p>");
    assert!(chat.next_data().text().starts_with("<p>live</p>"));
    let mut echo = WsClient::connect(srv.addr, "/echo", &bearer(&t));
    echo.send_text("hi");
    assert_eq!(echo.next_data().text(), "hi");
}

#[test]
fn a_handler_endpoint_can_opt_out_of_auth() {
    let srv = TestServer::start(&config("subscribe = true\n[ws.echo]\nauth = \"off\"\n"));
    let mut echo = WsClient::connect(srv.addr, "/echo", "");
    echo.send_text("open");
    assert_eq!(echo.next_data().text(), "open");
}

#[test]
fn a_handler_joins_only_rooms_the_token_lists() {
    use ringcast::{config::Config, Server};
    let mut cfg = Config::from_toml(&config("subscribe = true\n"), "test").unwrap();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 1;
    let srv = Server::new(cfg)
        .unwrap()
        .ws_handler("/rooms-by-hand", Default::default(), |conn| async move {
            for room in ["mine", "theirs"] {
                let answer = match conn.join(room) {
                    Ok(()) => format!("{room}: joined"),
                    Err(e) => format!("{room}: {e}"),
                };
                conn.send_text(&answer).unwrap();
            }
            while conn.recv().await.is_some() {}
        })
        .start()
        .unwrap();
    let (_c, r) = WsClient::handshake(srv.local_addr(), "/rooms-by-hand", "");
    assert_eq!(r.status, 401);
    let t = token(json!({"rooms": ["mine"]}));
    let mut ws = WsClient::connect(srv.local_addr(), "/rooms-by-hand", &bearer(&t));
    assert_eq!(ws.next_data().text(), "mine: joined");
    assert_eq!(
        ws.next_data().text(),
        "theirs: the token does not allow room \"theirs\""
    );
    srv.stop();
}

#[test]
fn a_websocket_authenticated_by_cookie_must_come_from_the_same_origin() {
    let srv = TestServer::start(&config("subscribe = true\n"));
    let t = token(json!({"rooms": ["live"]}));
    let cookie = format!("Cookie: ringcast_token={t}\r\n");
    for origin in [
        "",
        "Origin: http://evil.example\r\n",
        "Origin: http://t.evil\r\n",
        "Origin: null\r\n",
    ] {
        let (mut c, r) =
            WsClient::handshake(srv.addr, "/ws?room=live", &format!("{cookie}{origin}"));
        assert_eq!(r.status, 403, "{origin:?}: {}", r.head);
        assert!(refused_body(&mut c, &r).contains("Origin must match Host"));
    }
    assert_eq!(rejected(srv.addr, "websocket"), 4);
    // the same origin, any case, with the scheme's default port
    for origin in [
        "Origin: http://t\r\n",
        "Origin: HTTP://T:80\r\n",
        "Origin: https://t\r\n",
    ] {
        WsClient::connect(srv.addr, "/ws?room=live", &format!("{cookie}{origin}"));
    }
    // a token that is not a cookie is not sent by other sites' pages
    WsClient::connect(
        srv.addr,
        "/ws?room=live",
        &format!("{}Origin: http://evil.example\r\n", bearer(&t)),
    );
    // with an allowlist, its origins are the ones that may use the cookie
    let srv = TestServer::start(&config(
        "subscribe = true\n[ws.rooms]\nallowed_origins = [\"https://app.example\"]\n",
    ));
    WsClient::connect(
        srv.addr,
        "/ws?room=live",
        &format!("{cookie}Origin: https://app.example\r\n"),
    );
    let (_c, r) = WsClient::handshake(
        srv.addr,
        "/ws?room=live",
        &format!("{cookie}Origin: http://t\r\n"),
    );
    assert_eq!(r.status, 403);
}
