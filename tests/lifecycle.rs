//! The process: workers, io drivers, pinning, connection limits, accept
//! under file-descriptor pressure, configuration errors, and the drain on
//! SIGTERM/SIGINT.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn two_workers_really_run() {
    let mut srv = TestServer::start_with(Opts {
        args: vec!["--workers".into(), "2".into()],
        ..Default::default()
    });
    srv.wait_log("worker 0 running on the");
    srv.wait_log("worker 1 running on the");
    assert!(srv.wait_log("listening on").contains("with 2 workers"));
    // Many connections spread over both SO_REUSEPORT listeners, all served.
    let mut clients: Vec<Client> = (0..32).map(|_| srv.connect()).collect();
    for c in &mut clients {
        assert_eq!(c.get("/healthz").status, 200);
    }
}

#[test]
fn legacy_driver_serves_the_same() {
    let mut srv = TestServer::start("[server]\nio_driver = \"legacy\"\nworkers = 2\n");
    srv.wait_log("worker 0 running on the epoll driver");
    assert!(srv.wait_log("listening on").contains("(epoll driver)"));
    let mut c = srv.connect();
    c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_eq!(c.read_response().status, 404);
    assert_eq!(c.get("/").status, 200);
    // streams, whose reads wait on the worker's epoll instance inside this driver
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.send_text("over epoll");
    assert_eq!(ws.next_data().text(), "over epoll");
    let big = vec![7u8; 300_000]; // more than one read buffer
    ws.send_frame(true, 2, &big);
    assert_eq!(ws.next_data().payload, big);
    let mut sse = SseClient::open(srv.addr, "/sse?room=legacy", "");
    let gone = SseClient::open(srv.addr, "/sse?room=legacy", "");
    wait_subscribers(srv.addr, "legacy", 2);
    drop(gone); // a client that leaves is noticed
    wait_subscribers(srv.addr, "legacy", 1);
    publish(srv.addr, "legacy", None, "still here");
    assert_eq!(sse.next_event().data, "still here");
    // parked streams (the runtime lets their sockets go while they wait)
    // are handed back to this driver when they wake
    let mut sub = WsClient::connect(srv.addr, "/ws?room=legacy", "");
    wait_subscribers(srv.addr, "legacy", 2);
    wait_parked(srv.addr, 2.0);
    publish(srv.addr, "legacy", None, "after parking");
    assert_eq!(sse.next_event().data, "after parking");
    assert_eq!(sub.next_data().text(), "after parking");
    sub.send_frame(true, 9, b"p"); // a ping, answered with its pong
    let pong = sub.read_frame().expect("a pong");
    assert_eq!((pong.opcode, &pong.payload[..]), (10, &b"p"[..]));
}

#[test]
fn io_uring_driver_by_default_here() {
    let mut srv = TestServer::start("");
    srv.wait_log("running on the io_uring driver");
}

#[test]
fn pinned_workers_say_so() {
    let mut srv = TestServer::start("[server]\npin_workers = true\nworkers = 1\n");
    srv.wait_log("worker 0 pinned to cpu");
    assert_eq!(srv.connect().get("/healthz").status, 200);
}

#[test]
fn connection_ceiling_is_logged() {
    let mut srv = TestServer::start("");
    let line = srv.wait_log("connection ceiling");
    assert!(line.contains("RLIMIT_NOFILE"), "{line}");
}

