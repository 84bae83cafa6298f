//! Server-Sent Events and rooms over real sockets: the wire format byte for
//! byte, keep-alive, fan-out across workers, one order for every subscriber,
//! lossless resume (single and multi-room), the gap notice, slow consumers,
//! and the publish and room endpoints.

mod common;
use common::*;
use std::time::Duration;

const SINGLE: &str = "[hub]\nauto_join_room = \"\"\n";

#[test]
fn head_and_wire_format_byte_for_byte() {
    let srv = TestServer::start(SINGLE);
    let mut c = Client::connect(srv.addr);
    c.send("GET /sse?room=news HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = b"HTTP/1.1 200 OK\r\n\
Server: ringcast\r\n\
Content-Type: text/event-stream; charset=utf-8\r\n\
Cache-Control: no-cache\r\n\
Connection: keep-alive\r\n\
X-Accel-Buffering: no\r\n\r\n\
retry: 3000\n\n";
    assert_eq!(c.read_exact_bytes(head.len()), head.to_vec());
    // wait until the subscriber is counted, then publish
    wait_subscribers(srv.addr, "news", 1);
    let id1 = publish(srv.addr, "news", Some("tick"), "line one\nline two");
    let id2 = publish(srv.addr, "news", None, "a\r\nb\rc\n");
    assert_eq!(id2, id1 + 1);
    let want = format!(
        "id: {id1}\nevent: tick\ndata: line one\ndata: line two\n\n\
         id: {id2}\ndata: a\ndata: b\ndata: c\ndata: \n\n"
    );
    assert_eq!(
        String::from_utf8(c.read_exact_bytes(want.len())).unwrap(),
        want
    );
}

#[test]
fn keepalive_comments_on_an_idle_stream() {
    let srv = TestServer::start("[sse]\nkeepalive = \"200ms\"\n");
    let mut s = SseClient::open(srv.addr, "/sse?room=quiet", "");
    let mut raw = String::new();
    while !raw.contains(": keepalive\n\n") {
        raw.push_str(&String::from_utf8(s.client.read_exact_bytes(1)).unwrap());
        assert!(raw.len() < 200, "{raw:?}");
    }
}

#[test]
fn only_the_exact_path_is_the_endpoint() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    assert_eq!(c.get("/sse/x").status, 404);
    assert_eq!(c.get("/ssex").status, 404);
    c.send("POST /sse HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("GET"));
}

#[test]
fn bad_stream_requests_are_400_and_nothing_else_is_touched() {
    let srv = TestServer::start("[sse]\nmax_rooms_per_connection = 2\n[hub]\nmax_room_name = 8\n");
    let mut good = SseClient::open(srv.addr, "/sse?room=ok", "");
    wait_subscribers(srv.addr, "ok", 1);
    for (target, header, why) in [
        ("/sse?room=a%20b", "", "not a valid room name"),
        ("/sse?room=waytoolongname", "", "not a valid room name"),
        (
            "/sse?room=a&room=b&room=c",
            "",
            "sse.max_rooms_per_connection",
        ),
        ("/sse?room=a", "Last-Event-ID: banana\r\n", "Last-Event-ID"),
        ("/sse?room=a", "Last-Event-ID: 5\r\n", "position(s)"),
        ("/sse?room=a&last_event_id=1.2.3", "", "position(s)"),
    ] {
        let mut c = srv.connect();
        c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n{header}\r\n"));
        let r = c.read_response();
        assert_eq!(r.status, 400, "{target}");
        assert!(r.text().contains(why), "{target}: {}", r.text());
    }
    let id = publish(srv.addr, "ok", None, "still here");
    let e = good.next_event();
    assert_eq!(e.data, "still here");
    assert!(e.id.unwrap().starts_with(&id.to_string()));
}

#[test]
fn publish_reaches_subscribers_on_every_worker() {
    let srv = TestServer::start("[server]\nworkers = 2\n[hub]\nauto_join_room = \"\"\n");
    // 40 connections over two SO_REUSEPORT listeners: both workers get some
    // (all on one worker has probability 2^-39).
    let mut subs: Vec<SseClient> = (0..40)
        .map(|_| SseClient::open(srv.addr, "/sse?room=fan", ""))
        .collect();
    wait_subscribers(srv.addr, "fan", 40);
    let ids: Vec<u64> = (0..5)
        .map(|i| publish(srv.addr, "fan", None, &format!("m{i}")))
        .collect();
    for s in &mut subs {
        for (i, id) in ids.iter().enumerate() {
            let e = s.next_event();
            assert_eq!(
                (e.id.as_deref(), e.data.as_str()),
                (Some(id.to_string().as_str()), format!("m{i}").as_str())
            );
        }
    }
}

#[test]
fn every_subscriber_sees_one_order_under_concurrent_publishers() {
    let srv = TestServer::start("[server]\nworkers = 2\n[hub]\nauto_join_room = \"\"\n");
    let mut subs: Vec<SseClient> = (0..12)
        .map(|_| SseClient::open(srv.addr, "/sse?room=order", ""))
        .collect();
    wait_subscribers(srv.addr, "order", 12);
    let addr = srv.addr;
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            std::thread::spawn(move || {
                let mut pubc = Publisher::new(addr);
                for i in 0..50 {
                    pubc.publish("order", &format!("p{p}-{i}"));
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let mut first: Option<Vec<(String, String)>> = None;
    for s in &mut subs {
        let seen: Vec<(String, String)> = (0..200)
            .map(|_| {
                let e = s.next_event();
                (e.id.unwrap(), e.data)
            })
            .collect();
        let ids: Vec<u64> = seen.iter().map(|(i, _)| i.parse().unwrap()).collect();
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "ids count up by one"
        );
        // each publisher's own messages keep their order
        for p in 0..4 {
            let mine: Vec<&str> = seen
                .iter()
                .filter(|(_, d)| d.starts_with(&format!("p{p}-")))
                .map(|(_, d)| d.as_str())
                .collect();
            let want: Vec<String> = (0..50).map(|i| format!("p{p}-{i}")).collect();
            assert_eq!(mine, want);
        }
        match &first {
            None => first = Some(seen),
            Some(f) => assert_eq!(f, &seen, "every subscriber sees the same order"),
        }
    }
}

#[test]
fn resume_single_room_replays_exactly_what_was_missed() {
    let srv = TestServer::start(SINGLE);
    let mut s = SseClient::open(srv.addr, "/sse?room=r", "");
    wait_subscribers(srv.addr, "r", 1);
    let mut pubc = Publisher::new(srv.addr);
    for i in 0..3 {
        pubc.publish("r", &format!("before {i}"));
    }
    let last = (0..3).map(|_| s.next_event()).last().unwrap();
    drop(s);
    wait_subscribers(srv.addr, "r", 0);
    let missed: Vec<u64> = (0..2)
        .map(|i| pubc.publish("r", &format!("missed {i}")))
        .collect();
    let mut s = SseClient::open(
        srv.addr,
        "/sse?room=r",
        &format!("Last-Event-ID: {}\r\n", last.id.unwrap()),
    );
    for (i, id) in missed.iter().enumerate() {
        let e = s.next_event();
        assert_eq!(e.id.unwrap(), id.to_string());
        assert_eq!(e.data, format!("missed {i}"));
    }
    wait_subscribers(srv.addr, "r", 1);
    let live = pubc.publish("r", "live");
    let e = s.next_event();
    assert_eq!(
        (e.id.unwrap(), e.data),
        (live.to_string(), "live".to_string())
    );
}

#[test]
fn resume_multi_room_with_a_cursor() {
    let srv = TestServer::start("[server]\nworkers = 2\n");
    let mut s = SseClient::open(srv.addr, "/sse?room=a&room=b", "");
    wait_subscribers(srv.addr, "a", 1);
    wait_subscribers(srv.addr, "b", 1);
    publish(srv.addr, "a", None, "a1");
    publish(srv.addr, "b", None, "b1");
    let e1 = s.next_event();
    let e2 = s.next_event();
    let mut got = vec![e1.data.clone(), e2.data.clone()];
    got.sort();
    assert_eq!(got, ["a1", "b1"]);
    // the cursor has one position per room: a, b, then the auto-join room
    let cursor = e2.id.unwrap();
    assert_eq!(cursor.split('.').count(), 3, "{cursor}");
    drop(s);
    wait_subscribers(srv.addr, "a", 0);
    publish(srv.addr, "a", None, "a2");
    publish(srv.addr, "b", None, "b2");
    publish(srv.addr, "__all", None, "z-all");
    publish(srv.addr, "a", None, "a3");
    // resume with the query parameter (for clients that cannot set headers)
    let mut s = SseClient::open(
        srv.addr,
        &format!("/sse?room=a&room=b&last_event_id={cursor}"),
        "",
    );
    let mut got: Vec<String> = (0..4).map(|_| s.next_event().data).collect();
    let a_order: Vec<&String> = got.iter().filter(|d| d.starts_with('a')).collect();
    assert_eq!(a_order, ["a2", "a3"], "room order kept");
    got.sort();
    assert_eq!(got, ["a2", "a3", "b2", "z-all"], "exactly the missed ones");
    // and nothing more is pending: the next event is a live one
    wait_subscribers(srv.addr, "b", 1);
    publish(srv.addr, "b", None, "b3");
    assert_eq!(s.next_event().data, "b3");
}

#[test]
fn join_while_messages_flow_has_no_gap_and_no_duplicate() {
    let srv = TestServer::start("[server]\nworkers = 2\n[hub]\nauto_join_room = \"\"\n");
    let addr = srv.addr;
    let (tx, rx) = std::sync::mpsc::channel();
    let publisher = std::thread::spawn(move || {
        let mut p = Publisher::new(addr);
        let ids: Vec<u64> = (0..400)
            .map(|i| {
                let id = p.publish("flow", &format!("{i}"));
                if i == 100 {
                    tx.send(id).unwrap();
                }
                id
            })
            .collect();
        ids
    });
    let resume_at = rx.recv().unwrap();
    let mut s = SseClient::open(
        addr,
        "/sse?room=flow",
        &format!("Last-Event-ID: {resume_at}\r\n"),
    );
    let ids = publisher.join().unwrap();
    let want: Vec<u64> = ids.into_iter().filter(|&i| i > resume_at).collect();
    let got: Vec<u64> = want
        .iter()
        .map(|_| s.next_event().id.unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn too_short_history_is_signalled_before_live_messages() {
    let srv = TestServer::start("[hub]\nauto_join_room = \"\"\nhistory_size = 2\n");
    let mut p = Publisher::new(srv.addr);
    let first = p.publish("g", "0");
    let ids: Vec<u64> = (1..6).map(|i| p.publish("g", &format!("{i}"))).collect();
    let mut s = SseClient::open(
        srv.addr,
        "/sse?room=g",
        &format!("Last-Event-ID: {first}\r\n"),
    );
    let gap = s.next_event();
    assert_eq!(gap.event.as_deref(), Some("ringcast-gap"));
    assert!(gap.id.is_none());
    let v: serde_json::Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(v["room"], "g");
    assert_eq!(v["since"], first);
    assert_eq!(v["resume_from"], ids[3]);
    assert_eq!(v["reason"], "evicted");
    assert_eq!(s.next_event().data, "4");
    assert_eq!(s.next_event().data, "5");
}

#[test]
fn slow_consumer_is_dropped_and_others_get_everything() {
    let srv = TestServer::start(
        "[hub]\nauto_join_room = \"\"\nmax_message_size = \"64KiB\"\nmax_queued_bytes = \"256KiB\"\n",
    );
    // The slow client asks for a tiny receive window and never reads.
    let slow = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&srv.addr.into()).unwrap();
        let mut c = Client::from_stream(s.into());
        c.send("GET /sse?room=slow HTTP/1.1\r\nHost: t\r\n\r\n");
        c
    };
    let mut fast = SseClient::open(srv.addr, "/sse?room=slow", "");
    wait_subscribers(srv.addr, "slow", 2);
    let payload = "x".repeat(60_000);
    let addr = srv.addr;
    // The fast reader reports each event; the publisher stays at most 3
    // messages (180 KB, under the 256 KiB limit) ahead of it.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        (0..300)
            .map(|_| {
                let n = fast.next_event().data.len();
                tx.send(()).unwrap();
                n
            })
            .sum::<usize>()
    });
    let mut p = Publisher::new(addr);
    for i in 0..300 {
        if i >= 3 {
            rx.recv().unwrap();
        }
        p.publish("slow", &payload);
    }
    assert_eq!(
        reader.join().unwrap(),
        300 * 60_000,
        "the fast subscriber got everything"
    );
    // the slow one was cut: its stream ends before it holds everything
    let mut slow = slow;
    let got = slow.read_to_end();
    assert!(
        got.len() < 300 * 60_000,
        "slow consumer got {} bytes",
        got.len()
    );
    assert_eq!(
        metric(srv.addr, "ringcast_slow_consumer_drops_total", ""),
        1.0
    );
}

#[test]
fn slow_consumer_waiting_on_its_full_socket_is_dropped_at_its_limit() {
    let srv = TestServer::start(SLOW_SUBSCRIBER_CONFIG);
    let slow = non_reading_client(srv.addr, "GET /sse?room=full HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut fast = SseClient::open(srv.addr, "/sse?room=full", "");
    slow_subscriber_on_a_full_socket(&srv, "full", slow, || fast.next_event().data.len());
}

#[test]
fn publish_endpoint_answers_and_enforces_its_rules() {
    let srv = TestServer::start("[hub]\npublish_token = \"s3cret\"\nmax_message_size = 16\n");
    let mut c = srv.connect();
    c.send("POST /publish/x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    let r = c.read_response();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"ringcast\"")
    );
    c.send("POST /publish/x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer nope\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(c.read_response().status, 401);
    c.send("POST /publish/x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\nContent-Length: 2\r\n\r\nhi");
    let r = c.read_response();
    assert_eq!(r.status, 202);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["room"], "x");
    assert!(
        v["id"].as_u64().unwrap() > 1_000_000_000_000_000,
        "ids are microsecond-based"
    );
    c.send("POST /publish/x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\nContent-Length: 17\r\n\r\n01234567890123456");
    assert_eq!(c.read_response().status, 413);
    c.send("POST /publish/bad%20room HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.read_response().status, 400);
    c.send("POST /publish/x?event=a%0Ab HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.read_response().status, 400);
    let r = c.get("/publish/x");
    assert_eq!(
        (r.status, r.header("allow").as_deref()),
        (405, Some("POST"))
    );
}

#[test]
fn rooms_endpoints_count_across_workers_and_return_history() {
    let srv = TestServer::start("[server]\nworkers = 2\n[hub]\nauto_join_room = \"\"\n");
    let _subs: Vec<SseClient> = (0..10)
        .map(|_| SseClient::open(srv.addr, "/sse?room=info", ""))
        .collect();
    wait_subscribers(srv.addr, "info", 10);
    let v = room_info(srv.addr, "info");
    assert_eq!(v["last_id"], serde_json::Value::Null);
    let a = publish(srv.addr, "info", Some("note"), "first");
    let b = publish(srv.addr, "info", None, "second");
    let v = room_info(srv.addr, "info");
    assert_eq!(
        (v["subscribers"].as_u64(), v["last_id"].as_u64()),
        (Some(10), Some(b))
    );
    let mut c = srv.connect();
    let r = c.get(&format!("/rooms/info/messages?since={a}"));
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    assert_eq!(v["messages"][0]["id"], b);
    assert_eq!(v["messages"][0]["data"], "second");
    let r = c.get("/rooms/info/messages?since=0");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["messages"][0]["event"], "note");
    assert_eq!(v["gap"], serde_json::Value::Null);
    assert_eq!(c.get("/rooms/info/messages?since=x").status, 400);
    assert_eq!(c.get("/rooms/info/other").status, 404);
    assert_eq!(room_info(srv.addr, "never-used")["subscribers"], 0);
}

#[test]
fn drain_sends_a_retry_hint_and_exits_zero() {
    let mut srv = TestServer::start("[sse]\nretry_ms = 1234\n");
    let mut s = SseClient::open(srv.addr, "/sse?room=d", "");
    assert_eq!(s.next_block().unwrap().retry, Some(1234));
    wait_subscribers(srv.addr, "d", 1);
    srv.signal(libc::SIGTERM);
    let last = s.next_block().expect("a last block before close");
    assert_eq!(last.retry, Some(1234));
    assert!(s.next_block().is_none(), "then the stream ends");
    assert_eq!(
        srv.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(0)
    );
}

/// A publish the server acknowledged (202) before or during the drain reaches
/// every subscriber before its stream closes; publishes after the drain began
/// are refused with 503, never accepted and dropped.
#[test]
fn drain_delivers_every_acknowledged_publish_first() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut srv = TestServer::start("[server]\nworkers = 2\n[sse]\nretry_ms = 777\n");
    let addr = srv.addr;
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let mut s = SseClient::open(addr, "/sse?room=d", "");
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut last_retry = None;
                while let Some(b) = s.next_block() {
                    if !b.data.is_empty() {
                        got.push(b.data.parse::<u64>().unwrap());
                    }
                    last_retry = b.retry;
                }
                (got, last_retry)
            })
        })
        .collect();
    wait_subscribers(addr, "d", 8);

    let acked = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            // several connections so publishes land on both workers
            let mut conns: Vec<Client> = (0..4).map(|_| Client::connect(addr)).collect();
            let mut ok = Vec::new();
            let mut refused = 0;
            let mut n = 0u64;
            while !conns.is_empty() {
                let mut i = 0;
                while i < conns.len() {
                    n += 1;
                    let body = n.to_string();
                    let sent = conns[i].try_send(format!(
                        "POST /publish/d HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    ));
                    let status = if sent.is_ok() {
                        conns[i].try_read_response().map(|r| r.status)
                    } else {
                        None
                    };
                    match status {
                        Some(202) => {
                            ok.push(n);
                            acked.fetch_add(1, Ordering::Relaxed);
                            i += 1;
                        }
                        Some(503) | None => {
                            refused += usize::from(status.is_some());
                            conns.remove(i);
                        }
                        Some(other) => panic!("publish answered {other}"),
                    }
                }
            }
            (ok, refused)
        })
    };
    while acked.load(Ordering::Relaxed) < 100 {
        std::thread::yield_now();
    }
    srv.signal(libc::SIGTERM);
    let (ok, _refused) = publisher.join().unwrap();
    assert!(ok.len() >= 100);
    for r in readers {
        let (got, last_retry) = r.join().unwrap();
        assert_eq!(last_retry, Some(777), "the stream ends with the retry hint");
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "no duplicates");
        let missing: Vec<u64> = ok
            .iter()
            .filter(|n| sorted.binary_search(n).is_err())
            .copied()
            .collect();
        assert!(
            missing.is_empty(),
            "acknowledged but never delivered: {missing:?}"
        );
    }
    assert_eq!(
        srv.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn quiet_streams_park_and_wake_for_everything() {
    let mut srv = TestServer::start("[hub]\nauto_join_room = \"\"\n[sse]\nretry_ms = 4321\n");
    let mut streams: Vec<SseClient> = (0..3)
        .map(|_| SseClient::open(srv.addr, "/sse?room=hush", ""))
        .collect();
    wait_subscribers(srv.addr, "hush", 3);
    wait_parked(srv.addr, 3.0);
    publish(srv.addr, "hush", Some("note"), "while parked");
    for s in &mut streams {
        let e = s.next_event();
        assert_eq!(
            (e.event.as_deref(), e.data.as_str()),
            (Some("note"), "while parked")
        );
    }
    // clients that leave while parked are noticed
    wait_parked(srv.addr, 3.0);
    drop(streams.split_off(1));
    wait_subscribers(srv.addr, "hush", 1);
    // the drain ends a parked stream with its retry hint
    wait_parked(srv.addr, 1.0);
    srv.signal(libc::SIGTERM);
    let s = &mut streams[0];
    let last = s.next_block().expect("a last block before close");
    assert_eq!(last.retry, Some(4321));
    assert!(s.next_block().is_none(), "then the stream ends");
    assert_eq!(
        srv.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
}
