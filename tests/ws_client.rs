//! The reconnecting room subscriber (`ringcast::client::reconnect`) against
//! the real server: messages in order with their room, id and event; a
//! server restart on the same port with messages published before and
//! after (resumed with nothing lost and nothing twice); the backoff while
//! the server is down (growing, capped, jittered, seen through the event
//! hook); the gap notice as a typed item when the history no longer holds
//! what was missed; a keep-alive ping that goes unanswered.

mod common;
use common::{publish, wait_subscribers, TestServer};

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use ringcast::client::reconnect::{
    ConnectionEvent, Gap, Item, RoomMessage, RoomSubscriber, SubscriberOptions,
};

const CONFIG: &str = "[hub]\nauto_join_room = \"\"\n[ws.rooms]\nenvelope = \"json\"\n";

/// A bound on every wait for something the test expects (not a synchronisation).
const LIMIT: Duration = Duration::from_secs(15);

fn message(item: Item) -> RoomMessage {
    match item {
        Item::Message(m) => m,
        Item::Gap(g) => panic!("expected a message, got {g:?}"),
    }
}

/// What the hook saw, owned.
#[derive(Debug)]
enum Seen {
    Connected(u32, String),
    Disconnected(std::io::ErrorKind),
    Waiting(u32, Duration, Duration),
}

fn hooked(opts: SubscriberOptions) -> (SubscriberOptions, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let opts = opts.on_event(move |ev| {
        let seen = match ev {
            ConnectionEvent::Connected { attempt, cursor } => {
                Seen::Connected(*attempt, cursor.to_string())
            }
            ConnectionEvent::Disconnected { error } => Seen::Disconnected(error.kind()),
            ConnectionEvent::Waiting {
                attempt,
                base,
                delay,
                ..
            } => Seen::Waiting(*attempt, *base, *delay),
        };
        let _ = tx.lock().unwrap().send(seen);
    });
    (opts, rx)
}

#[test]
fn messages_arrive_in_order_with_room_id_and_event() {
    let srv = TestServer::start(CONFIG);
    let url = format!("ws://{}/ws?room=a&room=b", srv.addr);
    let mut sub = RoomSubscriber::new(&url, SubscriberOptions::new()).unwrap();
    sub.connect().unwrap();
    assert!(sub.is_connected());
    assert_eq!(sub.cursor(), "");
    wait_subscribers(srv.addr, "a", 1);
    let mut sent = Vec::new();
    for i in 0..20 {
        let room = if i % 3 == 0 { "b" } else { "a" };
        let event = (i % 5 == 0).then_some("tick");
        let data = format!("message {i}");
        let id = publish(srv.addr, room, event, &data);
        sent.push((room.to_string(), id, event.map(str::to_string), data));
    }
    for (room, id, event, data) in &sent {
        let m = message(sub.recv().unwrap());
        assert_eq!((&m.room, m.id, &m.event, &m.data), (room, *id, event, data));
    }
    let last_a = sent.iter().rev().find(|s| s.0 == "a").unwrap().1;
    let last_b = sent.iter().rev().find(|s| s.0 == "b").unwrap().1;
    assert_eq!(sub.cursor(), format!("{last_a}.{last_b}"));
    assert_eq!(sub.stats().connects, 1);
    assert_eq!(sub.stats().duplicates_dropped, 0);
    sub.close();
    assert!(!sub.is_connected());
}

/// The server stops and starts again on the same port. What was published
/// before the stop arrives once (whether or not the subscriber had read it
/// yet); what was published to the new process before the subscriber came
/// back comes from its history, after the gap notice that says the room
/// was reset; what is published later arrives live.
#[test]
fn a_server_restart_loses_nothing_and_duplicates_nothing() {
    let mut srv = TestServer::start(CONFIG);
    let url = format!("ws://{}/ws?room=r", srv.addr);
    let (opts, events) = hooked(
        SubscriberOptions::new().backoff(Duration::from_millis(20), Duration::from_millis(200)),
    );
    let mut sub = RoomSubscriber::new(&url, opts).unwrap();
    sub.connect().unwrap();
    wait_subscribers(srv.addr, "r", 1);

    let before: Vec<u64> = (0..5)
        .map(|i| publish(srv.addr, "r", None, &format!("before {i}")))
        .collect();
    // read the first three; two stay unread across the restart
    for id in &before[..3] {
        assert_eq!(message(sub.recv().unwrap()).id, *id);
    }
    srv.restart_same_port();
    let after: Vec<u64> = (0..5)
        .map(|i| publish(srv.addr, "r", None, &format!("after {i}")))
        .collect();
    assert!(after[0] > before[4], "ids of the new process start higher");

    let mut got = Vec::new();
    let mut gaps = Vec::new();
    let mut next = |got: &mut Vec<RoomMessage>| match sub.recv().unwrap() {
        Item::Message(m) => got.push(m),
        Item::Gap(g) => gaps.push(g),
    };
    while got.len() < 2 + after.len() {
        next(&mut got);
    }
    // reconnected: a later message comes live
    let live = publish(srv.addr, "r", None, "live");
    while got.len() < 3 + after.len() {
        next(&mut got);
    }
    let ids: Vec<u64> = got.iter().map(|m| m.id).collect();
    let want: Vec<u64> = before[3..]
        .iter()
        .chain(&after)
        .chain([&live])
        .copied()
        .collect();
    assert_eq!(ids, want, "every message once, in order");
    assert_eq!(got[0].data, "before 3");
    assert_eq!(got[2].data, "after 0");
    assert_eq!(got.last().unwrap().data, "live");
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(
        (
            gaps[0].room.as_str(),
            gaps[0].since,
            gaps[0].reason.as_str()
        ),
        ("r", before[4], "reset")
    );
    assert_eq!(gaps[0].resume_from, Some(after[0]));
    assert_eq!(sub.stats().connects, 2);
    assert_eq!(sub.stats().duplicates_dropped, 0);

    // the reconnect sent the cursor of the last message delivered
    let seen: Vec<Seen> = events.try_iter().collect();
    assert!(
        seen.iter()
            .any(|s| matches!(s, Seen::Connected(_, c) if *c == before[4].to_string())),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| matches!(s, Seen::Disconnected(_))),
        "{seen:?}"
    );
}

