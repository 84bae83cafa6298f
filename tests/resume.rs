//! Resuming from history when what was missed is more than a subscriber's
//! queue may hold (`hub.max_queued_bytes`): the replay is paced by the
//! connection's writes, so every client whose position is still in the
//! history gets all of it, in order, then live messages, and is not dropped
//! as a slow consumer. SSE and WebSocket, single and multi-room, with live
//! publishes during the replay, and a position older than the history.

mod common;
use common::*;
use std::time::Duration;

/// 60 KiB messages, a 256 KiB queue per subscriber (the whole replay is
/// about ten times that), two workers (rooms homed on either).
const CONFIG: &str = "[server]\nworkers = 2\n\
     [hub]\nauto_join_room = \"\"\nmax_message_size = \"64KiB\"\n\
     max_queued_bytes = \"256KiB\"\nhistory_size = 128\n\
     [ws]\nmax_frame_size = \"64KiB\"\nmax_message_size = \"64KiB\"\n\
     [ws.rooms]\nenvelope = \"json\"\n";

const BIG: usize = 60 * 1024;

/// A 60 KiB payload that names its message (byte-exact checks find a mix-up).
fn payload(tag: &str, i: usize) -> String {
    let head = format!("{tag}-{i:03}-");
    let fill = (b'a' + (i % 26) as u8) as char;
    let mut s = head.clone();
    s.extend(std::iter::repeat_n(fill, BIG - head.len()));
    s
}

/// Publishes `n` big messages to `room`; returns their ids and payloads.
fn publish_big(p: &mut Publisher, room: &str, n: usize) -> Vec<(u64, String)> {
    (0..n)
        .map(|i| {
            let data = payload(room, i);
            (p.publish(room, &data), data)
        })
        .collect()
}

/// The bytes of single-room SSE events.
fn sse_bytes(events: &[(u64, String)]) -> Vec<u8> {
    events
        .iter()
        .flat_map(|(id, data)| format!("id: {id}\ndata: {data}\n\n").into_bytes())
        .collect()
}

/// Opens an SSE stream and reads past the `retry:` block.
fn open_sse(c: Client, target: &str, last_event_id: u64) -> SseClient {
    let mut s = SseClient::open_on(c, target, &format!("Last-Event-ID: {last_event_id}\r\n"));
    let retry = s.next_block().expect("the retry block");
    assert_eq!(retry.retry, Some(3000));
    s
}

fn no_slow_consumer_drops(srv: &TestServer) {
    assert_eq!(
        metric(srv.addr, "ringcast_slow_consumer_drops_total", ""),
        0.0,
        "a resuming client was dropped as a slow consumer"
    );
}

/// A client with a 4 KiB receive window.
fn small_window_client(srv: &TestServer) -> Client {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&srv.addr.into()).unwrap();
    Client::from_stream(s.into())
}

