//! The library's SSE client (`ringcast::client::sse`) over real sockets:
//! against ringcast itself (resume across a restart, the gap notice,
//! https), against servers of the test's own that do what the
//! web-platform-tests `eventsource` suite checks of a browser and what a
//! hostile server would, and against sse-starlette under uvicorn.

mod common;
mod self_signed;

use std::future::Future;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake};
use std::time::Duration;

use common::{publish, test_clients_python, wait_subscribers, TempDir, TestServer};
use ringcast::client::sse::{
    ConnectionEvent, Event, Item, ParseError, SseClient, SseError, SseOptions,
};
use ringcast::client::ConnectOptions;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Quick reconnections: whatever `retry:` says, at most 200 ms.
fn quick() -> SseOptions {
    SseOptions::new().retry(ms(20)).retry_bounds(ms(1), ms(200))
}

fn event(item: Item) -> Event {
    match item {
        Item::Event(e) => e,
        Item::Gap(g) => panic!("a gap notice where an event was due: {g:?}"),
    }
}

/// The next item; the client must not have ended.
fn next(c: &mut SseClient) -> Item {
    c.recv().unwrap().expect("the client ended")
}

/// The error the client ended with, and what [`SseError`] it carries.
fn failure(c: &mut SseClient) -> (std::io::Error, Option<SseError>) {
    let e = c.recv().expect_err("the client should fail");
    let inner = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<SseError>())
        .cloned();
    (e, inner)
}

// ---------------------------------------------------------------------------
// Against ringcast

#[test]
fn resumes_across_a_server_restart_without_loss_or_duplicate() {
    let mut srv = TestServer::start("[hub]\nauto_join_room = \"\"\n");
    let url = format!("http://{}/sse?room=feed", srv.addr);
    let mut c = SseClient::new(&url, quick()).unwrap();
    assert!(c.connect().unwrap());
    wait_subscribers(srv.addr, "feed", 1);
    let mut sent = Vec::new();
    for i in 0..4 {
        let d = format!("before {i}");
        sent.push((publish(srv.addr, "feed", None, &d).to_string(), d));
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let e = event(next(&mut c));
        got.push((e.id, e.data));
    }
    srv.restart_same_port();
    for i in 0..4 {
        let d = format!("after {i}");
        sent.push((publish(srv.addr, "feed", Some("late"), &d).to_string(), d));
    }
    while got.len() < 8 {
        match next(&mut c) {
            Item::Event(e) => got.push((e.id, e.data)),
            // the restarted server's room is younger than the cursor
            Item::Gap(g) => assert_eq!(g.reason, "reset", "{g:?}"),
        }
    }
    assert_eq!(
        got, sent,
        "loss, duplicate or reordering across the restart"
    );
    assert_eq!(c.last_event_id(), sent[7].0);
    assert_eq!(c.stats().connects, 2);
    assert_eq!(c.stats().disconnects, 1);
}

#[test]
fn a_gap_in_the_history_comes_out_typed_then_the_history() {
    let srv = TestServer::start("[hub]\nauto_join_room = \"\"\nhistory_size = 4\n");
    let ids: Vec<u64> = (0..10)
        .map(|i| publish(srv.addr, "short", None, &format!("m{i}")))
        .collect();
    let url = format!("http://{}/sse?room=short", srv.addr);
    let opts = quick().last_event_id(&ids[0].to_string());
    let mut c = SseClient::new(&url, opts).unwrap();
    match next(&mut c) {
        Item::Gap(g) => {
            assert_eq!(g.room, "short");
            assert_eq!(g.since, ids[0]);
            assert_eq!(g.resume_from, Some(ids[6]));
            assert_eq!(g.reason, "evicted");
        }
        other => panic!("expected the gap notice, got {other:?}"),
    }
    for (i, id) in ids.iter().enumerate().skip(6) {
        let e = event(next(&mut c));
        assert_eq!((e.id, e.data), (id.to_string(), format!("m{i}")));
    }
    assert_eq!(c.stats().gaps, 1);
}

