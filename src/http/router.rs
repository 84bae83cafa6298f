//! Routes of the default server: `/healthz`, then static files from
//! `static.dir` or the built-in pages. Answers are appended to the
//! connection's output buffer; a file body that must be read from disk is
//! returned as an [`Action`] for the connection to finish asynchronously.

use std::path::PathBuf;

use bytes::BytesMut;

use super::request::RequestHead;
use super::response;
use super::static_files::{self, Denied};
use crate::server::worker::Worker;

/// What the connection still has to do after routing.
pub enum Action {
    /// The whole response is in the output buffer.
    Done,
    /// The head is in the output buffer; the body is this file's `len` bytes.
    File { path: PathBuf, len: u64 },
}

/// Methods a path accepts, for `405` and its `Allow` header.
const GET_HEAD: &str = "GET, HEAD";

fn method_not_allowed(out: &mut BytesMut, allow: &str, keep_alive: bool, head_only: bool) {
    let body = format!("405 Method Not Allowed: this path accepts {allow}\n");
    response::start(out, 405);
    response::header(out, "Allow", allow.as_bytes());
    response::header(out, "Content-Type", b"text/plain; charset=utf-8");
    response::finish(out, body.as_bytes(), keep_alive, head_only);
}

/// Routes one complete request (`body` is its whole body).
pub fn route(
    worker: &Worker,
    head: &RequestHead<'_>,
    _body: &[u8],
    out: &mut BytesMut,
    keep_alive: bool,
) -> Action {
    let head_only = head.method == "HEAD";
    let get_like = head.method == "GET" || head_only;
    if head.path == "/healthz" {
        if get_like {
            response::simple(out, 200, "ok", keep_alive, head_only);
        } else {
            method_not_allowed(out, GET_HEAD, keep_alive, head_only);
        }
        return Action::Done;
    }
    serve_static(worker, head, out, keep_alive, head_only, get_like)
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
    let Some(root) = &worker.shared.static_root else {
        return match static_files::embedded(head.path) {
            Some(page) if get_like => {
                response::start(out, 200);
                response::header(out, "Content-Type", page.content_type.as_bytes());
                response::header(out, "Cache-Control", b"no-cache");
                response::finish(out, page.body, keep_alive, head_only);
                Action::Done
            }
            Some(_) => {
                method_not_allowed(out, GET_HEAD, keep_alive, head_only);
                Action::Done
            }
            None => not_found(out, keep_alive, head_only),
        };
    };
    let file = match static_files::resolve(root, head.path, &cfg.index) {
        Ok(f) => f,
        Err(Denied::NotFound) => return not_found(out, keep_alive, head_only),
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
