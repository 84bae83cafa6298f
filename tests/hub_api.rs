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

#[test]
fn no_api_can_forge_sse_fields() {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 2;
    cfg.hub.auto_join_room = String::new();
    let forged = "x\nid: 999\ndata: forged";
    let srv = Server::new(cfg)
        .unwrap()
        .on_sse_connect(move |_| {
            vec![
                Message::with_event(forged, "from the hook"),
                Message::with_event("welcome", "hello"),
            ]
        })
        .start()
        .unwrap();
    let hub = srv.hub();
    let mut s = SseClient::open(srv.local_addr(), "/sse?room=f", "");
    // the hook's bad message is left out, its good one arrives
    let first = s.next_event();
    assert_eq!(
        (first.event.as_deref(), first.data.as_str(), first.id),
        (Some("welcome"), "hello", None)
    );
    wait_count(&hub, "f", 1);
    for bad in [forged, "a\rb", ""] {
        let e = hub.publish("f", Message::with_event(bad, "d")).unwrap_err();
        assert!(
            matches!(e, ringcast::hub::HubError::BadMessage(_)),
            "{bad:?}: {e}"
        );
        assert!(hub
            .publish_many(&["f", "g"], Message::with_event(bad, "d"))
            .is_err());
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .build()
        .unwrap();
    assert!(rt
        .block_on(hub.publish_async("f", Message::with_event(forged, "d")))
        .is_err());
    hub.publish("f", Message::with_event("ok", "real")).unwrap();
    let e = s.next_event();
    assert_eq!((e.event.as_deref(), e.data.as_str()), (Some("ok"), "real"));
    assert_ne!(e.id.as_deref(), Some("999"));
    assert_eq!(hub.room_info_blocking("f").unwrap().history_len, 1);
    srv.stop();
}

#[test]
fn blocking_room_info_on_a_worker_is_an_error_not_a_deadlock() {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 1; // every room's home is the handler's own worker
    let srv = Server::new(cfg)
        .unwrap()
        .ws_handler("/info", Default::default(), |conn| async move {
            let hub = conn.hub();
            let blocking = match hub.room_info_blocking("lobby") {
                Ok(_) => "blocking: answered".to_string(),
                Err(e) => format!("blocking: {e}"),
            };
            conn.send_text(&blocking).unwrap();
            let info = hub.room_info("lobby").await.unwrap();
            conn.send_text(&format!("async: {}", info.history_len))
                .unwrap();
            while conn.recv().await.is_some() {}
        })
        .start()
        .unwrap();
    srv.hub().publish("lobby", Message::new("m")).unwrap();
    let mut ws = WsClient::connect(srv.local_addr(), "/info", "");
    let first = ws.next_data().text();
    assert!(
        first.contains("room_info_blocking blocks and was called on a worker thread"),
        "{first}"
    );
    assert_eq!(ws.next_data().text(), "async: 1");
    srv.stop();
}

#[test]
fn publish_many_is_all_or_nothing_for_bad_input_and_says_what_went_out() {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 1;
    cfg.hub.bus_capacity = 16;
    let srv = Server::new(cfg).unwrap().start().unwrap();
    let hub = srv.hub();
    // a bad room anywhere in the list: nothing is published
    let e = hub
        .publish_many(&["ok-a", "bad room", "ok-b"], Message::new("x"))
        .unwrap_err();
    assert!(e.published.is_empty());
    assert_eq!(hub.room_info_blocking("ok-a").unwrap().history_len, 0);
    // a full inbox part-way: the error lists exactly the rooms that got it
    let rooms: Vec<String> = (0..64).map(|i| format!("many-{i}")).collect();
    let names: Vec<&str> = rooms.iter().map(String::as_str).collect();
    let mut seen_partial = None;
    for _ in 0..200 {
        match hub.publish_many(&names, Message::new("m")) {
            Ok(()) => continue,
            Err(e) => {
                assert_eq!(e.error, ringcast::hub::HubError::Busy);
                seen_partial = Some(e.published);
                break;
            }
        }
    }
    let published = seen_partial.expect("a 16-message inbox filled up");
    // rooms published by earlier (whole) calls hold more; compare with the first room's count
    let base = hub
        .room_info_blocking(names[names.len() - 1])
        .unwrap()
        .history_len;
    for r in &names {
        let n = hub.room_info_blocking(r).unwrap().history_len;
        let expected = base + usize::from(published.iter().any(|p| &**p == *r));
        assert_eq!(n, expected, "room {r}");
    }
    srv.stop();
}
