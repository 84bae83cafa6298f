//! Several ringcast nodes on one or two real `redis-server`s
//! (`[cluster] engine = "redis"`): one order per room across nodes, resume
//! on any node, and what clients see when Redis or a node fails.
//! Redis is Debian's package (tests/redis/setup.sh, run by `.ci/run`; the
//! tests run it themselves when it is missing), started per test on a free
//! port in a temporary directory.

mod common;
#[path = "common/redis.rs"]
mod redis;

use common::*;
use redis::Redis;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A node of a cluster on `redis` (one room per stream, JSON envelope on WebSocket).
fn node_config(redis: &[&Redis], workers: usize) -> String {
    let urls: Vec<String> = redis.iter().map(|r| format!("{:?}", r.url())).collect();
    format!(
        "[server]\nworkers = {workers}\nshutdown_timeout = \"10s\"\n\
         [hub]\nauto_join_room = \"\"\nhistory_size = 1000\n\
         [ws.rooms]\nenvelope = \"json\"\n\
         [demo]\nenabled = false\n[dashboard]\nenabled = false\n\
         [cluster]\nengine = \"redis\"\nredis = [{}]\ncommand_timeout = \"1s\"\npresence_ttl = \"3s\"\n",
        urls.join(", ")
    )
}

/// A node of 2 workers, once it is connected to Redis (`/healthz` 200).
fn node(redis: &[&Redis]) -> TestServer {
    let n = TestServer::start(&node_config(redis, 2));
    wait_health(n.addr, 200);
    n
}

/// `POST /publish/{room}`: status, id when accepted, and the response.
fn try_publish(addr: SocketAddr, room: &str, data: &str) -> (u16, Option<u64>, Response) {
    let mut c = Client::connect(addr);
    c.send(format!(
        "POST /publish/{room} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{data}",
        data.len()
    ));
    let r = c.read_response();
    let id = (r.status == 202).then(|| {
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"]
            .as_u64()
            .unwrap()
    });
    (r.status, id, r)
}

/// Publishes like a client that honours `503` + `Retry-After` (nothing
/// was published then): tries again until accepted (bounded: 15 s).
fn publish_retrying(addr: SocketAddr, room: &str, data: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, id, resp) = try_publish(addr, room, data);
        match status {
            202 => return id.unwrap(),
            503 if Instant::now() < deadline => {
                assert_eq!(resp.header("retry-after").as_deref(), Some("1"));
                std::thread::sleep(Duration::from_millis(50));
            }
            s => panic!("publish answered {s}: {}", resp.text()),
        }
    }
}