/// While the server is down every attempt fails and the wait doubles from
/// the initial delay up to the cap, with jitter (between half and all of
/// it); once the server is back the subscriber connects and goes on.
#[test]
fn backoff_grows_and_is_capped_while_the_server_is_down() {
    let mut srv = TestServer::start(CONFIG);
    let url = format!("ws://{}/ws?room=down", srv.addr);
    let (opts, events) = hooked(
        SubscriberOptions::new().backoff(Duration::from_millis(10), Duration::from_millis(80)),
    );
    let mut sub = RoomSubscriber::new(&url, opts).unwrap();
    sub.connect().unwrap();
    wait_subscribers(srv.addr, "down", 1);
    let first = publish(srv.addr, "down", None, "first");
    assert_eq!(message(sub.recv().unwrap()).id, first);
    assert!(matches!(
        events.recv_timeout(LIMIT).unwrap(),
        Seen::Connected(0, _)
    ));

    srv.signal(libc::SIGTERM);
    assert!(srv.wait_exit(LIMIT).is_some(), "the server did not stop");
    let (items_tx, items) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        // the new process's history does not reach back: a reset notice first
        let item = loop {
            match sub.recv() {
                Ok(Item::Gap(g)) => assert_eq!(g.reason, "reset"),
                other => break other,
            }
        };
        let stats = sub.stats().clone();
        items_tx.send((item.map(message), stats)).unwrap();
    });

    let ms = Duration::from_millis;
    let want = [ms(10), ms(20), ms(40), ms(80), ms(80), ms(80), ms(80)];
    match events.recv_timeout(LIMIT).unwrap() {
        Seen::Disconnected(_) => {}
        other => panic!("expected the drop first, got {other:?}"),
    }
    for (i, base) in want.iter().enumerate() {
        match events.recv_timeout(LIMIT).unwrap() {
            Seen::Waiting(attempt, b, delay) => {
                assert_eq!((attempt, b), (i as u32 + 1, *base));
                assert!(
                    delay >= *base / 2 && delay <= *base,
                    "{delay:?} for {base:?}"
                );
            }
            other => panic!("expected wait {}, got {other:?}", i + 1),
        }
    }

    srv.restart_same_port();
    // the subscriber comes back on its own; the cursor resumes after `first`
    let attempt = loop {
        match events.recv_timeout(LIMIT).unwrap() {
            Seen::Connected(attempt, cursor) => {
                assert_eq!(cursor, first.to_string());
                break attempt;
            }
            Seen::Waiting(_, b, _) => assert_eq!(b, ms(80), "capped"),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(attempt as usize >= want.len(), "after {attempt} failures");
    wait_subscribers(srv.addr, "down", 1);
    let next = publish(srv.addr, "down", None, "back");
    let (m, stats) = items.recv_timeout(LIMIT).unwrap();
    let m = m.unwrap();
    assert_eq!((m.id, m.data.as_str()), (next, "back"));
    assert_eq!(stats.connects, 2);
    assert!(stats.attempts as usize > want.len(), "{stats:?}");
    reader.join().unwrap();
}

/// A position the small history no longer reaches: the gap notice first,
/// as [`Item::Gap`], then what the history still holds, in order.
#[test]
fn a_gap_notice_is_a_typed_item() {
    let srv = TestServer::start(&CONFIG.replace("[hub]\n", "[hub]\nhistory_size = 4\n"));
    let ids: Vec<u64> = (0..10)
        .map(|i| publish(srv.addr, "g", Some("e"), &format!("m{i}")))
        .collect();
    // resume after the first message: ids[1..6] are gone
    let url = format!("ws://{}/ws?room=g&last_event_id={}", srv.addr, ids[0]);
    let mut sub = RoomSubscriber::new(&url, SubscriberOptions::new()).unwrap();
    assert_eq!(sub.cursor(), ids[0].to_string());
    assert_eq!(
        sub.recv().unwrap(),
        Item::Gap(Gap {
            room: "g".into(),
            since: ids[0],
            resume_from: Some(ids[6]),
            reason: "evicted".into(),
        })
    );
    for (i, id) in ids.iter().enumerate().skip(6) {
        let m = message(sub.recv().unwrap());
        assert_eq!((m.id, m.data), (*id, format!("m{i}")));
        assert_eq!(m.event.as_deref(), Some("e"));
    }
    assert_eq!(sub.stats().gaps, 1);
    assert_eq!(sub.cursor(), ids[9].to_string());
}

/// A server that completes the upgrade and then never answers: the
/// keep-alive ping goes unanswered, which drops the connection, and the
/// subscriber connects again.
#[test]
fn an_unanswered_keep_alive_ping_drops_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let mut s = conn.unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut b).unwrap();
                assert!(n > 0);
                head.extend_from_slice(&b[..n]);
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let key = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("sec-websocket-key")
                        .then(|| v.trim().to_string())
                })
                .unwrap();
            let accept = ringcast::proto::ws::handshake::accept_key(key.as_bytes());
            write!(
                s,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .unwrap();
            held.push(s); // silent from now on
        }
    });
    let (opts, events) = hooked(
        SubscriberOptions::new()
            .backoff(Duration::from_millis(10), Duration::from_millis(10))
            .keep_alive(Duration::from_millis(100), Duration::from_millis(200)),
    );
    let mut sub = RoomSubscriber::new(&format!("ws://{addr}/ws?room=k"), opts).unwrap();
    let reader = std::thread::spawn(move || {
        let _ = sub.recv();
    });
    assert!(matches!(
        events.recv_timeout(LIMIT).unwrap(),
        Seen::Connected(0, _)
    ));
    assert!(matches!(
        events.recv_timeout(LIMIT).unwrap(),
        Seen::Disconnected(std::io::ErrorKind::TimedOut)
    ));
    assert!(matches!(
        events.recv_timeout(LIMIT).unwrap(),
        Seen::Waiting(1, _, _)
    ));
    assert!(matches!(
        events.recv_timeout(LIMIT).unwrap(),
        Seen::Connected(1, _)
    ));
    drop(reader); // blocked in recv on the silent server; the process ends it
}