#[test]
fn https_with_a_certificate_the_test_made() {
    let dir = TempDir::new("sse-tls");
    let (srv, tls) = self_signed::start("[hub]\nauto_join_room = \"\"\n", &dir);
    let url = format!("https://{tls}/sse?room=secure");
    let trust = ConnectOptions::new().ca_file(self_signed::cert(&dir));
    let mut c = SseClient::new(&url, quick().connect_options(trust)).unwrap();
    assert!(c.connect().unwrap());
    wait_subscribers(srv.addr, "secure", 1);
    let id = publish(srv.addr, "secure", Some("note"), "over TLS");
    let e = event(next(&mut c));
    assert_eq!(
        (e.id, e.event.as_str(), e.data.as_str()),
        (id.to_string(), "note", "over TLS")
    );

    // another certificate as the CA: a TLS error at once, no retry loop
    let other = TempDir::new("sse-tls-other");
    self_signed::write(&other);
    let trust = ConnectOptions::new().ca_file(self_signed::cert(&other));
    let mut c = SseClient::new(&url, quick().connect_options(trust)).unwrap();
    let (e, _) = failure(&mut c);
    assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    assert!(e.to_string().contains("TLS handshake"), "{e}");
    assert_eq!(c.stats().attempts, 1);
    // a CA file that is not there: an error before connecting
    let trust = ConnectOptions::new().ca_file(dir.0.join("missing.pem"));
    let e = SseClient::new(&url, quick().connect_options(trust)).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
}

/// The smallest executor: polls on this thread, parks until woken.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn the_async_form_runs_on_any_executor_and_dropping_it_closes_the_stream() {
    let srv = TestServer::start("[hub]\nauto_join_room = \"\"\n");
    let url = format!("http://{}/sse?room=async", srv.addr);
    let mut client = SseClient::new(&url, quick()).unwrap();
    assert!(client.connect().unwrap());
    let events = client.into_background().unwrap();
    wait_subscribers(srv.addr, "async", 1);
    let a = publish(srv.addr, "async", None, "one");
    let b = publish(srv.addr, "async", None, "two");
    // a hand-made executor
    let first = block_on(events.recv()).unwrap().map(event).unwrap();
    assert_eq!((first.id, first.data), (a.to_string(), "one".to_string()));
    // ringcast's own runtime (io_uring, or epoll where that is missing)
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    let second = rt
        .block_on(async { events.recv().await })
        .unwrap()
        .map(event)
        .unwrap();
    assert_eq!((second.id, second.data), (b.to_string(), "two".to_string()));
    drop(events);
    wait_subscribers(srv.addr, "async", 0);
}

#[test]
fn a_closer_ends_a_blocked_recv() {
    let srv = TestServer::start("[hub]\nauto_join_room = \"\"\n");
    let url = format!("http://{}/sse?room=quiet", srv.addr);
    let mut c = SseClient::new(&url, quick()).unwrap();
    assert!(c.connect().unwrap());
    let closer = c.closer();
    let addr = srv.addr;
    let stopper = std::thread::spawn(move || {
        wait_subscribers(addr, "quiet", 1);
        closer.close();
    });
    let e = c.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
    stopper.join().unwrap();
    assert!(c.recv().unwrap().is_none(), "a closed client has ended");
}

// ---------------------------------------------------------------------------
// A server of the test's own

/// What a scripted server saw.
struct Scripted {
    addr: SocketAddr,
    /// The request heads, in the order the connections came.
    heads: mpsc::Receiver<String>,
    accepted: Arc<AtomicUsize>,
}

impl Scripted {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn head(&self) -> String {
        self.heads
            .recv_timeout(Duration::from_secs(10))
            .expect("no request came")
    }
}

/// A header of a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A server on loopback that runs `script(n, request head, socket)` for
/// its n-th connection (from 0), each on a thread of its own.
fn scripted(script: impl Fn(usize, &str, &mut TcpStream) + Send + Sync + 'static) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, heads) = mpsc::channel();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let script = Arc::new(script);
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let (tx, script) = (tx.clone(), script.clone());
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let _ = tx.send(head.clone());
                script(n, &head, &mut s);
            });
        }
    });
    Scripted {
        addr,
        heads,
        accepted,
    }
}

const STREAM: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";

/// Writes `bytes`, ignoring a client that has gone.
fn send(s: &mut TcpStream, bytes: impl AsRef<[u8]>) {
    let _ = s.write_all(bytes.as_ref());
}

