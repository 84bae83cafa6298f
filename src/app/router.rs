//! The default server's endpoints, as a table built once from the
//! configuration ([`Router::new`]): an ordered list of entries, each a path
//! (exact, or a prefix), the methods it takes and its handler. A request
//! goes to the first entry whose path matches; another method than the
//! entry's gets `405` with `Allow`. A path no entry matches is a static file
//! from `static.dir` or a built-in page, else `404`. Answers are appended to
//! the connection's output buffer; a file body that must be read from disk
//! is returned as an [`Action`] for the connection to finish asynchronously.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::demo::Jobs;
use super::static_files::{self, Denied, Embedded};
use crate::auth::{self, Auth, Grant, PublishMode, Refusal};
use crate::config::{Config, EndpointAuth};
use crate::conn::worker::Worker;
use crate::conn::ws::{
    self as websocket, EndpointRules, Negotiated, RoomsMode, WsKind, WsRoute, WsUpgrade,
};
use crate::conn::{Action, App};
use crate::hub::{valid_room_name, Message, RoomName, Subscription};
use crate::proto::http::request::RequestHead;
use crate::proto::http::response;
use crate::proto::sse::cursor;
use crate::proto::sse::encode::valid_event_name;

/// The `Allow` of the paths that are read.
const GET_HEAD: &str = "GET, HEAD";

/// The methods an entry takes; any other gets `405` with [`Methods::allow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Methods {
    /// Any method: a WebSocket upgrade checks its request itself.
    Any,
    GetHead,
    Get,
    Post,
}

impl Methods {
    fn allows(self, method: &str) -> bool {
        match self {
            Methods::Any => true,
            Methods::GetHead => method == "GET" || method == "HEAD",
            Methods::Get => method == "GET",
            Methods::Post => method == "POST",
        }
    }

    /// The `Allow` header of a `405`.
    fn allow(self) -> &'static str {
        match self {
            Methods::Any => "",
            Methods::GetHead => GET_HEAD,
            Methods::Get => "GET",
            Methods::Post => "POST",
        }
    }
}

/// How an entry matches a request's path.
#[derive(Debug)]
enum Matcher {
    /// The whole path.
    Exact(Box<str>),
    /// The path's beginning; the handler gets what follows.
    Prefix(&'static str),
}

impl Matcher {
    /// What follows the match in `path` ("" for an exact path), if it matches.
    fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        match self {
            Matcher::Exact(p) => (**p == *path).then_some(""),
            Matcher::Prefix(p) => path.strip_prefix(p),
        }
    }
}

/// Answers a request its entry matched.
type Handler = fn(&Request<'_, '_>, &mut BytesMut) -> Action;

/// One endpoint of the table.
struct Entry {
    /// The handler's name (for the tests and [`Debug`]).
    name: &'static str,
    matcher: Matcher,
    methods: Methods,
    handler: Handler,
    /// A WebSocket handler's route in [`Router::ws_routes`] (0 for the others).
    slot: usize,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(self.name)
            .field("matcher", &self.matcher)
            .field("methods", &self.methods)
            .field("slot", &self.slot)
            .finish()
    }
}