/// With max_attempts, the n-th failure in a row is returned as the error.
#[test]
fn max_attempts_gives_up_with_the_last_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (opts, events) = hooked(
        SubscriberOptions::new()
            .backoff(Duration::from_millis(1), Duration::from_millis(4))
            .max_attempts(3),
    );
    let mut sub = RoomSubscriber::new(&format!("ws://127.0.0.1:{port}/ws?room=x"), opts).unwrap();
    let e = sub.recv().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    assert!(e.to_string().contains("3 failure(s) in a row"), "{e}");
    let waits: Vec<u32> = events
        .try_iter()
        .map(|s| match s {
            Seen::Waiting(n, _, _) => n,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(waits, [1, 2]);
    assert_eq!(sub.stats().attempts, 3);
}

/// The async form: the subscriber on its own thread, read through a
/// `Future` (here on ringcast's own runtime); dropping it closes the
/// connection, and a closer ends a blocked receive.
#[test]
fn the_async_form_runs_on_monoio_and_dropping_it_closes_the_connection() {
    let srv = TestServer::start(CONFIG);
    let url = format!("ws://{}/ws?room=async", srv.addr);
    let mut sub = RoomSubscriber::new(&url, SubscriberOptions::new()).unwrap();
    sub.connect().unwrap();
    let items = sub.into_background().unwrap();
    wait_subscribers(srv.addr, "async", 1);
    let id = publish(srv.addr, "async", None, "hello");
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    let m = rt
        .block_on(async { items.recv().await })
        .unwrap()
        .map(message);
    assert_eq!(m.map(|m| (m.id, m.data)), Some((id, "hello".to_string())));
    drop(items);
    wait_subscribers(srv.addr, "async", 0);

    let mut sub = RoomSubscriber::new(&url, SubscriberOptions::new()).unwrap();
    sub.connect().unwrap();
    let closer = sub.closer();
    let addr = srv.addr;
    let stopper = std::thread::spawn(move || {
        wait_subscribers(addr, "async", 1);
        closer.close();
    });
    let e = sub.recv().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "{e}");
    stopper.join().unwrap();
}
