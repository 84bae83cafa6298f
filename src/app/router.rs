//! Routes of the default server: `/healthz`, then static files from
//! `static.dir` or the built-in pages. Answers are appended to the
//! connection's output buffer; a file body that must be read from disk is
//! returned as an [`Action`] for the connection to finish asynchronously.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::static_files::{self, Denied};
use crate::auth::{self, Auth, Grant, PublishMode, Refusal};
use crate::config::EndpointAuth;
use crate::conn::worker::Worker;
use crate::conn::ws::{self as websocket, EndpointRules, Negotiated, RoomsMode, WsKind, WsUpgrade};
use crate::conn::{Action, App};
use crate::hub::{valid_room_name, Message, RoomName, Subscription};
use crate::proto::http::request::RequestHead;
use crate::proto::http::response;
use crate::proto::sse::cursor;
use crate::proto::sse::encode::valid_event_name;

/// Methods a path accepts, for `405` and its `Allow` header.
const GET_HEAD: &str = "GET, HEAD";

fn method_not_allowed(out: &mut BytesMut, allow: &str, keep_alive: bool, head_only: bool) {
    let body = format!("405 Method Not Allowed: this path accepts {allow}\n");
    response::start(out, 405);
    response::header(out, "Allow", allow.as_bytes());
    response::header(out, "Content-Type", b"text/plain; charset=utf-8");
    response::finish(out, body.as_bytes(), keep_alive, head_only);
}

/// The default server's endpoints, and the state they need beyond the worker's.
pub struct Router {
    /// Starts the progress demo's jobs (when the demos run: see
    /// [`crate::conn::worker::Shared::demos_on`]).
    pub demo_jobs: Option<crate::app::demo::Jobs>,
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
        route(self, worker, head, body, out, keep_alive)
    }
}

