//! The icon every built-in page links: `/favicon.ico` and `/favicon.svg`
//! are embedded (200, their types, a week's cache), and with `static.dir`
//! set the directory's own favicon wins while ours fills in for a missing
//! one. The dashboard's feed and page: tests/demos.rs, tests/browser.rs.

mod common;

use common::*;

const ICO: &[u8] = include_bytes!("../src/assets/favicon.ico");
const SVG: &[u8] = include_bytes!("../src/assets/favicon.svg");

const PAGES: [&str; 8] = [
    "/",
    "/demo/notifications",
    "/demo/chat",
    "/demo/tickers",
    "/demo/progress",
    "/demo/eventsource",
    "/demo/websocket",
    "/dashboard",
];

fn assert_icons(c: &mut Client) {
    for (path, ty, body) in [
        ("/favicon.ico", "image/x-icon", ICO),
        ("/favicon.svg", "image/svg+xml", SVG),
    ] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type").as_deref(), Some(ty), "{path}");
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("public, max-age=604800"),
            "{path}"
        );
        assert!(r.body == body, "{path}: not the embedded icon");
    }
}

#[test]
fn the_default_server_serves_its_icon_and_every_page_links_it() {
    let srv = TestServer::start("");
    let mut c = srv.connect();
    assert_icons(&mut c);
    for page in PAGES {
        let r = c.get(page);
        assert_eq!(r.status, 200, "{page}");
        let html = r.text();
        assert!(
            html.contains(r#"<link rel="icon" href="/favicon.svg" type="image/svg+xml">"#),
            "{page} links the SVG icon"
        );
        assert!(
            html.contains(r#"<link rel="icon" href="/favicon.ico""#),
            "{page} links the ICO icon"
        );
    }
    c.send("HEAD /favicon.ico HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_for(true);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length").as_deref(),
        Some(ICO.len().to_string().as_str())
    );
}

#[test]
fn a_static_dir_with_its_own_favicon_wins() {
    let dir = TempDir::new("favicon");
    std::fs::write(dir.0.join("favicon.ico"), b"my own icon").unwrap();
    let srv = TestServer::start(&format!(
        "[static]\ndir = {:?}\ncache_control = \"public, max-age=5\"\n",
        dir.0.display().to_string()
    ));
    let mut c = srv.connect();
    let r = c.get("/favicon.ico");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"my own icon");
    assert_eq!(r.header("content-type").as_deref(), Some("image/x-icon"));
    assert_eq!(
        r.header("cache-control").as_deref(),
        Some("public, max-age=5")
    );
    // it has no favicon.svg: the dashboard's link still finds ours
    let r = c.get("/favicon.svg");
    assert_eq!(r.status, 200);
    assert!(r.body == SVG);
    assert!(c.get("/dashboard").text().contains("/favicon.svg"));
}

#[test]
fn a_static_dir_without_a_favicon_gets_ours() {
    let dir = TempDir::new("nofavicon");
    std::fs::write(dir.0.join("index.html"), "mine").unwrap();
    let srv = TestServer::start(&format!(
        "[static]\ndir = {:?}\n",
        dir.0.display().to_string()
    ));
    let mut c = srv.connect();
    assert_icons(&mut c);
    assert_eq!(c.get("/nothing.ico").status, 404);
}
