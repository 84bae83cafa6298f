//! The built-in demos and the dashboard in a real browser: headless Chromium
//! (Debian's `chromium`) driven by playwright-core, one node script per
//! scenario (tests/browser/*.mjs) against the real server. Each script
//! prints JSON lines and saves a screenshot into target/screenshots/.
//!
//! Set-up: tests/browser/setup.sh (run by .ci/run). A missing node,
//! Chromium or playwright-core FAILS these tests with that instruction.
//!
//! The `tls_*` tests open the same demos at https://localhost:PORT/ on the
//! server's TLS listener, with a self-signed certificate made for the test:
//! Chromium trusts that certificate's key only (see lib.mjs), and every
//! WebSocket and EventSource the pages open must be wss:// and https:// to
//! the same origin.

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use ringcast::io::tls::certs::{write_self_signed, CertFiles};
use serde_json::Value;

/// One browser at a time: the scenarios are quick, the machine is small.
static BROWSER: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where setup.sh put playwright-core; fails with the fix when anything is missing.
fn deps() -> PathBuf {
    let fix = "run tests/browser/setup.sh (installs Debian chromium and playwright-core into target/browser-tests)";
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "node is not installed: {fix}");
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: {fix}"
    );
    let dir = root().join("target/browser-tests");
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .exists(),
        "playwright-core is not installed in {}: {fix}",
        dir.display()
    );
    dir
}

/// A running scenario script.
struct Scenario {
    name: String,
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
    stderr: std::sync::Arc<Mutex<String>>,
}

fn scenario(name: &str, base: &str, args: &[&str]) -> Scenario {
    scenario_env(name, base, args, &[])
}

