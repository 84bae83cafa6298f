//! A panic in one connection's code closes that connection and is logged;
//! the worker and every other connection on it keep running.

mod common;
use common::*;
use ringcast::config::Config;
use ringcast::{Message, Server};

fn start() -> ringcast::ServerHandle {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 1; // everything below shares one worker
    cfg.hub.auto_join_room = String::new();
    Server::new(cfg)
        .unwrap()
        .on_sse_connect(|c| {
            if &*c.request.rooms[0] == "explode" {
                panic!("on-connect hook failed");
            }
            Vec::<Message>::new()
        })
        .ws_handler("/fragile", Default::default(), |conn| async move {
            while let Some(msg) = conn.recv().await {
                if msg.as_text() == Some("boom") {
                    panic!("handler failed on purpose");
                }
                conn.send(&msg).ok();
            }
        })
        .start()
        .unwrap()
}

#[test]
fn a_panicking_websocket_handler_closes_only_its_connection() {
    let srv = start();
    let addr = srv.local_addr();
    let mut healthy = WsClient::connect(addr, "/echo", "");
    let mut fragile = WsClient::connect(addr, "/fragile", "");
    fragile.send_text("fine");
    assert_eq!(fragile.next_data().text(), "fine");
    fragile.send_text("boom");
    assert_eq!(fragile.expect_close().0, Some(1011));
    // the same worker still serves the others and new connections
    healthy.send_text("still here");
    assert_eq!(healthy.next_data().text(), "still here");
    let mut again = WsClient::connect(addr, "/fragile", "");
    again.send_text("again");
    assert_eq!(again.next_data().text(), "again");
    assert_eq!(Client::connect(addr).get("/healthz").status, 200);
    drop((healthy, fragile, again));
    assert!(srv.stop());
}

#[test]
fn a_panicking_stream_hook_closes_only_its_stream() {
    let srv = start();
    let addr = srv.local_addr();
    let mut ok = SseClient::open(addr, "/sse?room=calm", "");
    let mut c = Client::connect(addr);
    c.send("GET /sse?room=explode HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(c.closed_by_server(), "the stream ends without a response");
    wait_subscribers(addr, "calm", 1);
    publish(addr, "calm", None, "unaffected");
    assert_eq!(ok.next_event().data, "unaffected");
    drop(ok);
    assert!(srv.stop());
}
