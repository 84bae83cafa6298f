//! One HTTP/1.1 connection, driven on its worker: wait for readiness, read
//! into a pooled buffer, answer every complete (pipelined) request in order
//! into one output buffer, write it once (cork), give the buffer back.
//!
//! Deadlines: a new connection must send a request head within
//! `header_timeout`; a head must complete within `header_timeout` of its
//! first byte; a body within `body_timeout` of its head; an idle keep-alive
//! connection closes after `keepalive_timeout`; a client that stops reading
//! is cut after `send_timeout`.

use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};

use std::path::PathBuf;

use crate::conn::worker::{ConnGuard, Worker};
use crate::conn::ws::WsUpgrade;
use crate::hub::{HubError, Message, RoomName, Subscription};
use crate::io::transport::Transport;
use crate::proto::http::request::{self, HeadLimits, Parsed};
use crate::proto::http::response;

/// What the connection still has to do after routing.
pub enum Action {
    /// The whole response, of this status, is in the output buffer.
    Done(u16),
    /// The head of a `200` is in the output buffer; the body is this file's `len` bytes.
    File { path: PathBuf, len: u64 },
    /// The connection becomes an SSE stream.
    Sse(Subscription),
    /// `POST /publish/{room}`: publish, then answer 202 with the id.
    Publish { room: RoomName, msg: Message },
    /// `GET /rooms/{room}`.
    RoomInfo { room: RoomName },
    /// `GET /rooms/{room}/messages?since=ID`.
    RoomHistory { room: RoomName, since: u64 },
    /// The 101 is in the output buffer: the connection becomes a WebSocket.
    WebSocket(WsUpgrade),
    /// The response, of this status, is in the output buffer and says `Connection: close`.
    Close(u16),
}

/// Where the connection is between requests.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// No byte of the next request yet; `first` = no request served yet.
    Idle { since: Instant, first: bool },
    /// Part of a request head has arrived.
    Head { since: Instant },
    /// The head is complete; waiting for the rest of the body.
    Body { since: Instant },
}

/// What to do after handling the bytes at hand.
enum Next {
    KeepGoing,
    /// Write what is pending, then close gracefully.
    Close,
    /// The connection becomes an SSE stream (what is pending goes out with its head).
    Sse(Subscription),
    /// The connection becomes a WebSocket (its 101 is pending).
    Ws(WsUpgrade),
}

/// The next request, parsed and routed.
enum Step {
    /// Stop handling this read (incomplete request, refusal, or nothing left).
    Stop(Next),
    /// Finish this request's action, then go on.
    Run {
        action: Action,
        keep_alive: bool,
        head_only: bool,
        /// For the access log (only when it is on).
        log: Option<Box<Pending>>,
        /// An HTTP/1.0 request kept open: where its response starts, to
        /// mark it `Connection: keep-alive` once written.
        mark_keep_alive: Option<usize>,
    },
}

/// A publish handed over to the engine, answered once its id is known.
struct Deferred {
    answer: std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, HubError>>>>,
    room: RoomName,
    keep_alive: bool,
    /// An HTTP/1.0 request kept open: its answer says `Connection: keep-alive`.
    mark: bool,
    log: Option<Box<Pending>>,
}

/// Pipelined publishes handed over before their answers are written.
const MAX_DEFERRED_PUBLISHES: usize = 64;

/// A request waiting for its access-log line.
struct Pending {
    method: String,
    target: String,
    minor_version: u8,
    start: Instant,
    /// Where its response starts in the output buffer.
    out_start: usize,
}

/// What a connection turns into after HTTP.
enum Upgrade {
    Sse(Subscription),
    /// With the bytes that followed the handshake (the first frames).
    Ws(WsUpgrade, BytesMut),
}

struct Conn {
    io: Transport,
    guard: ConnGuard,
    worker: Rc<Worker>,
    /// Bytes of an unfinished request, kept between reads (None when idle).
    inbuf: Option<BytesMut>,
    out: BytesMut,
    phase: Phase,
    served: u64,
    sent_continue: bool,
    limits: HeadLimits,
}

