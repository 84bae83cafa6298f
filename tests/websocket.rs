//! WebSocket conformance over raw sockets, for what Autobahn does not
//! reach: handshake edge cases, subprotocols, Origin, framing rules and close
//! codes as the client sees them, limits, rate limits, pings, and rooms.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn handshake_answers_101_with_the_accept_key() {
    let srv = TestServer::start("");
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    let r = &ws.handshake;
    assert_eq!(r.header("upgrade").as_deref(), Some("websocket"));
    // the RFC 6455 example key and answer
    assert_eq!(
        r.header("sec-websocket-accept").as_deref(),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(r.header("sec-websocket-protocol"), None);
    ws.send_text("hi");
    assert_eq!(ws.next_data().text(), "hi");
    // token lists and any case are fine
    let mut c = Client::connect(srv.addr);
    c.send(format!(
        "GET /echo HTTP/1.1\r\nHost: t\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n\
         sec-websocket-key: {WS_KEY}\r\nsec-websocket-version: 13\r\n\r\n"
    ));
    assert_eq!(c.read_response_for(true).status, 101);
}

#[test]
fn bad_upgrades_are_refused_never_hang() {
    let srv = TestServer::start("");
    // plain HTTP to a WebSocket path
    let mut c = srv.connect();
    let r = c.get("/echo");
    assert_eq!(r.status, 400);
    assert!(c.closed_by_server());
    // wrong version: 426 naming the version we speak
    let mut c = Client::connect(srv.addr);
    c.send(format!(
        "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 8\r\n\r\n"
    ));
    let r = c.read_response();
    assert_eq!(r.status, 426);
    assert_eq!(r.header("sec-websocket-version").as_deref(), Some("13"));
    // a key that is not 16 bytes of base64
    for key in ["c2hvcnQ=", "not base64 at all!!!!!!=", ""] {
        let mut c = Client::connect(srv.addr);
        c.send(format!(
            "GET /ws?room=a HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ));
        let r = c.read_response();
        assert_eq!(r.status, 400, "key {key:?}");
        assert!(r.text().contains("Sec-WebSocket-Key"), "{}", r.text());
    }
    // missing Connection: upgrade
    let mut c = Client::connect(srv.addr);
    c.send(format!(
        "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ));
    assert_eq!(c.read_response().status, 400);
}

#[test]
fn subprotocol_is_the_first_match_in_the_clients_order() {
    let srv = TestServer::start("[ws.echo]\nsubprotocols = [\"chat.v2\", \"chat.v1\"]\n");
    let ws = WsClient::connect(
        srv.addr,
        "/echo",
        "Sec-WebSocket-Protocol: foo, chat.v1, chat.v2\r\n",
    );
    assert_eq!(
        ws.handshake.header("sec-websocket-protocol").as_deref(),
        Some("chat.v1")
    );
    let ws = WsClient::connect(srv.addr, "/echo", "Sec-WebSocket-Protocol: foo, bar\r\n");
    assert_eq!(ws.handshake.header("sec-websocket-protocol"), None);
}

#[test]
fn origin_allow_list_gives_403() {
    let srv = TestServer::start("[ws.echo]\nallowed_origins = [\"https://good.example\"]\n");
    let (_, r) = WsClient::handshake(srv.addr, "/echo", "Origin: https://evil.example\r\n");
    assert_eq!(r.status, 403);
    let ws = WsClient::connect(srv.addr, "/echo", "Origin: https://good.example\r\n");
    assert_eq!(ws.handshake.status, 101);
}

fn echo_server() -> TestServer {
    TestServer::start("[ws]\nmax_frame_size = 1024\nmax_message_size = 2048\n")
}

/// Sends raw bytes and expects a close frame with `code`, then end of stream.
fn expect_failure(srv: &TestServer, bytes: &[u8], code: u16) {
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.client.send(bytes);
    let (got, reason) = ws.expect_close();
    assert_eq!(got, Some(code), "reason {reason:?} for {bytes:02x?}");
    assert!(
        ws.client.closed_by_server(),
        "the server closes the TCP connection after its close"
    );
}

#[test]
fn framing_rules_close_with_1002() {
    let srv = echo_server();
    let k = Some([1, 2, 3, 4]);
    // unmasked client frame
    expect_failure(&srv, &WsClient::frame_bytes(true, 0, 1, b"hi", None), 1002);
    // reserved bits without an extension
    expect_failure(&srv, &WsClient::frame_bytes(true, 2, 1, b"hi", k), 1002);
    expect_failure(&srv, &WsClient::frame_bytes(true, 4, 1, b"hi", k), 1002);
    // unknown opcodes
    expect_failure(&srv, &WsClient::frame_bytes(true, 0, 3, b"", k), 1002);
    expect_failure(&srv, &WsClient::frame_bytes(true, 0, 11, b"", k), 1002);
    // control frame over 125 bytes, and a fragmented control frame
    expect_failure(&srv, &WsClient::frame_bytes(true, 0, 9, &[0; 126], k), 1002);
    expect_failure(&srv, &WsClient::frame_bytes(false, 0, 9, b"x", k), 1002);
    // continuation with nothing to continue
    expect_failure(&srv, &WsClient::frame_bytes(true, 0, 0, b"x", k), 1002);
    // a new data frame inside an unfinished message
    let mut b = WsClient::frame_bytes(false, 0, 1, b"part", k);
    b.extend(WsClient::frame_bytes(true, 0, 1, b"new", k));
    expect_failure(&srv, &b, 1002);
}

#[test]
fn fragments_with_interleaved_control_frames_echo_whole() {
    let srv = echo_server();
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.send_frame(false, 1, b"frag-");
    ws.send_frame(true, 9, b"ping in the middle");
    ws.send_frame(false, 0, b"ment");
    ws.send_frame(true, 0, b"ed");
    let pong = ws.read_frame().unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (10, &b"ping in the middle"[..])
    );
    let m = ws.read_frame().unwrap();
    assert_eq!(
        (m.fin, m.opcode, m.text()),
        (true, 1, "frag-mented".to_string())
    );
    ws.send_frame(true, 2, &[0, 159, 146, 150]);
    let m = ws.read_frame().unwrap();
    assert_eq!((m.opcode, m.payload), (2, vec![0, 159, 146, 150]));
}

#[test]
fn invalid_utf8_fails_at_the_first_bad_fragment() {
    let srv = echo_server();
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    // F4 90 can never start valid UTF-8 (above U+10FFFF): 1007 without waiting for the rest
    ws.send_frame(false, 1, &[b'o', b'k', 0xF4, 0x90]);
    assert_eq!(ws.expect_close().0, Some(1007));
}

#[test]
fn close_handshake_echoes_and_validates_codes() {
    let srv = echo_server();
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.send_close(1000, "bye");
    assert_eq!(ws.expect_close(), (Some(1000), "bye".to_string()));
    assert!(ws.client.closed_by_server());

    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.send_close(3001, "app");
    assert_eq!(ws.expect_close().0, Some(3001));

    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.send_frame(true, 8, b"");
    assert_eq!(
        ws.expect_close().0,
        None,
        "an empty close is answered with an empty close"
    );

    for bad in [1005u16, 1006, 1015, 999, 1016, 2999, 5000] {
        let mut ws = WsClient::connect(srv.addr, "/echo", "");
        ws.send_close(bad, "");
        assert_eq!(ws.expect_close().0, Some(1002), "code {bad}");
    }
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(&[0xff, 0xfe]);
    ws.send_frame(true, 8, &p);
    assert_eq!(
        ws.expect_close().0,
        Some(1007),
        "close reason must be UTF-8"
    );
    // a one-byte close payload is a protocol error
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.send_frame(true, 8, &[3]);
    assert_eq!(ws.expect_close().0, Some(1002));
}

#[test]
fn ping_is_answered_with_the_same_payload() {
    let srv = echo_server();
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.send_frame(true, 9, b"are you there");
    let f = ws.read_frame().unwrap();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (10, &b"are you there"[..])
    );
}

#[test]
fn size_limits_close_1009_from_the_header() {
    let srv = echo_server();
    // a frame header announcing more than max_frame_size: 1009 before any payload is sent
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    let mut head = WsClient::frame_bytes(true, 0, 2, &[0; 2000], Some([9, 9, 9, 9]));
    head.truncate(8); // 2-byte header + 2-byte length + mask
    ws.client.send(&head);
    assert_eq!(ws.expect_close().0, Some(1009));
    // a message growing past max_message_size over several fragments
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.send_frame(false, 2, &[1; 1000]);
    ws.send_frame(false, 0, &[1; 1000]);
    ws.send_frame(true, 0, &[1; 1000]);
    assert_eq!(ws.expect_close().0, Some(1009));
    // exactly at the limits is fine
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    ws.send_frame(false, 2, &[7; 1024]);
    ws.send_frame(true, 0, &[7; 1024]);
    assert_eq!(ws.next_data().payload.len(), 2048);
}

#[test]
fn message_rate_limit_closes_1008_and_a_silent_peer_is_cut_after_close_timeout() {
    let srv = TestServer::start(
        "[ws]\nclose_timeout = \"300ms\"\n[ws.echo]\nmax_messages_per_sec = 5\nburst = 5\n",
    );
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    for i in 0..20 {
        ws.send_text(&format!("m{i}"));
    }
    let mut echoed = 0;
    let code = loop {
        let f = ws.read_frame().unwrap();
        match f.opcode {
            1 => echoed += 1,
            8 => break f.close().0,
            _ => {}
        }
    };
    assert_eq!(code, Some(1008));
    assert!((5..20).contains(&echoed), "burst then cut: {echoed}");
    // we never answer the close: the server cuts the connection itself
    assert!(ws.client.closed_by_server());
}

#[test]
fn unanswered_pings_close_the_connection_answered_ones_keep_it() {
    let srv = TestServer::start("[ws]\nping_interval = \"200ms\"\npong_timeout = \"200ms\"\n");
    let mut silent = WsClient::connect(srv.addr, "/echo", "");
    let mut polite = WsClient::connect(srv.addr, "/echo", "");
    // both get pings; only one answers them
    let p = silent.read_frame().unwrap();
    assert_eq!(p.opcode, 9);
    for _ in 0..3 {
        let p = polite.read_frame().unwrap();
        assert_eq!(p.opcode, 9);
        polite.send_frame(true, 10, &p.payload);
    }
    assert!(silent.client.closed_by_server() || silent.read_frame().is_none());
    polite.send_text("still here");
    assert_eq!(polite.next_data().text(), "still here");
}

#[test]
fn room_messages_arrive_as_one_shared_text_frame() {
    let srv = TestServer::start("[server]\nworkers = 2\n[hub]\nauto_join_room = \"\"\n");
    let mut subs: Vec<WsClient> = (0..10)
        .map(|_| WsClient::connect(srv.addr, "/ws?room=live", ""))
        .collect();
    wait_subscribers(srv.addr, "live", 10);
    publish(srv.addr, "live", None, "hello room");
    for ws in &mut subs {
        let f = ws.read_frame().unwrap();
        assert_eq!(
            (f.fin, f.opcode, f.text()),
            (true, 1, "hello room".to_string())
        );
    }
    // data that is not UTF-8 comes as a binary frame
    let mut c = Client::connect(srv.addr);
    c.send(
        b"POST /publish/live HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n\xff\xfe".as_slice(),
    );
    assert_eq!(c.read_response().status, 202);
    let f = subs[0].read_frame().unwrap();
    assert_eq!((f.opcode, f.payload), (2, vec![0xff, 0xfe]));
}

#[test]
fn json_envelope_and_resume_with_last_event_id() {
    let srv = TestServer::start("[hub]\nauto_join_room = \"\"\n[ws.rooms]\nenvelope = \"json\"\n");
    let mut ws = WsClient::connect(srv.addr, "/ws?room=j", "");
    wait_subscribers(srv.addr, "j", 1);
    let id1 = publish(srv.addr, "j", Some("note"), "one");
    let v: serde_json::Value = serde_json::from_str(&ws.next_data().text()).unwrap();
    assert_eq!(
        (
            v["room"].as_str(),
            v["id"].as_u64(),
            v["event"].as_str(),
            v["data"].as_str()
        ),
        (Some("j"), Some(id1), Some("note"), Some("one"))
    );
    drop(ws);
    wait_subscribers(srv.addr, "j", 0);
    let id2 = publish(srv.addr, "j", None, "two");
    let mut ws = WsClient::connect(srv.addr, &format!("/ws?room=j&last_event_id={id1}"), "");
    let v: serde_json::Value = serde_json::from_str(&ws.next_data().text()).unwrap();
    assert_eq!(
        (v["id"].as_u64(), v["data"].as_str()),
        (Some(id2), Some("two"))
    );
}

#[test]
fn client_publish_renders_the_template_escaped() {
    let srv = TestServer::start(
        "[hub]\nauto_join_room = \"\"\n[ws.rooms]\nclient_publish = true\n\
         template = '<div id=\"chat\" hx-swap-oob=\"beforeend\"><p><b>{{user}}</b>: {{message}}</p></div>'\n",
    );
    let mut alice = WsClient::connect(srv.addr, "/ws?room=chat", "");
    let mut bob = WsClient::connect(srv.addr, "/ws?room=chat", "");
    wait_subscribers(srv.addr, "chat", 2);
    alice.send_text(
        r#"{"user":"alice","message":"<script>alert(1)</script>","HEADERS":{"HX-Request":"true"}}"#,
    );
    let want = r#"<div id="chat" hx-swap-oob="beforeend"><p><b>alice</b>: &lt;script&gt;alert(1)&lt;/script&gt;</p></div>"#;
    assert_eq!(bob.next_data().text(), want);
    assert_eq!(alice.next_data().text(), want);
    // a message that is not JSON breaks the endpoint's rule: 1008 naming it
    alice.send_text("plain");
    let (code, reason) = alice.expect_close();
    assert_eq!(code, Some(1008));
    assert!(reason.contains("JSON"), "{reason}");
}

#[test]
fn room_subscriber_messages_are_ignored_without_client_publish() {
    let srv = TestServer::start("[hub]\nauto_join_room = \"\"\n");
    let mut ws = WsClient::connect(srv.addr, "/ws?room=q", "");
    wait_subscribers(srv.addr, "q", 1);
    ws.send_text("ignored");
    let id = publish(srv.addr, "q", None, "from the server");
    assert_eq!(ws.next_data().text(), "from the server");
    assert_eq!(
        room_info(srv.addr, "q")["last_id"].as_u64(),
        Some(id),
        "nothing else was published"
    );
}

#[test]
fn bad_room_requests_are_400() {
    let srv = TestServer::start("[ws.rooms]\nmax_rooms_per_connection = 1\n");
    let (_, r) = WsClient::handshake(srv.addr, "/ws?room=a&room=b", "");
    assert_eq!(r.status, 400);
    let (_, r) = WsClient::handshake(srv.addr, "/ws?room=bad%20name", "");
    assert_eq!(r.status, 400);
}

#[test]
fn deflate_is_negotiated_and_room_frames_are_compressed_once() {
    let srv = TestServer::start("[hub]\nauto_join_room = \"\"\n");
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    let mut a = WsClient::connect(srv.addr, "/ws?room=z", offer);
    let ext = a.handshake.header("sec-websocket-extensions").unwrap();
    assert!(ext.starts_with("permessage-deflate"), "{ext}");
    assert!(ext.contains("server_no_context_takeover"), "{ext}");
    let mut plain = WsClient::connect(srv.addr, "/ws?room=z", "");
    wait_subscribers(srv.addr, "z", 2);
    let data = "compress me please ".repeat(40);
    publish(srv.addr, "z", None, &data);
    let f = a.read_frame().unwrap();
    assert!(f.rsv1, "compressed");
    assert!(f.payload.len() < data.len() / 4);
    let mut z = flate2::Decompress::new(false);
    let mut input = f.payload.clone();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(data.len() + 64);
    z.decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), data);
    let f = plain.read_frame().unwrap();
    assert!(!f.rsv1);
    assert_eq!(f.text(), data);
}