/// Reads `n` bytes a few KiB at a time, pausing now and then (a slow
/// reader: the pause is its pace, not a synchronisation).
fn read_slowly(c: &mut Client, n: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(n);
    let mut reads = 0;
    while got.len() < n {
        let piece = c.read_exact_bytes((n - got.len()).min(3000));
        assert!(
            !piece.is_empty(),
            "the stream ended after {} of {n} bytes",
            got.len()
        );
        got.extend_from_slice(&piece);
        reads += 1;
        if reads % 16 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    got
}

#[test]
fn sse_resumes_more_than_the_queue_limit() {
    let srv = TestServer::start(CONFIG);
    let mut p = Publisher::new(srv.addr);
    let sent = publish_big(&mut p, "big", 40);
    let mut s = open_sse(Client::connect(srv.addr), "/sse?room=big", sent[0].0);
    let want = sse_bytes(&sent[1..]);
    let got = s.client.read_exact_bytes(want.len());
    assert!(
        got == want,
        "the replay differs from the 39 missed messages (got {} of {} bytes)",
        got.len(),
        want.len()
    );
    // then live messages, with nothing in between
    let live = p.publish("big", "live");
    let e = s.next_event();
    assert_eq!(
        (e.id, e.event, e.data),
        (Some(live.to_string()), None, "live".to_string())
    );
    no_slow_consumer_drops(&srv);
}

#[test]
fn sse_slow_reader_resumes_everything() {
    let srv = TestServer::start(CONFIG);
    let mut p = Publisher::new(srv.addr);
    let sent = publish_big(&mut p, "slow", 40);
    let mut s = open_sse(small_window_client(&srv), "/sse?room=slow", sent[0].0);
    let want = sse_bytes(&sent[1..]);
    let got = read_slowly(&mut s.client, want.len());
    assert!(got == want, "the slow reader's replay differs");
    let live = p.publish("slow", "live");
    assert_eq!(s.next_event().id, Some(live.to_string()));
    no_slow_consumer_drops(&srv);
}

#[test]
fn websocket_resumes_more_than_the_queue_limit() {
    let srv = TestServer::start(CONFIG);
    let mut p = Publisher::new(srv.addr);
    let sent = publish_big(&mut p, "wsbig", 40);
    let mut ws = WsClient::connect(
        srv.addr,
        &format!("/ws?room=wsbig&last_event_id={}", sent[0].0),
        "",
    );
    for (id, data) in &sent[1..] {
        let f = ws.next_data();
        assert_eq!(f.opcode, 1);
        let v: serde_json::Value = serde_json::from_str(&f.text()).unwrap();
        assert_eq!(v["event"], serde_json::Value::Null, "no gap notice");
        assert_eq!(
            (v["room"].as_str(), v["id"].as_u64()),
            (Some("wsbig"), Some(*id))
        );
        assert!(v["data"].as_str() == Some(data.as_str()), "data of {id}");
    }
    let live = p.publish("wsbig", "live");
    let v: serde_json::Value = serde_json::from_str(&ws.next_data().text()).unwrap();
    assert_eq!(
        (v["id"].as_u64(), v["data"].as_str()),
        (Some(live), Some("live"))
    );
    no_slow_consumer_drops(&srv);
}

/// Messages published while the replay streams come once each, after the
/// replayed ones, in id order.
#[test]
fn live_publishes_during_the_replay_arrive_once_in_order() {
    let srv = TestServer::start(CONFIG);
    let mut p = Publisher::new(srv.addr);
    // about 6 MB: more than the socket buffers on both ends hold
    let sent = publish_big(&mut p, "mix", 100);
    let mut s = open_sse(small_window_client(&srv), "/sse?room=mix", sent[0].0);
    // a few replayed messages in, publish more while the client waits
    // (one big, the rest small: even if the replay were over, they would
    // fit in the queue, so only a lost or repeated message fails this)
    for (id, data) in &sent[1..4] {
        let e = s.next_event();
        assert_eq!(e.id, Some(id.to_string()));
        assert!(&e.data == data);
    }
    let live: Vec<(u64, String)> = (0..30)
        .map(|i| {
            let data = if i == 0 {
                payload("live", i)
            } else {
                format!("small {i}")
            };
            (p.publish("mix", &data), data)
        })
        .collect();
    let mut want: Vec<(u64, String)> = sent[4..].to_vec();
    want.extend(live);
    let got: Vec<(u64, String)> = (0..want.len())
        .map(|_| {
            let e = s.next_event();
            (e.id.unwrap().parse::<u64>().unwrap(), e.data)
        })
        .collect();
    let ids = |v: &[(u64, String)]| v.iter().map(|(id, _)| *id).collect::<Vec<_>>();
    assert_eq!(ids(&got), ids(&want), "every id once, in order");
    assert!(got == want, "the data of every message");
    // and then live messages again
    let last = p.publish("mix", "last");
    assert_eq!(s.next_event().id, Some(last.to_string()));
    no_slow_consumer_drops(&srv);
}

/// A position older than the history: the gap notice, then everything the
/// history holds (more than the queue limit), then live messages.
#[test]
fn a_position_older_than_the_history_gets_the_gap_then_all_of_it() {
    let srv = TestServer::start(&CONFIG.replace("history_size = 128", "history_size = 12"));
    let mut p = Publisher::new(srv.addr);
    let sent = publish_big(&mut p, "short", 20);
    let mut s = open_sse(Client::connect(srv.addr), "/sse?room=short", sent[0].0);
    let gap = s.next_event();
    assert_eq!(gap.event.as_deref(), Some("ringcast-gap"));
    let v: serde_json::Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(
        (v["room"].as_str(), v["since"].as_u64()),
        (Some("short"), Some(sent[0].0))
    );
    assert_eq!(
        (v["resume_from"].as_u64(), v["reason"].as_str()),
        (Some(sent[8].0), Some("evicted"))
    );
    let want = sse_bytes(&sent[8..]);
    assert!(
        s.client.read_exact_bytes(want.len()) == want,
        "the history after the gap"
    );
    let live = p.publish("short", "live");
    assert_eq!(s.next_event().id, Some(live.to_string()));
    no_slow_consumer_drops(&srv);
}

/// The same on a WebSocket: the gap frame, then the history.
#[test]
fn websocket_gap_then_all_of_the_history() {
    let srv = TestServer::start(&CONFIG.replace("history_size = 128", "history_size = 12"));
    let mut p = Publisher::new(srv.addr);
    let sent = publish_big(&mut p, "wsshort", 20);
    let mut ws = WsClient::connect(
        srv.addr,
        &format!("/ws?room=wsshort&last_event_id={}", sent[0].0),
        "",
    );
    let v: serde_json::Value = serde_json::from_str(&ws.next_data().text()).unwrap();
    assert_eq!(
        (v["event"].as_str(), v["reason"].as_str()),
        (Some("ringcast-gap"), Some("evicted"))
    );
    assert_eq!(v["resume_from"].as_u64(), Some(sent[8].0));
    for (id, _) in &sent[8..] {
        let v: serde_json::Value = serde_json::from_str(&ws.next_data().text()).unwrap();
        assert_eq!(v["id"].as_u64(), Some(*id));
    }
    no_slow_consumer_drops(&srv);
}

/// Several rooms at once, each more than the queue limit behind: every
/// room's messages in that room's order, each event's id the stream's
/// cursor, a message published to several rooms once.
#[test]
fn multi_room_resume_beyond_the_queue_limit() {
    let srv = TestServer::start(CONFIG);
    let mut p = Publisher::new(srv.addr);
    let a = publish_big(&mut p, "ra", 12);
    let b = publish_big(&mut p, "rb", 12);
    let cursor = format!("{}.{}", a[0].0, b[0].0);
    let mut s = SseClient::open(
        srv.addr,
        &format!("/sse?room=ra&room=rb&last_event_id={cursor}"),
        "",
    );
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let mut last = (a[0].0, b[0].0);
    while got_a.len() + got_b.len() < 22 {
        let e = s.next_event();
        let id = e.id.expect("an id");
        let (pa, pb) = id.split_once('.').expect("a two-room cursor");
        let now: (u64, u64) = (pa.parse().unwrap(), pb.parse().unwrap());
        assert!(
            (now.0 == last.0 && now.1 == last.1 + 1) || (now.1 == last.1 && now.0 == last.0 + 1),
            "cursor {id} after {last:?}: one room moves by one"
        );
        if now.0 != last.0 {
            got_a.push((now.0, e.data));
        } else {
            got_b.push((now.1, e.data));
        }
        last = now;
    }
    assert!(got_a == a[1..], "room a");
    assert!(got_b == b[1..], "room b");
    no_slow_consumer_drops(&srv);
}

/// A resuming client that stops reading during its replay holds its place
/// (bounded) until the history moves past it: then it is dropped as a slow
/// consumer and counted, and coming back it gets the gap notice.
#[test]
fn a_replay_that_falls_behind_the_history_is_dropped() {
    let srv = TestServer::start(&CONFIG.replace("history_size = 128", "history_size = 12"));
    let mut p = Publisher::new(srv.addr);
    let sent = publish_big(&mut p, "stall", 12);
    let mut stalled = non_reading_client(
        srv.addr,
        &format!(
            "GET /sse?room=stall HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {}\r\n\r\n",
            sent[0].0
        ),
    );
    wait_subscribers(srv.addr, "stall", 1);
    let mut more = 0;
    while room_info(srv.addr, "stall")["subscribers"].as_u64() != Some(0) {
        assert!(more < 40, "still subscribed after {more} more messages");
        p.publish("stall", &payload("more", more));
        more += 1;
    }
    assert!(more > 0, "dropped before the history moved on");
    assert_eq!(
        metric(srv.addr, "ringcast_slow_consumer_drops_total", ""),
        1.0
    );
    let got = stalled.read_to_end();
    let first = format!("id: {}\ndata: {}", sent[1].0, &sent[1].1[..100]);
    assert!(
        find(&got, first.as_bytes()).is_some(),
        "the replay had started"
    );
    let mut s = open_sse(Client::connect(srv.addr), "/sse?room=stall", sent[0].0);
    let gap = s.next_event();
    assert_eq!(gap.event.as_deref(), Some("ringcast-gap"));
}