/// Where the table sends a request.
#[derive(Debug)]
enum Lookup<'t, 'p> {
    /// To this entry's handler, with what follows the entry's prefix.
    Call(&'t Entry, &'p str),
    /// The path's entry takes other methods: `405` with this `Allow`.
    NotAllowed(&'static str),
    /// No entry: static files, the built-in pages, else `404`.
    Fallback,
}

/// One request, as a handler sees it.
struct Request<'r, 'h> {
    router: &'r Router,
    worker: &'r Worker,
    head: &'r RequestHead<'h>,
    /// The whole body.
    body: &'r [u8],
    keep_alive: bool,
    head_only: bool,
    /// What follows the entry's prefix ("" for an exact path).
    rest: &'h str,
    /// The entry's [`Entry::slot`].
    slot: usize,
}

/// A registered WebSocket handler, as its entry answers it.
struct WsTarget {
    route: WsRoute,
    /// The echo endpoint's (`ws.echo.path`): its rate limit is the live one.
    echo: bool,
}

/// The default server's endpoints, and the state they need beyond the worker's.
pub struct Router {
    /// In the order a request is matched against them.
    entries: Vec<Entry>,
    /// The WebSocket handlers the entries of [`ws_handler`] answer with.
    ws_routes: Vec<WsTarget>,
    /// Starts the progress demo's jobs.
    demo_jobs: Option<Jobs>,
}

impl Router {
    /// The table of `cfg`'s endpoints, in the order a request is matched
    /// against them (the first whose path matches answers): `/healthz`,
    /// `http.metrics_path`, the WebSocket handlers `ws_routes` (the echo
    /// endpoint is one of them), the demos' endpoints, `dashboard.path`,
    /// `ws.rooms.path`, `sse.path`, `/publish/{room}`, `/rooms/{room}`.
    /// An endpoint turned off has no entry (its path goes on down the list).
    /// `demo_jobs` are the progress demo's when the demos run
    /// ([`crate::conn::worker::Shared::demos_on`]): the demos' endpoints
    /// come with them.
    pub fn new(cfg: &Config, ws_routes: &[WsRoute], demo_jobs: Option<Jobs>) -> Router {
        use Methods::{Any, Get, GetHead, Post};
        let exact = |path: &str, methods, name, handler: Handler| Entry {
            name,
            matcher: Matcher::Exact(path.into()),
            methods,
            handler,
            slot: 0,
        };
        let prefix = |path, methods, name, handler: Handler| Entry {
            name,
            matcher: Matcher::Prefix(path),
            methods,
            handler,
            slot: 0,
        };
        let mut entries = vec![exact("/healthz", GetHead, "healthz", healthz)];
        if !cfg.http.metrics_path.is_empty() {
            entries.push(exact(&cfg.http.metrics_path, GetHead, "metrics", metrics));
        }
        for (slot, route) in ws_routes.iter().enumerate() {
            let entry = exact(&route.path, Any, "ws_handler", ws_handler);
            entries.push(Entry { slot, ..entry });
        }
        if demo_jobs.is_some() {
            let chat = super::demo::CHAT_PATH;
            entries.push(exact(chat, Any, "demo_chat", demo_chat));
            let (start, name) = ("/demo/progress/start", "demo_progress_start");
            entries.push(exact(start, Post, name, demo_progress_start));
        }
        if cfg.dashboard.enabled {
            entries.push(exact(&cfg.dashboard.path, GetHead, "dashboard", dashboard));
        }
        if !cfg.ws.rooms.path.is_empty() {
            entries.push(exact(&cfg.ws.rooms.path, Any, "ws_rooms", ws_rooms));
        }
        entries.push(exact(&cfg.sse.path, Get, "sse_stream", sse_stream));
        entries.push(prefix("/publish/", Post, "publish", publish));
        entries.push(prefix("/rooms/", GetHead, "room_query", room_query));
        let ws_routes = ws_routes
            .iter()
            .map(|route| WsTarget {
                route: route.clone(),
                echo: route.path == cfg.ws.echo.path,
            })
            .collect();
        Router {
            entries,
            ws_routes,
            demo_jobs,
        }
    }

    /// The first entry whose path matches, and whether it takes `method`.
    fn lookup<'p>(&self, method: &str, path: &'p str) -> Lookup<'_, 'p> {
        for entry in &self.entries {
            if let Some(rest) = entry.matcher.matches(path) {
                return if entry.methods.allows(method) {
                    Lookup::Call(entry, rest)
                } else {
                    Lookup::NotAllowed(entry.methods.allow())
                };
            }
        }
        Lookup::Fallback
    }
}

impl App for Router {
    fn route(
        &self,
        worker: &Worker,
        head: &RequestHead<'_>,
        body: &[u8],
        out: &mut BytesMut,
        keep_alive: bool,
    ) -> Action {
        let head_only = head.method == "HEAD";
        let (handler, rest, slot) = match self.lookup(head.method, head.path) {
            Lookup::Call(entry, rest) => (entry.handler, rest, entry.slot),
            Lookup::NotAllowed(allow) => {
                method_not_allowed(out, allow, keep_alive, head_only);
                return Action::Done(405);
            }
            Lookup::Fallback => (static_file as Handler, "", 0),
        };
        let req = Request {
            router: self,
            worker,
            head,
            body,
            keep_alive,
            head_only,
            rest,
            slot,
        };
        handler(&req, out)
    }
}

/// `GET /healthz`.
/// A node of a cluster whose Redis link is down is not healthy (503, and
/// why), so that a load balancer sends new clients to the other nodes.
fn healthz(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    if let Some(Err(why)) = r.worker.shared.cluster.as_ref().map(|c| c.health()) {
        let body = format!("unhealthy: {why}\n");
        response::simple(out, 503, &body, r.keep_alive, r.head_only);
        return Action::Done(503);
    }
    response::simple(out, 200, "ok", r.keep_alive, r.head_only);
    Action::Done(200)
}

/// `GET` `http.metrics_path`: the counters in Prometheus' text format.
fn metrics(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    let body = super::metrics::render(&r.worker.shared);
    response::start(out, 200);
    response::header(out, "Content-Type", super::metrics::CONTENT_TYPE.as_bytes());
    response::header(out, "Cache-Control", b"no-store");
    response::finish(out, body.as_bytes(), r.keep_alive, r.head_only);
    Action::Done(200)
}