#[test]
fn max_connections_gives_503_and_frees_on_close() {
    let srv = TestServer::start("[server]\nmax_connections = 2\nworkers = 1\n");
    let mut a = srv.connect();
    let mut b = srv.connect();
    assert_eq!(a.get("/healthz").status, 200);
    assert_eq!(b.get("/healthz").status, 200);
    let mut c = srv.connect();
    c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 503);
    assert!(r.text().contains("server.max_connections"), "{}", r.text());
    assert!(c.closed_by_server());
    // the two admitted connections are untouched
    assert_eq!(a.get("/healthz").status, 200);
    // closing one frees a place
    b.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(b.read_response().status, 200);
    assert!(b.closed_by_server());
    drop(b); // the client closes too, ending the server's lingering close
    let mut d = srv.connect();
    let mut ok = false;
    // the server notices b's close asynchronously; retry on 503 a bounded number of times
    for _ in 0..50 {
        d.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = d.read_response();
        if r.status == 200 {
            ok = true;
            break;
        }
        assert_eq!(r.status, 503);
        std::thread::sleep(Duration::from_millis(20));
        d = srv.connect();
    }
    assert!(ok, "a freed place is reused");
}

#[test]
fn per_worker_limit_gives_503() {
    let srv = TestServer::start("[server]\nmax_connections_per_worker = 1\nworkers = 1\n");
    let mut a = srv.connect();
    assert_eq!(a.get("/healthz").status, 200);
    let mut c = srv.connect();
    c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 503);
    assert!(r.text().contains("server.max_connections_per_worker"));
    assert_eq!(a.get("/healthz").status, 200);
}

#[test]
fn out_of_file_descriptors_backs_off_and_keeps_serving() {
    // The server may hold only 48 files: a handful go to the runtime, the rest to connections.
    let mut srv = TestServer::start_with(Opts {
        config: "[server]\nworkers = 1\nmax_connections = 10000\naccept_backoff = \"50ms\"\n"
            .into(),
        nofile: Some(48),
        ..Default::default()
    });
    let mut first = srv.connect();
    assert_eq!(first.get("/healthz").status, 200);
    // Open far more connections than the server has descriptors for.
    let flood: Vec<Client> = (0..80).map(|_| srv.connect()).collect();
    srv.wait_log("accept failed");
    // The existing connection is still served while accept is failing.
    assert_eq!(first.get("/healthz").status, 200);
    drop(flood);
    // Once descriptors are free again, new connections are accepted (the backlog drains).
    let mut later = srv.connect();
    assert_eq!(later.get("/healthz").status, 200);
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "server still running"
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut srv = TestServer::start("[server]\nworkers = 1\nshutdown_timeout = \"5s\"\n");
    let mut idle = srv.connect();
    assert_eq!(idle.get("/healthz").status, 200);
    // A request in flight: head started but not finished.
    let mut busy = srv.connect();
    busy.send("GET /healthz HTTP/1.1\r\nHost: t\r\n");
    // make sure the server has those bytes before the signal (it answers nothing yet)
    assert_eq!(srv.connect().get("/healthz").status, 200);
    srv.signal(libc::SIGTERM);
    srv.wait_log("draining");
    // The idle keep-alive connection is closed.
    assert!(idle.closed_by_server());
    // The in-flight request still completes, with Connection: close.
    busy.send("\r\n");
    let r = busy.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(busy.closed_by_server());
    let st = srv
        .wait_exit(Duration::from_secs(5))
        .expect("exits within shutdown_timeout");
    assert_eq!(st.code(), Some(0));
    // No longer accepting.
    assert!(std::net::TcpStream::connect(srv.addr).is_err());
}

#[test]
fn sigint_exits_zero_and_shutdown_timeout_bounds_the_drain() {
    // one worker: the barrier request below is accepted after the stuck connection
    let mut srv = TestServer::start(
        "[server]\nworkers = 1\nshutdown_timeout = \"500ms\"\n[http]\nheader_timeout = \"60s\"\n",
    );
    // A client that started a request and never finishes it holds the drain up...
    let mut stuck = srv.connect();
    stuck.send("GET /healthz HTTP/1.1\r\n");
    assert_eq!(srv.connect().get("/healthz").status, 200);
    srv.signal(libc::SIGINT);
    // ...but only until shutdown_timeout.
    let st = srv
        .wait_exit(Duration::from_secs(5))
        .expect("exits at shutdown_timeout");
    assert_eq!(st.code(), Some(0));
    assert!(srv.wait_log("shutdown_timeout reached").contains("exiting"));
}

