//! Static files from `static.dir`: headers, conditional requests, and
//! every way of trying to climb out of the root.

mod common;
use common::*;

fn site() -> TempDir {
    let d = TempDir::new("site");
    let root = d.0.join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(root.join("sub/data.json"), "{\"a\":1}").unwrap();
    std::fs::write(root.join("two bytes.txt"), "hi").unwrap();
    std::fs::write(d.0.join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(d.0.join("secret.txt"), root.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(root.join("app.js"), root.join("inside.js")).unwrap();
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
    d
}

fn start(d: &TempDir) -> TestServer {
    TestServer::start(&format!(
        "[static]\ndir = {:?}\ncache_control = \"public, max-age=123\"\n",
        d.0.join("www").display().to_string()
    ))
}

#[test]
fn files_have_type_length_last_modified_and_cache_control() {
    let d = site();
    let srv = start(&d);
    let mut c = srv.connect();
    let r = c.get("/app.js");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "console.log(1)");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(r.header("content-length").as_deref(), Some("14"));
    assert_eq!(
        r.header("cache-control").as_deref(),
        Some("public, max-age=123")
    );
    let lm = r.header("last-modified").unwrap();
    let mtime = std::fs::metadata(d.0.join("www/app.js"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(lm, httpdate::fmt_http_date(mtime));

    let r = c.get("/sub/data.json");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let r = c.get("/two%20bytes.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "hi"));
    let r = c.get("/");
    assert_eq!(r.text(), "<h1>home</h1>");
    let r = c.get("/inside.js");
    assert_eq!(
        r.status, 200,
        "a symlink that stays inside the root is served"
    );
}

#[test]
fn large_file_streams_whole() {
    let d = site();
    let srv = start(&d);
    let mut c = srv.connect();
    let r = c.get("/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, std::fs::read(d.0.join("www/big.bin")).unwrap());
    assert_eq!(
        c.get("/app.js").status,
        200,
        "keep-alive continues after a streamed file"
    );
}

#[test]
fn if_modified_since_gives_304() {
    let d = site();
    let srv = start(&d);
    let mut c = srv.connect();
    let lm = c.get("/app.js").header("last-modified").unwrap();
    c.send(format!(
        "GET /app.js HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {lm}\r\n\r\n"
    ));
    let r = c.read_response();
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    c.send("GET /app.js HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
}

#[test]
fn head_of_a_file() {
    let d = site();
    let srv = start(&d);
    let mut c = srv.connect();
    c.send("HEAD /app.js HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_for(true);
    assert_eq!(r.header("content-length").as_deref(), Some("14"));
    assert_eq!(c.get("/two%20bytes.txt").text(), "hi");
}

#[test]
fn traversal_is_refused() {
    let d = site();
    let srv = start(&d);
    for (target, want) in [
        ("/../secret.txt", 403),
        ("/sub/../../secret.txt", 403),
        ("/%2e%2e/secret.txt", 403),
        ("/%2E%2E%2Fsecret.txt", 403),
        ("/sub/%2e%2e/%2e%2e/secret.txt", 403),
        ("/leak.txt", 403),
        ("/..%5csecret.txt", 403),
        ("//etc/passwd", 404),
        ("/%00", 403),
        ("/missing.txt", 404),
    ] {
        let mut c = srv.connect();
        let r = c.get(target);
        assert_eq!(r.status, want, "{target}: {}", r.text());
        assert!(!r.text().contains("top secret"));
    }
    // absolute-form targets are reduced to their path, never a file system path
    let mut c = srv.connect();
    c.send("GET http://evil/../secret.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response().status, 403);
}

#[test]
fn wrong_method_on_a_file_is_405() {
    let d = site();
    let srv = start(&d);
    let mut c = srv.connect();
    c.send("PUT /app.js HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("GET, HEAD"));
}