/// A WebSocket handler's path: the upgrade, with the handler's endpoint settings.
fn ws_handler(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    let (worker, head) = (r.worker, r.head);
    if let Some(refused) = admit_handshake(worker, head, out) {
        return refused;
    }
    let target = &r.router.ws_routes[r.slot];
    let e = &target.route.endpoint;
    let rate = if target.echo {
        worker.shared.limits.ws_echo_rate()
    } else {
        (e.max_messages_per_sec, e.burst)
    };
    // decided before the 101: a refusal is an HTTP answer to the upgrade
    let grant = match e.auth {
        EndpointAuth::Off => Grant::All,
        EndpointAuth::Server => {
            let auth = worker.shared.auth.load();
            match auth.subscriber(head) {
                Ok(g) => g,
                Err(refusal) => return refuse(worker, &auth, &refusal, out, false, false),
            }
        }
    };
    let rules = EndpointRules {
        subprotocols: &e.subprotocols,
        allowed_origins: &e.allowed_origins,
        deflate: e.deflate,
        same_origin: false,
    };
    let kind = WsKind::Handler(target.route.handler.clone(), grant);
    ws_upgrade(worker, head, &rules, kind, rate, None, out)
}

/// The demo chat: a WebSocket in room `demo-chat` only (no auto-join room),
/// whose clients publish through the fixed, escaping chat template, with
/// `[ws.rooms]`' Origin rules, deflate and rate limit, and the server's
/// handshake limits and publish rules (`[auth]`).
fn demo_chat(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    let (worker, head) = (r.worker, r.head);
    if let Some(refused) = admit_handshake(worker, head, out) {
        return refused;
    }
    let e = &worker.shared.cfg.ws.rooms;
    let rate = worker.shared.limits.ws_rooms_rate();
    let rules = EndpointRules {
        subprotocols: &[],
        allowed_origins: &e.allowed_origins,
        deflate: e.deflate,
        same_origin: false,
    };
    // htmx reconnects with ?last_event_id= from the cursor each message swaps in
    let resume = match resume_cursor(head, 1) {
        Ok(v) => v,
        Err(why) => return refuse_upgrade(worker, &why, out),
    };
    let req = Subscription {
        rooms: vec![Arc::from(super::demo::CHAT_ROOM)],
        resume,
    };
    // reading the chat is subscribing to its room: [auth] as for /ws
    let auth = worker.shared.auth.load();
    let grant = match auth.subscriber(head) {
        Ok(g) => g,
        Err(refusal) => return refuse(worker, &auth, &refusal, out, false, false),
    };
    if let Err(refusal) = auth::check_rooms(&grant, &req.rooms, "") {
        return refuse(worker, &auth, &refusal, out, false, false);
    }
    let mode = RoomsMode {
        envelope: crate::config::Envelope::Htmx,
        client_publish: true,
        template: super::demo::CHAT_TEMPLATE.to_string(),
    };
    let publish_rooms = ws_publish_rooms(&auth, head, &req.rooms, true);
    ws_upgrade(
        worker,
        head,
        &rules,
        WsKind::Rooms(req, mode),
        rate,
        publish_rooms,
        out,
    )
}

/// `POST /demo/progress/start`: queues a simulated job and answers the
/// fragment that streams its progress (503 when too many jobs run).
fn demo_progress_start(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    let Some(jobs) = &r.router.demo_jobs else {
        return not_found(out, r.keep_alive, r.head_only);
    };
    match jobs.start() {
        Ok(id) => {
            let html = super::demo::job_fragment(id, &r.worker.shared.cfg.sse.path);
            response::start(out, 200);
            response::header(out, "Content-Type", b"text/html; charset=utf-8");
            response::header(out, "Cache-Control", b"no-store");
            response::finish(out, html.as_bytes(), r.keep_alive, false);
            Action::Done(200)
        }
        Err(why) => {
            r.worker.stats.http_other_errors.inc();
            response::error(out, 503, why, r.keep_alive, false);
            Action::Done(503)
        }
    }
}

/// `GET` `dashboard.path`: the dashboard's page.
fn dashboard(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    page(out, &static_files::DASHBOARD, r.keep_alive, r.head_only)
}

/// `ws.rooms.path`: a WebSocket subscribed to the rooms of its query.
fn ws_rooms(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    let (worker, head) = (r.worker, r.head);
    if let Some(refused) = admit_handshake(worker, head, out) {
        return refused;
    }
    let cfg = &worker.shared.cfg;
    let e = &cfg.ws.rooms;
    let l = &worker.shared.limits;
    let max_rooms = l.ws_rooms_max_rooms_per_connection.load(Relaxed);
    let rate = l.ws_rooms_rate();
    let auth = worker.shared.auth.load();
    // decided before the 101: a refusal is an HTTP answer to the upgrade
    let grant = match auth.subscriber(head) {
        Ok(g) => g,
        Err(refusal) => return refuse(worker, &auth, &refusal, out, false, false),
    };
    let req = match stream_request(worker, head, max_rooms, "ws.rooms.max_rooms_per_connection") {
        Ok(v) => v,
        Err(why) => return refuse_upgrade(worker, &why, out),
    };
    if let Err(refusal) = auth::check_rooms(&grant, &req.rooms, &cfg.hub.auto_join_room) {
        return refuse(worker, &auth, &refusal, out, false, false);
    }
    let publish_rooms = ws_publish_rooms(&auth, head, &req.rooms, e.client_publish);
    let rules = EndpointRules {
        subprotocols: &e.subprotocols,
        allowed_origins: &e.allowed_origins,
        deflate: e.deflate,
        same_origin: false,
    };
    ws_upgrade(
        worker,
        head,
        &rules,
        WsKind::Rooms(req, RoomsMode::from_config(cfg)),
        rate,
        publish_rooms,
        out,
    )
}