/// Serves one accepted connection until it closes.
pub async fn serve(io: Transport, guard: ConnGuard) {
    let worker = guard.worker.clone();
    let http = &worker.shared.cfg.http;
    let limits = HeadLimits {
        max_request_line: http.max_request_line.get(),
        max_header_bytes: http.max_header_bytes.get(),
        max_headers: http.max_headers,
    };
    let mut conn = Conn {
        io,
        guard,
        worker: worker.clone(),
        inbuf: None,
        out: BytesMut::new(),
        phase: Phase::Idle {
            since: Instant::now(),
            first: true,
        },
        served: 0,
        sent_continue: false,
        limits,
    };
    let upgrade = match conn.run().await {
        Ok(u) => u,
        Err(e) => {
            log::debug!("connection closed: {e}");
            None
        }
    };
    if let Some(b) = conn.inbuf.take() {
        worker.pool.give(b);
    }
    match upgrade {
        None => {}
        // A stream lives on as its own task, so it does not carry the HTTP state.
        Some(Upgrade::Sse(req)) => {
            let fut = crate::conn::sse::serve(conn.io, conn.guard, req, conn.out);
            log::trace!("sse stream future: {} bytes", std::mem::size_of_val(&fut));
            crate::io::panic::spawn_guarded("sse stream", fut);
        }
        Some(Upgrade::Ws(up, rest)) => {
            let fut = crate::conn::ws::session::serve(conn.io, conn.guard, up, conn.out, rest);
            log::trace!(
                "websocket session future: {} bytes",
                std::mem::size_of_val(&fut)
            );
            crate::io::panic::spawn_guarded("websocket session", fut);
        }
    }
}

enum Wake {
    Readable,
    Kicked,
    Timeout,
}

impl Conn {
    fn deadline(&self) -> (Instant, Duration) {
        let http = &self.worker.shared.cfg.http;
        match self.phase {
            Phase::Idle { since, first: true } => (since, http.header_timeout.0),
            Phase::Idle {
                since,
                first: false,
            } => (since, http.keepalive_timeout.0),
            Phase::Head { since } => (since, http.header_timeout.0),
            Phase::Body { since } => (since, http.body_timeout.0),
        }
    }

    async fn wait(&self) -> io::Result<Wake> {
        let (since, limit) = self.deadline();
        let signal = &self.guard.signal;
        signal.set_deadline(Some(since + limit));
        let wake = monoio::select! {
            _ = signal.readable() => Ok(Wake::Readable),
            _ = signal.kicked() => Ok(if signal.take_expired() { Wake::Timeout } else { Wake::Kicked }),
        };
        signal.set_deadline(None);
        wake
    }

    /// Serves requests until the connection closes (`None`) or becomes a stream.
    async fn run(&mut self) -> io::Result<Option<Upgrade>> {
        let stats = self.worker.stats.clone();
        loop {
            // Draining: an idle connection closes, unless a request of its has
            // already arrived unread (it is in flight and gets its answer).
            if self.worker.draining()
                && matches!(self.phase, Phase::Idle { .. })
                && !self.io.has_pending()
            {
                return Ok(None);
            }
            match self.wait().await? {
                Wake::Kicked => continue,
                Wake::Timeout => {
                    stats.timeouts.inc();
                    if !matches!(self.phase, Phase::Idle { .. }) {
                        // The client started a request and did not finish it in time.
                        let mut out = BytesMut::new();
                        response::error(
                            &mut out,
                            408,
                            "request not received in time",
                            false,
                            false,
                        );
                        if let Some(log) = &self.worker.access {
                            let since = self.request_start(Instant::now());
                            let (peer, bytes) = (self.guard.peer(), out.len() as u64);
                            log.http(&stats, peer, "-", "-", 1, 408, bytes, since.elapsed());
                        }
                        let _ = self.io.send(&out);
                        self.linger().await;
                    }
                    return Ok(None);
                }
                Wake::Readable => {}
            }
            let mut buf = self.inbuf.take().unwrap_or_else(|| self.worker.pool.take());
            let want = self.worker.pool.size();
            let n = match self.io.recv_into(&mut buf, want) {
                Ok(n) => {
                    self.guard.read_done(n, want, self.io.input_ended());
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.guard.signal.drained();
                    self.keep_or_return(buf);
                    continue;
                }
                Err(e) => {
                    self.worker.pool.give(buf);
                    if e.kind() == io::ErrorKind::TimedOut {
                        // TCP_USER_TIMEOUT (http.send_timeout): our answer went unacknowledged
                        stats.timeouts.inc();
                    }
                    return Err(e);
                }
            };
            if n == 0 {
                self.worker.pool.give(buf);
                return Ok(None);
            }
            stats.bytes_in.add(n as u64);
            let next = match self.handle(&mut buf).await {
                Ok(next) => next,
                Err(e) => {
                    self.worker.pool.give(buf);
                    if e.kind() == io::ErrorKind::TimedOut {
                        stats.timeouts.inc();
                    }
                    return Err(e);
                }
            };
            match next {
                Next::Sse(req) => {
                    // Bytes after the stream request are not requests any more.
                    self.worker.pool.give(buf);
                    return Ok(Some(Upgrade::Sse(req)));
                }
                Next::Ws(up) => return Ok(Some(Upgrade::Ws(up, buf))),
                _ => {}
            }
            self.keep_or_return(buf);
            let flushed = self.flush().await;
            match (next, flushed) {
                (_, Err(e)) => {
                    if e.kind() == io::ErrorKind::TimedOut {
                        stats.timeouts.inc();
                    }
                    return Err(e);
                }
                (Next::Close, Ok(())) => {
                    self.linger().await;
                    return Ok(None);
                }
                (Next::KeepGoing, Ok(())) | (Next::Sse(_), Ok(())) | (Next::Ws(_), Ok(())) => {}
            }
        }
    }

