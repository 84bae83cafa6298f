//! The client subcommands of the `ringcast` binary (`pub`, `sub`, `token`)
//! against the real server.

mod common;
mod self_signed;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{bin, lines_of, publish, wait_child, wait_subscribers, TestServer};

const SECRET: &str = "cli-test-secret-0123456789abcdef0123";

fn ringcast(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("RINGCAST_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run ringcast")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The room's history as (id, event, data).
fn history(srv: &TestServer, room: &str) -> Vec<(u64, Option<String>, String)> {
    let mut c = srv.connect();
    let r = c.get(&format!("/rooms/{room}/messages?since=0"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["event"].as_str().map(String::from),
                m["data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A running `ringcast sub`, its output lines collected in the background.
struct Sub {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Sub {
    fn start(args: &[&str]) -> Sub {
        let mut child = Command::new(bin())
            .arg("sub")
            .args(args)
            .env_remove("RINGCAST_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ringcast sub");
        let lines = lines_of(child.stdout.take().unwrap());
        Sub { child, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("ringcast sub printed nothing")
    }

    fn wait(&mut self, limit: Duration) -> Option<i32> {
        wait_child(&mut self.child, limit).and_then(|st| st.code())
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pub_from_a_pipe_publishes_every_line_in_order() {
    let srv = TestServer::start("");
    let url = format!("http://{}", srv.addr);
    let mut child = Command::new(bin())
        .args(["pub", &url, "lines", "--event", "note"])
        .env_remove("RINGCAST_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = (0..50).map(|i| format!("line {i} é")).collect();
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in &lines {
            writeln!(stdin, "{l}").unwrap();
        }
        write!(stdin, "last\r\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ids: Vec<u64> = stdout(&out).lines().map(|l| l.parse().unwrap()).collect();
    let h = history(&srv, "lines");
    assert_eq!(h.len(), 51);
    assert_eq!(ids, h.iter().map(|m| m.0).collect::<Vec<_>>());
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let data: Vec<&str> = h.iter().map(|m| m.2.as_str()).collect();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    want.push("last");
    assert_eq!(data, want);
    assert!(h.iter().all(|m| m.1.as_deref() == Some("note")));
}

#[test]
fn pub_with_a_message_prints_its_id_and_a_refusal_is_an_error() {
    let srv = TestServer::start("");
    let url = format!("http://{}", srv.addr);
    let o = ringcast(&["pub", &url, "news", "hello world"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id: u64 = stdout(&o).trim().parse().unwrap();
    assert_eq!(history(&srv, "news"), [(id, None, "hello world".into())]);

    // a reserved room: 403 with the server's reason, exit 1
    let o = ringcast(&["pub", &url, "__dashboard", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("HTTP 403"), "{}", stderr(&o));
    // nothing listening
    let o = ringcast(&["pub", "http://127.0.0.1:1", "news", "x"]);
    assert_eq!(o.status.code(), Some(1));
    // argument errors name the flag (exit 2)
    let o = ringcast(&["pub", &url, "news", "x", "--event"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--event"), "{}", stderr(&o));
    let o = ringcast(&["pub", "ws://h", "news", "x"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_texts() {
    let o = ringcast(&["--help"]);
    assert!(o.status.success());
    for s in ["ringcast pub", "ringcast sub", "ringcast token"] {
        assert!(stdout(&o).contains(s), "{}", stdout(&o));
    }
    for (cmd, flag) in [("pub", "--event"), ("sub", "--count"), ("token", "--check")] {
        let o = ringcast(&[cmd, "--help"]);
        assert!(o.status.success());
        assert!(stdout(&o).contains(flag), "{}", stdout(&o));
    }
    let o = ringcast(&["sub", "ws://h/ws", "--frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--frobnicate"));
}

#[test]
fn sub_prints_what_is_published_and_count_ends_it() {
    let srv = TestServer::start("");
    let url = format!("ws://{}/ws?room=chat", srv.addr);
    let mut sub = Sub::start(&[&url, "--count", "3"]);
    wait_subscribers(srv.addr, "chat", 1);
    for m in ["one", "two", "three", "four"] {
        publish(srv.addr, "chat", None, m);
    }
    assert_eq!(
        [sub.line(), sub.line(), sub.line()],
        ["one", "two", "three"]
    );
    assert_eq!(sub.wait(Duration::from_secs(10)), Some(0));
    assert!(sub.lines.recv_timeout(Duration::from_millis(200)).is_err());

    // --json: the raw envelope carries no id
    let mut sub = Sub::start(&[&url, "-n", "1", "--json"]);
    wait_subscribers(srv.addr, "chat", 1);
    publish(srv.addr, "chat", Some("e"), "x \"quoted\"");
    let v: serde_json::Value = serde_json::from_str(&sub.line()).unwrap();
    assert_eq!(v, serde_json::json!({"data": "x \"quoted\""}));
    assert_eq!(sub.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn sub_timeout_fails_when_nothing_arrives() {
    let srv = TestServer::start("");
    let url = format!("ws://{}/ws?room=quiet", srv.addr);
    let t0 = Instant::now();
    let o = ringcast(&["sub", &url, "--timeout", "400ms"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert!(
        stderr(&o).contains("no message for 400ms"),
        "{}",
        stderr(&o)
    );

    // a message in time, then silence: still a failure after --count is not reached
    let mut sub = Sub::start(&[&url, "--timeout", "3s", "--count", "1"]);
    wait_subscribers(srv.addr, "quiet", 1);
    publish(srv.addr, "quiet", None, "in time");
    assert_eq!(sub.line(), "in time");
    assert_eq!(sub.wait(Duration::from_secs(10)), Some(0));

    // --no-reconnect against nothing listening: an error at once
    let o = ringcast(&["sub", "ws://127.0.0.1:1/ws?room=x", "--no-reconnect"]);
    assert_eq!(o.status.code(), Some(1));
    let o = ringcast(&["sub", "http://127.0.0.1:1/sse?room=x", "--no-reconnect"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));

    // SSE: the same timeout, and a URL that is not an event stream
    let sse = format!("http://{}/sse?room=quiet", srv.addr);
    let o = ringcast(&["sub", &sse, "--timeout", "400ms"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no message for 400ms"),
        "{}",
        stderr(&o)
    );
    let o = ringcast(&["sub", &format!("http://{}/healthz", srv.addr)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not an event stream"), "{}", stderr(&o));
}

#[test]
fn sub_over_sse_prints_events_and_resumes_across_a_restart() {
    let mut srv = TestServer::start("[hub]\nauto_join_room = \"\"\n");
    let url = format!("http://{}/sse?room=feed", srv.addr);

    // bare: the data of each event, one per line
    let mut sub = Sub::start(&[&url, "--count", "2"]);
    wait_subscribers(srv.addr, "feed", 1);
    publish(srv.addr, "feed", None, "one");
    publish(srv.addr, "feed", Some("e"), "two");
    assert_eq!([sub.line(), sub.line()], ["one", "two"]);
    assert_eq!(sub.wait(Duration::from_secs(10)), Some(0));

    // --json across a restart: every message once, in order
    let mut sub = Sub::start(&[&url, "--json", "--count", "8", "--timeout", "30s"]);
    let (sent, got) = publish_across_a_restart(&mut srv, &mut sub, "feed");
    let got: Vec<(u64, String, String)> = got
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().parse().unwrap(),
                v["event"].as_str().unwrap().to_string(),
                v["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got, sent,
        "loss, duplicate or reordering across the restart"
    );
}

#[test]
fn pub_and_sub_over_https_and_wss_with_a_ca_file() {
    let dir = common::TempDir::new("cli-tls");
    let (srv, tls) = self_signed::start("[hub]\nauto_join_room = \"\"\n", &dir);
    let cert = self_signed::cert(&dir);
    let sse = format!("https://{tls}/sse?room=secure");
    let ws = format!("wss://{tls}/ws?room=secure");
    let mut over_sse = Sub::start(&[&sse, "--ca-file", &cert, "--count", "2", "--json"]);
    let mut over_ws = Sub::start(&[&ws, "--ca-file", &cert, "--count", "2"]);
    wait_subscribers(srv.addr, "secure", 2);
    let server = format!("https://{tls}");
    let mut ids = Vec::new();
    for m in ["first", "second"] {
        let o = ringcast(&["pub", &server, "secure", m, "--ca-file", &cert]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        ids.push(stdout(&o).trim().to_string());
    }
    for (id, m) in ids.iter().zip(["first", "second"]) {
        let v: serde_json::Value = serde_json::from_str(&over_sse.line()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"data": m, "event": "message", "id": id})
        );
        assert_eq!(over_ws.line(), m);
    }
    assert_eq!(over_sse.wait(Duration::from_secs(10)), Some(0));
    assert_eq!(over_ws.wait(Duration::from_secs(10)), Some(0));

    // without the CA file the certificate is not trusted: an error, not a retry loop
    let o = ringcast(&["sub", &sse]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));
}

#[test]
fn sub_resumes_across_a_restart_with_the_json_envelope() {
    let mut srv = TestServer::start("[ws.rooms]\nenvelope = \"json\"\n");
    let url = format!("ws://{}/ws?room=feed", srv.addr);
    let mut sub = Sub::start(&[&url, "--json", "--count", "8", "--timeout", "30s"]);
    let (sent, got) = publish_across_a_restart(&mut srv, &mut sub, "feed");
    let got: Vec<(u64, String, String)> = got
        .iter()
        .map(|v| {
            assert_eq!(v["room"], "feed");
            (
                v["id"].as_u64().unwrap(),
                v["event"].as_str().unwrap_or("message").to_string(),
                v["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got, sent,
        "loss, duplicate or reordering across the restart"
    );
}

/// With `sub` subscribed to `room`: publishes four messages, restarts the
/// server on its port, publishes four more (event `late`), and reads the
/// eight JSON lines `sub` prints, after which it must exit 0. Returns what
/// was published (id, event, data) and the lines.
fn publish_across_a_restart(
    srv: &mut TestServer,
    sub: &mut Sub,
    room: &str,
) -> (Vec<(u64, String, String)>, Vec<serde_json::Value>) {
    wait_subscribers(srv.addr, room, 1);
    let mut sent = Vec::new();
    let mut got = Vec::new();
    for (phase, event) in [("before", None), ("after", Some("late"))] {
        if phase == "after" {
            srv.restart_same_port();
        }
        for i in 0..4 {
            let d = format!("{phase} {i}");
            let id = publish(srv.addr, room, event, &d);
            sent.push((id, event.unwrap_or("message").to_string(), d));
        }
        for _ in 0..4 {
            got.push(serde_json::from_str(&sub.line()).unwrap());
        }
    }
    assert_eq!(sub.wait(Duration::from_secs(10)), Some(0));
    (sent, got)
}

/// A server with `[auth]`: JWT for subscribing and publishing.
fn auth_server() -> TestServer {
    TestServer::start(&format!(
        "[auth]\njwt_secret = \"{SECRET}\"\nsubscribe = true\npublish = \"jwt\"\n"
    ))
}

#[test]
fn token_is_accepted_for_its_rooms_exactly_as_check_predicts() {
    let srv = auth_server();
    let cfg = srv.config_path();
    let cfg = cfg.to_str().unwrap();
    let o = ringcast(&[
        "token",
        "--config",
        cfg,
        "--rooms",
        "news",
        "--publish",
        "news",
        "--ttl",
        "10m",
        "--sub",
        "tester",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_string();
    // the same token from --secret
    let o = ringcast(&[
        "token", "--secret", SECRET, "--check", &token, "--room", "news",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let check = stdout(&o);
    for l in [
        "valid",
        "subscribe: news",
        "publish: news",
        "subject: tester",
        "room news: subscribe allowed",
        "room news: publish allowed",
    ] {
        assert!(check.lines().any(|x| x == l), "{l:?} not in\n{check}");
    }
    let o = ringcast(&[
        "token", "--config", cfg, "--check", &token, "--room", "sport",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let predicted = stdout(&o);
    assert!(predicted.contains("room sport: publish refused: 403 Forbidden: the token does not allow publishing to room sport"), "{predicted}");

    let url = format!("http://{}", srv.addr);
    // publish: allowed room
    let o = ringcast(&["pub", &url, "news", "hi", "--token", &token]);
    assert!(o.status.success(), "{}", stderr(&o));
    // another room: 403, as predicted
    let o = ringcast(&["pub", &url, "sport", "hi", "--token", &token]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("HTTP 403"), "{}", stderr(&o));
    assert!(stderr(&o).contains("the token does not allow publishing to room sport"));
    // no token: 401
    let o = ringcast(&["pub", &url, "news", "hi"]);
    assert!(stderr(&o).contains("HTTP 401"), "{}", stderr(&o));
    // the token from the environment
    let o = Command::new(bin())
        .args(["pub", &url, "news", "from env"])
        .env("RINGCAST_TOKEN", &token)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // subscribe: allowed room
    let ws = format!("ws://{}/ws?room=news", srv.addr);
    let mut sub = Sub::start(&[&ws, "--token", &token, "-n", "1"]);
    // wait for the subscription (reads of /rooms need a token here)
    for i in 0.. {
        let r = srv.connect().get(&format!("/rooms/news?token={token}"));
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        if v["subscribers"] == 1 {
            break;
        }
        assert!(i < 500, "the subscriber never joined");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = ringcast(&["pub", &url, "news", "to subscribers", "--token", &token]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sub.line(), "to subscribers");
    assert_eq!(sub.wait(Duration::from_secs(10)), Some(0));
    // another room: refused at the handshake, no retry
    let o = ringcast(&[
        "sub",
        &format!("ws://{}/ws?room=sport", srv.addr),
        "--token",
        &token,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
}

#[test]
fn check_refuses_expired_and_wrongly_signed_tokens_with_the_reason() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"alg": "HS256"});
    let expired = ringcast::proto::jwt::sign(
        &header,
        &serde_json::json!({"rooms": ["a"], "exp": now - 3600}),
        SECRET.as_bytes(),
    );
    let o = ringcast(&["token", "--secret", SECRET, "--check", &expired]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o).trim(),
        "refused: 401 Unauthorized: token expired"
    );

    let o = ringcast(&["token", "--secret", SECRET, "--rooms", "a"]);
    let token = stdout(&o).trim().to_string();
    let other = "another-secret-0123456789abcdef0123456789";
    let o = ringcast(&["token", "--secret", other, "--check", &token]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o).trim(),
        "refused: 401 Unauthorized: bad signature"
    );

    // the secret from the environment; a short one is a usage error
    let o = Command::new(bin())
        .args([
            "token",
            "--secret-env",
            "CLI_TEST_SECRET",
            "--check",
            &token,
        ])
        .env("CLI_TEST_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stdout(&o));
    let o = ringcast(&["token", "--secret", "short", "--rooms", "a"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--secret"), "{}", stderr(&o));

    // a server refuses the expired token with the same reason
    let srv = auth_server();
    let o = ringcast(&[
        "pub",
        &format!("http://{}", srv.addr),
        "a",
        "x",
        "--token",
        &expired,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("401 Unauthorized: token expired"),
        "{}",
        stderr(&o)
    );
}
