//! Server-Sent Events: a reconnecting client ([`SseClient`]) built on the
//! `text/event-stream` [`Parser`] of the HTML standard, over `http://` or
//! `https://` (the TLS rules of the WebSocket client: the system's roots or
//! a CA file, see [`ConnectOptions`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use ringcast::client::sse::{Item, SseClient, SseOptions};
//!
//! let opts = SseOptions::new().retry(Duration::from_secs(1));
//! let mut sse = SseClient::new("http://127.0.0.1:8080/sse?room=news", opts).unwrap();
//! while let Some(item) = sse.recv().unwrap() {
//!     match item {
//!         Item::Event(e) => println!("{} #{}: {}", e.event, e.id, e.data),
//!         Item::Gap(g) => println!("missed messages of {} ({})", g.room, g.reason),
//!     }
//! }
//! ```
//!
//! Against a one-shot server in the same process (the stream ends, and
//! the reconnection is answered 204, which ends the client):
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpListener;
//! use ringcast::client::sse::{Item, SseClient, SseOptions};
//!
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let url = format!("http://{}/feed", listener.local_addr().unwrap());
//! std::thread::spawn(move || {
//!     for answer in [
//!         "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 10\nid: 1\ndata: hi\n\n",
//!         "HTTP/1.1 204 No Content\r\n\r\n",
//!     ] {
//!         let (mut s, _) = listener.accept().unwrap();
//!         let mut head = Vec::new();
//!         let mut b = [0u8; 1];
//!         while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
//!             head.push(b[0]);
//!         }
//!         s.write_all(answer.as_bytes()).unwrap();
//!     }
//! });
//! let mut sse = SseClient::new(&url, SseOptions::new()).unwrap();
//! match sse.recv().unwrap() {
//!     Some(Item::Event(e)) => assert_eq!((e.id.as_str(), e.data.as_str()), ("1", "hi")),
//!     other => panic!("{other:?}"),
//! }
//! assert_eq!(sse.recv().unwrap(), None);
//! assert_eq!(sse.last_event_id(), "1");
//! ```
//!
//! # Policies
//!
//! What the HTML standard asks of an `EventSource`, and what a client that
//! runs unattended needs besides:
//!
//! - **Request.** `GET` with `Accept: text/event-stream`,
//!   `Cache-Control: no-cache` and, once the stream has set an id (or
//!   [`SseOptions::last_event_id`] gave one), `Last-Event-ID`. Extra
//!   headers (an `Authorization`, say) come from
//!   [`SseOptions::connect`].
//! - **Response.** `200` with a `Content-Type` of `text/event-stream`
//!   (parameters ignored) starts the stream; its body may be delimited by
//!   the end of the connection, a `Content-Length` or chunked coding.
//!   `204 No Content` ends the client: [`SseClient::recv`] returns
//!   `Ok(None)` and it does not connect again. Any other status, or a 200
//!   of another content type, is an error ([`SseError`]) and the client
//!   does not connect again either (a browser's `EventSource` fails the
//!   same way).
//! - **Redirects.** 301, 302, 303, 307 and 308 are followed, at most
//!   [`SseOptions::max_redirects`] in a row; one more is an error, and so
//!   is a redirect without a usable `Location`. A redirect to another
//!   origin (scheme, host or port) drops the `Authorization` header.
//!   Every reconnection starts again from the URL given to
//!   [`SseClient::new`].
//! - **Reconnecting.** When an established stream ends (the server closes
//!   it, the connection fails, nothing arrives for
//!   [`SseOptions::idle_timeout`]), the client waits the reconnection time
//!   (the stream's last `retry:` or [`SseOptions::retry`], kept between
//!   [`SseOptions::min_retry`] and [`SseOptions::max_delay`]) and connects
//!   again, resuming with `Last-Event-ID`. Failures in a row back off: the
//!   n-th waits `min(max_delay, retry * 2^(n-1))`, with jitter (a uniform
//!   delay between half of that and all of it). With
//!   [`SseOptions::reconnect`] off, the end of the stream ends the client
//!   (`Ok(None)`) and a failure is returned as an error.
//! - **Errors that end the client** (connecting again would not help): the
//!   [`SseError`]s above, a response head longer than
//!   [`MAX_RESPONSE_HEAD`](super::MAX_RESPONSE_HEAD) bytes or malformed, a
//!   line longer than [`SseOptions::max_line`] or an event larger than
//!   [`SseOptions::max_event`] ([`ParseError`]), bad chunked coding, a TLS
//!   certificate that is not trusted. Memory stays bounded whatever the
//!   server sends.
//! - **ringcast's gap notice.** An event named `ringcast-gap` (the history
//!   no longer holds what the client missed) comes out as [`Item::Gap`].
//! - **Async.** [`SseClient::into_background`] runs the client on a thread
//!   of its own and hands its items to async code on any executor (see
//!   [`Background`]).

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, ErrorKind, Read};
use std::time::Duration;