    /// Keeps a buffer holding part of a request; returns an empty one to the pool.
    fn keep_or_return(&mut self, buf: BytesMut) {
        if buf.is_empty() {
            self.worker.pool.give(buf);
        } else {
            self.inbuf = Some(buf);
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let timeout = self.worker.shared.cfg.http.send_timeout.0;
        self.io.write_all(&self.out, timeout).await?;
        self.worker.stats.bytes_out.add(self.out.len() as u64);
        self.out.clear();
        if self.out.capacity() > 64 << 10 {
            self.out = BytesMut::new();
        }
        Ok(())
    }

    async fn linger(&mut self) {
        self.io.linger_close(Duration::from_secs(1)).await;
    }

    /// Parses and routes the next request in `buf` (synchronous, so the
    /// header array never lives in the connection's future).
    fn next_request(&mut self, buf: &mut BytesMut) -> Step {
        let stats = &self.worker.stats;
        let http = &self.worker.shared.cfg.http;
        let max_body = http.max_body_size.0;
        let max_requests = http.max_requests_per_connection;
        if buf.is_empty() {
            return Step::Stop(Next::KeepGoing);
        }
        let now = Instant::now();
        let mut storage = request::header_storage();
        let head = match request::parse(buf, &mut storage, &self.limits) {
            Err(rej) => {
                match rej.status {
                    400 => stats.http_400.inc(),
                    414 => stats.http_414.inc(),
                    431 => stats.http_431.inc(),
                    _ => stats.http_other_errors.inc(),
                }
                let log = self.pending("-", "-", 1, now);
                response::error(&mut self.out, rej.status, rej.reason, false, false);
                if let Some(p) = log {
                    self.log_request(&p, rej.status, 0);
                }
                return Step::Stop(Next::Close);
            }
            Ok(Parsed::Incomplete) => {
                if let Phase::Idle { .. } = self.phase {
                    self.phase = Phase::Head { since: now };
                }
                return Step::Stop(Next::KeepGoing);
            }
            Ok(Parsed::Complete(mut head)) => {
                head.peer = self.guard.peer();
                head
            }
        };
        let head_only = head.method == "HEAD";
        if head.content_length > max_body {
            stats.http_413.inc();
            let log = self.pending(head.method, head.target, head.minor_version, now);
            response::error(
                &mut self.out,
                413,
                "request body is larger than http.max_body_size",
                false,
                head_only,
            );
            if let Some(p) = log {
                self.log_request(&p, 413, 0);
            }
            return Step::Stop(Next::Close);
        }
        let total = head.head_len + head.content_length as usize;
        if buf.len() < total {
            if !matches!(self.phase, Phase::Body { .. }) {
                self.phase = Phase::Body { since: now };
            }
            if head.expect_continue && !self.sent_continue {
                self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                self.sent_continue = true;
            }
            buf.reserve(total - buf.len());
            return Step::Stop(Next::KeepGoing);
        }
        self.served += 1;
        stats.http_requests.inc();
        let keep_alive = head.keep_alive
            && !self.worker.draining()
            && (max_requests == 0 || self.served < max_requests);
        let body = &buf[head.head_len..total];
        let log = self.pending(head.method, head.target, head.minor_version, now);
        let mark_keep_alive = (keep_alive && head.minor_version == 0).then_some(self.out.len());
        let out_start = self.out.len();
        let shared = &self.worker.shared;
        let tls = &shared.cfg.tls;
        let action = if tls.redirect_http
            && !self.io.is_tls()
            && !tls.redirect_exempt.iter().any(|p| p == head.path)
        {
            redirect_to_https(&mut self.out, &head, shared.tls_port, keep_alive, head_only);
            Action::Done(301)
        } else {
            shared
                .app
                .route(&self.worker, &head, body, &mut self.out, keep_alive)
        };
        if !tls.hsts.is_empty() && self.io.is_tls() && self.out.len() > out_start {
            response::insert_header(
                &mut self.out,
                out_start,
                "Strict-Transport-Security",
                tls.hsts.as_bytes(),
            );
        }
        buf.advance(total);
        self.sent_continue = false;
        self.phase = Phase::Idle {
            since: now,
            first: false,
        };
        Step::Run {
            action,
            keep_alive,
            head_only,
            log,
            mark_keep_alive,
        }
    }

    /// A request's access-log entry, its response starting at the end of the
    /// output buffer (None when the access log is off).
    fn pending(&self, method: &str, target: &str, minor: u8, now: Instant) -> Option<Box<Pending>> {
        self.worker.access.as_ref()?;
        Some(Box::new(Pending {
            method: method.to_string(),
            target: target.to_string(),
            minor_version: minor,
            start: self.request_start(now),
            out_start: self.out.len(),
        }))
    }

    /// When the request being parsed began to arrive.
    fn request_start(&self, now: Instant) -> Instant {
        match self.phase {
            Phase::Head { since } | Phase::Body { since } => since,
            Phase::Idle { .. } => now,
        }
    }

    /// Writes the access-log line of a finished request answered with
    /// `status`; `extra` = body bytes sent apart from the output buffer.
    fn log_request(&self, p: &Pending, status: u16, extra: u64) {
        let Some(log) = &self.worker.access else {
            return;
        };
        let written = self.out.len().saturating_sub(p.out_start) as u64;
        log.http(
            &self.worker.stats,
            self.guard.peer(),
            &p.method,
            &p.target,
            p.minor_version,
            status,
            written + extra,
            p.start.elapsed(),
        );
    }

    /// Answers every complete request in `buf`, in order; leaves a partial one in it.
    ///
    /// Pipelined answers are bounded: once `http.max_pending_output` bytes
    /// wait in the output buffer, they are written (waiting for the client
    /// to read them, within `send_timeout`) before the next request is
    /// parsed, so a client that pipelines and never reads holds at most that
    /// much plus one answer.
    ///
    /// Publishes to an engine that numbers them in the order they are
    /// handed over (the Redis engine) are handed over at once and answered
    /// together, in order, before the next other request: pipelined
    /// publishes then cost one round trip to Redis, not one each.
    async fn handle(&mut self, buf: &mut BytesMut) -> io::Result<Next> {
        let max_pending = self.worker.shared.cfg.http.max_pending_output.get();
        let mut deferred: VecDeque<Deferred> = VecDeque::new();
        loop {
            if self.out.len() >= max_pending && !buf.is_empty() {
                self.answer_deferred(&mut deferred).await;
                self.worker.stats.pending_output_pauses.inc();
                self.flush().await?;
            }
            let before = self.out.len();
            let mut step = self.next_request(buf);
            let publish_next = match &step {
                Step::Run {
                    action: Action::Publish { room, .. },
                    ..
                } => self.worker.hub.takes_publishes_in_order(room),
                _ => false,
            };
            if !deferred.is_empty() && !publish_next {
                // the publishes' answers go before whatever this request wrote
                let tail = self.out.split_off(before);
                self.answer_deferred(&mut deferred).await;
                let inserted = self.out.len() - before;
                self.out.extend_from_slice(&tail);
                if let Step::Run {
                    log,
                    mark_keep_alive,
                    ..
                } = &mut step
                {
                    if let Some(at) = mark_keep_alive {
                        *at += inserted;
                    }
                    if let Some(p) = log {
                        p.out_start += inserted;
                    }
                }
            }
            let (action, keep_alive, head_only, log, mark) = match step {
                Step::Stop(next) => return Ok(next),
                Step::Run {
                    action,
                    keep_alive,
                    head_only,
                    log,
                    mark_keep_alive,
                } => (action, keep_alive, head_only, log, mark_keep_alive),
            };
            let action = match action {
                Action::Publish { room, msg } if publish_next => {
                    let answer = self.worker.hub.submit_publish(room.clone(), msg);
                    deferred.push_back(Deferred {
                        answer,
                        room,
                        keep_alive,
                        mark: mark.is_some(),
                        log,
                    });
                    if !keep_alive {
                        self.answer_deferred(&mut deferred).await;
                        return Ok(Next::Close);
                    }
                    if deferred.len() >= MAX_DEFERRED_PUBLISHES {
                        self.answer_deferred(&mut deferred).await;
                    }
                    continue;
                }
                other => other,
            };
            let status = match action {
                Action::Done(status) => status,
                Action::File { path, len } => {
                    if let Some(at) = mark {
                        response::mark_keep_alive(&mut self.out, at);
                    }
                    // The line is written first: sending a large file flushes the buffer.
                    if let Some(p) = &log {
                        self.log_request(p, 200, len);
                    }
                    if self.send_file(&path, len).await.is_err() {
                        return Ok(Next::Close);
                    }
                    if !keep_alive {
                        return Ok(Next::Close);
                    }
                    continue;
                }
                Action::Sse(req) => {
                    if let (Some(p), Some(access)) = (&log, &self.worker.access) {
                        access.stream_open(&self.worker.stats, "sse", self.guard.peer(), &p.target);
                    }
                    return Ok(Next::Sse(req));
                }
                Action::WebSocket(up) => {
                    if let (Some(p), Some(access)) = (&log, &self.worker.access) {
                        access.stream_open(&self.worker.stats, "ws", self.guard.peer(), &p.target);
                    }
                    return Ok(Next::Ws(up));
                }
                Action::Close(status) => {
                    if let Some(p) = &log {
                        self.log_request(p, status, 0);
                    }
                    return Ok(Next::Close);
                }
                Action::Publish { room, msg } => {
                    let r = self.worker.hub.publish(room.clone(), msg).await;
                    self.publish_answer(&room, r, keep_alive)
                }
                Action::RoomInfo { room } => match self.worker.hub.info(room.clone()).await {
                    Ok(info) => {
                        let body = serde_json::json!({
                            "room": &*room,
                            "subscribers": info.subscribers,
                            "last_id": info.last_id,
                            "history": info.history_len,
                        });
                        json(&mut self.out, 200, &body, keep_alive, head_only);
                        200
                    }
                    Err(e) => hub_error(&mut self.out, &e, keep_alive),
                },
                Action::RoomHistory { room, since } => {
                    match self.worker.hub.history(room.clone(), since).await {
                        Ok(h) => {
                            let messages: Vec<serde_json::Value> = h
                                .messages
                                .iter()
                                .map(|p| {
                                    serde_json::json!({
                                        "id": p.seq,
                                        "event": p.event.as_deref(),
                                        "data": String::from_utf8_lossy(&p.data),
                                    })
                                })
                                .collect();
                            let gap = h.gap.map(|g| {
                                serde_json::json!({ "resume_from": g.resume_from, "reason": g.reason })
                            });
                            let body = serde_json::json!({
                                "room": &*room,
                                "since": since,
                                "messages": messages,
                                "gap": gap,
                            });
                            json(&mut self.out, 200, &body, keep_alive, head_only);
                            200
                        }
                        Err(e) => hub_error(&mut self.out, &e, keep_alive),
                    }
                }
            };
            if let Some(at) = mark {
                response::mark_keep_alive(&mut self.out, at);
            }
            if let Some(p) = &log {
                self.log_request(p, status, 0);
            }
            if !keep_alive {
                return Ok(Next::Close);
            }
        }
    }

    /// Writes the answer to a publish; its status.
    fn publish_answer(&mut self, room: &str, r: Result<u64, HubError>, keep_alive: bool) -> u16 {
        match r {
            Ok(id) => {
                publish_accepted(&mut self.out, room, id, keep_alive);
                202
            }
            Err(e) => {
                if let HubError::BadMessage(_) = e {
                    self.worker.stats.hub_rejects.inc();
                }
                hub_error(&mut self.out, &e, keep_alive)
            }
        }
    }

    /// Waits for the publishes handed over, in order, and writes their answers.
    async fn answer_deferred(&mut self, deferred: &mut VecDeque<Deferred>) {
        while let Some(d) = deferred.pop_front() {
            let at = self.out.len();
            let r = d.answer.await;
            let status = self.publish_answer(&d.room, r, d.keep_alive);
            if d.mark {
                response::mark_keep_alive(&mut self.out, at);
            }
            if let Some(mut p) = d.log {
                p.out_start = at;
                self.log_request(&p, status, 0);
            }
        }
    }

    /// Appends (small files) or streams (large files) a file body after its head.
    async fn send_file(&mut self, path: &std::path::Path, len: u64) -> io::Result<()> {
        const CHUNK: u64 = 256 << 10;
        let file = monoio::fs::File::open(path).await?;
        let mut pos = 0u64;
        while pos < len {
            let n = (len - pos).min(CHUNK) as usize;
            let (res, chunk) = file.read_exact_at(Vec::with_capacity(n), pos).await;
            res?;
            if self.out.len() + chunk.len() > CHUNK as usize {
                self.flush().await?;
            }
            self.out.extend_from_slice(&chunk);
            pos += n as u64;
        }
        let _ = file.close().await;
        Ok(())
    }
}

/// `301` to the same target on the TLS listener (`tls.redirect_http`).
/// The host comes from the request's `Host` (its port replaced by the TLS
/// listener's, left out when that is 443); a `Host` with anything but
/// name, address and port characters is not echoed (the listener's own
/// address is not known here, so the answer is a 400 instead).
fn redirect_to_https(
    out: &mut BytesMut,
    head: &request::RequestHead<'_>,
    tls_port: u16,
    keep_alive: bool,
    head_only: bool,
) {
    let host = head
        .header("host")
        .and_then(|h| std::str::from_utf8(h).ok());
    let host = host.filter(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    });
    let Some(host) = host else {
        response::error(
            out,
            400,
            "this server answers over https; the request's Host header is missing or malformed",
            keep_alive,
            head_only,
        );
        return;
    };
    // strip a port: "[v6]:p", "name:p"
    let name = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let location = if tls_port == 443 {
        format!("https://{name}{}", head.target)
    } else {
        format!("https://{name}:{tls_port}{}", head.target)
    };
    response::start(out, 301);
    response::header(out, "Location", location.as_bytes());
    response::header(out, "Content-Type", b"text/plain; charset=utf-8");
    let body = format!("301 Moved Permanently: {location}\n");
    response::finish(out, body.as_bytes(), keep_alive, head_only);
}