/// [`scenario`] with more environment for the script.
fn scenario_env(name: &str, base: &str, args: &[&str], env: &[(&str, &OsStr)]) -> Scenario {
    let deps = deps();
    let mut child = Command::new("node")
        .arg(root().join(format!("tests/browser/{name}.mjs")))
        .arg(base)
        .args(args)
        .env("RINGCAST_BROWSER_DEPS", &deps)
        .env("RINGCAST_SCREENSHOTS", root().join("target/screenshots"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let (tx, lines) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let stderr = std::sync::Arc::new(Mutex::new(String::new()));
    let err = child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    Scenario {
        name: name.to_string(),
        child,
        lines,
        seen: Vec::new(),
        stderr,
    }
}

impl Scenario {
    fn context(&self) -> String {
        format!(
            "scenario {}: lines so far {:#?}\nstderr: {}",
            self.name,
            self.seen,
            self.stderr.lock().unwrap()
        )
    }

    /// Waits (bounded) for a progress line matching `pred`.
    fn wait_for(&mut self, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if v.get("ok") == Some(&Value::Bool(false)) {
                        panic!("{what}: the script failed\n{}", self.context());
                    }
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("{what}: not seen in {limit:?}\n{}", self.context()),
            }
        }
    }

    /// Waits for the result line and a zero exit; returns the result.
    fn finish(mut self, limit: Duration) -> Value {
        let result = self.wait_for("the result line", limit, |v| v.get("ok").is_some());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "the script did not exit\n{}",
                self.context()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit {status}\n{}", self.context());
        assert_eq!(result["ok"], true, "{}", self.context());
        result
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base(srv: &TestServer) -> String {
    format!("http://{}", srv.addr)
}

/// Runs a scenario that needs nothing from the test while it runs.
fn run_alone(srv: &TestServer, name: &str) -> Value {
    scenario(name, &base(srv), &[]).finish(Duration::from_secs(60))
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    BROWSER.lock().unwrap_or_else(|e| e.into_inner())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A server with a TLS listener beside the plain one, serving a self-signed
/// certificate for localhost and 127.0.0.1 made for the test.
struct TlsServer {
    srv: TestServer,
    /// The TLS listener.
    tls_addr: SocketAddr,
    /// https://localhost:PORT (the TLS listener's port).
    base: String,
    cert: PathBuf,
    _dir: TempDir,
}

/// A new self-signed certificate (and key) for localhost and 127.0.0.1 in `dir`.
fn self_signed(dir: &Path) -> CertFiles {
    let names = ["localhost", "127.0.0.1"].map(String::from);
    write_self_signed(dir, &names).expect("self-signed certificate")
}

impl TlsServer {
    fn start(config: &str) -> TlsServer {
        let dir = TempDir::new("browser-tls");
        let files = self_signed(&dir.0);
        let config = format!(
            "{config}\n[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
            files.cert.display(),
            files.key.display()
        );
        let mut srv = TestServer::start(&config);
        let line = srv.wait_log("tls: listening on ");
        let tls_addr: SocketAddr = line
            .split("tls: listening on ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        TlsServer {
            srv,
            tls_addr,
            base: format!("https://localhost:{}", tls_addr.port()),
            cert: files.cert,
            _dir: dir,
        }
    }

    /// Runs a scenario against the https base. Chromium pins the
    /// certificate's key; node's fetch and curl (the notifications page's
    /// command line) trust the certificate as their CA.
    fn run(&self, name: &str) -> Value {
        let cert = self.cert.as_os_str();
        scenario_env(
            name,
            &self.base,
            &[],
            &[
                ("RINGCAST_TLS_CERT", cert),
                ("NODE_EXTRA_CA_CERTS", cert),
                ("CURL_CA_BUNDLE", cert),
            ],
        )
        .finish(Duration::from_secs(60))
    }

    /// Checks the scenario's `transport`: every document came from the
    /// https origin, every WebSocket and EventSource went to the same
    /// origin over wss:// and https://, at least `ws` and `es` of them were
    /// opened, and no request failed but streams the page itself closed.
    /// The server counts TLS handshakes for them (and none failed).
    fn assert_secure(&self, r: &Value, ws: usize, es: usize) {
        let t = &r["transport"];
        let https = format!("{}/", self.base);
        let wss = format!("wss://localhost:{}/", self.tls_addr.port());
        let docs = strings(&t["documents"]);
        assert!(!docs.is_empty(), "{t}");
        for d in &docs {
            assert!(d.starts_with(&https), "document {d} not from {https}: {t}");
        }
        let sockets = strings(&t["websockets"]);
        assert!(sockets.len() >= ws, "{ws} WebSocket(s) expected: {t}");
        for u in &sockets {
            assert!(u.starts_with(&wss), "WebSocket {u} not on {wss}: {t}");
        }
        let streams = strings(&t["eventsources"]);
        assert!(streams.len() >= es, "{es} EventSource(s) expected: {t}");
        for u in &streams {
            assert!(u.starts_with(&https), "EventSource {u} not on {https}: {t}");
        }
        let failed: Vec<String> = strings(&t["failed"])
            .into_iter()
            .filter(|f| !f.ends_with("net::ERR_ABORTED"))
            .collect();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        let handshakes = metric(
            self.srv.addr,
            "ringcast_tls_handshakes_total",
            "version=\"1.3\"",
        );
        assert!(handshakes >= 1.0, "the server counted no TLS 1.3 handshake");
        for reason in [
            "peer_alert",
            "incompatible",
            "protocol",
            "plain_http",
            "not_tls",
        ] {
            let failed = metric(
                self.srv.addr,
                "ringcast_tls_handshake_failures_total",
                &format!("reason=\"{reason}\""),
            );
            assert_eq!(failed, 0.0, "TLS handshakes failed: {reason}");
        }
    }
}

#[test]
fn notifications_curl_line_appears_in_page() {
    let _g = lock();
    let srv = TestServer::start("");
    let r = run_alone(&srv, "notifications");
    assert_eq!(strings(&r["items"]), ["Deploy finished"]);
    assert!(
        r["publish_answer"].as_str().unwrap().contains("\"room\""),
        "{r}"
    );
    assert_eq!(r["errors"], serde_json::json!([]));
}

#[test]
fn chat_goes_from_page_a_to_page_b_and_escapes_markup() {
    let _g = lock();
    let srv = TestServer::start("");
    let r = run_alone(&srv, "chat");
    check_chat(&r);
}

fn check_chat(r: &Value) {
    let b = strings(&r["b"]);
    assert_eq!(
        b,
        [
            "alice: hello from A",
            "<b>mallory</b>: <script>alert(1)</script>",
            "mallory: <img src=x onerror=\"alert(2)\">",
        ]
    );
    assert_eq!(strings(&r["a"]), b, "page A shows the same conversation");
    assert_eq!(r["dialogs"], serde_json::json!([]), "no dialog may fire");
    assert_eq!(r["injected_elements"], 0);
}

#[test]
fn progress_bar_reaches_100_and_the_stream_closes() {
    let _g = lock();
    let srv = TestServer::start("");
    let r = run_alone(&srv, "progress");
    check_progress(&r);
}

fn check_progress(r: &Value) {
    let want: Vec<String> = (0..=20).map(|i| format!("{}%", i * 5)).collect();
    assert_eq!(strings(&r["seen"]), want, "every progress step, in order");
    assert_eq!(r["bar"], "100%");
    assert_eq!(r["width"], "100%");
    assert_eq!(r["status"], format!("{} done.", r["job"].as_str().unwrap()));
}

#[test]
fn tls_chat_goes_from_page_a_to_page_b_over_wss() {
    let _g = lock();
    let srv = TlsServer::start("");
    let r = srv.run("chat");
    check_chat(&r);
    srv.assert_secure(&r, 2, 0);
}

#[test]
fn tls_notifications_curl_line_over_https_appears_in_page() {
    let _g = lock();
    let srv = TlsServer::start("");
    let r = srv.run("notifications");
    assert_eq!(strings(&r["items"]), ["Deploy finished"]);
    let curl = r["curl"].as_str().unwrap();
    assert!(
        curl.starts_with(&format!("curl -X POST '{}/publish/", srv.base)),
        "the page prints its own https origin: {curl}"
    );
    assert!(
        r["publish_answer"].as_str().unwrap().contains("\"room\""),
        "{r}"
    );
    assert_eq!(r["errors"], serde_json::json!([]));
    srv.assert_secure(&r, 0, 1);
}

#[test]
fn tls_progress_bar_reaches_100_over_https_sse() {
    let _g = lock();
    let srv = TlsServer::start("");
    let r = srv.run("progress");
    check_progress(&r);
    srv.assert_secure(&r, 0, 1);
}

#[test]
fn tls_page_does_not_load_when_chromium_pins_another_key() {
    let _g = lock();
    let srv = TlsServer::start("");
    let other = TempDir::new("browser-tls-other");
    let other_cert = self_signed(&other.0).cert;
    let r = scenario("tls_untrusted", &srv.base, &[other_cert.to_str().unwrap()])
        .finish(Duration::from_secs(60));
    let error = r["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ERR_CERT_AUTHORITY_INVALID"),
        "the page must fail on the certificate: {r}"
    );
    assert_eq!(r["status"], Value::Null, "{r}");
}

#[test]
fn tickers_change_over_time() {
    let _g = lock();
    let srv = TestServer::start("[demo]\ninterval = \"300ms\"\n");
    let r = run_alone(&srv, "tickers");
    assert_ne!(r["first"]["clock"], r["later"]["clock"]);
    assert!(
        r["later"]["load"]
            .as_str()
            .unwrap()
            .contains("connection(s) open"),
        "{r}"
    );
}

#[test]
fn plain_eventsource_and_websocket_pages_open_and_receive() {
    let _g = lock();
    let srv = TestServer::start("[demo]\ninterval = \"200ms\"\n");
    let r = run_alone(&srv, "plain");
    check_plain(&r);
}

fn check_plain(r: &Value) {
    for page in ["eventsource", "websocket"] {
        assert_eq!(r[page]["status"], "open", "{r}");
        assert!(r[page]["count"].as_u64().unwrap() >= 2, "{r}");
        assert_eq!(r[page]["errors"], serde_json::json!([]), "{r}");
    }
    let es_log = r["eventsource"]["log"].to_string();
    assert!(es_log.contains("open"), "{es_log}");
    assert!(
        es_log.contains("clock: ") || es_log.contains("price-"),
        "named events shown: {es_log}"
    );
}

#[test]
fn tls_plain_eventsource_and_websocket_pages_over_https() {
    let _g = lock();
    let srv = TlsServer::start("[demo]\ninterval = \"200ms\"\n");
    let r = srv.run("plain");
    check_plain(&r);
    srv.assert_secure(&r, 1, 1);
}

/// What is and is not guaranteed across a restart: history lives in memory,
/// so what the page received before the stop survives only in the page.
/// What the new server receives while the page is still reconnecting is
/// kept in its history and replayed when the browser comes back with its
/// Last-Event-ID (older than the new room: "reset", everything replayed);
/// and what is published after that arrives live. A message published to
/// the old server that no page had received before the stop is lost.
/// The restart scenario both pages share: `script` opens its page; three
/// messages (`body(1..=3)`) are published to `room` and seen; the server
/// restarts on the same port; three more are published while the page is
/// away (checked: the room has no subscriber), three after it is back. The
/// page must then show all nine, in order, once each, and have seen the
/// server go. Returns the script's result and the id of the last message.
fn restart_mid_stream(
    config: &str,
    script: &str,
    room: &str,
    event: Option<&str>,
    body: impl Fn(u32) -> String,
    items: impl Fn(u32) -> String,
) -> (Value, u64) {
    let mut srv = TestServer::start(config);
    let mut s = scenario(script, &base(&srv), &["9"]);
    s.wait_for("the page connected", Duration::from_secs(30), |v| {
        v["event"] == "ready"
    });
    wait_subscribers(srv.addr, room, 1);
    for i in 1..=3 {
        publish(srv.addr, room, event, &body(i));
    }
    s.wait_for("3 messages before the stop", Duration::from_secs(10), |v| {
        v["event"] == "seen" && v["items"].as_array().unwrap().len() == 3
    });

    srv.restart_same_port();
    // Published while the page is still away: nobody is subscribed yet.
    assert_eq!(
        room_info(srv.addr, room)["subscribers"],
        0,
        "the page must not be back yet for this part to mean anything"
    );
    for i in 4..=6 {
        publish(srv.addr, room, event, &body(i));
    }
    wait_subscribers(srv.addr, room, 1);
    let mut last = 0;
    for i in 7..=9 {
        last = publish(srv.addr, room, event, &body(i));
    }
    let r = s.finish(Duration::from_secs(45));
    let want: Vec<String> = (1..=9).map(items).collect();
    assert_eq!(
        strings(&r["items"]),
        want,
        "every message exactly once, in order"
    );
    let statuses = strings(&r["statuses"]);
    assert!(
        statuses.iter().any(|s| s.starts_with("disconnected")),
        "the page saw the server go: {statuses:?}"
    );
    assert_eq!(statuses.last().map(String::as_str), Some("connected"));
    (r, last)
}

#[test]
fn notifications_survive_a_server_restart_without_loss_or_duplicates() {
    let _g = lock();
    // The browser waits retry_ms before each reconnection attempt: long
    // enough for the restart and the publishes below to happen while the
    // page is away (checked, not assumed), short enough to keep the test quick.
    restart_mid_stream(
        "[sse]\nretry_ms = 2000\n",
        "restart",
        "notifications",
        Some("notification"),
        |i| format!("<div>message {i}</div>"),
        |i| format!("message {i}"),
    );
}

#[test]
fn chat_survives_a_server_restart_without_loss_or_duplicates() {
    let _g = lock();
    // (the script makes the page wait 2 s between reconnection attempts)
    let (r, last) = restart_mid_stream(
        "",
        "chat_restart",
        "demo-chat",
        None,
        // what the chat template makes of a message, published over HTTP
        |i| {
            format!(
                "<div id=\"messages\" hx-swap-oob=\"beforeend\"><p class=\"msg\"><b>t</b>: message {i}</p></div>"
            )
        },
        |i| format!("t: message {i}"),
    );
    assert_eq!(
        r["cursor"],
        last.to_string(),
        "the page's cursor is the last id"
    );
}

#[test]
fn dashboard_figures_follow_the_load() {
    let _g = lock();
    let srv = TestServer::start("[dashboard]\ninterval = \"250ms\"\n");
    let mut s = scenario("dashboard", &base(&srv), &["21"]);
    let ready = s.wait_for("the first figures", Duration::from_secs(30), |v| {
        v["event"] == "ready"
    });
    let before_open = ready["before"]["open"].as_u64().unwrap();
    assert!(before_open >= 1, "the page's own stream counts: {ready}");
    // Load: 20 SSE subscribers and a steady stream of publishes to their room.
    let subs: Vec<SseClient> = (0..20)
        .map(|_| SseClient::open(srv.addr, "/sse?room=load", ""))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr = srv.addr;
    let flag = stop.clone();
    let publisher = std::thread::spawn(move || {
        let mut p = Publisher::new(addr);
        let mut n = 0u64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            p.publish("load", "tick");
            n += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        n
    });
    let r = s.finish(Duration::from_secs(30));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let published = publisher.join().unwrap();
    drop(subs);
    assert!(published > 0);
    let during = &r["during"];
    assert!(during["open"].as_u64().unwrap() >= before_open + 20, "{r}");
    assert!(during["published"].as_f64().unwrap() >= 1.0, "{r}");
    assert!(during["delivered"].as_f64().unwrap() >= 1.0, "{r}");
    assert!(
        during["rss"].as_str().unwrap().ends_with("MiB"),
        "memory shown: {r}"
    );
    assert!(!strings(&during["workers"]).is_empty(), "{r}");
}