fn check_config(text: &str) -> (i32, String) {
    let d = TempDir::new("cfg");
    let p = d.0.join("c.toml");
    std::fs::write(&p, text).unwrap();
    let out = Command::new(bin())
        .arg("--config")
        .arg(&p)
        .arg("--check-config")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn bad_config_stops_start_up_naming_the_key() {
    let (code, msg) = check_config("[server]\nworkerz = 2\n");
    assert_eq!(code, 2);
    assert!(msg.contains("workerz"), "{msg}");
    let (code, msg) = check_config("[http]\nmax_headers = 0\n");
    assert_eq!(code, 2);
    assert!(msg.contains("http.max_headers"), "{msg}");
    let (code, msg) = check_config("[http]\nheader_timeout = \"ten seconds\"\n");
    assert_eq!(code, 2);
    assert!(msg.contains("header_timeout"), "{msg}");
    let (code, msg) = check_config("[static]\ndir = \"/no/such/dir\"\n");
    assert_eq!(code, 2);
    assert!(msg.contains("static.dir"), "{msg}");
    let (code, msg) = check_config("[server]\nlisten = \"nowhere\"\n");
    assert_eq!(code, 2);
    assert!(msg.contains("listen"), "{msg}");
    let (code, msg) = check_config("");
    assert_eq!((code, msg.trim()), (0, "configuration ok"));
}

#[test]
fn bad_flags_stop_start_up() {
    let out = Command::new(bin())
        .args(["--workers", "many"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
}

#[test]
fn address_in_use_is_a_clear_start_up_error() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let out = Command::new(bin())
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn example_config_starts() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/config/ringcast.example.toml"
    ))
    .unwrap();
    // the example's listen address is replaced by --listen 127.0.0.1:0
    let srv = TestServer::start(&text);
    assert_eq!(srv.connect().get("/healthz").status, 200);
}

#[test]
fn every_io_uring_taskrun_mode_serves() {
    for (mode, logged) in [("defer", "Defer"), ("coop", "Coop"), ("plain", "Plain")] {
        let mut srv = TestServer::start(&format!(
            "[server]\nio_uring_taskrun = \"{mode}\"\nworkers = 1\n"
        ));
        srv.wait_log(&format!("task-run mode {logged}"));
        let mut c = srv.connect();
        assert_eq!(c.get("/healthz").status, 200);
        let mut ws = WsClient::connect(srv.addr, "/echo", "");
        ws.send_text(mode);
        assert_eq!(ws.next_data().text(), mode);
    }
}

#[test]
fn sighup_rereads_the_config_applies_the_log_level_and_names_the_rest() {
    let mut srv = TestServer::start("[log]\nlevel = \"info\"\n");
    std::fs::write(
        srv.config_path(),
        "[log]\nlevel = \"debug\"\n[http]\nmax_headers = 10\n",
    )
    .unwrap();
    srv.signal(libc::SIGHUP);
    let applied = srv.wait_log("SIGHUP: log.level");
    assert!(
        applied.contains("\"info\" -> \"debug\" (applied)"),
        "{applied}"
    );
    let later = srv.wait_log("SIGHUP: http.max_headers");
    assert!(
        later.contains("64 -> 10 (takes effect after a restart)"),
        "{later}"
    );
    // a file that does not validate is refused; the server keeps running
    std::fs::write(srv.config_path(), "[http]\nmax_headers = 0\n").unwrap();
    srv.signal(libc::SIGHUP);
    let refused = srv.wait_log("configuration not reloaded");
    assert!(refused.contains("http.max_headers"), "{refused}");
    assert_eq!(srv.connect().get("/healthz").status, 200);
    assert!(srv.child.try_wait().unwrap().is_none());
}