#[test]
fn drain_closes_websockets_with_1001() {
    let mut srv = TestServer::start("[server]\nshutdown_timeout = \"5s\"\n");
    let mut ws = WsClient::connect(srv.addr, "/ws?room=d", "");
    let mut echo = WsClient::connect(srv.addr, "/echo", "");
    wait_subscribers(srv.addr, "d", 1);
    srv.signal(libc::SIGTERM);
    for c in [&mut ws, &mut echo] {
        let (code, _) = c.expect_close();
        assert_eq!(code, Some(1001));
        c.send_close(1001, "");
        assert!(c.client.closed_by_server());
    }
    assert_eq!(
        srv.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn frames_split_across_reads_are_reassembled() {
    let srv = TestServer::start("[ws]\nmax_frame_size = \"1MiB\"\nmax_message_size = \"1MiB\"\n");
    // far larger than one pooled read buffer (16 KiB): arrives over many reads
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    ws.send_frame(true, 2, &big);
    assert_eq!(ws.next_data().payload, big);
    // a frame fed one byte per write
    let frame = WsClient::frame_bytes(true, 0, 1, b"byte by byte", Some([5, 6, 7, 8]));
    for b in frame {
        ws.client.send([b]);
    }
    assert_eq!(ws.next_data().text(), "byte by byte");
    // and the worker still serves everyone else
    let mut other = srv.connect();
    assert_eq!(other.get("/healthz").status, 200);
}

#[test]
fn a_largest_allowed_message_is_echoed_with_default_limits() {
    let srv = TestServer::start("");
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    let big = vec![b'a'; 1 << 20]; // ws.max_message_size
    ws.send_frame(true, 2, &big);
    let f = ws.next_data();
    assert_eq!(f.payload.len(), big.len());
    // and a burst of large messages is echoed whole, in order
    for i in 0..8u8 {
        ws.send_frame(true, 2, &vec![i; 300_000]);
    }
    for i in 0..8u8 {
        let f = ws.next_data();
        assert_eq!((f.payload.len(), f.payload[0]), (300_000, i));
    }
}

#[test]
fn reading_pauses_while_the_handler_is_behind_and_resumes() {
    // a 64 KiB inbox: 40 messages of 30 KB sent at once must pause reading
    // several times, and every one is still echoed, in order
    let srv = TestServer::start(
        "[hub]\nmax_queued_bytes = \"64KiB\"\nmax_message_size = \"64KiB\"\n[ws]\nmax_message_size = \"64KiB\"\nmax_frame_size = \"64KiB\"\n",
    );
    let mut ws = WsClient::connect(srv.addr, "/echo", "");
    let mut burst = Vec::new();
    for i in 0..40u8 {
        burst.extend(WsClient::frame_bytes(
            true,
            0,
            2,
            &vec![i; 30_000],
            Some([1, 2, 3, 4]),
        ));
    }
    let mut writer = ws.client.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        writer.write_all(&burst).unwrap();
    });
    for i in 0..40u8 {
        let f = ws.next_data();
        assert_eq!(
            (f.payload.len(), f.payload[0], f.payload[29_999]),
            (30_000, i, i)
        );
    }
    sender.join().unwrap();
}

