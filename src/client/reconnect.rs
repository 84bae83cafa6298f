//! A reconnecting room subscription over WebSocket: [`RoomSubscriber`].
//!
//! It reads a ringcast `/ws?room=...` endpoint whose messages come in the
//! JSON envelope (`[ws.rooms] envelope = "json"`:
//! `{"room":..,"id":..,"event":..,"data":..}`) and hands them out in order,
//! one [`Item`] per [`RoomSubscriber::recv`]. When the connection drops (the
//! server restarts, the network fails, a keep-alive ping goes unanswered) it
//! connects again, with exponential backoff and jitter, and asks the server
//! to resume after the last message it delivered (`?last_event_id=`, the
//! stream's cursor): what the room's history still holds arrives once, and
//! a message that does arrive twice (its id not above the room's last one)
//! is dropped. When the history no longer reaches back that far, the
//! server's gap notice comes through as [`Item::Gap`].
//!
//! ```no_run
//! use std::time::Duration;
//! use ringcast::client::reconnect::{Item, RoomSubscriber, SubscriberOptions};
//!
//! let opts = SubscriberOptions::new()
//!     .backoff(Duration::from_millis(100), Duration::from_secs(10))
//!     .keep_alive(Duration::from_secs(20), Duration::from_secs(5));
//! let mut sub = RoomSubscriber::new("ws://127.0.0.1:8080/ws?room=news", opts).unwrap();
//! loop {
//!     match sub.recv().unwrap() {
//!         Item::Message(m) => println!("{} #{}: {}", m.room, m.id, m.data),
//!         Item::Gap(g) => println!("missed messages of {} ({})", g.room, g.reason),
//!     }
//! }
//! ```
//!
//! # Policies
//!
//! - **Connecting.** The first connect happens in the first
//!   [`RoomSubscriber::recv`], and fails over to the backoff like any
//!   later one. A refused upgrade with a 4xx status other than 408 and 429
//!   (a bad room name, a refused token, a cursor the server cannot read) is
//!   returned as an error at once: connecting again would not help.
//! - **Backoff.** The n-th failure in a row (a failed attempt, or a
//!   dropped connection) is followed by a wait of
//!   `min(max_delay, initial_delay * 2^(n-1))` with jitter: a uniformly
//!   random delay between half of that and all of it. A successful connect
//!   resets the count. With [`SubscriberOptions::max_attempts`], `recv`
//!   returns the error of the n-th failure in a row instead of waiting.
//! - **Cursor.** One position per room of the stream: the URL's rooms in
//!   their order (a room named twice counts once), then the server's
//!   auto-join room ([`SubscriberOptions::auto_join_room`]) unless the URL
//!   names it. A room the subscriber has received nothing from has position
//!   `0`, which asks for all of that room's history. A `last_event_id` in
//!   the URL is the starting cursor; it is replaced on every reconnect.
//! - **Keep-alive.** With [`SubscriberOptions::keep_alive`], a connection
//!   on which nothing arrived for the interval gets a ping; no pong (nor
//!   anything else) within the timeout counts as a dropped connection. The
//!   server's own pings are answered whether or not it is on.
//! - **Observing.** [`SubscriberOptions::on_event`] is called on every
//!   connect, drop and wait ([`ConnectionEvent`]), and
//!   [`RoomSubscriber::stats`] counts them.

use std::fmt;
use std::io::{self, ErrorKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::background::{Background, Closer};
use super::backoff::Backoff;
use super::{Client, ConnectOptions, HandshakeRefused, Message, Url};

/// A message of a room, from the JSON envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMessage {
    /// The room it was published to.
    pub room: String,
    /// Its sequence id in the room (increasing).
    pub id: u64,
    /// Its event name, if it was published with one.
    pub event: Option<String>,
    /// The published data (as text: bytes that are not UTF-8 were replaced
    /// by the server).
    pub data: String,
}

