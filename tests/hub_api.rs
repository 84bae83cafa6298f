//! The embedding API: a server started in-process, a `Hub` kept and called
//! from other threads, `publish_many` delivering once per connection, counts
//! across workers, the on-connect hook, and join/leave for a connection.

mod common;
use common::*;
use ringcast::config::Config;
use ringcast::{Hub, Message, Server, ServerHandle};
use std::sync::mpsc;
use std::time::Duration;

fn start(workers: usize, auto_join: &str) -> ServerHandle {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = workers;
    cfg.hub.auto_join_room = auto_join.to_string();
    Server::new(cfg).unwrap().start().unwrap()
}

fn wait_count(hub: &Hub, room: &str, n: u64) {
    for _ in 0..500 {
        if hub.room_info_blocking(room).unwrap().subscribers == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("room {room} never reached {n} subscribers");
}

#[test]
fn publish_from_any_thread_reaches_subscribers() {
    let srv = start(2, "");
    let hub = srv.hub();
    let mut subs: Vec<SseClient> = (0..8)
        .map(|_| SseClient::open(srv.local_addr(), "/sse?room=lib", ""))
        .collect();
    wait_count(&hub, "lib", 8);
    let h = hub.clone();
    std::thread::spawn(move || {
        for i in 0..3 {
            h.publish(
                "lib",
                Message::with_event("n", format!("from a thread {i}")),
            )
            .unwrap();
        }
    })
    .join()
    .unwrap();
    for s in &mut subs {
        for i in 0..3 {
            let e = s.next_event();
            assert_eq!(e.event.as_deref(), Some("n"));
            assert_eq!(e.data, format!("from a thread {i}"));
        }
    }
    let info = hub.room_info_blocking("lib").unwrap();
    assert_eq!(info.subscribers, 8);
    assert_eq!(info.history_len, 3);
    assert!(hub.publish("bad room", Message::new("x")).is_err());
    assert!(srv.stop());
}

#[test]
fn publish_many_reaches_a_connection_once() {
    let srv = start(2, "");
    let hub = srv.hub();
    let mut both = SseClient::open(srv.local_addr(), "/sse?room=x&room=y", "");
    let mut only_y = SseClient::open(srv.local_addr(), "/sse?room=y", "");
    wait_count(&hub, "x", 1);
    wait_count(&hub, "y", 2);
    hub.publish_many(&["x", "y"], Message::new("once")).unwrap();
    hub.publish("x", Message::new("after")).unwrap();
    assert_eq!(both.next_event().data, "once");
    let e = both.next_event();
    assert_eq!(e.data, "after", "no second copy of 'once' in between");
    // its cursor moved in both rooms although it got one copy
    let cursor: Vec<u64> =
        e.id.unwrap()
            .split('.')
            .map(|p| p.parse().unwrap())
            .collect();
    let y_head = hub.room_info_blocking("y").unwrap().last_id.unwrap();
    assert_eq!(cursor[1], y_head);
    assert_eq!(only_y.next_event().data, "once");
    srv.stop();
}

#[test]
fn async_publish_returns_the_id() {
    let srv = start(2, "");
    let hub = srv.hub();
    let mut s = SseClient::open(srv.local_addr(), "/sse?room=ids", "");
    wait_count(&hub, "ids", 1);
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .build()
        .unwrap();
    let id = rt
        .block_on(hub.publish_async("ids", Message::new("hello")))
        .unwrap();
    let e = s.next_event();
    assert_eq!(e.id.unwrap(), id.to_string());
    srv.stop();
}

#[test]
fn on_connect_hook_sends_a_first_event_and_can_join_rooms() {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 2;
    cfg.hub.auto_join_room = String::new();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let srv = Server::new(cfg)
        .unwrap()
        .on_sse_connect(move |c| {
            tx.lock().unwrap().send(c.id).unwrap();
            vec![Message::with_event(
                "welcome",
                format!("rooms={}", c.request.rooms.len()),
            )]
        })
        .start()
        .unwrap();
    let hub = srv.hub();
    let mut s = SseClient::open(srv.local_addr(), "/sse?room=start", "");
    let first = s.next_event();
    assert_eq!(
        (first.event.as_deref(), first.data.as_str()),
        (Some("welcome"), "rooms=1")
    );
    // The application moves this connection into another room, then out of the first.
    let id = rx.recv().unwrap();
    hub.join(id, "extra").unwrap();
    wait_count(&hub, "extra", 1);
    hub.publish("extra", Message::new("via join")).unwrap();
    assert_eq!(s.next_event().data, "via join");
    hub.leave(id, "start").unwrap();
    wait_count(&hub, "start", 0);
    hub.publish("start", Message::new("not for you")).unwrap();
    hub.publish("extra", Message::new("still here")).unwrap();
    assert_eq!(s.next_event().data, "still here");
    // closing the connection counts it out of every room it was in
    drop(s);
    wait_count(&hub, "extra", 0);
    srv.stop();
}