#[test]
fn the_library_client_talks_to_the_server() {
    use ringcast::client::{Client as WsLibClient, ConnectOptions, Message};
    let srv = TestServer::start("[hub]\nauto_join_room = \"\"\n");
    let url = format!("ws://{}/echo", srv.addr);
    let mut c = WsLibClient::connect(&url).unwrap();
    c.send_text("hello from the library").unwrap();
    assert_eq!(
        c.recv().unwrap(),
        Message::Text("hello from the library".into())
    );
    c.send_binary(&[1, 2, 3]).unwrap();
    assert_eq!(c.recv().unwrap(), Message::Binary(vec![1, 2, 3]));
    assert_eq!(
        c.close(1000, "done").unwrap(),
        Some((Some(1000), "done".to_string()))
    );
    // with permessage-deflate, and as a room subscriber
    let opts = ConnectOptions::default().permessage_deflate();
    let (mut sub, resp) =
        WsLibClient::connect_with(&format!("ws://{}/ws?room=lib", srv.addr), &opts).unwrap();
    assert_eq!(resp.status, 101);
    assert!(sub.deflate().is_some());
    wait_subscribers(srv.addr, "lib", 1);
    let long = "compressible ".repeat(100);
    publish(srv.addr, "lib", None, &long);
    assert_eq!(sub.recv().unwrap(), Message::Text(long));
}

