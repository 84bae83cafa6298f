//! Faults that come from the network, each with a real socket: a subscriber
//! reset while the server is writing a backlog to it, half-open WebSocket
//! and SSE clients, slowloris, and a connect/close flood. Each test checks
//! that another client is served throughout and that nothing leaks: the
//! server's open file descriptors (`/proc/PID/fd`) and its connection
//! gauges come back to where they started.
//!
//! Covered elsewhere: a panicking handler (tests/faults.rs), running out of
//! file descriptors (tests/lifecycle.rs), slow consumers (tests/sse.rs).

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Open file descriptors of the server process.
fn fds(srv: &TestServer) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", srv.child.id()))
        .expect("read /proc/PID/fd of the server")
        .count()
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `limit`.
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (bounded) until the server holds exactly `want` descriptors.
fn wait_fds(srv: &TestServer, want: usize) {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let n = fds(srv);
        if n == want {
            return;
        }
        assert!(
            Instant::now() < end,
            "server holds {n} file descriptors, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sum of every `/metrics` sample whose series starts with `prefix`.
fn metric(addr: SocketAddr, prefix: &str) -> f64 {
    let mut c = Client::connect(addr);
    let r = c.get("/metrics");
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

const TIMEOUTS: &str = "ringcast_limit_hits_total{limit=\"timeouts\"";
const SLOW_DROPS: &str = "ringcast_slow_consumer_drops_total";

/// Open connections by kind, as the gauge says (the scrape itself is one http connection).
fn open_connections(addr: SocketAddr, kind: &str) -> f64 {
    metric(addr, &format!("ringcast_connections{{kind=\"{kind}\""))
}

/// Starts a server and returns it with its descriptor count at rest: after
/// one request came and went (a worker creates its io_uring and wake-up fds
/// when it starts running, after the listening line), once the count has
/// not changed for 300 ms.
fn start(config: &str) -> (TestServer, usize) {
    let srv = TestServer::start(config);
    assert_eq!(srv.connect().get("/healthz").status, 200);
    let end = Instant::now() + Duration::from_secs(5);
    let (mut last, mut since) = (fds(&srv), Instant::now());
    while since.elapsed() < Duration::from_millis(300) {
        assert!(
            Instant::now() < end,
            "the server's descriptor count never settled"
        );
        std::thread::sleep(Duration::from_millis(20));
        let n = fds(&srv);
        if n != last {
            (last, since) = (n, Instant::now());
        }
    }
    (srv, last)
}

/// A socket with a small receive buffer, connected to `addr`.
fn small_window(addr: SocketAddr) -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    s.set_read_timeout(Some(IO_LIMIT)).unwrap();
    s
}

/// Bytes waiting in the send queue of the server's socket whose peer is
/// `client` (the tx_queue column of /proc/net/tcp for that connection).
fn server_send_queue(server: SocketAddr, client: SocketAddr) -> u64 {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let want_local = format!(":{:04X}", server.port());
    let want_remote = format!(":{:04X}", client.port());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[1].ends_with(&want_local) && f[2].ends_with(&want_remote) {
            let tx = f[4].split(':').next().unwrap();
            return u64::from_str_radix(tx, 16).unwrap();
        }
    }
    panic!("no server socket for {client} in /proc/net/tcp");
}

/// Closes with SO_LINGER 0: the peer gets a RST, not a FIN.
fn reset(s: socket2::Socket) {
    s.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
}

#[test]
fn a_subscriber_reset_while_its_backlog_is_written_leaves_the_others_whole() {
    let (srv, base) =
        start("[server]\nworkers = 1\n[hub]\nauto_join_room = \"\"\nmax_queued_bytes = \"8MiB\"\n");
    let addr = srv.addr;
    // Two victims, SSE and WebSocket, with tiny receive windows; they never read.
    let sse_victim = small_window(addr);
    (&sse_victim)
        .write_all(b"GET /sse?room=big HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let ws_victim = small_window(addr);
    (&ws_victim)
        .write_all(
            format!(
                "GET /ws?room=big HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let mut observer = SseClient::open(addr, "/sse?room=big", "");
    wait_subscribers(addr, "big", 3);

    // 100 x 60 KB: more than the victims' windows and the kernel's send
    // buffers (which autotune up to tcp_wmem's maximum, 4 MiB by default)
    // hold, so the rest waits in the server's queue; still under
    // hub.max_queued_bytes (no slow-consumer drop).
    const N: usize = 100;
    let reader = std::thread::spawn(move || {
        for i in 0..N {
            let e = observer.next_event();
            assert!(
                e.data.starts_with(&format!("{i}:")),
                "event {i}: {:.20}",
                e.data
            );
            assert_eq!(e.data.len(), 60_000);
        }
        observer
    });
    let mut p = Publisher::new(addr);
    for i in 0..N {
        let mut body = format!("{i}:");
        body.push_str(&"x".repeat(60_000 - body.len()));
        p.publish("big", &body);
    }
    let mut observer = reader.join().unwrap();
    // The server is in the middle of writing to both victims: bytes wait
    // in its sockets' send queues.
    for v in [&sse_victim, &ws_victim] {
        let local = v.local_addr().unwrap().as_socket().unwrap();
        wait_for(Duration::from_secs(5), "a full server send queue", || {
            server_send_queue(addr, local) > 0
        });
    }
    reset(sse_victim);
    reset(ws_victim);

    wait_subscribers(addr, "big", 1);
    // The observer is unaffected and keeps receiving.
    p.publish("big", "after");
    assert_eq!(observer.next_event().data, "after");
    assert_eq!(open_connections(addr, "sse"), 1.0);
    assert_eq!(open_connections(addr, "ws"), 0.0);
    assert_eq!(
        metric(addr, SLOW_DROPS),
        0.0,
        "the victims were not slow-dropped"
    );
    drop(observer);
    drop(p);
    wait_fds(&srv, base);
    assert_eq!(open_connections(addr, "sse"), 0.0);
}

#[test]
fn a_half_open_websocket_is_closed_after_ping_interval_and_pong_timeout() {
    let (srv, base) = start(
        "[server]\nworkers = 1\n[hub]\nauto_join_room = \"\"\n\
         [ws]\nping_interval = \"200ms\"\npong_timeout = \"300ms\"\n",
    );
    let addr = srv.addr;
    let timeouts_before = metric(addr, TIMEOUTS);
    let mut polite = WsClient::connect(addr, "/ws?room=calm", "");
    // The half-open peer: upgraded, then silent; it reads nothing and
    // answers no ping (from the server's side, a peer that vanished).
    let mut silent = WsClient::connect(addr, "/ws?room=calm", "");
    let opened = Instant::now();
    wait_subscribers(addr, "calm", 2);
    // The polite client answers pings and gets every message while the
    // silent one is cut.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let keeper = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let f = polite.read_frame().expect("polite client kept open");
            match f.opcode {
                9 => polite.send_frame(true, 10, &f.payload),
                1 => {
                    got.push(f.text());
                    if f.text() == "last" {
                        break;
                    }
                }
                op => panic!("unexpected opcode {op}"),
            }
        }
        stop_rx.recv().unwrap();
        (polite, got)
    });
    wait_subscribers(addr, "calm", 1);
    let cut_after = opened.elapsed();
    // At most one ping interval to the first ping, plus the pong timeout
    // (with slack for a loaded machine; the next ping interval is 200 ms).
    assert!(
        cut_after >= Duration::from_millis(300),
        "cut before pong_timeout: {cut_after:?}"
    );
    assert!(
        cut_after < Duration::from_millis(200 + 300 + 2500),
        "cut late: {cut_after:?}"
    );
    assert_eq!(
        metric(addr, TIMEOUTS) - timeouts_before,
        1.0,
        "counted as a timeout"
    );
    // What the silent client finds when it looks: pings, then end of stream.
    while let Some(f) = silent.read_frame() {
        assert_eq!(f.opcode, 9, "only pings were sent");
    }
    // The polite client was served throughout, several pings later.
    let mut p = Publisher::new(addr);
    for i in 0..10 {
        p.publish("calm", &i.to_string());
    }
    p.publish("calm", "last");
    stop_tx.send(()).unwrap();
    let (polite, got) = keeper.join().unwrap();
    let want: Vec<String> = (0..10)
        .map(|i| i.to_string())
        .chain(["last".to_string()])
        .collect();
    assert_eq!(got, want);
    assert_eq!(open_connections(addr, "ws"), 1.0);
    drop((polite, silent, p));
    wait_fds(&srv, base);
}

#[test]
fn a_half_open_sse_subscriber_is_cut_after_send_timeout_though_no_write_blocks() {
    // SSE has no answer to wait for: what detects a peer that vanished is
    // data it does not acknowledge. The keep-alive comments make sure there
    // is always some (an idle stream without them would never notice), and
    // http.send_timeout is also the socket's TCP_USER_TIMEOUT: bytes unsent
    // or unacknowledged for that long make the kernel fail the socket. Here
    // the peer stays but reads nothing (a zero window, as for a vanished
    // peer's full buffer); everything published fits in the kernel's send
    // buffer (it autotunes to megabytes), so no write of the server ever
    // blocks, yet the stream is cut after send_timeout and counted. The
    // queue stays under hub.max_queued_bytes: not the slow-consumer limit.
    // (A peer gone without FIN or RST over a real network takes the same
    // path; on loopback it cannot be made to stop acknowledging.)
    let (srv, base) = start(
        "[server]\nworkers = 1\n[hub]\nauto_join_room = \"\"\nmax_queued_bytes = \"4MiB\"\n\
         [http]\nsend_timeout = \"500ms\"\n[sse]\nkeepalive = \"100ms\"\n",
    );
    let addr = srv.addr;
    let timeouts_before = metric(addr, TIMEOUTS);
    let silent = small_window(addr);
    (&silent)
        .write_all(b"GET /sse?room=quiet HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut observer = SseClient::open(addr, "/sse?room=quiet", "");
    wait_subscribers(addr, "quiet", 2);
    const N: usize = 20; // 1.2 MB
    let reader = std::thread::spawn(move || {
        for i in 0..N {
            let d = observer.next_event().data;
            assert!(d.starts_with(&format!("{i}:")));
        }
        observer
    });
    let mut p = Publisher::new(addr);
    for i in 0..N {
        let mut body = format!("{i}:");
        body.push_str(&"y".repeat(60_000 - body.len()));
        p.publish("quiet", &body);
    }
    let mut observer = reader.join().unwrap();
    let t = Instant::now();
    wait_subscribers(addr, "quiet", 1);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "cut late: {:?}",
        t.elapsed()
    );
    assert_eq!(
        metric(addr, TIMEOUTS) - timeouts_before,
        1.0,
        "counted as a timeout"
    );
    assert_eq!(metric(addr, SLOW_DROPS), 0.0);
    p.publish("quiet", "still here");
    assert_eq!(observer.next_event().data, "still here");
    // The silent client's stream ended: what it holds ends before all of it.
    let mut silent = silent;
    let mut got = Vec::new();
    let _ = silent.read_to_end(&mut got);
    assert!(got.len() < N * 60_000, "got {}", got.len());
    drop((observer, p));
    wait_fds(&srv, base);
}

#[test]
fn slowloris_is_cut_at_header_timeout_with_408_while_a_neighbour_is_served() {
    let (srv, base) = start("[server]\nworkers = 1\n[http]\nheader_timeout = \"2s\"\n");
    let addr = srv.addr;
    let timeouts_before = metric(addr, TIMEOUTS);
    // Five clients sending their request head one byte per second.
    let lorises: Vec<_> = (0..5)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                let head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaa";
                let t0 = Instant::now();
                let mut got = Vec::new();
                for &b in head.iter() {
                    if s.write_all(&[b]).is_err() {
                        break;
                    }
                    // Waits up to a second for an answer: the pacing.
                    let mut buf = [0u8; 1024];
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            got.extend_from_slice(&buf[..n]);
                            break;
                        }
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(e) => panic!("slow client: {e}"),
                    }
                }
                let at = t0.elapsed();
                s.set_read_timeout(Some(IO_LIMIT)).unwrap();
                let _ = s.read_to_end(&mut got);
                (at, String::from_utf8_lossy(&got).into_owned())
            })
        })
        .collect();
    // The neighbour on the same worker: answered promptly all along.
    let mut neighbour = srv.connect();
    let t = Instant::now();
    let mut served = 0;
    while !lorises.iter().all(|h| h.is_finished()) {
        assert!(t.elapsed() < IO_LIMIT, "slow clients never cut");
        let r0 = Instant::now();
        assert_eq!(neighbour.get("/healthz").status, 200);
        // (a worker held up by the slow clients would answer only at the 2 s cut)
        assert!(r0.elapsed() < Duration::from_secs(1), "{:?}", r0.elapsed());
        served += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(served > 20, "served {served}");
    for h in lorises {
        let (at, got) = h.join().unwrap();
        assert!(got.starts_with("HTTP/1.1 408 "), "{got:?}");
        assert!(
            at >= Duration::from_millis(1900) && at < Duration::from_millis(4000),
            "cut after {at:?}"
        );
    }
    assert_eq!(metric(addr, TIMEOUTS) - timeouts_before, 5.0);
    assert_eq!(neighbour.get("/healthz").status, 200);
    drop(neighbour);
    wait_fds(&srv, base);
}

