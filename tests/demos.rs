//! The built-in demos and dashboard over raw sockets: vendored assets and
//! their cache headers, pages and the assets they load, the demo chat
//! endpoint (escaping, fixed room), progress jobs (every step, start on
//! subscribe, bounded), the dashboard feed and its reserved room, and the
//! config switches. The same demos in a real browser: tests/browser.rs.

mod common;

use std::time::Duration;

use common::*;

fn post(srv: &TestServer, path: &str, body: &str) -> Response {
    let mut c = srv.connect();
    c.send(format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    c.read_response()
}

const ASSETS: [(&str, &[u8]); 3] = [
    (
        "/assets/htmx-2.0.11.min.js",
        include_bytes!("../src/assets/vendor/htmx-2.0.11.min.js"),
    ),
    (
        "/assets/htmx-ext-sse-2.2.4.js",
        include_bytes!("../src/assets/vendor/htmx-ext-sse-2.2.4.js"),
    ),
    (
        "/assets/htmx-ext-ws-2.0.4.js",
        include_bytes!("../src/assets/vendor/htmx-ext-ws-2.0.4.js"),
    ),
];

#[test]
fn vendored_assets_are_served_for_good() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    for (path, body) in ASSETS {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert!(r.body == body, "{path}: not the vendored file");
    }
}