/// ringcast's notice that messages the subscriber missed are gone from the
/// room's history (the `ringcast-gap` frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The room (empty when the server's history of the room is empty:
    /// the notice names the room from its oldest message).
    pub room: String,
    /// The position the subscriber resumed from.
    pub since: u64,
    /// The oldest message still in the history (it and those after it
    /// follow), or `None` when the history is empty.
    pub resume_from: Option<u64>,
    /// `"evicted"`: the history no longer reaches back to `since`;
    /// `"reset"`: the room was created after it (the server restarted, or
    /// the room expired meanwhile).
    pub reason: String,
}

/// What [`RoomSubscriber::recv`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A message, in order, never one delivered before.
    Message(RoomMessage),
    /// Messages were lost: the server's history no longer holds them.
    Gap(Gap),
}

/// What happened to the connection, for [`SubscriberOptions::on_event`].
#[derive(Debug)]
pub enum ConnectionEvent<'a> {
    /// Connected (the upgrade succeeded).
    Connected {
        /// Failures in a row before this attempt (0: at the first try; a
        /// dropped connection counts as one).
        attempt: u32,
        /// The resume cursor sent.
        cursor: &'a str,
    },
    /// An established connection ended.
    Disconnected {
        /// Why.
        error: &'a io::Error,
    },
    /// An attempt failed, or the connection dropped; the subscriber waits
    /// `delay` before the next attempt.
    Waiting {
        /// Failures in a row, this one included (1 after a dropped
        /// connection, or after a first attempt that failed).
        attempt: u32,
        /// The delay before jitter: `min(max_delay, initial_delay * 2^(attempt-1))`.
        base: Duration,
        /// The delay waited: between half of `base` and `base`.
        delay: Duration,
        /// The error that led here.
        error: &'a io::Error,
    },
}

/// Counts kept by a [`RoomSubscriber`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connection attempts made.
    pub attempts: u64,
    /// Connections established.
    pub connects: u64,
    /// Established connections that ended.
    pub disconnects: u64,
    /// Keep-alive pings sent.
    pub pings_sent: u64,
    /// Messages dropped because their id was not above the room's last.
    pub duplicates_dropped: u64,
    /// Gap notices delivered.
    pub gaps: u64,
}

/// A function called on every [`ConnectionEvent`] (none: nothing to call).
#[derive(Clone, Default)]
pub(crate) struct EventHook(Option<Arc<HookFn>>);