/// `GET` `sse.path`: an event stream of the rooms of its query.
fn sse_stream(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    let (worker, head, keep_alive) = (r.worker, r.head, r.keep_alive);
    if let Some(refused) = admit_handshake(worker, head, out) {
        return refused;
    }
    let auth = worker.shared.auth.load();
    let grant = match auth.subscriber(head) {
        Ok(g) => g,
        Err(refusal) => return refuse(worker, &auth, &refusal, out, keep_alive, false),
    };
    let max = worker
        .shared
        .limits
        .sse_max_rooms_per_connection
        .load(Relaxed);
    let auto_join = &worker.shared.cfg.hub.auto_join_room;
    match stream_request(worker, head, max, "sse.max_rooms_per_connection") {
        Ok(req) => match auth::check_rooms(&grant, &req.rooms, auto_join) {
            Ok(()) => Action::Sse(req),
            Err(refusal) => refuse(worker, &auth, &refusal, out, keep_alive, false),
        },
        Err(why) => bad_request(worker, out, &why, keep_alive),
    }
}

/// `POST /publish/{room}`: the body is a message to the room.
fn publish(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    let worker = r.worker;
    if let Some(refused) = refuse_while_draining(worker, out) {
        return refused;
    }
    if worker.shared.auth.load().publish_mode() == PublishMode::Closed {
        worker.stats.auth_forbidden.inc();
        response::error(
            out,
            403,
            "publishing is closed to clients (auth.publish = \"closed\")",
            r.keep_alive,
            false,
        );
        return Action::Done(403);
    }
    publish_request(worker, r.head, r.rest, r.body, out, r.keep_alive)
}

/// `GET /rooms/{room}` (the room's state) and `GET /rooms/{room}/messages`
/// (its history): reading a room is subscribing to it. Another path under
/// a room is `404` (once the room may be read).
fn room_query(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    let (worker, head, keep_alive, head_only) = (r.worker, r.head, r.keep_alive, r.head_only);
    let (room, sub) = match r.rest.split_once('/') {
        Some((room, sub)) => (room, Some(sub)),
        None => (r.rest, None),
    };
    let auth = worker.shared.auth.load();
    let grant = match auth.subscriber(head) {
        Ok(g) => g,
        Err(refusal) => return refuse(worker, &auth, &refusal, out, keep_alive, head_only),
    };
    let room = match room_name(worker, room) {
        Ok(v) => v,
        Err(why) => return bad_request(worker, out, &why, keep_alive),
    };
    let one = std::slice::from_ref(&room);
    if let Err(refusal) = auth::check_rooms(&grant, one, &worker.shared.cfg.hub.auto_join_room) {
        return refuse(worker, &auth, &refusal, out, keep_alive, head_only);
    }
    match sub {
        None => Action::RoomInfo { room },
        Some("messages") => room_history(r, room, out),
        Some(_) => not_found(out, keep_alive, head_only),
    }
}

/// `GET /rooms/{room}/messages?since=ID`: the room's messages after `since`.
fn room_history(r: &Request<'_, '_>, room: RoomName, out: &mut BytesMut) -> Action {
    let since = r.head.query_params("since").next().unwrap_or("0");
    match since.parse::<u64>() {
        Ok(since) => Action::RoomHistory { room, since },
        Err(_) => bad_request(
            r.worker,
            out,
            &format!("since={since:?} is not a message id"),
            r.keep_alive,
        ),
    }
}