/// A JSON response.
fn json(
    out: &mut BytesMut,
    status: u16,
    body: &serde_json::Value,
    keep_alive: bool,
    head_only: bool,
) {
    let mut text = serde_json::to_vec(body).unwrap_or_default();
    text.push(b'\n');
    response::start(out, status);
    response::header(out, "Content-Type", b"application/json");
    response::finish(out, &text, keep_alive, head_only);
}

/// `202 {"room":"...","id":N}`, written directly (the publish hot path).
/// Room names never need JSON escaping (they are A-Z a-z 0-9 _ - . : @).
fn publish_accepted(out: &mut BytesMut, room: &str, id: u64, keep_alive: bool) {
    let mut num = itoa::Buffer::new();
    let id = num.format(id);
    let len = 18 + room.len() + id.len(); // `{"room":"` `","id":` `}\n` are 9 + 7 + 2
    response::start(out, 202);
    response::header(out, "Content-Type", b"application/json");
    response::finish_len(out, len as u64, keep_alive);
    out.extend_from_slice(b"{\"room\":\"");
    out.extend_from_slice(room.as_bytes());
    out.extend_from_slice(b"\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"}\n");
}

/// Answers a hub failure with its status (returned).
fn hub_error(out: &mut BytesMut, e: &HubError, keep_alive: bool) -> u16 {
    let status = match e {
        HubError::BadRoom(_) | HubError::BadMessage(_) => 400,
        HubError::TooManyRooms | HubError::Busy | HubError::Closed => 503,
        HubError::Forbidden(_) => 403,
        HubError::OnWorker(_) => 500,
        HubError::Unavailable(_) => {
            // the publisher may retry: nothing was published
            let start = out.len();
            response::error(out, 503, &e.to_string(), keep_alive, false);
            response::insert_header(out, start, "Retry-After", b"1");
            return 503;
        }
    };
    response::error(out, status, &e.to_string(), keep_alive, false);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_answer_is_valid_json_with_the_right_length() {
        let mut out = BytesMut::new();
        publish_accepted(&mut out, "news:eu", 1795240436956546, true);
        let text = std::str::from_utf8(&out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"room": "news:eu", "id": 1795240436956546u64})
        );
    }
}