type HookFn = dyn Fn(&ConnectionEvent<'_>) + Send + Sync;

impl EventHook {
    pub(crate) fn new(hook: impl Fn(&ConnectionEvent<'_>) + Send + Sync + 'static) -> EventHook {
        EventHook(Some(Arc::new(hook)))
    }

    pub(crate) fn emit(&self, ev: &ConnectionEvent<'_>) {
        if let Some(hook) = &self.0 {
            hook(ev);
        }
    }
}

impl fmt::Debug for EventHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// How a [`RoomSubscriber`] connects, waits and keeps the connection alive.
#[derive(Clone, Debug)]
pub struct SubscriberOptions {
    /// The WebSocket options of every connection (headers such as
    /// `Authorization`, subprotocols, permessage-deflate, TLS trust,
    /// connect and write timeouts). Their read timeout applies to the
    /// upgrade only; reads then block until a message (or, with keep-alive,
    /// until a ping is due).
    pub connect: ConnectOptions,
    /// The first wait after a failure. Default: 100 ms.
    pub initial_delay: Duration,
    /// The longest wait. Default: 30 s.
    pub max_delay: Duration,
    /// Give up after this many failures in a row (a dropped connection
    /// counts as one; `None`: never).
    pub max_attempts: Option<u32>,
    /// Keep-alive: ping after this long without a frame from the server.
    pub ping_interval: Option<Duration>,
    /// Keep-alive: how long the pong may take.
    pub pong_timeout: Duration,
    /// The server's `hub.auto_join_room`, when it has one: it is a room of
    /// the stream, so it has a position in the cursor.
    pub auto_join_room: Option<String>,
    on_event: EventHook,
}

impl Default for SubscriberOptions {
    fn default() -> SubscriberOptions {
        SubscriberOptions {
            connect: ConnectOptions::default(),
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            max_attempts: None,
            ping_interval: None,
            pong_timeout: Duration::from_secs(10),
            auto_join_room: None,
            on_event: EventHook::default(),
        }
    }
}

impl SubscriberOptions {
    /// The defaults.
    pub fn new() -> SubscriberOptions {
        SubscriberOptions::default()
    }

    /// Sets the WebSocket options of every connection.
    pub fn connect_options(mut self, opts: ConnectOptions) -> SubscriberOptions {
        self.connect = opts;
        self
    }

    /// Sets the first and the longest wait between attempts.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> SubscriberOptions {
        self.initial_delay = initial;
        self.max_delay = max.max(initial);
        self
    }

    /// Gives up after `n` failures in a row (at least 1).
    pub fn max_attempts(mut self, n: u32) -> SubscriberOptions {
        self.max_attempts = Some(n.max(1));
        self
    }

    /// Pings after `interval` without a frame; a pong later than `timeout`
    /// drops the connection.
    pub fn keep_alive(mut self, interval: Duration, timeout: Duration) -> SubscriberOptions {
        self.ping_interval = Some(interval);
        self.pong_timeout = timeout;
        self
    }

    /// Names the server's auto-join room (see [`SubscriberOptions::auto_join_room`]).
    pub fn auto_join_room(mut self, room: &str) -> SubscriberOptions {
        self.auto_join_room = Some(room.to_string());
        self
    }

    /// Calls `hook` on every connect, drop and wait (from the thread that
    /// calls [`RoomSubscriber::recv`]).
    pub fn on_event(
        mut self,
        hook: impl Fn(&ConnectionEvent<'_>) + Send + Sync + 'static,
    ) -> SubscriberOptions {
        self.on_event = EventHook::new(hook);
        self
    }
}

/// A room subscription that reconnects and resumes; see the module docs.
pub struct RoomSubscriber {
    /// The URL without `last_event_id`.
    base_url: String,
    /// The stream's rooms in cursor order, with the last id delivered.
    rooms: Vec<(String, u64)>,
    opts: SubscriberOptions,
    client: Option<Client>,
    /// Failed attempts in a row, and the jitter.
    backoff: Backoff,
    closer: Closer,
    stats: Stats,
    /// Keep-alive: when the last frame arrived, and when the ping in
    /// flight was sent.
    last_frame: Instant,
    ping_sent: Option<Instant>,
}

impl fmt::Debug for RoomSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomSubscriber")
            .field("url", &self.base_url)
            .field("rooms", &self.rooms)
            .field("connected", &self.client.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

/// `%XX` and `+` decoding of a query value (bad escapes are kept as they are).
fn query_decode(v: &str) -> String {
    let b = v.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RoomSubscriber {
    /// A subscriber for `url` (`ws://` or `wss://`, with at least one
    /// `room=` unless the server has an auto-join room). Does not connect
    /// yet: [`RoomSubscriber::recv`] does.
    pub fn new(url: &str, opts: SubscriberOptions) -> io::Result<RoomSubscriber> {
        Url::parse(url)?;
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, q),
            None => (url, ""),
        };
        let mut kept = Vec::new();
        let mut rooms: Vec<(String, u64)> = Vec::new();
        let mut start: Option<String> = None;
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            match k {
                "last_event_id" => {
                    start = Some(query_decode(v));
                    continue;
                }
                "room" => {
                    let room = query_decode(v);
                    if !rooms.iter().any(|(r, _)| *r == room) {
                        rooms.push((room, 0));
                    }
                }
                _ => {}
            }
            kept.push(param);
        }
        if let Some(auto) = opts.auto_join_room.as_deref().filter(|a| !a.is_empty()) {
            if !rooms.iter().any(|(r, _)| r == auto) {
                rooms.push((auto.to_string(), 0));
            }
        }
        if rooms.is_empty() {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("{url}: no room= in the URL (and no auto_join_room in the options)"),
            ));
        }
        if let Some(cursor) = start.filter(|c| !c.is_empty()) {
            let parts: Vec<&str> = cursor.split('.').collect();
            if parts.len() != rooms.len() {
                return Err(io::Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "last_event_id {cursor:?} has {} position(s) for {} room(s)",
                        parts.len(),
                        rooms.len()
                    ),
                ));
            }
            for (slot, p) in rooms.iter_mut().zip(parts) {
                slot.1 = p.parse().map_err(|_| {
                    io::Error::new(
                        ErrorKind::InvalidInput,
                        format!("last_event_id {cursor:?}: {p:?} is not a sequence number"),
                    )
                })?;
            }
        }
        let base_url = if kept.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", kept.join("&"))
        };
        Ok(RoomSubscriber {
            base_url,
            rooms,
            opts,
            client: None,
            backoff: Backoff::new(),
            closer: Closer::default(),
            stats: Stats::default(),
            last_frame: Instant::now(),
            ping_sent: None,
        })
    }

    /// The resume cursor: the last id delivered per room, in the stream's
    /// room order, joined by `.` (`0`: nothing from that room yet). Empty
    /// while nothing has been delivered (and no cursor was given).
    pub fn cursor(&self) -> String {
        if self.rooms.iter().all(|(_, id)| *id == 0) {
            return String::new();
        }
        let ids: Vec<String> = self.rooms.iter().map(|(_, id)| id.to_string()).collect();
        ids.join(".")
    }

    /// The last id delivered from `room` (0: none).
    pub fn last_id(&self, room: &str) -> u64 {
        self.rooms
            .iter()
            .find(|(r, _)| r == room)
            .map_or(0, |(_, id)| *id)
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.client.is_some()
    }

    /// The counts so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The URL the next connect uses (with the resume cursor).
    pub fn url(&self) -> String {
        let cursor = self.cursor();
        if cursor.is_empty() {
            return self.base_url.clone();
        }
        let sep = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}last_event_id={cursor}", self.base_url)
    }

    /// Drops the connection (the closer lets go of its socket too).
    fn drop_client(&mut self) {
        self.client = None;
        self.closer.unwatch();
    }

    /// Closes the connection (closing handshake, best effort).
    pub fn close(&mut self) {
        self.closer.unwatch();
        if let Some(mut c) = self.client.take() {
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = c.close(1000, "");
        }
    }

    /// The next item: blocks until a message or gap notice arrives,
    /// connecting and reconnecting as needed. Errors: a refusal that
    /// connecting again would not cure, a frame that is not the JSON
    /// envelope, or [`SubscriberOptions::max_attempts`] failures in a row.
    pub fn recv(&mut self) -> io::Result<Item> {
        loop {
            if self.client.is_none() {
                self.connect()?;
            }
            match self.read_one() {
                Ok(Some(item)) => return Ok(item),
                Ok(None) => {}
                Err(_) if self.closer.is_closed() => {
                    self.drop_client();
                    return Err(super::background::closed());
                }
                Err(e) if e.kind() == ErrorKind::InvalidInput => {
                    // not the JSON envelope: reconnecting would not help
                    self.drop_client();
                    return Err(e);
                }
                Err(e) => {
                    self.drop_client();
                    self.stats.disconnects += 1;
                    self.emit(&ConnectionEvent::Disconnected { error: &e });
                    // the first attempt after a drop waits the initial delay
                    self.backoff.reset();
                    self.wait(&e)?;
                }
            }
        }
    }

    fn emit(&self, ev: &ConnectionEvent<'_>) {
        self.opts.on_event.emit(ev);
    }

    /// Counts a failure; waits before the next attempt (or gives up).
    fn wait(&mut self, error: &io::Error) -> io::Result<()> {
        let o = &self.opts;
        let limits = (o.initial_delay, o.max_delay, o.max_attempts);
        self.backoff.wait(limits, &o.on_event, &self.closer, error)
    }

    /// A handle that stops this subscriber from another thread: the
    /// current or next [`RoomSubscriber::recv`] fails (kind `Interrupted`).
    pub fn closer(&self) -> Closer {
        self.closer.clone()
    }

    /// The async form: this subscriber on a thread of its own (see
    /// [`Background`]); it never ends by itself (`Ok(None)` only after an
    /// error or [`Background::close`]).
    pub fn into_background(mut self) -> io::Result<Background<Item>> {
        let closer = self.closer.clone();
        Background::spawn("ringcast-ws-sub", closer, move || self.recv().map(Some))
    }

    /// Connects now unless connected, retrying with backoff as
    /// [`RoomSubscriber::recv`] would (which otherwise connects on its
    /// first call): for a caller that wants to know the subscription is in
    /// place before something is published.
    pub fn connect(&mut self) -> io::Result<()> {
        if self.client.is_some() {
            return Ok(());
        }
        loop {
            if self.closer.is_closed() {
                return Err(super::background::closed());
            }
            self.stats.attempts += 1;
            let url = self.url();
            let mut opts = self.opts.connect.clone();
            opts.return_pings = true;
            opts.auto_pong = true;
            match Client::connect_with(&url, &opts) {
                Ok((mut client, _)) => {
                    let timeout = self
                        .opts
                        .ping_interval
                        .map(|i| i.max(Duration::from_millis(1)));
                    client.set_read_timeout(timeout)?;
                    self.closer.watch(client.get_ref())?;
                    self.client = Some(client);
                    self.stats.connects += 1;
                    self.last_frame = Instant::now();
                    self.ping_sent = None;
                    let cursor = self.cursor();
                    self.emit(&ConnectionEvent::Connected {
                        attempt: self.backoff.failures(),
                        cursor: &cursor,
                    });
                    self.backoff.reset();
                    return Ok(());
                }
                Err(e) => {
                    if let Some(refused) = e
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<HandshakeRefused>())
                    {
                        let s = refused.response.status;
                        if (400..500).contains(&s) && s != 408 && s != 429 {
                            let body = String::from_utf8_lossy(&refused.response.body);
                            if body.contains("position(s) but the stream has") {
                                return Err(io::Error::new(
                                    e.kind(),
                                    format!(
                                        "{e} (does the server have an auto-join room? \
                                         name it with SubscriberOptions::auto_join_room)"
                                    ),
                                ));
                            }
                            return Err(e);
                        }
                    }
                    if e.kind() == ErrorKind::InvalidInput {
                        return Err(e);
                    }
                    self.wait(&e)?;
                }
            }
        }
    }

    /// Reads one frame; `Ok(None)` when it was no item (a ping, a pong, a
    /// duplicate, a keep-alive tick). An error other than `InvalidInput`
    /// means the connection is gone.
    fn read_one(&mut self) -> io::Result<Option<Item>> {
        let client = self.client.as_mut().expect("connected");
        if let Some(interval) = self.opts.ping_interval {
            let now = Instant::now();
            let deadline = match self.ping_sent {
                Some(sent) => sent + self.opts.pong_timeout,
                None => self.last_frame + interval,
            };
            if now >= deadline {
                if self.ping_sent.is_some() {
                    return Err(io::Error::new(
                        ErrorKind::TimedOut,
                        format!(
                            "no pong within {:?} of the keep-alive ping",
                            self.opts.pong_timeout
                        ),
                    ));
                }
                client.ping(b"ringcast-keepalive")?;
                self.stats.pings_sent += 1;
                self.ping_sent = Some(now);
                return Ok(None);
            }
            client.set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))?;
        }
        let msg = match client.recv() {
            Ok(m) => m,
            Err(e)
                if self.opts.ping_interval.is_some()
                    && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.last_frame = Instant::now();
        self.ping_sent = None;
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            Message::Ping(_) | Message::Pong(_) => return Ok(None),
            Message::Close(code, reason) => {
                return Err(io::Error::new(
                    ErrorKind::ConnectionAborted,
                    format!(
                        "the server closed the WebSocket ({}{}{reason})",
                        code.map_or("no code".to_string(), |c| c.to_string()),
                        if reason.is_empty() { "" } else { ": " }
                    ),
                ));
            }
        };
        // Any message counts as activity: the connection is healthy.
        self.backoff.reset();
        let item = parse_envelope(&text)?;
        match item {
            Item::Message(m) => {
                let slot = match self.rooms.iter_mut().position(|(r, _)| *r == m.room) {
                    Some(i) => &mut self.rooms[i],
                    None => {
                        // a room of the stream the URL did not name (the
                        // auto-join room): last in the cursor
                        self.rooms.push((m.room.clone(), 0));
                        self.rooms.last_mut().expect("pushed")
                    }
                };
                if m.id <= slot.1 {
                    self.stats.duplicates_dropped += 1;
                    return Ok(None);
                }
                slot.1 = m.id;
                Ok(Some(Item::Message(m)))
            }
            Item::Gap(g) => {
                self.stats.gaps += 1;
                Ok(Some(Item::Gap(g)))
            }
        }
    }
}