/// WPT request-accept, request-cache-control, eventsource-reconnect,
/// last-event-id and format-field-id-2: the request's headers, a
/// reconnection after the server closes, `Last-Event-ID` from the last id,
/// which persists across the reconnection.
#[test]
fn wpt_request_headers_reconnect_and_last_event_id() {
    let srv = scripted(|n, _, s| match n {
        0 => send(
            s,
            format!("{STREAM}retry: 1\nid: 1\ndata: a\n\ndata: b\n\n"),
        ),
        _ => send(s, format!("{STREAM}data: c\n\n")),
    });
    let mut c = SseClient::new(&srv.url("/stream"), quick()).unwrap();
    let got: Vec<(String, String)> = (0..3)
        .map(|_| event(next(&mut c)))
        .map(|e| (e.id, e.data))
        .collect();
    let want = [("1", "a"), ("1", "b"), ("1", "c")].map(|(i, d)| (i.to_string(), d.to_string()));
    assert_eq!(got, want);
    let first = srv.head();
    assert!(first.starts_with("GET /stream HTTP/1.1\r\n"), "{first}");
    assert_eq!(header(&first, "Accept"), Some("text/event-stream"));
    assert_eq!(header(&first, "Cache-Control"), Some("no-cache"));
    assert_eq!(header(&first, "Last-Event-ID"), None);
    let second = srv.head();
    assert_eq!(header(&second, "Last-Event-ID"), Some("1"));
    assert_eq!(c.stats().connects, 2);
}

/// Events that arrive in the same read as the response head come out at
/// once, while the server stays connected and silent (a second connection
/// would be refused).
#[test]
fn events_that_come_with_the_response_head_are_delivered_at_once() {
    let srv = scripted(|n, _, s| match n {
        0 => {
            send(s, format!("{STREAM}id: 1\ndata: a\n\nid: 2\ndata: b\n\n"));
            let _ = s.read(&mut [0u8; 1]);
        }
        _ => send(s, "HTTP/1.1 500 Not Again\r\nContent-Length: 0\r\n\r\n"),
    });
    let opts = quick().idle_timeout(Some(Duration::from_secs(2)));
    let mut c = SseClient::new(&srv.url("/"), opts).unwrap();
    assert_eq!(event(next(&mut c)).data, "a");
    assert_eq!(event(next(&mut c)).data, "b");
    // not after the idle timeout dropped the silent stream
    assert_eq!((c.stats().connects, c.stats().disconnects), (1, 0));
}

/// WPT request-status-error: 204 closes the source; any other status
/// than 200 fails it, without an event and without another attempt.
#[test]
fn wpt_status_other_than_200_ends_the_client() {
    for status in [204u16, 205, 210, 299, 404, 410, 500, 503] {
        let srv = scripted(move |_, _, s| {
            send(
                s,
                format!(
                    "HTTP/1.1 {status} TEST\r\nContent-Type: text/event-stream\r\nContent-Length: 13\r\n\r\ndata: data\n\n\n"
                ),
            )
        });
        let mut c = SseClient::new(&srv.url("/"), quick()).unwrap();
        if status == 204 {
            assert!(c.recv().unwrap().is_none(), "204 ends the client");
        } else {
            let (e, inner) = failure(&mut c);
            match inner {
                Some(SseError::Status { status: s, .. }) => assert_eq!(s, status),
                other => panic!("{status}: {other:?} ({e})"),
            }
            assert!(
                e.to_string().contains(&format!("HTTP {status} TEST")),
                "{e}"
            );
            assert!(c.recv().unwrap().is_none(), "and stays ended");
        }
        assert_eq!(c.stats().attempts, 1);
        assert_eq!(srv.accepted.load(Ordering::SeqCst), 1);
    }
}

/// WPT status-reconnect (ok_first): an open stream whose reconnection is
/// answered 204 ends after its events.
#[test]
fn wpt_204_on_reconnection_ends_the_client_after_the_events() {
    let srv = scripted(|n, _, s| match n {
        0 => send(s, format!("{STREAM}retry: 2\ndata: ok\n\n")),
        _ => send(s, "HTTP/1.1 204 No Content\r\n\r\n"),
    });
    let mut c = SseClient::new(&srv.url("/"), quick()).unwrap();
    assert_eq!(event(next(&mut c)).data, "ok");
    assert!(c.recv().unwrap().is_none());
    assert_eq!(c.stats().attempts, 2);
}