/// Routes one complete request (`body` is its whole body).
fn route(
    app: &Router,
    worker: &Worker,
    head: &RequestHead<'_>,
    body: &[u8],
    out: &mut BytesMut,
    keep_alive: bool,
) -> Action {
    let head_only = head.method == "HEAD";
    let get_like = head.method == "GET" || head_only;
    let path = head.path;
    if path == "/healthz" {
        if get_like {
            response::simple(out, 200, "ok", keep_alive, head_only);
        } else {
            method_not_allowed(out, GET_HEAD, keep_alive, head_only);
        }
        return Action::Done;
    }
    let cfg = &worker.shared.cfg;
    if !cfg.http.metrics_path.is_empty() && path == cfg.http.metrics_path {
        if get_like {
            let body = super::metrics::render(&worker.shared);
            response::start(out, 200);
            response::header(out, "Content-Type", super::metrics::CONTENT_TYPE.as_bytes());
            response::header(out, "Cache-Control", b"no-store");
            response::finish(out, body.as_bytes(), keep_alive, head_only);
        } else {
            method_not_allowed(out, GET_HEAD, keep_alive, head_only);
        }
        return Action::Done;
    }
    if let Some(route) = worker.shared.ws_routes.iter().find(|r| r.path == path) {
        if let Some(refused) = admit_handshake(worker, head, out) {
            return refused;
        }
        let e = &route.endpoint;
        let rate = if path == cfg.ws.echo.path {
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
                    Err(r) => return refuse(worker, &auth, &r, out, false, false),
                }
            }
        };
        let rules = EndpointRules {
            subprotocols: &e.subprotocols,
            allowed_origins: &e.allowed_origins,
            deflate: e.deflate,
            same_origin: false,
        };
        let kind = WsKind::Handler(route.handler.clone(), grant);
        return ws_upgrade(worker, head, &rules, kind, rate, None, out);
    }
    if worker.shared.demos_on() {
        if path == crate::app::demo::CHAT_PATH {
            return demo_chat(worker, head, out);
        }
        if path == "/demo/progress/start" {
            return demo_progress_start(app, worker, head, out, keep_alive, head_only);
        }
    }
    if cfg.dashboard.enabled && path == cfg.dashboard.path {
        let page = &static_files::DASHBOARD;
        if get_like {
            response::start(out, 200);
            response::header(out, "Content-Type", page.content_type.as_bytes());
            response::header(out, "Cache-Control", page.cache_control.as_bytes());
            response::finish(out, page.body, keep_alive, head_only);
        } else {
            method_not_allowed(out, GET_HEAD, keep_alive, head_only);
        }
        return Action::Done;
    }
    if !cfg.ws.rooms.path.is_empty() && path == cfg.ws.rooms.path {
        if let Some(refused) = admit_handshake(worker, head, out) {
            return refused;
        }
        let e = &cfg.ws.rooms;
        let l = &worker.shared.limits;
        let max_rooms = l.ws_rooms_max_rooms_per_connection.load(Relaxed);
        let rate = l.ws_rooms_rate();
        let auth = worker.shared.auth.load();
        // decided before the 101: a refusal is an HTTP answer to the upgrade
        let grant = match auth.subscriber(head) {
            Ok(g) => g,
            Err(r) => return refuse(worker, &auth, &r, out, false, false),
        };
        let req = match stream_request(worker, head, max_rooms, "ws.rooms.max_rooms_per_connection")
        {
            Ok(r) => r,
            Err(why) => {
                worker.stats.hub_rejects.inc();
                response::error(out, 400, &why, false, false);
                return Action::Close;
            }
        };
        if let Err(r) = auth::check_rooms(&grant, &req.rooms, &cfg.hub.auto_join_room) {
            return refuse(worker, &auth, &r, out, false, false);
        }
        let publish_rooms = ws_publish_rooms(&auth, head, &req.rooms, e.client_publish);
        let rules = EndpointRules {
            subprotocols: &e.subprotocols,
            allowed_origins: &e.allowed_origins,
            deflate: e.deflate,
            same_origin: false,
        };
        return ws_upgrade(
            worker,
            head,
            &rules,
            WsKind::Rooms(req, RoomsMode::from_config(cfg)),
            rate,
            publish_rooms,
            out,
        );
    }
    if path == cfg.sse.path {
        if head.method != "GET" {
            method_not_allowed(out, "GET", keep_alive, head_only);
            return Action::Done;
        }
        if let Some(refused) = admit_handshake(worker, head, out) {
            return refused;
        }
        let auth = worker.shared.auth.load();
        let grant = match auth.subscriber(head) {
            Ok(g) => g,
            Err(r) => return refuse(worker, &auth, &r, out, keep_alive, false),
        };
        let max = worker
            .shared
            .limits
            .sse_max_rooms_per_connection
            .load(Relaxed);
        return match stream_request(worker, head, max, "sse.max_rooms_per_connection") {
            Ok(req) => match auth::check_rooms(&grant, &req.rooms, &cfg.hub.auto_join_room) {
                Ok(()) => Action::Sse(req),
                Err(r) => refuse(worker, &auth, &r, out, keep_alive, false),
            },
            Err(why) => bad_request(worker, out, &why, keep_alive),
        };
    }
    if let Some(room) = path.strip_prefix("/publish/") {
        if head.method != "POST" {
            method_not_allowed(out, "POST", keep_alive, head_only);
            return Action::Done;
        }
        if let Some(refused) = refuse_while_draining(worker, out) {
            return refused;
        }
        if worker.shared.auth.load().publish_mode() == PublishMode::Closed {
            worker.stats.auth_forbidden.inc();
            response::error(
                out,
                403,
                "publishing is closed to clients (auth.publish = \"closed\")",
                keep_alive,
                false,
            );
            return Action::Done;
        }
        return publish_request(worker, head, room, body, out, keep_alive);
    }
    if let Some(rest) = path.strip_prefix("/rooms/") {
        if !get_like {
            method_not_allowed(out, GET_HEAD, keep_alive, head_only);
            return Action::Done;
        }
        let (room, sub) = match rest.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (rest, None),
        };
        // reading a room is subscribing to it
        let auth = worker.shared.auth.load();
        let grant = match auth.subscriber(head) {
            Ok(g) => g,
            Err(r) => return refuse(worker, &auth, &r, out, keep_alive, head_only),
        };
        let room = match room_name(worker, room) {
            Ok(r) => r,
            Err(why) => return bad_request(worker, out, &why, keep_alive),
        };
        let one = std::slice::from_ref(&room);
        if let Err(r) = auth::check_rooms(&grant, one, &cfg.hub.auto_join_room) {
            return refuse(worker, &auth, &r, out, keep_alive, head_only);
        }
        return match sub {
            None => Action::RoomInfo { room },
            Some("messages") => {
                let since = head.query_params("since").next().unwrap_or("0");
                match since.parse::<u64>() {
                    Ok(since) => Action::RoomHistory { room, since },
                    Err(_) => bad_request(
                        worker,
                        out,
                        &format!("since={since:?} is not a message id"),
                        keep_alive,
                    ),
                }
            }
            Some(_) => not_found(out, keep_alive, head_only),
        };
    }
    serve_static(worker, head, out, keep_alive, head_only, get_like)
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
    auth.write_refusal(refusal, out, keep_alive, head_only);
    if keep_alive {
        Action::Done
    } else {
        Action::Close
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

/// The demo chat: a WebSocket in room `demo-chat` only (no auto-join room),
/// whose clients publish through the fixed, escaping chat template, with
/// `[ws.rooms]`' Origin rules, deflate and rate limit, and the server's
/// handshake limits and publish rules (`[auth]`).
fn demo_chat(worker: &Worker, head: &RequestHead<'_>, out: &mut BytesMut) -> Action {
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
        Ok(r) => r,
        Err(why) => {
            worker.stats.hub_rejects.inc();
            response::error(out, 400, &why, false, false);
            return Action::Close;
        }
    };
    let req = Subscription {
        rooms: vec![Arc::from(crate::app::demo::CHAT_ROOM)],
        resume,
    };
    // reading the chat is subscribing to its room: [auth] as for /ws
    let auth = worker.shared.auth.load();
    let grant = match auth.subscriber(head) {
        Ok(g) => g,
        Err(r) => return refuse(worker, &auth, &r, out, false, false),
    };
    if let Err(r) = auth::check_rooms(&grant, &req.rooms, "") {
        return refuse(worker, &auth, &r, out, false, false);
    }
    let mode = RoomsMode {
        envelope: crate::config::Envelope::Htmx,
        client_publish: true,
        template: crate::app::demo::CHAT_TEMPLATE.to_string(),
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
fn demo_progress_start(
    app: &Router,
    worker: &Worker,
    head: &RequestHead<'_>,
    out: &mut BytesMut,
    keep_alive: bool,
    head_only: bool,
) -> Action {
    if head.method != "POST" {
        method_not_allowed(out, "POST", keep_alive, head_only);
        return Action::Done;
    }
    let Some(jobs) = &app.demo_jobs else {
        return not_found(out, keep_alive, head_only);
    };
    match jobs.start() {
        Ok(id) => {
            let html = crate::app::demo::job_fragment(id, &worker.shared.cfg.sse.path);
            response::start(out, 200);
            response::header(out, "Content-Type", b"text/html; charset=utf-8");
            response::header(out, "Cache-Control", b"no-store");
            response::finish(out, html.as_bytes(), keep_alive, false);
        }
        Err(why) => {
            worker.stats.http_other_errors.inc();
            response::error(out, 503, why, keep_alive, false)
        }
    }
    Action::Done
}

fn bad_request(worker: &Worker, out: &mut BytesMut, why: &str, keep_alive: bool) -> Action {
    worker.stats.hub_rejects.inc();
    response::error(out, 400, why, keep_alive, false);
    Action::Done
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
        Negotiated::Refused => {
            worker.stats.ws_handshake_rejects.inc();
            Action::Close
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
    Some(Action::Close)
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
    Some(Action::Close)
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
        return Action::Done;
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
        return Action::Done;
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

fn serve_static(
    worker: &Worker,
    head: &RequestHead<'_>,
    out: &mut BytesMut,
    keep_alive: bool,
    head_only: bool,
    get_like: bool,
) -> Action {
    let cfg = &worker.shared.cfg.static_files;
    let builtin = match &worker.shared.static_root {
        None if !worker.shared.cfg.static_files.builtin_pages => None,
        // with the demos off, their pages go too
        None if head.path.starts_with("/demo/") && !worker.shared.demos_on() => None,
        None => static_files::embedded(head.path),
        Some(_) => static_files::vendor(head.path),
    };
    if builtin.is_some() || worker.shared.static_root.is_none() {
        return match builtin {
            Some(page) if get_like => {
                response::start(out, 200);
                response::header(out, "Content-Type", page.content_type.as_bytes());
                response::header(out, "Cache-Control", page.cache_control.as_bytes());
                response::finish(out, page.body, keep_alive, head_only);
                Action::Done
            }
            Some(_) => {
                method_not_allowed(out, GET_HEAD, keep_alive, head_only);
                Action::Done
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
            Some(icon) if get_like => {
                response::start(out, 200);
                response::header(out, "Content-Type", icon.content_type.as_bytes());
                response::header(out, "Cache-Control", icon.cache_control.as_bytes());
                response::finish(out, icon.body, keep_alive, head_only);
                return Action::Done;
            }
            _ => return not_found(out, keep_alive, head_only),
        },
        Err(Denied::Forbidden(why)) => {
            response::error(out, 403, why, keep_alive, head_only);
            return Action::Done;
        }
        Err(Denied::BadPath(why)) => {
            response::error(out, 400, why, keep_alive, head_only);
            return Action::Done;
        }
    };
    if !get_like {
        method_not_allowed(out, GET_HEAD, keep_alive, head_only);
        return Action::Done;
    }
    if file.len > cfg.max_file_size.0 {
        response::error(
            out,
            403,
            "file is larger than static.max_file_size",
            keep_alive,
            head_only,
        );
        return Action::Done;
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
        return Action::Done;
    }
    response::start(out, 200);
    response::header(out, "Content-Type", file.content_type.as_bytes());
    if let Some(lm) = &last_modified {
        response::header(out, "Last-Modified", lm.as_bytes());
    }
    response::header(out, "Cache-Control", cfg.cache_control.as_bytes());
    response::finish_len(out, file.len, keep_alive);
    if head_only || file.len == 0 {
        Action::Done
    } else {
        Action::File {
            path: file.path,
            len: file.len,
        }
    }
}

fn not_found(out: &mut BytesMut, keep_alive: bool, head_only: bool) -> Action {
    response::error(out, 404, "no such path", keep_alive, head_only);
    Action::Done
}
