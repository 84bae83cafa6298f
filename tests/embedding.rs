//! The library as an embedder meets it: `Config::bare()` serves only what
//! the embedder registers (no landing page, demos, dashboard, echo, `/ws`,
//! metrics, client publishing), `ConnId` displays as documented, and every
//! start-up failure is one `ringcast::Error` that names the key at fault.

mod common;
use common::*;
use ringcast::config::{Config, WsEndpoint};
use ringcast::hub::ConnId;
use ringcast::{Message, Server, ServerHandle};

fn bare() -> Config {
    let mut cfg = Config::bare();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 2;
    cfg
}

/// A bare server with one handler: it says the connection's id, then echoes.
fn start_bare() -> ServerHandle {
    Server::new(bare())
        .unwrap()
        .ws_handler("/app", WsEndpoint::default(), |conn| async move {
            conn.send_text(&format!("id {}", conn.id())).ok();
            while let Some(msg) = conn.recv().await {
                conn.send(&msg).ok();
            }
        })
        .on_sse_connect(|_| vec![Message::with_event("hello", "from the app")])
        .start()
        .unwrap()
}

#[test]
fn a_bare_server_has_no_built_in_features() {
    let srv = start_bare();
    let mut c = Client::connect(srv.local_addr());
    for path in [
        "/",
        "/index.html",
        "/demo/",
        "/demo/chat",
        "/demo/tickers",
        "/dashboard",
        "/echo",
        "/ws",
        "/metrics",
        "/assets/htmx-2.0.11.min.js",
    ] {
        assert_eq!(c.get(path).status, 404, "{path}");
    }
    // the built-in WebSocket endpoints are not there either
    for path in ["/echo", "/ws?room=a", "/demo/chat/ws"] {
        let (_, r) = WsClient::handshake(srv.local_addr(), path, "");
        assert_eq!(r.status, 404, "{path}: {}", r.head);
    }
    // no client publishing: the server publishes through its Hub
    c.send("POST /publish/news HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx");
    let r = c.read_response();
    assert_eq!(r.status, 403);
    assert!(r.text().contains("auth.publish"), "{}", r.text());
    assert_eq!(c.get("/healthz").status, 200);
    assert!(srv.stop());
}

#[test]
fn a_bare_server_serves_what_the_embedder_registers() {
    let srv = start_bare();
    let addr = srv.local_addr();
    // the handler, with the id it was given
    let mut ws = WsClient::connect(addr, "/app", "");
    let hello = ws.next_data().text();
    let id = hello.strip_prefix("id ").expect(&hello);
    let parts: Vec<&str> = id.split('.').collect();
    assert_eq!(parts.len(), 3, "{id}");
    assert!(parts.iter().all(|p| p.parse::<u64>().is_ok()), "{id}");
    ws.send_text("ping?");
    assert_eq!(ws.next_data().text(), "ping?");

    // SSE rooms, with the application's first event, fed by the hub
    let mut sse = SseClient::open(addr, "/sse?room=news", "");
    let first = sse.next_event();
    assert_eq!(first.event.as_deref(), Some("hello"));
    wait_subscribers(addr, "news", 1);
    srv.hub()
        .publish("news", Message::with_event("headline", "bare"))
        .unwrap();
    let e = sse.next_event();
    assert_eq!(
        (e.event.as_deref(), e.data.as_str()),
        (Some("headline"), "bare")
    );
    // (a client that never answers the close frame would hold the drain for ws.close_timeout)
    drop(ws);
    assert!(srv.stop());
}

#[test]
fn the_default_configuration_keeps_the_built_in_features() {
    let cfg = Config::default();
    assert!(cfg.static_files.builtin_pages && cfg.demo.enabled && cfg.dashboard.enabled);
    assert_eq!(
        (cfg.ws.echo.path.as_str(), cfg.ws.rooms.path.as_str()),
        ("/echo", "/ws")
    );
    assert_eq!(cfg.http.metrics_path, "/metrics");
    assert_eq!(cfg.auth.publish, ringcast::config::PublishAuth::Auto);
    // bare changes only the features: the limits are the defaults
    let bare = Config::bare();
    assert_eq!(bare.server.listen, cfg.server.listen);
    assert_eq!(bare.hub.history_size, cfg.hub.history_size);
    assert_eq!(bare.sse.path, "/sse");
}

#[test]
fn conn_id_displays_as_worker_key_generation() {
    let id = ConnId {
        worker: 3,
        key: 17,
        generation: 2,
    };
    assert_eq!(id.to_string(), "3.17.2");
    assert_eq!(format!("[{id}]"), "[3.17.2]");
}

#[test]
fn a_bad_configuration_is_an_error_naming_the_key() {
    let mut cfg = bare();
    cfg.hub.history_size = 5_000_000;
    let Err(e) = Server::new(cfg) else {
        panic!("history_size above the limit was accepted")
    };
    assert!(matches!(e, ringcast::Error::Config(_)), "{e:?}");
    assert_eq!(e.config_key(), Some("hub.history_size"));
    assert!(e.to_string().contains("hub.history_size"), "{e}");

    // `?` into a boxed error keeps the message
    fn boxed(cfg: Config) -> Result<ServerHandle, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Server::new(cfg)?.start()?)
    }
    let mut cfg = bare();
    cfg.ws.echo.path = "echo".into();
    let e = boxed(cfg).err().unwrap();
    assert!(e.to_string().contains("ws.echo.path"), "{e}");
    let e = e.downcast::<ringcast::Error>().unwrap();
    assert_eq!(e.config_key(), Some("ws.echo.path"));

    // a bare server that lets clients publish must say how
    let mut cfg = bare();
    cfg.hub.publish_token = "secret-token".into();
    let Err(e) = Server::new(cfg) else {
        panic!("a publish token with auth.publish = \"closed\" was accepted")
    };
    assert_eq!(e.config_key(), Some("auth.publish"), "{e}");
    let mut cfg = bare();
    cfg.hub.publish_token = "secret-token".into();
    cfg.auth.publish = ringcast::config::PublishAuth::Token;
    Server::new(cfg).unwrap();
}

#[test]
fn start_failures_are_io_errors_and_reload_refusals_config_errors() {
    let mut cfg = bare();
    cfg.log.access = "/nonexistent-ringcast-dir/access.log".into();
    let Err(e) = Server::new(cfg).unwrap().start() else {
        panic!("an access log that cannot be opened was accepted")
    };
    assert!(matches!(&e, ringcast::Error::Io(_)), "{e:?}");
    assert!(e.to_string().contains("log.access"), "{e}");
    assert_eq!(e.config_key(), None);

    let srv = Server::new(bare()).unwrap().start().unwrap();
    let mut bad = bare();
    bad.auth.subscribe = true; // without a secret
    let e = srv.reload_auth(&bad).unwrap_err();
    assert_eq!(e.config_key(), Some("auth.subscribe"), "{e}");
    assert!(srv.stop());
}

#[test]
#[allow(deprecated)]
fn the_old_endpoint_type_name_still_compiles() {
    let e: ringcast::config::WsEchoEndpoint = WsEndpoint::default();
    assert_eq!(e.path, "/echo");
}