/// WPT format-mime-valid-bogus, format-mime-bogus, format-mime-trailing-
/// semicolon: only text/event-stream (any case, any parameters) opens.
#[test]
fn wpt_only_text_event_stream_opens() {
    let types = [
        ("text/event-stream", true),
        ("text/event-stream;", true),
        ("TEXT/Event-Stream; charset=utf-8", true),
        ("text/x-bogus", false),
        ("text/html", false),
        ("text/event-streams", false),
        ("", false),
    ];
    for (ct, ok) in types {
        let srv = scripted(move |_, _, s| {
            let h = if ct.is_empty() {
                String::new()
            } else {
                format!("Content-Type: {ct}\r\n")
            };
            send(s, format!("HTTP/1.1 200 OK\r\n{h}\r\ndata: x\n\n"));
        });
        let mut c = SseClient::new(&srv.url("/"), quick().reconnect(false)).unwrap();
        if ok {
            assert_eq!(event(next(&mut c)).data, "x", "{ct}");
            assert!(c.recv().unwrap().is_none());
        } else {
            let (e, inner) = failure(&mut c);
            assert!(
                matches!(inner, Some(SseError::NotEventStream { .. })),
                "{ct}: {e}"
            );
            assert!(e.to_string().contains("not an event stream"), "{e}");
            assert_eq!(c.stats().attempts, 1);
        }
    }
}

/// WPT request-redirect: 301, 302, 303 and 307 (and 308) open the stream
/// they lead to; relative locations too.
#[test]
fn wpt_redirects_are_followed() {
    let srv = scripted(|_, head, s| {
        let target = head.split(' ').nth(1).unwrap_or("");
        match target.strip_prefix("/redirect/") {
            Some(status) => send(
                s,
                format!("HTTP/1.1 {status} Moved\r\nLocation: ../stream?via={status}\r\nContent-Length: 0\r\n\r\n"),
            ),
            None => send(s, format!("{STREAM}data: {target}\n\n")),
        }
    });
    for status in [301, 302, 303, 307, 308] {
        let url = srv.url(&format!("/redirect/{status}"));
        let mut c = SseClient::new(&url, quick().reconnect(false)).unwrap();
        assert_eq!(event(next(&mut c)).data, format!("/stream?via={status}"));
        assert_eq!(c.stats().redirects, 1);
    }
}

/// WPT format-field-retry and format-field-retry-bogus: `retry:` sets the
/// reconnection time (as the waits report it), kept within the bounds;
/// a value that is not all digits changes nothing.
#[test]
fn wpt_retry_sets_the_reconnection_time_within_bounds() {
    let srv = scripted(|n, _, s| {
        let retry = [
            "retry: 150",
            "retry: 150ms",
            "retry: 0",
            "retry: 1000000000000",
        ];
        send(s, format!("{STREAM}{}\ndata: {n}\n\n", retry[n.min(3)]));
    });
    let bases = Arc::new(Mutex::new(Vec::new()));
    let seen = bases.clone();
    let opts = SseOptions::new()
        .retry(ms(30))
        .retry_bounds(ms(5), ms(400))
        .on_event(move |ev| {
            if let ConnectionEvent::Waiting { base, .. } = ev {
                seen.lock().unwrap().push(*base);
            }
        });
    let mut c = SseClient::new(&srv.url("/"), opts).unwrap();
    for n in 0..5 {
        assert_eq!(event(next(&mut c)).data, n.to_string());
    }
    // after each stream: 150, 150 (the bogus one ignored), 0 -> 5, 10^12 -> 400
    assert_eq!(
        bases.lock().unwrap()[..4],
        [ms(150), ms(150), ms(5), ms(400)]
    );
}