use super::background::{self, Background, Closer};
use super::backoff::Backoff;
use super::{find_header, open_stream, read_response_head, ConnectOptions, Stream, Url};

mod body;
mod parser;

use body::Body;
pub use body::{BodyError, MAX_CHUNK_LINE};
pub use parser::{Event, ParseError, Parser};

use super::reconnect::EventHook;
pub use super::reconnect::{ConnectionEvent, Gap};

/// The reconnection time until the stream sends `retry:`.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(3);
/// The longest wait between attempts.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
/// How long a stream may stay silent (no event, no comment) before it
/// counts as dropped: three of ringcast's default keep-alive intervals.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Redirects followed in a row.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 << 10;
/// Bytes of a refused response's body quoted in the error.
const QUOTED_BODY: usize = 512;

/// What [`SseClient::recv`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An event of the stream.
    Event(Event),
    /// ringcast's notice that messages the client missed are gone from the
    /// room's history (the `ringcast-gap` event).
    Gap(Gap),
}

/// Why the client stopped for good (inside the `io::Error` that
/// [`SseClient::recv`] returns; reach it with
/// `err.get_ref().and_then(|e| e.downcast_ref())`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// The server answered with a status other than 200, 204 or a redirect.
    Status {
        /// The URL that answered (after redirects).
        url: String,
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The start of the body, as far as it came with the head.
        body: String,
    },
    /// A 200 whose `Content-Type` is not `text/event-stream`.
    NotEventStream {
        /// The URL that answered.
        url: String,
        /// The content type it named, if any.
        content_type: Option<String>,
    },
    /// More redirects in a row than [`SseOptions::max_redirects`].
    TooManyRedirects {
        /// The URL asked for first.
        url: String,
        /// The limit.
        limit: u32,
    },
    /// A redirect without a `Location`, or to a URL that is not `http://`
    /// or `https://`.
    BadRedirect {
        /// The URL that answered.
        url: String,
        /// Its `Location`, if any.
        location: Option<String>,
    },
    /// The stream broke a bound: a line or an event too large.
    Stream {
        /// The URL of the stream.
        url: String,
        /// Which bound.
        error: ParseError,
    },
    /// The body's transfer coding is broken.
    Body {
        /// The URL of the stream.
        url: String,
        /// What is wrong.
        error: BodyError,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::Status {
                url,
                status,
                reason,
                body,
            } => {
                write!(f, "{url}: HTTP {status} {reason}")?;
                match body.trim() {
                    "" => Ok(()),
                    b => write!(f, ": {b}"),
                }
            }
            SseError::NotEventStream { url, content_type } => match content_type {
                Some(t) => write!(f, "{url}: not an event stream (Content-Type: {t})"),
                None => write!(f, "{url}: not an event stream (no Content-Type)"),
            },
            SseError::TooManyRedirects { url, limit } => {
                write!(f, "{url}: more than {limit} redirects")
            }
            SseError::BadRedirect { url, location } => match location {
                Some(l) => write!(f, "{url}: redirect to {l:?}, not an http(s) URL"),
                None => write!(f, "{url}: redirect without a Location"),
            },
            SseError::Stream { url, error } => write!(f, "{url}: {error}"),
            SseError::Body { url, error } => write!(f, "{url}: {error}"),
        }
    }
}

impl std::error::Error for SseError {}