/// What no entry matched: a file of `static.dir` (and the vendored
/// scripts), else the built-in pages; else `404`.
fn static_file(r: &Request<'_, '_>, out: &mut BytesMut) -> Action {
    let (worker, head, keep_alive, head_only) = (r.worker, r.head, r.keep_alive, r.head_only);
    let get_like = head.method == "GET" || head_only;
    let cfg = &worker.shared.cfg.static_files;
    let builtin = match &worker.shared.static_root {
        None if !cfg.builtin_pages => None,
        // with the demos off, their pages go too
        None if head.path.starts_with("/demo/") && !worker.shared.demos_on() => None,
        None => static_files::embedded(head.path),
        Some(_) => static_files::vendor(head.path),
    };
    if builtin.is_some() || worker.shared.static_root.is_none() {
        return match builtin {
            Some(p) if get_like => page(out, p, keep_alive, head_only),
            Some(_) => {
                method_not_allowed(out, GET_HEAD, keep_alive, head_only);
                Action::Done(405)
            }
            None => not_found(out, keep_alive, head_only),
        };
    }
    let Some(root) = &worker.shared.static_root else {
        return not_found(out, keep_alive, head_only);
    };
    let file = match static_files::resolve(root, head.path, &cfg.index) {
        Ok(f) => f,
        // the directory's own icon wins; without one, ours
        Err(Denied::NotFound) => match static_files::icon(head.path) {
            Some(icon) if get_like => return page(out, icon, keep_alive, head_only),
            _ => return not_found(out, keep_alive, head_only),
        },
        Err(Denied::Forbidden(why)) => {
            response::error(out, 403, why, keep_alive, head_only);
            return Action::Done(403);
        }
        Err(Denied::BadPath(why)) => {
            response::error(out, 400, why, keep_alive, head_only);
            return Action::Done(400);
        }
    };
    if !get_like {
        method_not_allowed(out, GET_HEAD, keep_alive, head_only);
        return Action::Done(405);
    }
    if file.len > cfg.max_file_size.0 {
        response::error(
            out,
            403,
            "file is larger than static.max_file_size",
            keep_alive,
            head_only,
        );
        return Action::Done(403);
    }
    let last_modified = file.modified.map(httpdate::fmt_http_date);
    if static_files::not_modified(file.modified, head.header("if-modified-since")) {
        response::start(out, 304);
        if let Some(lm) = &last_modified {
            response::header(out, "Last-Modified", lm.as_bytes());
        }
        response::header(out, "Cache-Control", cfg.cache_control.as_bytes());
        if !keep_alive {
            response::header(out, "Connection", b"close");
        }
        out.extend_from_slice(b"\r\n");
        return Action::Done(304);
    }
    response::start(out, 200);
    response::header(out, "Content-Type", file.content_type.as_bytes());
    if let Some(lm) = &last_modified {
        response::header(out, "Last-Modified", lm.as_bytes());
    }
    response::header(out, "Cache-Control", cfg.cache_control.as_bytes());
    response::finish_len(out, file.len, keep_alive);
    if head_only || file.len == 0 {
        Action::Done(200)
    } else {
        Action::File {
            path: file.path,
            len: file.len,
        }
    }
}

/// A `405` naming the methods the path takes.
fn method_not_allowed(out: &mut BytesMut, allow: &str, keep_alive: bool, head_only: bool) {
    let body = format!("405 Method Not Allowed: this path accepts {allow}\n");
    response::start(out, 405);
    response::header(out, "Allow", allow.as_bytes());
    response::header(out, "Content-Type", b"text/plain; charset=utf-8");
    response::finish(out, body.as_bytes(), keep_alive, head_only);
}

/// A built-in page's `200`.
fn page(out: &mut BytesMut, page: &Embedded, keep_alive: bool, head_only: bool) -> Action {
    response::start(out, 200);
    response::header(out, "Content-Type", page.content_type.as_bytes());
    response::header(out, "Cache-Control", page.cache_control.as_bytes());
    response::finish(out, page.body, keep_alive, head_only);
    Action::Done(200)
}

/// A WebSocket upgrade's `400` (counted), closing the connection.
fn refuse_upgrade(worker: &Worker, why: &str, out: &mut BytesMut) -> Action {
    worker.stats.hub_rejects.inc();
    response::error(out, 400, why, false, false);
    Action::Close(400)
}

/// Counts an auth refusal and writes its 401 or 403. `keep_alive` false
/// closes the connection after it (WebSocket upgrades).
fn refuse(
    worker: &Worker,
    auth: &Auth,
    refusal: &Refusal,
    out: &mut BytesMut,
    keep_alive: bool,
    head_only: bool,
) -> Action {
    match refusal {
        Refusal::Unauthorized(_) => worker.stats.auth_unauthorized.inc(),
        Refusal::Forbidden { .. } => worker.stats.auth_forbidden.inc(),
    }
    let status = auth.write_refusal(refusal, out, keep_alive, head_only);
    if keep_alive {
        Action::Done(status)
    } else {
        Action::Close(status)
    }
}