/// Bodies delimited by chunked coding (split anywhere) and by
/// Content-Length (its end ends the stream, and the client reconnects).
#[test]
fn chunked_and_content_length_bodies() {
    let srv = scripted(|n, _, s| {
        if n == 0 {
            send(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            for piece in [
                "3\r\nid:",
                "\r\n",
                "8\r\n 5\ndata:\r\n5;x=y\r\n one\n\r",
                "\n",
                "1\r\n\n\r\n0\r\n\r\n",
            ] {
                send(s, piece);
                let _ = s.flush();
            }
        } else {
            let body = "data: two\n\ndata: cut";
            send(
                s,
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
            );
        }
    });
    let mut c = SseClient::new(&srv.url("/"), quick().max_attempts(3)).unwrap();
    let e = event(next(&mut c));
    assert_eq!((e.id.as_str(), e.data.as_str()), ("5", "one"));
    let e = event(next(&mut c));
    assert_eq!((e.id.as_str(), e.data.as_str()), ("5", "two"));
    assert_eq!(header(&srv.head(), "Last-Event-ID"), None);
    assert_eq!(header(&srv.head(), "Last-Event-ID"), Some("5"));
}

// ---------------------------------------------------------------------------
// Hostile servers

/// A server that answers with a stream head and then writes `chunk`
/// until the client goes; the bytes it managed to write come back on the
/// channel.
fn endless(first: &'static str, chunk: &'static [u8]) -> (Scripted, mpsc::Receiver<usize>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let srv = scripted(move |_, _, s| {
        let mut written = first.len();
        send(s, format!("{STREAM}{first}"));
        while s.write_all(chunk).is_ok() {
            written += chunk.len();
        }
        let _ = tx.lock().unwrap().send(written);
    });
    (srv, rx)
}

/// What a hostile server managed to write before the client went: more
/// than the limit, far less than "without end" (socket buffers only).
fn written_before_the_client_left(rx: &mpsc::Receiver<usize>) -> usize {
    let n = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the client never left");
    assert!(n < 64 << 20, "the client kept reading: {n} bytes");
    n
}

#[test]
fn hostile_endless_line_is_a_clear_error() {
    let (srv, written) = endless("data: ", &[b'x'; 8192]);
    let mut c = SseClient::new(&srv.url("/"), quick().limits(32 << 10, 1 << 20)).unwrap();
    let (e, inner) = failure(&mut c);
    assert!(
        matches!(
            inner,
            Some(SseError::Stream {
                error: ParseError::LineTooLong(32768),
                ..
            })
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("line longer than 32768 bytes"),
        "{e}"
    );
    assert!(written_before_the_client_left(&written) > 32 << 10);
    assert_eq!(c.stats().attempts, 1, "no reconnection");
}

#[test]
fn hostile_endless_event_is_a_clear_error() {
    let (srv, written) = endless(
        "",
        b"data: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
    );
    let mut c = SseClient::new(&srv.url("/"), quick()).unwrap();
    let (e, inner) = failure(&mut c);
    assert!(
        matches!(
            inner,
            Some(SseError::Stream {
                error: ParseError::EventTooLarge(_),
                ..
            })
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("event larger than 1048576 bytes"),
        "{e}"
    );
    written_before_the_client_left(&written);
}

#[test]
fn hostile_huge_header_is_a_clear_error() {
    let srv = scripted(|_, _, s| {
        send(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Big: ",
        );
        while s.write_all(&[b'h'; 4096]).is_ok() {}
    });
    let mut c = SseClient::new(&srv.url("/"), quick()).unwrap();
    let (e, _) = failure(&mut c);
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(
        e.to_string()
            .contains("response head longer than 16384 bytes"),
        "{e}"
    );
    assert_eq!(c.stats().attempts, 1);
}

#[test]
fn hostile_redirect_loop_ends_at_the_limit() {
    let srv = scripted(|n, _, s| {
        send(
            s,
            format!("HTTP/1.1 302 Found\r\nLocation: /loop/{n}\r\n\r\n"),
        );
    });
    let mut c = SseClient::new(&srv.url("/loop"), quick().max_redirects(5)).unwrap();
    let (e, inner) = failure(&mut c);
    assert!(
        matches!(inner, Some(SseError::TooManyRedirects { limit: 5, .. })),
        "{e}"
    );
    assert!(e.to_string().contains("more than 5 redirects"), "{e}");
    assert_eq!(c.stats().redirects, 5);
    assert_eq!(srv.accepted.load(Ordering::SeqCst), 6);
    // and a redirect that leads nowhere
    let srv = scripted(|_, _, s| send(s, "HTTP/1.1 301 Moved\r\nLocation: ftp://x/\r\n\r\n"));
    let (e, inner) = failure(&mut SseClient::new(&srv.url("/"), quick()).unwrap());
    assert!(matches!(inner, Some(SseError::BadRedirect { .. })), "{e}");
}

/// A stream that goes silent (no keep-alive comment) is dropped after the
/// idle timeout, and resumed.
#[test]
fn a_silent_stream_is_dropped_after_the_idle_timeout_and_resumed() {
    let srv = scripted(|n, _, s| {
        if n == 0 {
            send(s, format!("{STREAM}id: 9\ndata: then silence\n\n"));
            // keep the connection open and silent until the client leaves
            let _ = s.read(&mut [0u8; 1]);
        } else {
            send(s, format!("{STREAM}data: again\n\n"));
        }
    });
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let opts = quick().idle_timeout(Some(ms(300))).on_event(move |ev| {
        if let ConnectionEvent::Disconnected { error } = ev {
            seen.lock().unwrap().push(error.to_string());
        }
    });
    let mut c = SseClient::new(&srv.url("/"), opts).unwrap();
    assert_eq!(event(next(&mut c)).data, "then silence");
    assert_eq!(event(next(&mut c)).data, "again");
    let errors = errors.lock().unwrap();
    assert!(
        errors[0].contains("nothing arrived for 300ms"),
        "{errors:?}"
    );
    srv.head();
    assert_eq!(header(&srv.head(), "Last-Event-ID"), Some("9"));
}

/// Nothing listening: the waits double up to the cap, and the client gives
/// up after `max_attempts` failures in a row.
#[test]
fn backoff_grows_and_is_capped_on_repeated_failures() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let waits = Arc::new(Mutex::new(Vec::new()));
    let seen = waits.clone();
    let opts = SseOptions::new()
        .retry(ms(1))
        .retry_bounds(ms(1), ms(8))
        .max_attempts(7)
        .on_event(move |ev| {
            if let ConnectionEvent::Waiting {
                attempt,
                base,
                delay,
                ..
            } = ev
            {
                assert!(*delay >= *base / 2 && delay <= base);
                seen.lock().unwrap().push((*attempt, *base));
            }
        });
    let mut c = SseClient::new(&format!("http://127.0.0.1:{port}/"), opts).unwrap();
    let (e, _) = failure(&mut c);
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert!(e.to_string().contains("7 failure(s) in a row"), "{e}");
    let want: Vec<(u32, Duration)> = [1, 2, 4, 8, 8, 8]
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32 + 1, ms(*b)))
        .collect();
    assert_eq!(*waits.lock().unwrap(), want);
}