/// Polls `/healthz` until it answers `status` (bounded: 15 s); its body.
fn wait_health(addr: SocketAddr, status: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = Client::connect(addr).get("/healthz");
        if r.status == status {
            return r.text();
        }
        assert!(
            Instant::now() < deadline,
            "/healthz stayed {} ({})",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next `n` events of an SSE stream as (id, data).
fn sse_take(s: &mut SseClient, n: usize) -> Vec<(u64, String)> {
    (0..n)
        .map(|_| {
            let e = s.next_event();
            assert_eq!(e.event, None, "unexpected event {e:?}");
            (e.id.unwrap().parse().unwrap(), e.data)
        })
        .collect()
}

/// The next `n` room messages of a WebSocket (JSON envelope) as (id, data).
fn ws_take(w: &mut WsClient, n: usize) -> Vec<(u64, String)> {
    (0..n)
        .map(|_| {
            let v: serde_json::Value = serde_json::from_str(&w.next_data().text()).unwrap();
            assert!(v.get("event").is_none_or(|e| e.is_null()), "unexpected {v}");
            (
                v["id"].as_u64().unwrap(),
                v["data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn published_on_one_node_reaches_sse_and_websocket_subscribers_on_the_others_in_one_order() {
    let r = Redis::start();
    let (a, b, c) = (node(&[&r]), node(&[&r]), node(&[&r]));
    let mut sse_b = SseClient::open(b.addr, "/sse?room=news", "");
    let mut sse_c = SseClient::open(c.addr, "/sse?room=news", "");
    let mut ws_c = WsClient::connect(c.addr, "/ws?room=news", "");
    // the count is cluster-wide: every node sees all three
    wait_subscribers(a.addr, "news", 3);
    let mut p = Publisher::new(a.addr);
    let sent: Vec<(u64, String)> = (0..50)
        .map(|i| {
            let d = format!("m{i}");
            (p.publish("news", &d), d)
        })
        .collect();
    for w in sent.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "ids count up by one");
    }
    assert_eq!(sse_take(&mut sse_b, 50), sent);
    assert_eq!(sse_take(&mut sse_c, 50), sent);
    assert_eq!(ws_take(&mut ws_c, 50), sent);
    let info = room_info(b.addr, "news");
    assert_eq!(info["last_id"].as_u64(), Some(sent[49].0));
    assert_eq!(info["history"].as_u64(), Some(50));
}

#[test]
fn concurrent_publishers_on_three_nodes_give_every_subscriber_one_sequence() {
    let r = Redis::start();
    let nodes = [node(&[&r]), node(&[&r]), node(&[&r])];
    let mut subs: Vec<SseClient> = nodes
        .iter()
        .flat_map(|n| {
            [
                SseClient::open(n.addr, "/sse?room=busy", ""),
                SseClient::open(n.addr, "/sse?room=busy", ""),
            ]
        })
        .collect();
    wait_subscribers(nodes[0].addr, "busy", 6);
    let per = 40;
    let publishers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let addr = n.addr;
            std::thread::spawn(move || {
                let mut p = Publisher::new(addr);
                (0..per)
                    .map(|i| {
                        let d = format!("n{k}-{i}");
                        (p.publish("busy", &d), d)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<(u64, String)> = publishers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acked.sort();
    assert_eq!(acked.len(), 3 * per);
    let first = sse_take(&mut subs[0], 3 * per);
    // the order is the ids' order, and it holds every acknowledged message
    assert_eq!(first, acked);
    for s in &mut subs[1..] {
        assert_eq!(sse_take(s, 3 * per), first);
    }
}

#[test]
fn a_client_resumes_on_another_node_with_exactly_what_it_missed() {
    let r = Redis::start();
    let (a, b, c) = (node(&[&r]), node(&[&r]), node(&[&r]));
    let mut sub = SseClient::open(b.addr, "/sse?room=feed", "");
    wait_subscribers(a.addr, "feed", 1);
    let mut p = Publisher::new(a.addr);
    let before: Vec<(u64, String)> = (0..5)
        .map(|i| {
            (
                p.publish("feed", &format!("before{i}")),
                format!("before{i}"),
            )
        })
        .collect();
    assert_eq!(sse_take(&mut sub, 5), before);
    drop(sub);
    wait_subscribers(a.addr, "feed", 0);
    let missed: Vec<(u64, String)> = (0..10)
        .map(|i| {
            (
                p.publish("feed", &format!("missed{i}")),
                format!("missed{i}"),
            )
        })
        .collect();
    let mut back = SseClient::open(
        c.addr,
        "/sse?room=feed",
        &format!("Last-Event-ID: {}\r\n", before[4].0),
    );
    assert_eq!(sse_take(&mut back, 10), missed);
    // then live messages, from any node, with nothing repeated at the seam
    let live = Publisher::new(b.addr).publish("feed", "live");
    assert_eq!(sse_take(&mut back, 1), vec![(live, "live".to_string())]);
    assert_eq!(live, missed[9].0 + 1);
}

#[test]
fn redis_down_means_503_and_unhealthy_and_nothing_acknowledged_is_lost() {
    let mut r = Redis::start_durable();
    let (a, b, c) = (node(&[&r]), node(&[&r]), node(&[&r]));
    let mut sse_b = SseClient::open(b.addr, "/sse?room=ops", "");
    let mut ws_c = WsClient::connect(c.addr, "/ws?room=ops", "");
    wait_subscribers(a.addr, "ops", 2);
    let mut acked = Vec::new();
    for i in 0..5 {
        let d = format!("up{i}");
        acked.push((Publisher::new(a.addr).publish("ops", &d), d));
    }
    r.kill();
    let why = wait_health(a.addr, 503);
    assert!(why.contains("unhealthy") && why.contains(&r.url()), "{why}");
    wait_health(b.addr, 503);
    let (mut refused, mut tries) = (0, 0);
    while refused < 5 {
        tries += 1;
        let d = format!("down{tries}");
        let (status, id, resp) = try_publish(a.addr, "ops", &d);
        match status {
            503 => {
                refused += 1;
                assert_eq!(resp.header("retry-after").as_deref(), Some("1"));
                assert!(resp.text().contains("unavailable"), "{}", resp.text());
            }
            202 => acked.push((id.unwrap(), d)),
            s => panic!("publish answered {s}: {}", resp.text()),
        }
    }
    r.restart();
    for n in [&a, &b, &c] {
        wait_health(n.addr, 200);
    }
    for i in 0..5 {
        let d = format!("back{i}");
        acked.push((publish_retrying(c.addr, "ops", &d), d));
    }
    // the same connections receive every acknowledged message, in order, no gap
    assert_eq!(sse_take(&mut sse_b, acked.len()), acked);
    assert_eq!(ws_take(&mut ws_c, acked.len()), acked);
    let m = Client::connect(a.addr).get("/metrics").text();
    assert!(m.contains("ringcast_cluster_publish_failures_total"), "{m}");
    let failures: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("ringcast_cluster_publish_failures_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 5, "{failures}");
}

#[test]
fn redis_back_without_its_data_gives_live_subscribers_a_reset_gap() {
    let mut r = Redis::start();
    let (a, b) = (node(&[&r]), node(&[&r]));
    let mut sse = SseClient::open(b.addr, "/sse?room=vol", "");
    let mut ws = WsClient::connect(b.addr, "/ws?room=vol", "");
    wait_subscribers(a.addr, "vol", 2);
    let old = Publisher::new(a.addr).publish("vol", "old");
    assert_eq!(sse_take(&mut sse, 1), vec![(old, "old".to_string())]);
    assert_eq!(ws_take(&mut ws, 1), vec![(old, "old".to_string())]);
    r.restart_empty();
    wait_health(a.addr, 200);
    wait_health(b.addr, 200);
    let new = publish_retrying(a.addr, "vol", "new");
    assert!(new > old, "ids keep growing across the reset");
    let gap = sse.next_event();
    assert_eq!(gap.event.as_deref(), Some("ringcast-gap"), "{gap:?}");
    let g: serde_json::Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(g["reason"], "reset");
    assert_eq!(g["since"].as_u64(), Some(old));
    assert_eq!(g["resume_from"].as_u64(), Some(new));
    assert_eq!(sse_take(&mut sse, 1), vec![(new, "new".to_string())]);
    let g: serde_json::Value = serde_json::from_str(&ws.next_data().text()).unwrap();
    assert_eq!(
        (g["event"].as_str(), g["reason"].as_str()),
        (Some("ringcast-gap"), Some("reset"))
    );
    assert_eq!(ws_take(&mut ws, 1), vec![(new, "new".to_string())]);
    // a client resuming from before the reset is told so too
    let mut late = SseClient::open(
        a.addr,
        "/sse?room=vol",
        &format!("Last-Event-ID: {old}\r\n"),
    );
    let gap = late.next_event();
    assert_eq!(gap.event.as_deref(), Some("ringcast-gap"));
    assert!(gap.data.contains("\"reset\""), "{}", gap.data);
    assert_eq!(sse_take(&mut late, 1), vec![(new, "new".to_string())]);
}

#[test]
fn clients_of_a_killed_node_resume_on_another_with_no_loss_and_no_duplicate() {
    let r = Redis::start();
    let (a, mut b, c) = (node(&[&r]), node(&[&r]), node(&[&r]));
    let mut sse = SseClient::open(b.addr, "/sse?room=k", "");
    let mut ws = WsClient::connect(b.addr, "/ws?room=k", "");
    wait_subscribers(a.addr, "k", 2);
    let mut p = Publisher::new(a.addr);
    let first: Vec<(u64, String)> = (0..5)
        .map(|i| (p.publish("k", &format!("a{i}")), format!("a{i}")))
        .collect();
    assert_eq!(sse_take(&mut sse, 5), first);
    assert_eq!(ws_take(&mut ws, 5), first);
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    assert!(sse.next_block().is_none(), "the stream ends with the node");
    let during: Vec<(u64, String)> = (0..7)
        .map(|i| (p.publish("k", &format!("b{i}")), format!("b{i}")))
        .collect();
    let last = first[4].0;
    let mut sse = SseClient::open(c.addr, "/sse?room=k", &format!("Last-Event-ID: {last}\r\n"));
    let mut ws = WsClient::connect(c.addr, &format!("/ws?room=k&last_event_id={last}"), "");
    assert_eq!(sse_take(&mut sse, 7), during);
    assert_eq!(ws_take(&mut ws, 7), during);
    let live = p.publish("k", "live");
    assert_eq!(sse_take(&mut sse, 1), vec![(live, "live".to_string())]);
    assert_eq!(ws_take(&mut ws, 1), vec![(live, "live".to_string())]);
}

#[test]
fn two_redis_instances_share_the_rooms_and_losing_one_affects_only_its_rooms() {
    let r1 = Redis::start();
    let mut r2 = Redis::start();
    let (a, b) = (node(&[&r1, &r2]), node(&[&r1, &r2]));
    let rooms: Vec<String> = (0..24).map(|i| format!("s{i}")).collect();
    for room in &rooms {
        Publisher::new(a.addr).publish(room, "x");
    }
    let (mut on1, mut on2) = (Vec::new(), Vec::new());
    for room in &rooms {
        let key = format!("ringcast:r:{room}:s");
        match (r1.exists(&key), r2.exists(&key)) {
            (true, false) => on1.push(room.clone()),
            (false, true) => on2.push(room.clone()),
            other => panic!("room {room} is on {other:?}"),
        }
    }
    assert!(!on1.is_empty() && !on2.is_empty(), "{on1:?} {on2:?}");
    // every node agrees where each room is: b publishes to the same instance
    Publisher::new(b.addr).publish(&on2[0], "y");
    assert!(r2
        .command(&["XLEN", &format!("ringcast:r:{}:s", on2[0])])
        .starts_with(":2"));
    let mut sub1 = SseClient::open(b.addr, &format!("/sse?room={}", on1[0]), "");
    let mut sub2 = SseClient::open(b.addr, &format!("/sse?room={}", on2[0]), "");
    wait_subscribers(a.addr, &on1[0], 1);
    wait_subscribers(a.addr, &on2[0], 1);
    r2.kill();
    let why = wait_health(a.addr, 503);
    assert!(why.contains(&r2.url()) && !why.contains(&r1.url()), "{why}");
    // rooms on the first instance go on as before
    for i in 0..3 {
        let d = format!("ok{i}");
        let id = Publisher::new(a.addr).publish(&on1[0], &d);
        assert_eq!(sse_take(&mut sub1, 1), vec![(id, d)]);
    }
    // rooms on the lost one refuse publishes and keep their subscribers
    let (status, _, resp) = try_publish(a.addr, &on2[0], "lost");
    assert_eq!(status, 503, "{}", resp.text());
    r2.restart();
    wait_health(a.addr, 200);
    wait_health(b.addr, 200);
    let id = publish_retrying(a.addr, &on2[0], "again");
    let e = sub2.next_event();
    // the lost instance forgot the room: the subscriber is told, then gets the message
    assert_eq!(e.event.as_deref(), Some("ringcast-gap"), "{e:?}");
    assert_eq!(sse_take(&mut sub2, 1), vec![(id, "again".to_string())]);
}

#[test]
fn sigterm_on_a_node_delivers_every_acknowledged_message_before_closing() {
    let r = Redis::start();
    let (a, b) = (node(&[&r]), node(&[&r]));
    let mut subs: Vec<SseClient> = (0..3)
        .map(|_| SseClient::open(b.addr, "/sse?room=d", ""))
        .collect();
    wait_subscribers(a.addr, "d", 3);
    let mut p = Publisher::new(a.addr);
    let acked: Vec<(u64, String)> = (0..200)
        .map(|i| (p.publish("d", &format!("m{i}")), format!("m{i}")))
        .collect();
    b.signal(libc::SIGTERM);
    for s in &mut subs {
        let mut got = Vec::new();
        while let Some(e) = s.next_block() {
            if let (Some(id), false) = (e.id.clone(), e.data.is_empty()) {
                got.push((id.parse::<u64>().unwrap(), e.data));
            }
        }
        assert_eq!(
            got, acked,
            "every acknowledged message before the stream closed"
        );
    }
}

#[test]
fn cluster_config_mistakes_are_refused_at_start_with_the_key() {
    let dir = TempDir::new("cfg");
    let cases = [
        ("[cluster]\nengine = \"redis\"\n", "cluster.redis"),
        ("[cluster]\nengine = \"redis\"\nredis = [\"http://127.0.0.1:1\"]\n", "cluster.redis[0]"),
        ("[cluster]\nengine = \"etcd\"\n", "engine"),
        (
            "[cluster]\nengine = \"redis\"\nredis = [\"redis://:s3cret@127.0.0.1:1\", \"redis://:s3cret@127.0.0.1:1\"]\n",
            "listed twice",
        ),
        (
            "[cluster]\nengine = \"redis\"\nredis = [\"redis://:s3cret@127.0.0.1:notaport\"]\n",
            "did not parse",
        ),
        (
            "[cluster]\nengine = \"redis\"\nredis = [\"redis://127.0.0.1:6379/x\"]\n",
            "Invalid database number",
        ),
    ];
    for (cfg, needle) in cases {
        let path = dir.0.join("c.toml");
        std::fs::write(&path, cfg).unwrap();
        let out = std::process::Command::new(bin())
            .arg("--config")
            .arg(&path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{cfg} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{cfg}: {err}");
        assert!(
            !err.contains("s3cret"),
            "the password is in the error: {err}"
        );
    }
}

#[test]
fn a_node_whose_subscription_is_cut_catches_up_from_the_stream_in_order() {
    let r = Redis::start();
    let (a, b) = (node(&[&r]), node(&[&r]));
    let mut sse = SseClient::open(b.addr, "/sse?room=cut", "");
    let mut ws = WsClient::connect(b.addr, "/ws?room=cut", "");
    wait_subscribers(a.addr, "cut", 2);
    let addr = a.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut p = Publisher::new(addr);
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 300 {
                let d = format!("c{i}");
                acked.push((p.publish("cut", &d), d));
                i += 1;
            }
            acked
        })
    };
    // wait until messages flow, then cut every node's subscription connection
    let first = sse_take(&mut sse, 20);
    assert!(r
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .starts_with(':'));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = publisher.join().unwrap();
    assert_eq!(first[..], acked[..20]);
    // the same connections get every acknowledged message, in order, once
    assert_eq!(sse_take(&mut sse, acked.len() - 20), acked[20..]);
    assert_eq!(ws_take(&mut ws, acked.len()), acked);
    let m = Client::connect(b.addr).get("/metrics").text();
    let metric = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} missing"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(metric("ringcast_cluster_resubscriptions_total ") >= 1);
    assert!(metric("ringcast_cluster_recovered_messages_total ") >= 1);
    assert_eq!(metric("ringcast_cluster_catchup_gaps_total "), 0);
}

#[test]
fn a_room_left_and_joined_again_at_once_stays_subscribed() {
    let r = Redis::start();
    let (a, b) = (node(&[&r]), node(&[&r]));
    // each subscriber leaves the room as the next one joins it: the node's
    // unsubscribe and subscribe reach Redis in that order
    for _ in 0..30 {
        let s = SseClient::open(b.addr, "/sse?room=flap", "");
        drop(s);
    }
    let mut last = SseClient::open(b.addr, "/sse?room=flap", "");
    wait_subscribers(a.addr, "flap", 1);
    let id = Publisher::new(a.addr).publish("flap", "here");
    assert_eq!(sse_take(&mut last, 1), vec![(id, "here".to_string())]);
}

#[test]
fn hub_max_rooms_bounds_the_rooms_a_node_subscribes_to() {
    let r = Redis::start();
    let a = node(&[&r]);
    let b = TestServer::start(&node_config(&[&r], 1).replace("[hub]\n", "[hub]\nmax_rooms = 2\n"));
    wait_health(b.addr, 200);
    let mut one = WsClient::connect(b.addr, "/ws?room=one", "");
    let _two = WsClient::connect(b.addr, "/ws?room=two", "");
    wait_subscribers(a.addr, "two", 1);
    let mut three = WsClient::connect(b.addr, "/ws?room=three", "");
    let (code, reason) = three.expect_close();
    assert_eq!(code, Some(1013), "{reason}");
    assert!(reason.contains("room limit"), "{reason}");
    let m = Client::connect(b.addr).get("/metrics").text();
    assert!(
        m.contains("ringcast_limit_hits_total{limit=\"max_rooms\",worker=\"0\"} 1"),
        "{}",
        m.lines()
            .filter(|l| l.contains("max_rooms"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // the rooms it has keep working
    let id = Publisher::new(a.addr).publish("one", "still");
    assert_eq!(ws_take(&mut one, 1), vec![(id, "still".to_string())]);
}

#[test]
fn pipelined_publishes_are_answered_in_order_with_other_requests_in_their_place() {
    let r = Redis::start();
    let (a, b) = (node(&[&r]), node(&[&r]));
    let mut sub = SseClient::open(b.addr, "/sse?room=pipe", "");
    wait_subscribers(a.addr, "pipe", 1);
    let post = |d: &str, extra: &str, version: &str| {
        format!(
            "POST /publish/pipe HTTP/{version}\r\nHost: t\r\n{extra}Content-Length: {}\r\n\r\n{d}",
            d.len()
        )
    };
    let mut req = String::new();
    for i in 0..20 {
        req.push_str(&post(&format!("p{i}"), "", "1.1"));
    }
    req.push_str("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    req.push_str(&post("old", "Connection: keep-alive\r\n", "1.0"));
    req.push_str("POST /publish/bad%20room HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx");
    for i in 20..30 {
        req.push_str(&post(&format!("p{i}"), "", "1.1"));
    }
    req.push_str(&post("last", "Connection: close\r\n", "1.1"));
    let mut c = Client::connect(a.addr);
    c.send(&req);
    let mut ids = Vec::new();
    let mut expect = Vec::new();
    for i in 0..20 {
        let r = c.read_response();
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push(
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"]
                .as_u64()
                .unwrap(),
        );
        expect.push(format!("p{i}"));
    }
    let h = c.read_response();
    assert_eq!((h.status, h.text().as_str()), (200, "ok"));
    let old = c.read_response();
    assert_eq!(old.status, 202);
    assert_eq!(
        old.header("connection").as_deref(),
        Some("keep-alive"),
        "{}",
        old.head
    );
    ids.push(
        serde_json::from_slice::<serde_json::Value>(&old.body).unwrap()["id"]
            .as_u64()
            .unwrap(),
    );
    expect.push("old".into());
    assert_eq!(c.read_response().status, 400);
    for i in 20..30 {
        let r = c.read_response();
        assert_eq!(r.status, 202);
        ids.push(
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"]
                .as_u64()
                .unwrap(),
        );
        expect.push(format!("p{i}"));
    }
    let last = c.read_response();
    assert_eq!(last.status, 202);
    ids.push(
        serde_json::from_slice::<serde_json::Value>(&last.body).unwrap()["id"]
            .as_u64()
            .unwrap(),
    );
    expect.push("last".into());
    assert!(c.closed_by_server(), "Connection: close is honoured");
    for w in ids.windows(2) {
        assert_eq!(w[1], w[0] + 1, "numbered in the order sent: {ids:?}");
    }
    let got = sse_take(&mut sub, expect.len());
    assert_eq!(got, ids.into_iter().zip(expect).collect::<Vec<_>>());
}

#[test]
fn an_embedded_hub_publishes_through_redis_in_order_from_any_thread() {
    let r = Redis::start();
    let other = node(&[&r]);
    let mut cfg = ringcast::config::Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 2;
    cfg.hub.auto_join_room = String::new();
    cfg.cluster.engine = ringcast::config::EngineKind::Redis;
    cfg.cluster.redis = vec![r.url()];
    let srv = ringcast::Server::new(cfg).unwrap().start().unwrap();
    let hub = srv.hub();
    wait_health(srv.local_addr(), 200);
    let mut sub = SseClient::open(other.addr, "/sse?room=lib", "");
    wait_subscribers(srv.local_addr(), "lib", 1);
    let h = hub.clone();
    std::thread::spawn(move || {
        for i in 0..50 {
            h.publish("lib", ringcast::Message::new(format!("t{i}")))
                .unwrap();
        }
    })
    .join()
    .unwrap();
    let got = sse_take(&mut sub, 50);
    assert_eq!(
        got.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        (0..50).map(|i| format!("t{i}")).collect::<Vec<_>>()
    );
    let info = hub.room_info_blocking("lib").unwrap();
    assert_eq!(info.last_id, Some(got[49].0));
    assert_eq!((info.subscribers, info.history_len), (1, 50));
    assert!(srv.stop());
}

#[test]
fn the_dashboard_feed_stays_on_its_node() {
    let r = Redis::start();
    let config = node_config(&[&r], 2).replace(
        "[dashboard]\nenabled = false\n",
        "[dashboard]\nenabled = true\ninterval = \"100ms\"\n",
    );
    let (a, b) = (TestServer::start(&config), TestServer::start(&config));
    wait_health(a.addr, 200);
    wait_health(b.addr, 200);
    let mut feed = SseClient::open(b.addr, "/sse?room=__dashboard", "");
    let e = feed.next_event();
    assert!(e.event.is_some(), "{e:?}");
    // counted by its own node only, and nothing of it in Redis
    assert_eq!(
        room_info(b.addr, "__dashboard")["subscribers"].as_u64(),
        Some(1)
    );
    assert_eq!(
        room_info(a.addr, "__dashboard")["subscribers"].as_u64(),
        Some(0)
    );
    assert_eq!(r.command(&["KEYS", "ringcast:r:__dashboard*"]), "*0\r\n");
}

#[test]
fn a_redis_password_works_and_never_shows() {
    let secret = "hunter2-s3cret";
    let mut r = Redis::start_with_password(secret);
    let (mut a, mut b) = (node(&[&r]), node(&[&r]));
    let mut sse = SseClient::open(b.addr, "/sse?room=pw", "");
    wait_subscribers(a.addr, "pw", 1);
    let id = Publisher::new(a.addr).publish("pw", "x");
    assert_eq!(sse_take(&mut sse, 1), vec![(id, "x".to_string())]);
    r.kill();
    let why = wait_health(a.addr, 503);
    assert!(why.contains("redis://***@127.0.0.1:"), "{why}");
    let (status, _, resp) = try_publish(a.addr, "pw", "y");
    assert_eq!(status, 503);
    let metrics = Client::connect(a.addr).get("/metrics").text();
    for text in [
        why,
        resp.text(),
        metrics,
        a.log_now().join("\n"),
        b.log_now().join("\n"),
    ] {
        assert!(!text.contains(secret), "the password shows: {text}");
    }
    // a wrong password is a clear reason, not a secret
    drop(sse);
    let wrong = node_config(&[&r], 1).replace(secret, "wrong");
    r.restart();
    let c = TestServer::start(&wrong);
    let deadline = Instant::now() + Duration::from_secs(15);
    let why = loop {
        // the first answer may still say it has not connected yet
        let why = wait_health(c.addr, 503);
        if why.contains("WRONGPASS") || Instant::now() > deadline {
            break why;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        why.contains("WRONGPASS") || why.contains("invalid"),
        "{why}"
    );
    assert!(!why.contains("wrong@"), "{why}");
}

#[test]
fn a_multi_room_cursor_resumes_on_another_node() {
    let r = Redis::start();
    let (a, b, c) = (node(&[&r]), node(&[&r]), node(&[&r]));
    let mut s = SseClient::open(b.addr, "/sse?room=x&room=y", "");
    wait_subscribers(a.addr, "y", 1);
    let x1 = publish(a.addr, "x", None, "x1");
    let y1 = publish(a.addr, "y", None, "y1");
    let e1 = s.next_event();
    let e2 = s.next_event();
    assert_eq!((e1.data.as_str(), e2.data.as_str()), ("x1", "y1"));
    let cursor = e2.id.unwrap();
    assert_eq!(cursor, format!("{x1}.{y1}"));
    drop(s);
    wait_subscribers(a.addr, "y", 0);
    let x2 = publish(a.addr, "x", None, "x2");
    let y2 = publish(c.addr, "y", None, "y2");
    let mut back = SseClient::open(
        c.addr,
        "/sse?room=x&room=y",
        &format!("Last-Event-ID: {cursor}\r\n"),
    );
    let mut got: Vec<(String, String)> = (0..2)
        .map(|_| {
            let e = back.next_event();
            (e.data, e.id.unwrap())
        })
        .collect();
    got.sort();
    // what it missed in each room, and cursors that carry both positions
    assert_eq!(got[0].0, "x2");
    assert_eq!(got[1].0, "y2");
    assert!(
        got.iter().any(|(_, id)| *id == format!("{x2}.{y2}")),
        "the last cursor holds both positions: {got:?}"
    );
}

#[test]
fn a_stopped_node_stops_counting_at_once() {
    let r = Redis::start();
    // counts that would outlive the test if the node did not withdraw them
    let config = node_config(&[&r], 2).replace("presence_ttl = \"3s\"", "presence_ttl = \"10m\"");
    let a = node(&[&r]);
    let mut b = TestServer::start(&config);
    wait_health(b.addr, 200);
    let _subs: Vec<SseClient> = (0..3)
        .map(|_| SseClient::open(b.addr, "/sse?room=cnt", ""))
        .collect();
    wait_subscribers(a.addr, "cnt", 3);
    b.signal(libc::SIGTERM);
    assert!(
        b.wait_exit(Duration::from_secs(15)).is_some(),
        "b did not stop"
    );
    assert_eq!(room_info(a.addr, "cnt")["subscribers"].as_u64(), Some(0));
}

#[test]
fn many_clients_resuming_at_once_each_get_all_they_missed() {
    let r = Redis::start();
    let (a, b) = (node(&[&r]), node(&[&r]));
    let mut p = Publisher::new(a.addr);
    let first = p.publish("storm", "m0");
    let sent: Vec<(u64, String)> = std::iter::once((first, "m0".to_string()))
        .chain((1..300).map(|i| (p.publish("storm", &format!("m{i}")), format!("m{i}"))))
        .collect();
    // more resuming clients than the node reads streams for at once
    let clients: Vec<SseClient> = (0..80)
        .map(|_| {
            SseClient::open(
                b.addr,
                "/sse?room=storm",
                &format!("Last-Event-ID: {}\r\n", first - 1),
            )
        })
        .collect();
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| std::thread::spawn(move || sse_take(&mut c, 300)))
        .collect();
    for t in readers {
        assert_eq!(t.join().unwrap(), sent);
    }
}