#[test]
fn a_connect_close_flood_leaves_a_subscriber_with_every_message() {
    let (srv, base) = start("[server]\nworkers = 2\n[hub]\nauto_join_room = \"\"\n");
    let addr = srv.addr;
    let mut sse = SseClient::open(addr, "/sse?room=steady", "");
    let mut ws = WsClient::connect(addr, "/ws?room=steady", "");
    wait_subscribers(addr, "steady", 2);
    // Each reader takes messages until "end".
    let sse_reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let d = sse.next_event().data;
            if d == "end" {
                return (sse, got);
            }
            got.push(d);
        }
    });
    let ws_reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let d = ws.next_data().text();
            if d == "end" {
                return (ws, got);
            }
            got.push(d);
        }
    });
    const CYCLES: u64 = 600;
    let flood = std::thread::spawn(move || {
        for cycle in 0..CYCLES {
            match cycle % 5 {
                // connect and close at once
                0 => drop(TcpStream::connect(addr).unwrap()),
                // connect, half a request head, reset
                1 => {
                    let s =
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                            .unwrap();
                    s.connect(&addr.into()).unwrap();
                    let _ = (&s).write_all(b"GET /heal");
                    reset(s);
                }
                // a stream subscription, closed right away
                2 => {
                    let mut c = TcpStream::connect(addr).unwrap();
                    let _ = c.write_all(b"GET /sse?room=steady HTTP/1.1\r\nHost: t\r\n\r\n");
                }
                // a WebSocket subscription, closed without a close frame
                3 => drop(WsClient::connect(addr, "/ws?room=steady", "")),
                // a full request and its answer
                _ => assert_eq!(Client::connect(addr).get("/healthz").status, 200),
            }
        }
    });
    // Publish for as long as the flood runs (at least 100 messages).
    let mut p = Publisher::new(addr);
    let mut sent = 0;
    while sent < 100 || !flood.is_finished() {
        p.publish("steady", &format!("m{sent}"));
        sent += 1;
    }
    flood.join().unwrap();
    p.publish("steady", "end");
    let want: Vec<String> = (0..sent).map(|i| format!("m{i}")).collect();
    let (sse, got) = sse_reader.join().unwrap();
    assert_eq!(got, want, "SSE subscriber: every message, in order, once");
    let (ws, got) = ws_reader.join().unwrap();
    assert_eq!(
        got, want,
        "WebSocket subscriber: every message, in order, once"
    );
    // Nothing of the flood is left: only the two subscribers (and the publisher).
    wait_subscribers(addr, "steady", 2);
    drop(p);
    wait_fds(&srv, base + 2);
    assert_eq!(open_connections(addr, "sse"), 1.0);
    assert_eq!(open_connections(addr, "ws"), 1.0);
    drop((sse, ws));
    wait_fds(&srv, base);
}