// ---------------------------------------------------------------------------
// A third-party server: sse-starlette under uvicorn

struct Python(Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sse_starlette_under_uvicorn_resumes_follows_a_redirect_and_stops_on_204() {
    let py = test_clients_python();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/sse_starlette_server.py"
    );
    let mut child = Command::new(&py)
        .args([script, "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let _server = Python(child);
    let base = format!("http://127.0.0.1:{}", port.trim());
    let mut c = SseClient::new(&format!("{base}/moved"), quick()).unwrap();
    let mut got = Vec::new();
    while let Some(item) = c.recv().unwrap() {
        let e = event(item);
        assert_eq!(e.event, "tick");
        got.push((e.id, e.data));
    }
    // three per connection, each resumed from the Last-Event-ID it sent
    let want: Vec<(String, String)> = (1..=7)
        .map(|i| {
            let sent = ["-", "3", "6"][(i - 1) / 3];
            (i.to_string(), format!("{i}\n{sent}"))
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(c.stats().connects, 3);
    assert_eq!(
        c.stats().redirects,
        4,
        "each connection came through /moved"
    );
    // a page that is not a stream
    let mut c = SseClient::new(&format!("{base}/page"), quick()).unwrap();
    let (e, inner) = failure(&mut c);
    match inner {
        Some(SseError::NotEventStream { content_type, .. }) => {
            assert_eq!(content_type.as_deref(), Some("text/html; charset=utf-8"))
        }
        other => panic!("{other:?}: {e}"),
    }
}