/// The rooms of a `/ws` connection its client may publish to: `None` when
/// unrestricted (publishing needs no token, or the static publish token was
/// sent), else those its token allows (none without a usable token).
fn ws_publish_rooms(
    auth: &Auth,
    head: &RequestHead<'_>,
    rooms: &[RoomName],
    client_publish: bool,
) -> Option<Vec<RoomName>> {
    match auth.publish_mode() {
        _ if !client_publish => return None,
        PublishMode::Off => return None,
        PublishMode::Closed => return Some(Vec::new()),
        _ => {}
    }
    match auth.publisher(head) {
        Ok(Grant::All) => None,
        Ok(grant) => Some(rooms.iter().filter(|r| grant.allows(r)).cloned().collect()),
        Err(_) => Some(Vec::new()),
    }
}

fn bad_request(worker: &Worker, out: &mut BytesMut, why: &str, keep_alive: bool) -> Action {
    worker.stats.hub_rejects.inc();
    response::error(out, 400, why, keep_alive, false);
    Action::Done(400)
}

/// A room name from a URL (percent-decoded), checked against the naming rule.
fn room_name(worker: &Worker, raw: &str) -> Result<RoomName, String> {
    let max = worker.shared.cfg.hub.max_room_name;
    let name = static_files::percent_decode(raw)
        .map_err(|_| format!("room {raw:?} is not valid percent-encoded UTF-8"))?;
    if valid_room_name(&name, max) {
        Ok(Arc::from(name))
    } else {
        Err(format!(
            "room {name:?} is not a valid room name (1 to {max} bytes of A-Z a-z 0-9 _ - . : @)"
        ))
    }
}

/// Checks a WebSocket upgrade and writes its 101 or its refusal.
fn ws_upgrade(
    worker: &Worker,
    head: &RequestHead<'_>,
    rules: &EndpointRules<'_>,
    kind: WsKind,
    rate: (u32, u32),
    publish_rooms: Option<Vec<RoomName>>,
    out: &mut BytesMut,
) -> Action {
    let auth = worker.shared.auth.load();
    let rules = EndpointRules {
        same_origin: auth.token_from_cookie(head)
            && (auth.subscribe_required() || auth.publish_mode() != PublishMode::Off),
        ..*rules
    };
    match websocket::negotiate(&worker.shared.cfg, head, &rules, out) {
        Negotiated::Accepted { deflate, protocol } => Action::WebSocket(WsUpgrade {
            kind,
            deflate,
            protocol,
            path: head.path.to_string(),
            query: head.query.to_string(),
            rate,
            publish_rooms,
        }),
        Negotiated::Refused(status) => {
            worker.stats.ws_handshake_rejects.inc();
            Action::Close(status)
        }
    }
}

/// While the server drains, new streams and publishes are refused with 503
/// (what was accepted before is delivered; a client retries elsewhere or later).
fn refuse_while_draining(worker: &Worker, out: &mut BytesMut) -> Option<Action> {
    if !worker.draining() {
        return None;
    }
    response::start(out, 503);
    response::header(out, "Retry-After", b"1");
    response::header(out, "Content-Type", b"text/plain; charset=utf-8");
    response::finish(
        out,
        b"503 Service Unavailable: the server is shutting down\n",
        false,
        false,
    );
    Some(Action::Close(503))
}

/// Whether a new stream or WebSocket may start: while the server drains it
/// gets 503; over the client's `server.handshake_rate_per_ip` it gets 429
/// with `Retry-After` (counted).
fn admit_handshake(worker: &Worker, head: &RequestHead<'_>, out: &mut BytesMut) -> Option<Action> {
    if let Some(refused) = refuse_while_draining(worker, out) {
        return Some(refused);
    }
    let shared = &worker.shared;
    let retry = shared
        .per_ip
        .try_handshake(head.peer, &shared.limits)
        .err()?;
    worker.stats.rejected_handshake_rate.inc();
    let body = format!(
        "429 Too Many Requests: server.handshake_rate_per_ip is {} per second; retry in {retry}s\n",
        shared.limits.handshake_rate_per_ip.load(Relaxed)
    );
    response::start(out, 429);
    response::header(
        out,
        "Retry-After",
        itoa::Buffer::new().format(retry).as_bytes(),
    );
    response::header(out, "Content-Type", b"text/plain; charset=utf-8");
    response::finish(out, body.as_bytes(), false, head.method == "HEAD");
    Some(Action::Close(429))
}

/// Checks a stream request (SSE or WebSocket rooms): its rooms, their
/// number, and the resume cursor.
fn stream_request(
    worker: &Worker,
    head: &RequestHead<'_>,
    max_rooms: usize,
    max_key: &str,
) -> Result<Subscription, String> {
    let cfg = &worker.shared.cfg;
    let mut rooms: Vec<RoomName> = Vec::new();
    for raw in head.query_params("room") {
        let r = room_name(worker, raw)?;
        if !rooms.contains(&r) {
            rooms.push(r);
        }
    }
    if rooms.len() > max_rooms {
        worker.stats.rejected_rooms_per_connection.inc();
        return Err(format!(
            "{} rooms asked for; {max_key} is {max_rooms}",
            rooms.len()
        ));
    }
    let auto = &cfg.hub.auto_join_room;
    if !auto.is_empty() && !rooms.iter().any(|r| **r == **auto) {
        rooms.push(Arc::from(auto.as_str()));
    }
    if rooms.is_empty() {
        return Err("no room: add ?room=NAME (hub.auto_join_room is off)".into());
    }
    let resume = resume_cursor(head, rooms.len())?;
    Ok(Subscription { rooms, resume })
}

