//! The plain-HTTP endpoints: `GET /healthz`, `GET /sse?room=NAME`,
//! `POST /publish/NAME`, and the error answers. The WebSocket endpoints are
//! the peers' own.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::{sse, Body, Rooms};

/// Largest accepted publish body.
pub const MAX_PUBLISH_BODY: usize = 1 << 20;

/// Answers every request that is not a WebSocket endpoint.
pub async fn handle(req: Request<Incoming>, rooms: &Arc<Rooms>) -> Response<Body> {
    let path = req.uri().path();
    if path == "/healthz" {
        return healthz();
    }
    if path == "/sse" {
        if req.method() != Method::GET {
            return status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        return match room_param(req.uri().query()) {
            Some(room) => sse_subscribe(rooms, &room),
            None => status(StatusCode::BAD_REQUEST, "missing ?room=NAME\n"),
        };
    }
    if let Some(name) = path.strip_prefix("/publish/") {
        if req.method() != Method::POST {
            return status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        let room = percent_decode(name);
        if room.is_empty() {
            return status(StatusCode::BAD_REQUEST, "missing room name\n");
        }
        return publish(req, rooms, &room).await;
    }
    status(StatusCode::NOT_FOUND, "not found\n")
}

/// `200 ok`.
pub fn healthz() -> Response<Body> {
    let mut res = Response::new(Body::full(Bytes::from_static(b"ok")));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res
}

/// A status with a short plain-text body.
pub fn status(code: StatusCode, msg: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::full(Bytes::from_static(msg.as_bytes())));
    *res.status_mut() = code;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res
}

/// An SSE stream of `room`: subscribes now, so it gets every message
/// published from this point on.
pub fn sse_subscribe(rooms: &Rooms, room: &str) -> Response<Body> {
    let rx = rooms.subscribe(room);
    let mut res = Response::new(Body::Sse(sse::body(rx)));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// Reads the body and publishes it; `202 {"room":"NAME","id":N}`.
pub async fn publish(req: Request<Incoming>, rooms: &Rooms, room: &str) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_PUBLISH_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return status(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
        }
        Err(_) => return status(StatusCode::BAD_REQUEST, "bad body\n"),
    };
    if std::str::from_utf8(&body).is_err() {
        return status(StatusCode::BAD_REQUEST, "body must be UTF-8\n");
    }
    let id = rooms.publish(room, body);
    let mut json = String::with_capacity(room.len() + 32);
    json.push_str("{\"room\":\"");
    json_escape_into(&mut json, room);
    json.push_str("\",\"id\":");
    json.push_str(&id.to_string());
    json.push('}');
    let mut res = Response::new(Body::full(json));
    *res.status_mut() = StatusCode::ACCEPTED;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The decoded value of `room=` in a query string, if present and not empty.
pub fn room_param(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("room="))
        .map(percent_decode)
        .filter(|r| !r.is_empty())
}

/// Decodes `%XX` escapes (a bad escape stays as it is; `+` stays `+`).
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_from_query() {
        assert_eq!(room_param(Some("room=lobby")).as_deref(), Some("lobby"));
        assert_eq!(room_param(Some("x=1&room=a%20b")).as_deref(), Some("a b"));
        assert_eq!(room_param(Some("room=")), None);
        assert_eq!(room_param(None), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41%42"), "AB");
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        json_escape_into(&mut s, "a\"b\\c\n");
        assert_eq!(s, "a\\\"b\\\\c\\u000a");
    }
}