impl From<SseError> for io::Error {
    fn from(e: SseError) -> io::Error {
        let kind = match e {
            SseError::Status { .. } | SseError::TooManyRedirects { .. } => ErrorKind::Other,
            _ => ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Counts kept by an [`SseClient`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connection attempts made (a redirect followed is not one more).
    pub attempts: u64,
    /// Streams established (200 `text/event-stream`).
    pub connects: u64,
    /// Established streams that ended.
    pub disconnects: u64,
    /// Redirects followed.
    pub redirects: u64,
    /// Events delivered (gap notices included).
    pub events: u64,
    /// Gap notices delivered.
    pub gaps: u64,
}

/// How an [`SseClient`] connects, waits, and bounds what it accepts.
#[derive(Clone, Debug)]
pub struct SseOptions {
    /// Extra request headers, TLS trust, and the connect and write
    /// timeouts. Its read timeout bounds the wait for the response head;
    /// the stream itself is bounded by [`SseOptions::idle_timeout`].
    pub connect: ConnectOptions,
    /// The reconnection time until the stream sends `retry:`. Default:
    /// [`DEFAULT_RETRY`].
    pub retry: Duration,
    /// The shortest reconnection time, whatever `retry:` says. Default: 10 ms.
    pub min_retry: Duration,
    /// The longest wait between attempts (a larger `retry:` is cut to it).
    /// Default: [`DEFAULT_MAX_DELAY`].
    pub max_delay: Duration,
    /// Give up after this many failures in a row (`None`: never).
    pub max_attempts: Option<u32>,
    /// Connect again when the stream ends. Default: true.
    pub reconnect: bool,
    /// Redirects followed in a row. Default: [`DEFAULT_MAX_REDIRECTS`].
    pub max_redirects: u32,
    /// A stream silent this long (no event, no comment) counts as dropped
    /// (`None`: wait for ever). Default: [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Option<Duration>,
    /// The longest line accepted. Default: 64 KiB.
    pub max_line: usize,
    /// The largest event (its data) accepted. Default: 1 MiB.
    pub max_event: usize,
    /// Sent as `Last-Event-ID` on the first connect.
    pub last_event_id: Option<String>,
    on_event: EventHook,
}

impl Default for SseOptions {
    fn default() -> SseOptions {
        let p = Parser::new();
        SseOptions {
            connect: ConnectOptions::default(),
            retry: DEFAULT_RETRY,
            min_retry: Duration::from_millis(10),
            max_delay: DEFAULT_MAX_DELAY,
            max_attempts: None,
            reconnect: true,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_line: p.max_line(),
            max_event: p.max_event(),
            last_event_id: None,
            on_event: EventHook::default(),
        }
    }
}

impl SseOptions {
    /// The defaults (see each field).
    pub fn new() -> SseOptions {
        SseOptions::default()
    }

    /// Sets the request headers, TLS trust and timeouts.
    pub fn connect_options(mut self, opts: ConnectOptions) -> SseOptions {
        self.connect = opts;
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: &str, value: &str) -> SseOptions {
        self.connect = self.connect.header(name, value);
        self
    }

    /// Sets the reconnection time used until the stream sends `retry:`.
    pub fn retry(mut self, d: Duration) -> SseOptions {
        self.retry = d;
        self
    }

    /// Sets the shortest and the longest wait between attempts.
    pub fn retry_bounds(mut self, min: Duration, max: Duration) -> SseOptions {
        self.min_retry = min;
        self.max_delay = max.max(min);
        self
    }

    /// Gives up after `n` failures in a row (at least 1).
    pub fn max_attempts(mut self, n: u32) -> SseOptions {
        self.max_attempts = Some(n.max(1));
        self
    }

    /// Connect again when the stream ends (default), or not.
    pub fn reconnect(mut self, on: bool) -> SseOptions {
        self.reconnect = on;
        self
    }

    /// Follows at most `n` redirects in a row.
    pub fn max_redirects(mut self, n: u32) -> SseOptions {
        self.max_redirects = n;
        self
    }

    /// Counts a stream silent for `d` as dropped (`None`: never).
    pub fn idle_timeout(mut self, d: Option<Duration>) -> SseOptions {
        self.idle_timeout = d;
        self
    }

    /// Bounds lines and events (bytes).
    pub fn limits(mut self, max_line: usize, max_event: usize) -> SseOptions {
        self.max_line = max_line;
        self.max_event = max_event;
        self
    }

    /// Resumes from `id` (sent as `Last-Event-ID` on the first connect).
    pub fn last_event_id(mut self, id: &str) -> SseOptions {
        self.last_event_id = Some(id.to_string());
        self
    }

    /// Calls `hook` on every connect, drop and wait (from the thread that
    /// calls [`SseClient::recv`]); `cursor` is the `Last-Event-ID` sent.
    pub fn on_event(
        mut self,
        hook: impl Fn(&ConnectionEvent<'_>) + Send + Sync + 'static,
    ) -> SseOptions {
        self.on_event = EventHook::new(hook);
        self
    }
}

/// An established stream.
struct Conn {
    stream: Stream,
    body: Body,
    /// The URL that answered (after redirects).
    url: String,
}

/// What one attempt got.
enum Opened {
    Stream(Conn, Vec<u8>),
    NoContent,
}

/// A reconnecting SSE client; see the module docs.
pub struct SseClient {
    url: Url,
    url_text: String,
    opts: SseOptions,
    parser: Parser,
    conn: Option<Conn>,
    pending: VecDeque<Event>,
    /// Why the last stream ended, to act on once its events are out.
    dropped: Option<io::Error>,
    /// The client has ended (`recv` returns `Ok(None)`).
    ended: bool,
    backoff: Backoff,
    closer: Closer,
    stats: Stats,
}

impl fmt::Debug for SseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseClient")
            .field("url", &self.url_text)
            .field("last_event_id", &self.parser.last_event_id())
            .field("connected", &self.conn.is_some())
            .field("ended", &self.ended)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Whether connecting again could not help.
fn fatal(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::InvalidData | ErrorKind::InvalidInput | ErrorKind::Interrupted
    ) || e.get_ref().is_some_and(|i| i.is::<SseError>())
}

/// The `(tls, host, port)` of a URL.
fn origin(u: &Url) -> (bool, String, u16) {
    (u.tls, u.host.to_ascii_lowercase(), u.port)
}

/// Where a redirect's `Location` points, from `base`.
fn resolve(base: &Url, location: &str) -> Option<Url> {
    if location.contains("://") {
        return Url::parse_http(location).ok();
    }
    let scheme = if base.tls { "https" } else { "http" };
    if let Some(rest) = location.strip_prefix("//") {
        return Url::parse_http(&format!("{scheme}://{rest}")).ok();
    }
    let location = location.split('#').next().unwrap_or("");
    let (path, query) = match location.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (location, None),
    };
    let base_path = base.resource.split('?').next().unwrap_or("/");
    let joined = if path.starts_with('/') {
        path.to_string()
    } else if path.is_empty() {
        base_path.to_string()
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{path}")
    };
    // RFC 3986 §5.2.4: "." and ".." segments
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = joined.split('/').skip(1).collect();
    for (i, seg) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    segments.pop();
                }
                if last {
                    segments.push("");
                }
            }
            s => segments.push(s),
        }
    }
    let mut resource = format!("/{}", segments.join("/"));
    if let Some(q) = query {
        resource.push('?');
        resource.push_str(q);
    }
    Some(Url {
        resource,
        ..base.clone()
    })
}