/// The resume cursor of a stream request over `rooms` rooms: the
/// `Last-Event-ID` header, else the `last_event_id` query parameter.
fn resume_cursor(head: &RequestHead<'_>, rooms: usize) -> Result<Option<Vec<u64>>, String> {
    let cursor_text = match head.header("last-event-id") {
        Some(v) => Some(
            std::str::from_utf8(v)
                .map_err(|_| "Last-Event-ID is not UTF-8".to_string())?
                .trim()
                .to_string(),
        ),
        None => head
            .query_params("last_event_id")
            .next()
            .map(|v| static_files::percent_decode(v).unwrap_or_default()),
    };
    match cursor_text {
        Some(t) if !t.is_empty() => Ok(Some(cursor::parse(&t, rooms)?)),
        _ => Ok(None),
    }
}

/// Checks a publish: token (and its rooms), size, event name; returns the message to publish.
fn publish_request(
    worker: &Worker,
    head: &RequestHead<'_>,
    raw_room: &str,
    body: &[u8],
    out: &mut BytesMut,
    keep_alive: bool,
) -> Action {
    let hub = &worker.shared.cfg.hub;
    let auth = worker.shared.auth.load();
    let grant = match auth.publisher(head) {
        Ok(g) => g,
        Err(r) => return refuse(worker, &auth, &r, out, keep_alive, false),
    };
    let room = match room_name(worker, raw_room) {
        Ok(r) => r,
        Err(why) => return bad_request(worker, out, &why, keep_alive),
    };
    if !grant.allows(&room) {
        let r = Refusal::Forbidden {
            room,
            publish: true,
        };
        return refuse(worker, &auth, &r, out, keep_alive, false);
    }
    if let Some(why) = crate::hub::reserved_room(&room) {
        worker.stats.hub_rejects.inc();
        response::error(out, 403, why, keep_alive, false);
        return Action::Done(403);
    }
    if body.len() as u64 > hub.max_message_size.0 {
        worker.stats.hub_rejects.inc();
        response::error(
            out,
            413,
            "message is larger than hub.max_message_size",
            keep_alive,
            false,
        );
        return Action::Done(413);
    }
    let event = match head.query_params("event").next() {
        None => None,
        Some(raw) => match static_files::percent_decode(raw) {
            Ok(e) if valid_event_name(&e) => Some(e),
            _ => {
                return bad_request(
                    worker,
                    out,
                    "event must be 1 to 128 bytes of UTF-8 without line breaks",
                    keep_alive,
                )
            }
        },
    };
    Action::Publish {
        room,
        msg: Message {
            event,
            data: Bytes::copy_from_slice(body),
        },
    }
}