#[test]
fn landing_page_links_every_demo_and_pages_load_only_served_assets() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    let index = c.get("/").text();
    let pages = [
        "/demo/notifications",
        "/demo/chat",
        "/demo/tickers",
        "/demo/progress",
        "/demo/eventsource",
        "/demo/websocket",
        "/dashboard",
    ];
    for page in pages {
        assert!(
            index.contains(&format!("href=\"{page}\"")),
            "/ links {page}"
        );
        let r = c.get(page);
        assert_eq!(r.status, 200, "{page}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(r.header("cache-control").as_deref(), Some("no-cache"));
        let html = r.text();
        // every script the page loads is served here (no CDN)
        for src in html.split("<script src=\"").skip(1) {
            let src = src.split('"').next().unwrap();
            assert!(src.starts_with("/assets/"), "{page} loads {src}");
            assert_eq!(c.get(src).status, 200, "{page} loads {src}");
        }
    }
    let notif = c.get("/demo/notifications").text();
    assert!(notif.contains(r#"sse-connect="/sse?room=notifications""#));
    assert!(notif.contains(r#"sse-swap="notification" hx-swap="beforeend""#));
    assert!(notif.contains("/publish/notifications?event=notification"));
}

#[test]
fn demo_chat_publishes_escaped_fragments_to_its_room_only() {
    let srv = TestServer::start("");
    let mut a = WsClient::connect(srv.addr, "/demo/chat/ws", "");
    let mut b = WsClient::connect(srv.addr, "/demo/chat/ws", "");
    wait_subscribers(srv.addr, "demo-chat", 2);
    a.send_text(
        r#"{"user":"<i>eve</i>","message":"<script>alert(1)</script>","HEADERS":{"HX-Request":"true"}}"#,
    );
    let want = r#"<div id="messages" hx-swap-oob="beforeend"><p class="msg"><b>&lt;i&gt;eve&lt;/i&gt;</b>: &lt;script&gt;alert(1)&lt;/script&gt;</p></div>"#;
    // each frame ends with the cursor htmx swaps in (the "htmx" envelope)
    let (fb, fa) = (b.next_data().text(), a.next_data().text());
    assert_eq!(fa, fb);
    let cursor = fb.strip_prefix(want).expect("the fragment first");
    let id = cursor
        .strip_prefix(r#"<div id="ringcast-cursor" hx-swap-oob="true" hidden data-last-event-id=""#)
        .and_then(|r| r.strip_suffix(r#""></div>"#))
        .expect("then the cursor element");
    assert_eq!(
        id.parse::<u64>().unwrap(),
        room_info(srv.addr, "demo-chat")["last_id"]
            .as_u64()
            .unwrap()
    );
    // The chat connection is in room demo-chat only (not the auto-join room).
    a.send_text(r#"{"room":"__all","user":"x","message":"y"}"#);
    let (code, reason) = a.expect_close();
    assert_eq!(code, Some(1008));
    assert!(reason.contains("not in"), "{reason}");
    // A message that is not a JSON object cannot fill the template.
    b.send_text("plain text");
    let (code, reason) = b.expect_close();
    assert_eq!(code, Some(1008));
    assert!(reason.contains("JSON"), "{reason}");
}

fn job_room(fragment: &str) -> String {
    let start = fragment.find("room=").unwrap() + 5;
    let end = start + fragment[start..].find('"').unwrap();
    fragment[start..end].to_string()
}

#[test]
fn progress_job_starts_when_its_stream_subscribes_and_sends_every_step() {
    let srv = TestServer::start("");
    let r = post(&srv, "/demo/progress/start", "");
    assert_eq!(r.status, 200);
    let fragment = r.text();
    assert!(fragment.contains(r#"sse-close="done""#), "{fragment}");
    let room = job_room(&fragment);
    assert!(room.starts_with("demo-job-"), "{room}");
    // The page may connect late: the job waits for it.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        room_info(srv.addr, &room)["last_id"],
        serde_json::Value::Null
    );
    let mut s = SseClient::open(srv.addr, &format!("/sse?room={room}"), "");
    for step in 1..=20 {
        let e = s.next_event();
        assert_eq!(e.event.as_deref(), Some("progress"));
        let p = step * 5;
        assert!(
            e.data.contains(&format!("width:{p}%")),
            "step {step}: {}",
            e.data
        );
    }
    let done = s.next_event();
    assert_eq!(done.event.as_deref(), Some("done"));
    assert!(done.data.ends_with("done."), "{}", done.data);
}

#[test]
fn progress_jobs_are_bounded() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    let start = "POST /demo/progress/start HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
    for _ in 0..64 {
        c.send(start);
        assert_eq!(c.read_response().status, 200);
    }
    c.send(start);
    let r = c.read_response();
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("too many demo progress jobs"),
        "{}",
        r.text()
    );
    c.send("GET /demo/progress/start HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response().status, 405);
}

#[test]
fn dashboard_feed_publishes_panels_and_its_room_is_reserved() {
    let srv = TestServer::start("[dashboard]\ninterval = \"100ms\"\n");
    let mut s = SseClient::open(srv.addr, "/sse?room=__dashboard", "");
    let mut seen = std::collections::HashMap::new();
    while seen.len() < 4 {
        let e = s.next_event();
        if let Some(name) = e.event {
            seen.insert(name, e.data);
        }
    }
    assert!(seen["conns"].contains("SSE"), "{:?}", seen["conns"]);
    assert!(seen["rates"].contains("published/s"));
    assert!(seen["workers"].contains("worker-0"));
    assert!(seen["process"].contains("RSS"));
    let r = post(
        &srv,
        "/publish/__dashboard?event=conns",
        "<script>x</script>",
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("reserved"), "{}", r.text());
}

#[test]
fn switches_turn_demos_and_dashboard_off() {
    let srv = TestServer::start("[demo]\nenabled = false\n[dashboard]\nenabled = false\n");
    let mut c = srv.connect();
    assert_eq!(c.get("/dashboard").status, 404);
    c.send("POST /demo/progress/start HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.read_response().status, 404);
    let (_, r) = WsClient::handshake(srv.addr, "/demo/chat/ws", "");
    assert_eq!(r.status, 404);
    // So do the demo pages; the landing page and the assets stay.
    let mut c = srv.connect();
    for page in [
        "/demo/notifications",
        "/demo/chat",
        "/demo/tickers",
        "/demo/progress",
    ] {
        assert_eq!(c.get(page).status, 404, "{page}");
    }
    assert_eq!(c.get("/").status, 200);
    assert_eq!(c.get(ASSETS[0].0).status, 200);
}

#[test]
fn with_a_static_dir_the_dashboard_and_assets_stay_and_the_demos_go() {
    let dir = TempDir::new("static");
    std::fs::write(dir.0.join("index.html"), "mine").unwrap();
    let srv = TestServer::start(&format!(
        "[static]\ndir = {:?}\n",
        dir.0.display().to_string()
    ));
    let mut c = srv.connect();
    assert_eq!(c.get("/").text(), "mine");
    assert_eq!(c.get("/dashboard").status, 200);
    assert_eq!(c.get("/demo/chat").status, 404);
    for (path, _) in ASSETS {
        assert_eq!(c.get(path).status, 200, "{path}");
    }
    c.send("POST /demo/progress/start HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.read_response().status, 404);
}

#[test]
fn demo_settings_are_validated_by_name() {
    for (cfg, key) in [
        ("[demo]\ninterval = \"1ms\"\n", "demo.interval"),
        ("[dashboard]\npath = \"dash\"\n", "dashboard.path"),
        ("[dashboard]\ninterval = \"10ms\"\n", "dashboard.interval"),
    ] {
        let e = ringcast::config::Config::from_toml(cfg, "t.toml").unwrap_err();
        assert!(e.0.contains(key), "{cfg}: {e}");
    }
}