impl SseClient {
    /// A client for `url` (`http://` or `https://`). Does not connect yet:
    /// [`SseClient::recv`] does.
    pub fn new(url: &str, opts: SseOptions) -> io::Result<SseClient> {
        let parsed = Url::parse_http(url)?;
        if parsed.tls {
            // a CA file that cannot be read, or no system roots: an error
            // now rather than an attempt that fails again and again
            opts.connect
                .tls_client_config()
                .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e.to_string()))?;
        }
        let mut parser = Parser::with_limits(opts.max_line, opts.max_event);
        if let Some(id) = &opts.last_event_id {
            parser.set_last_event_id(id);
        }
        Ok(SseClient {
            url: parsed,
            url_text: url.to_string(),
            opts,
            parser,
            conn: None,
            pending: VecDeque::new(),
            dropped: None,
            ended: false,
            backoff: Backoff::new(),
            closer: Closer::default(),
            stats: Stats::default(),
        })
    }

    /// The URL given to [`SseClient::new`].
    pub fn url(&self) -> &str {
        &self.url_text
    }

    /// The last event id the stream set: what the next connect sends as
    /// `Last-Event-ID` (empty: none).
    pub fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }

    /// The reconnection time now: the stream's last `retry:` (or
    /// [`SseOptions::retry`]) within [`SseOptions::min_retry`] and
    /// [`SseOptions::max_delay`].
    pub fn retry(&self) -> Duration {
        let asked = self
            .parser
            .retry_ms()
            .map_or(self.opts.retry, Duration::from_millis);
        asked.clamp(
            self.opts.min_retry,
            self.opts.max_delay.max(self.opts.min_retry),
        )
    }

    /// Whether a stream is established.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The counts so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A handle that stops this client from another thread: the current
    /// or next [`SseClient::recv`] fails (kind `Interrupted`).
    pub fn closer(&self) -> Closer {
        self.closer.clone()
    }

    /// Closes the stream; the client has ended.
    pub fn close(&mut self) {
        self.drop_conn();
        self.ended = true;
    }

    /// Closes the connection (the closer lets go of its socket too).
    fn drop_conn(&mut self) {
        self.conn = None;
        self.closer.unwatch();
    }

    /// The async form: this client on a thread of its own (see
    /// [`Background`]).
    pub fn into_background(mut self) -> io::Result<Background<Item>> {
        let closer = self.closer.clone();
        Background::spawn("ringcast-sse", closer, move || self.recv())
    }

    /// The next event or gap notice: blocks until one arrives, connecting
    /// and reconnecting as needed. `Ok(None)`: the client has ended (the
    /// server answered 204, or the stream ended with
    /// [`SseOptions::reconnect`] off). Errors: see the module docs; a
    /// [`SseOptions::max_attempts`]-th failure in a row.
    pub fn recv(&mut self) -> io::Result<Option<Item>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                self.stats.events += 1;
                return Ok(Some(self.item(ev)));
            }
            if let Some(e) = self.dropped.take() {
                self.after_drop(e)?;
                continue;
            }
            if self.ended {
                return Ok(None);
            }
            if self.closer.is_closed() {
                self.close();
                return Err(background::closed());
            }
            if self.conn.is_none() {
                if !self.connect()? {
                    self.ended = true;
                    return Ok(None);
                }
                // what came with the response head is parsed already
                continue;
            }
            if let Err(e) = self.read_some() {
                self.drop_conn();
                self.parser.reconnected();
                self.stats.disconnects += 1;
                self.emit(&ConnectionEvent::Disconnected { error: &e });
                self.dropped = Some(e);
            }
        }
    }

    /// A stream ended with `e` (its events are out): end, or wait before
    /// connecting again.
    fn after_drop(&mut self, e: io::Error) -> io::Result<()> {
        if self.closer.is_closed() {
            self.ended = true;
            return Err(background::closed());
        }
        if fatal(&e) {
            self.ended = true;
            return Err(e);
        }
        if !self.opts.reconnect {
            self.ended = true;
            return match e.kind() {
                ErrorKind::UnexpectedEof => Ok(()),
                _ => Err(e),
            };
        }
        // the first attempt after a drop waits the reconnection time
        self.backoff.reset();
        self.wait(&e)
    }

    fn emit(&self, ev: &ConnectionEvent<'_>) {
        self.opts.on_event.emit(ev);
    }

    fn item(&mut self, ev: Event) -> Item {
        if ev.event == "ringcast-gap" {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&ev.data) {
                if let (Some(room), Some(since)) = (v["room"].as_str(), v["since"].as_u64()) {
                    self.stats.gaps += 1;
                    return Item::Gap(Gap {
                        room: room.to_string(),
                        since,
                        resume_from: v["resume_from"].as_u64(),
                        reason: v["reason"].as_str().unwrap_or("").to_string(),
                    });
                }
            }
        }
        Item::Event(ev)
    }

    /// Counts a failure; waits before the next attempt (or gives up, and
    /// the client has ended).
    fn wait(&mut self, error: &io::Error) -> io::Result<()> {
        let limits = (self.retry(), self.opts.max_delay, self.opts.max_attempts);
        let waited = self
            .backoff
            .wait(limits, &self.opts.on_event, &self.closer, error);
        self.ended |= waited.is_err();
        waited
    }

    /// Connects now unless connected, retrying with backoff as
    /// [`SseClient::recv`] would (which otherwise connects on its first
    /// call): for a caller that wants the stream in place before something
    /// is published. `Ok(false)`: the server answered 204 (the client has
    /// ended).
    pub fn connect(&mut self) -> io::Result<bool> {
        if self.conn.is_some() {
            return Ok(true);
        }
        if self.ended {
            return Ok(false);
        }
        loop {
            if self.closer.is_closed() {
                return Err(background::closed());
            }
            self.stats.attempts += 1;
            match self.open() {
                Ok(Opened::Stream(conn, leftover)) => {
                    self.stats.connects += 1;
                    self.emit(&ConnectionEvent::Connected {
                        attempt: self.backoff.failures(),
                        cursor: self.parser.last_event_id(),
                    });
                    self.backoff.reset();
                    self.conn = Some(conn);
                    if let Err(e) = self.feed(&leftover) {
                        self.drop_conn();
                        self.ended = true;
                        return Err(e);
                    }
                    return Ok(true);
                }
                Ok(Opened::NoContent) => {
                    self.closer.unwatch();
                    self.ended = true;
                    return Ok(false);
                }
                Err(e) if fatal(&e) || self.closer.is_closed() || !self.opts.reconnect => {
                    self.closer.unwatch();
                    self.ended = true;
                    return Err(e);
                }
                Err(e) => {
                    self.closer.unwatch();
                    self.wait(&e)?
                }
            }
        }
    }

    /// One attempt: the request, and redirects followed.
    fn open(&mut self) -> io::Result<Opened> {
        let mut url = self.url.clone();
        let mut same_origin = true;
        let mut redirects = 0;
        loop {
            let text = format!(
                "{}://{}{}",
                if url.tls { "https" } else { "http" },
                url.host_header(),
                url.resource
            );
            let mut stream = open_stream(&url, &self.opts.connect)
                .map_err(|e| io::Error::new(e.kind(), format!("{text}: {e}")))?;
            self.closer.watch(stream.tcp())?;
            stream.send(self.request(&url, same_origin).as_bytes())?;
            let (res, leftover) = read_response_head(&mut stream).map_err(|e| match e.kind() {
                ErrorKind::UnexpectedEof => io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("{text}: the server closed the connection without answering"),
                ),
                _ => io::Error::new(e.kind(), format!("{text}: {e}")),
            })?;
            let header = |name: &str| find_header(&res.headers, name);
            match res.status {
                200 => {
                    let ct = header("content-type");
                    let mime = ct.map(|t| t.split(';').next().unwrap_or("").trim());
                    if !mime.is_some_and(|m| m.eq_ignore_ascii_case("text/event-stream")) {
                        return Err(SseError::NotEventStream {
                            url: text,
                            content_type: ct.map(str::to_string),
                        }
                        .into());
                    }
                    let body = Body::of(header).map_err(|error| SseError::Body {
                        url: text.clone(),
                        error,
                    })?;
                    stream.tcp().set_read_timeout(self.opts.idle_timeout)?;
                    let conn = Conn {
                        stream,
                        body,
                        url: text,
                    };
                    return Ok(Opened::Stream(conn, leftover));
                }
                204 => return Ok(Opened::NoContent),
                301 | 302 | 303 | 307 | 308 => {
                    let location = header("location");
                    let next = location.and_then(|l| resolve(&url, l));
                    let Some(next) = next else {
                        return Err(SseError::BadRedirect {
                            url: text,
                            location: location.map(str::to_string),
                        }
                        .into());
                    };
                    redirects += 1;
                    if redirects > self.opts.max_redirects {
                        return Err(SseError::TooManyRedirects {
                            url: self.url_text.clone(),
                            limit: self.opts.max_redirects,
                        }
                        .into());
                    }
                    self.stats.redirects += 1;
                    same_origin &= origin(&next) == origin(&self.url);
                    url = next;
                }
                status => {
                    let n = leftover.len().min(QUOTED_BODY);
                    return Err(SseError::Status {
                        url: text,
                        status,
                        reason: res.reason,
                        body: String::from_utf8_lossy(&leftover[..n]).into_owned(),
                    }
                    .into());
                }
            }
        }
    }

    /// The request head for `url`; `auth`: keep an `Authorization` header.
    fn request(&self, url: &Url, auth: bool) -> String {
        let user = &self.opts.connect.headers;
        let mut head = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n",
            url.resource,
            url.host_header()
        );
        let ours = [
            ("Accept", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            (
                "User-Agent",
                concat!("ringcast/", env!("CARGO_PKG_VERSION")),
            ),
            ("Last-Event-ID", self.parser.last_event_id()),
        ];
        for (name, value) in ours {
            if !value.is_empty() && find_header(user, name).is_none() {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        for (name, value) in user {
            if auth || !name.eq_ignore_ascii_case("authorization") {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("\r\n");
        head
    }

    /// Reads once from the stream and parses what came. An error ends the
    /// stream: `UnexpectedEof` when the server ended it (or its body is
    /// complete).
    fn read_some(&mut self) -> io::Result<()> {
        let conn = self.conn.as_mut().expect("connected");
        let mut buf = [0u8; READ_CHUNK];
        let n = loop {
            match conn.stream.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(io::Error::new(
                        ErrorKind::TimedOut,
                        format!(
                            "{}: nothing arrived for {:?} (not even a keep-alive comment)",
                            conn.url,
                            self.opts.idle_timeout.unwrap_or_default()
                        ),
                    ));
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", conn.url))),
            }
        };
        if n == 0 {
            return Err(ended(&conn.url));
        }
        self.feed(&buf[..n])?;
        let conn = self.conn.as_ref().expect("connected");
        if conn.body.done() {
            return Err(ended(&conn.url));
        }
        Ok(())
    }

    /// Decodes and parses bytes of the body; events go to `pending`.
    fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        let SseClient {
            conn,
            parser,
            pending,
            ..
        } = self;
        let conn = conn.as_mut().expect("connected");
        let mut bad_stream = None;
        conn.body
            .decode(bytes, |b| {
                parser.feed(b, |e| pending.push_back(e)).map_err(|e| {
                    bad_stream = Some(e.clone());
                    BodyError(e.to_string())
                })
            })
            .map_err(|error| match bad_stream.take() {
                Some(error) => SseError::Stream {
                    url: conn.url.clone(),
                    error,
                },
                None => SseError::Body {
                    url: conn.url.clone(),
                    error,
                },
            })?;
        Ok(())
    }
}

/// The error of a stream the server ended.
fn ended(url: &str) -> io::Error {
    io::Error::new(
        ErrorKind::UnexpectedEof,
        format!("{url}: the server ended the stream"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_locations() {
        let base = Url::parse_http("http://h:1/a/b?x=1").unwrap();
        let r = |l: &str| resolve(&base, l).map(|u| (u.tls, u.host, u.port, u.resource));
        assert_eq!(r("/c"), Some((false, "h".into(), 1, "/c".into())));
        assert_eq!(r("c?y"), Some((false, "h".into(), 1, "/a/c?y".into())));
        assert_eq!(r("../c/./d"), Some((false, "h".into(), 1, "/c/d".into())));
        assert_eq!(r("../../.."), Some((false, "h".into(), 1, "/".into())));
        assert_eq!(r("?q"), Some((false, "h".into(), 1, "/a/b?q".into())));
        assert_eq!(r("//o:2/d"), Some((false, "o".into(), 2, "/d".into())));
        assert_eq!(
            r("https://o/e#f"),
            Some((true, "o".into(), 443, "/e".into()))
        );
        assert_eq!(r("ftp://o/"), None);
    }

    #[test]
    fn the_request_carries_accept_last_event_id_and_drops_auth_across_origins() {
        let opts = SseOptions::new()
            .header("Authorization", "Bearer t")
            .last_event_id("7");
        let c = SseClient::new("http://h:1/sse?room=a", opts).unwrap();
        let url = Url::parse_http("http://h:1/sse?room=a").unwrap();
        let head = c.request(&url, true);
        assert!(
            head.starts_with("GET /sse?room=a HTTP/1.1\r\nHost: h:1\r\n"),
            "{head}"
        );
        for line in [
            "Accept: text/event-stream",
            "Cache-Control: no-cache",
            "Last-Event-ID: 7",
            "Authorization: Bearer t",
        ] {
            assert!(head.contains(&format!("{line}\r\n")), "{line} in {head}");
        }
        assert!(!c.request(&url, false).contains("Authorization"));
        assert!(SseClient::new("ws://h/sse", SseOptions::new()).is_err());
    }

    #[test]
    fn retry_is_clamped() {
        let mut c = SseClient::new("http://h/", SseOptions::new()).unwrap();
        assert_eq!(c.retry(), DEFAULT_RETRY);
        c.parser.feed(b"retry: 0\n\n", |_| {}).unwrap();
        assert_eq!(c.retry(), Duration::from_millis(10));
        c.parser.feed(b"retry: 1000000000000\n\n", |_| {}).unwrap();
        assert_eq!(c.retry(), DEFAULT_MAX_DELAY);
    }
}