fn not_found(out: &mut BytesMut, keep_alive: bool, head_only: bool) -> Action {
    response::error(out, 404, "no such path", keep_alive, head_only);
    Action::Done(404)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WebSocket handler's route at `path`.
    fn ws_route(path: &str) -> WsRoute {
        WsRoute {
            path: path.to_string(),
            endpoint: crate::config::WsEndpoint::default(),
            handler: Arc::new(|c| Box::pin(crate::conn::ws::handler::echo(c))),
        }
    }

    /// `cfg`'s table, with WebSocket handlers at `ws_paths` (in that order)
    /// and the demos' endpoints when `demos`.
    fn router(cfg: &Config, ws_paths: &[&str], demos: bool) -> Router {
        let routes: Vec<WsRoute> = ws_paths.iter().map(|p| ws_route(p)).collect();
        Router::new(cfg, &routes, demos.then(|| Jobs::new().0))
    }

    /// Where `method path` goes: `handler(rest)`, `405 Allow`, or `fallback`.
    fn found(router: &Router, method: &str, path: &str) -> String {
        match router.lookup(method, path) {
            Lookup::Call(entry, rest) => format!("{}({rest})", entry.name),
            Lookup::NotAllowed(allow) => format!("405 {allow}"),
            Lookup::Fallback => "fallback".to_string(),
        }
    }

    /// Checks where each `(method, path, want)` goes (see [`found`]).
    fn check(router: &Router, cases: &[(&str, &str, &str)]) {
        for (method, path, want) in cases {
            assert_eq!(found(router, method, path), *want, "{method} {path}");
        }
    }

    #[test]
    fn the_entries_keep_the_order_of_precedence() {
        let r = router(&Config::default(), &["/echo", "/chat"], true);
        let names: Vec<_> = r.entries.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "healthz",
                "metrics",
                "ws_handler",
                "ws_handler",
                "demo_chat",
                "demo_progress_start",
                "dashboard",
                "ws_rooms",
                "sse_stream",
                "publish",
                "room_query",
            ]
        );
        let slots: Vec<_> = r.entries.iter().map(|e| e.slot).collect();
        assert_eq!(slots[2..4], [0, 1]);
        assert!(r.ws_routes[0].echo && !r.ws_routes[1].echo);
        check(
            &r,
            &[
                ("GET", "/healthz", "healthz()"),
                ("GET", "/metrics", "metrics()"),
                ("GET", "/echo", "ws_handler()"),
                ("GET", "/chat", "ws_handler()"),
                ("GET", "/demo/chat/ws", "demo_chat()"),
                ("GET", "/dashboard", "dashboard()"),
                ("GET", "/ws", "ws_rooms()"),
                ("GET", "/sse", "sse_stream()"),
                ("GET", "/", "fallback"),
                ("GET", "/index.html", "fallback"),
                ("GET", "/healthz/", "fallback"),
                ("GET", "/sse/x", "fallback"),
                ("POST", "/demo/progress/start", "demo_progress_start()"),
            ],
        );
    }

    #[test]
    fn another_method_is_405_with_the_entry_allow() {
        let r = router(&Config::default(), &["/echo"], true);
        check(
            &r,
            &[
                ("HEAD", "/healthz", "healthz()"),
                ("POST", "/healthz", "405 GET, HEAD"),
                ("DELETE", "/metrics", "405 GET, HEAD"),
                ("POST", "/dashboard", "405 GET, HEAD"),
                ("HEAD", "/sse", "405 GET"),
                ("POST", "/sse", "405 GET"),
                ("GET", "/publish/a", "405 POST"),
                ("PUT", "/rooms/a", "405 GET, HEAD"),
                ("HEAD", "/rooms/a/messages", "room_query(a/messages)"),
                ("GET", "/demo/progress/start", "405 POST"),
                // an upgrade answers any method itself
                ("POST", "/echo", "ws_handler()"),
                ("POST", "/ws", "ws_rooms()"),
                ("PUT", "/demo/chat/ws", "demo_chat()"),
                // the fallback decides for itself
                ("POST", "/", "fallback"),
            ],
        );
    }

    #[test]
    fn publish_and_rooms_match_their_prefix() {
        let r = router(&Config::default(), &[], false);
        check(
            &r,
            &[
                ("POST", "/publish/news", "publish(news)"),
                ("POST", "/publish/a%20b/c", "publish(a%20b/c)"),
                ("POST", "/publish/", "publish()"),
                ("POST", "/publish", "fallback"),
                ("POST", "/publishers/x", "fallback"),
                ("GET", "/rooms/news", "room_query(news)"),
                ("GET", "/rooms/news/messages", "room_query(news/messages)"),
                ("GET", "/rooms/", "room_query()"),
                ("GET", "/rooms", "fallback"),
            ],
        );
    }

    #[test]
    fn an_earlier_entry_wins_a_shared_path() {
        let mut cfg = Config::default();
        cfg.http.metrics_path = "/healthz".into();
        cfg.sse.path = "/rooms/live".into();
        cfg.dashboard.path = "/ws".into();
        let r = router(&cfg, &["/healthz", "/publish/x", "/demo/chat/ws"], true);
        check(
            &r,
            &[
                ("GET", "/healthz", "healthz()"),
                ("POST", "/healthz", "405 GET, HEAD"),
                // a WebSocket handler wins over the built-in paths after it
                ("GET", "/publish/x", "ws_handler()"),
                ("POST", "/publish/y", "publish(y)"),
                ("GET", "/demo/chat/ws", "ws_handler()"),
                // the dashboard over the rooms WebSocket
                ("GET", "/ws", "dashboard()"),
                ("POST", "/ws", "405 GET, HEAD"),
                // an exact path over the prefix
                ("GET", "/rooms/live", "sse_stream()"),
                ("HEAD", "/rooms/live", "405 GET"),
                ("GET", "/rooms/other", "room_query(other)"),
                ("GET", "/metrics", "fallback"),
            ],
        );
    }

    #[test]
    fn an_endpoint_turned_off_has_no_entry() {
        let r = router(&Config::bare(), &[], false);
        let names: Vec<_> = r.entries.iter().map(|e| e.name).collect();
        assert_eq!(names, ["healthz", "sse_stream", "publish", "room_query"]);
        for path in [
            "/metrics",
            "/echo",
            "/ws",
            "/dashboard",
            "/demo/chat/ws",
            "/demo/progress/start",
        ] {
            assert_eq!(found(&r, "GET", path), "fallback", "{path}");
            assert_eq!(found(&r, "POST", path), "fallback", "{path}");
        }
    }
}