/// Parses one frame of the JSON envelope (or a gap notice). A frame that is
/// not one is an `InvalidInput` error.
fn parse_envelope(text: &str) -> io::Result<Item> {
    let not_json = || {
        io::Error::new(
            ErrorKind::InvalidInput,
            format!(
                "not ringcast's JSON envelope (is [ws.rooms] envelope = \"json\"?): {:.80}",
                text
            ),
        )
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| not_json())?;
    let room = v["room"].as_str().ok_or_else(not_json)?.to_string();
    let event = v["event"].as_str();
    if v.get("id").is_none() && event == Some("ringcast-gap") {
        return Ok(Item::Gap(Gap {
            room,
            since: v["since"].as_u64().unwrap_or(0),
            resume_from: v["resume_from"].as_u64(),
            reason: v["reason"].as_str().unwrap_or("").to_string(),
        }));
    }
    let id = v["id"].as_u64().ok_or_else(not_json)?;
    let data = v["data"].as_str().ok_or_else(not_json)?.to_string();
    Ok(Item::Message(RoomMessage {
        room,
        id,
        event: event.map(str::to_string),
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_and_gap() {
        let m = parse_envelope(r#"{"room":"a","id":7,"event":null,"data":"x"}"#).unwrap();
        assert_eq!(
            m,
            Item::Message(RoomMessage {
                room: "a".into(),
                id: 7,
                event: None,
                data: "x".into()
            })
        );
        let g = parse_envelope(
            r#"{"room":"a","since":3,"resume_from":9,"reason":"evicted","event":"ringcast-gap"}"#,
        )
        .unwrap();
        assert_eq!(
            g,
            Item::Gap(Gap {
                room: "a".into(),
                since: 3,
                resume_from: Some(9),
                reason: "evicted".into()
            })
        );
        let e = parse_envelope("hello").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn url_and_cursor() {
        let s = RoomSubscriber::new(
            "ws://h:1/ws?room=a&x=1&room=b%20c&room=a&last_event_id=5.6",
            SubscriberOptions::new(),
        )
        .unwrap();
        assert_eq!(s.cursor(), "5.6");
        assert_eq!(s.last_id("b c"), 6);
        assert_eq!(
            s.url(),
            "ws://h:1/ws?room=a&x=1&room=b%20c&room=a&last_event_id=5.6"
        );
        let s = RoomSubscriber::new(
            "ws://h:1/ws?room=a",
            SubscriberOptions::new().auto_join_room("lobby"),
        )
        .unwrap();
        assert_eq!(s.url(), "ws://h:1/ws?room=a");
        assert!(RoomSubscriber::new("ws://h:1/ws", SubscriberOptions::new()).is_err());
        assert!(RoomSubscriber::new(
            "ws://h:1/ws?room=a&last_event_id=1.2",
            SubscriberOptions::new()
        )
        .is_err());
    }
}