#[test]
fn resume_past_the_history_gets_a_gap_frame_then_what_is_left() {
    let srv = TestServer::start(
        "[hub]\nhistory_size = 2\nauto_join_room = \"\"\n[ws.rooms]\nenvelope = \"json\"\n",
    );
    let ids: Vec<u64> = (1..=5)
        .map(|i| publish(srv.addr, "g", None, &format!("m{i}")))
        .collect();
    let mut ws = WsClient::connect(
        srv.addr,
        &format!("/ws?room=g&last_event_id={}", ids[0]),
        "",
    );
    let gap: serde_json::Value = serde_json::from_str(&ws.next_data().text()).unwrap();
    assert_eq!(gap["event"], "ringcast-gap", "{gap}");
    assert_eq!(gap["room"], "g");
    assert_eq!(gap["since"], ids[0]);
    for (i, id) in ids.iter().enumerate().skip(3) {
        let m: serde_json::Value = serde_json::from_str(&ws.next_data().text()).unwrap();
        assert_eq!(
            (m["id"].as_u64(), m["data"].as_str()),
            (Some(*id), Some(format!("m{}", i + 1).as_str()))
        );
    }
}

#[test]
fn quiet_room_subscribers_park_and_wake_for_everything() {
    let mut srv = TestServer::start("[hub]\nauto_join_room = \"\"\n");
    let mut subs: Vec<WsClient> = (0..4)
        .map(|_| WsClient::connect(srv.addr, "/ws?room=calm", ""))
        .collect();
    wait_subscribers(srv.addr, "calm", 4);
    wait_parked(srv.addr, 4.0);
    // a room message reaches every parked subscriber
    publish(srv.addr, "calm", None, "while parked");
    for ws in &mut subs {
        assert_eq!(ws.next_data().text(), "while parked");
    }
    wait_parked(srv.addr, 4.0);
    // a ping is answered
    subs[0].send_frame(true, 9, b"are you there");
    let pong = subs[0].read_frame().unwrap();
    assert_eq!((pong.opcode, pong.payload), (10, b"are you there".to_vec()));
    // a close is echoed and the connection closed
    wait_parked(srv.addr, 4.0);
    subs[1].send_close(1000, "bye");
    assert_eq!(subs[1].expect_close(), (Some(1000), "bye".to_string()));
    assert!(subs[1].client.closed_by_server());
    drop(subs.remove(1));
    // clients that go away while parked are noticed
    wait_parked(srv.addr, 3.0);
    drop(subs.split_off(1));
    wait_subscribers(srv.addr, "calm", 1);
    // and the drain closes a parked subscriber with 1001
    wait_parked(srv.addr, 1.0);
    srv.signal(libc::SIGTERM);
    assert_eq!(subs[0].expect_close().0, Some(1001));
    assert_eq!(
        srv.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn a_parked_subscriber_is_still_pinged_and_cut_without_a_pong() {
    let srv = TestServer::start(
        "[hub]\nauto_join_room = \"\"\n[ws]\nping_interval = \"2s\"\npong_timeout = \"500ms\"\n",
    );
    let mut silent = WsClient::connect(srv.addr, "/ws?room=pinged", "");
    let mut polite = WsClient::connect(srv.addr, "/ws?room=pinged", "");
    wait_parked(srv.addr, 2.0);
    let p = silent.read_frame().unwrap();
    assert_eq!(p.opcode, 9, "a parked subscriber gets its ping");
    for _ in 0..2 {
        let p = polite.read_frame().unwrap();
        assert_eq!(p.opcode, 9);
        polite.send_frame(true, 10, &p.payload);
    }
    assert!(silent.client.closed_by_server() || silent.read_frame().is_none());
    publish(srv.addr, "pinged", None, "still here");
    assert_eq!(polite.next_data().text(), "still here");
}

#[test]
fn slow_subscriber_waiting_on_its_full_socket_is_dropped_at_its_limit() {
    let srv = TestServer::start(SLOW_SUBSCRIBER_CONFIG);
    let slow = non_reading_client(
        srv.addr,
        &format!(
            "GET /ws?room=full HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    );
    let mut fast = WsClient::connect(srv.addr, "/ws?room=full", "");
    slow_subscriber_on_a_full_socket(&srv, "full", slow, || fast.next_data().payload.len());
}
