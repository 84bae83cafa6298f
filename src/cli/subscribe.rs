//! `ringcast sub URL`: prints what a WebSocket or SSE subscription
//! receives, one message per line, reconnecting and resuming when the
//! connection drops.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Write};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};

use super::{flag_value, Access, Failure};
use crate::client::reconnect::ConnectionEvent;
use crate::client::sse::{Item as SseItem, SseClient, SseOptions};
use crate::client::{Client, HandshakeRefused, Message};
use crate::proto::http::request::{percent_decode, query_params};

pub const USAGE: &str = "\
ringcast sub: print the messages of a subscription

USAGE:
    ringcast sub [OPTIONS] URL

URL is a WebSocket URL, e.g. ws://127.0.0.1:8080/ws?room=news (or wss://),
or an SSE URL, e.g. http://127.0.0.1:8080/sse?room=news (or https://).

WebSocket: each text message is printed on its own line; a binary message
as one line of standard base64. With ws.rooms.envelope = \"json\" the
message's data is printed, and a dropped connection resumes with
?last_event_id= exactly where it stopped.

SSE: each event's data is printed; a dropped stream resumes with
Last-Event-ID after the server's retry: time. A 204 answer ends the
subscription (exit 0); another status, or a response that is not
text/event-stream, is an error (exit 1).

Gap notices (ringcast-gap) and reconnections are reported on standard
error.

OPTIONS:
        --json              print JSON lines: {\"data\":...}, plus \"room\",
                            \"id\" and \"event\" with the JSON envelope (SSE:
                            \"event\" and, when set, \"id\"), and
                            \"encoding\":\"base64\" for a binary message
    -n, --count <N>         exit 0 after N messages
    -t, --timeout <DUR>     exit 1 when no message arrives for DUR
                            (e.g. 5s, 500ms, 1m), reconnections included
        --no-reconnect      exit when the connection ends (0 after a close
                            with code 1000 or the end of an SSE stream, else
                            1) instead of reconnecting with backoff (0.1 s,
                            SSE: the server's retry:, doubling to 5 s)
        --token <TOKEN>     sent as Authorization: Bearer (default: the
                            environment variable RINGCAST_TOKEN)
        --ca-file <FILE>    wss://, https://: trust only the CA certificates
                            of this PEM file instead of the system's roots
    -h, --help              print this help
";

/// What `ringcast sub` was asked.
#[derive(Debug, Default, Clone)]
pub struct SubArgs {
    pub url: String,
    pub opts: SubOptions,
    pub help: bool,
}

/// How a subscription runs and prints (shared by WebSocket and SSE).
#[derive(Debug, Default, Clone)]
pub struct SubOptions {
    /// Print JSON lines instead of the bare data.
    pub json: bool,
    /// Stop (successfully) after this many messages.
    pub count: Option<u64>,
    /// Fail when no message arrives for this long.
    pub timeout: Option<Duration>,
    /// Reconnect (and resume) when the connection ends.
    pub reconnect: bool,
    /// The token and the CA file.
    pub access: Access,
}

pub fn parse<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> Result<SubArgs, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut a = SubArgs {
        opts: SubOptions {
            reconnect: true,
            ..SubOptions::default()
        },
        ..SubArgs::default()
    };
    let mut positional = Vec::new();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("json") => a.opts.json = true,
            Short('n') | Long("count") => {
                let v = flag_value(&mut p, "--count")?;
                a.opts.count =
                    Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("--count {v:?}: expected a positive whole number")
                    })?);
            }
            Short('t') | Long("timeout") => {
                let v = flag_value(&mut p, "--timeout")?;
                a.opts.timeout = Some(parse_duration("--timeout", &v)?);
            }
            Long("no-reconnect") => a.opts.reconnect = false,
            Long(f @ ("token" | "ca-file")) => {
                let f = f.to_owned();
                a.opts.access.flag(&f, &mut p)?
            }
            Short('h') | Long("help") => a.help = true,
            Value(v) => positional.push(v.string().map_err(|v| format!("{v:?} is not UTF-8"))?),
            _ => return Err(format!("{}\n\n{USAGE}", arg.unexpected())),
        }
    }
    if a.help {
        return Ok(a);
    }
    let mut it = positional.into_iter();
    a.url = it.next().ok_or_else(|| format!("missing URL\n\n{USAGE}"))?;
    if let Some(extra) = it.next() {
        return Err(format!("unexpected argument {extra:?}\n\n{USAGE}"));
    }
    a.opts.access.token_from_env();
    Ok(a)
}

/// A duration flag's value (`5s`, `500ms`, `1h`); errors name the flag.
pub fn parse_duration(flag: &str, v: &str) -> Result<Duration, String> {
    match humantime::parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("{flag} {v:?}: must be more than zero")),
        Err(e) => Err(format!("{flag} {v:?}: {e} (write e.g. 30s, 500ms, 5m, 1h)")),
    }
}

/// Runs the subscription `a` asks for, printing to `out`.
pub fn run(a: &SubArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let scheme = a
        .url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let mut printer = Printer {
        json: a.opts.json,
        out,
    };
    let r = match scheme.as_str() {
        "ws" | "wss" => subscribe_ws(&a.url, &a.opts, &mut printer),
        "http" | "https" => subscribe_sse(&a.url, &a.opts, &mut printer),
        _ => {
            return Err(Failure::Usage(format!(
                "{:?}: the URL must start with ws://, wss://, http:// or https://",
                a.url
            )))
        }
    };
    match r {
        Err(Failure::Run(e)) if e == BROKEN_PIPE => Ok(()),
        r => r,
    }
}

/// The failure text of a closed standard output (`ringcast sub … | head`):
/// a normal end.
const BROKEN_PIPE: &str = "standard output closed";

/// One message received, as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The data: text, or bytes that are not (printed as base64).
    pub data: Data,
    /// The room, with an envelope that names it.
    pub room: Option<String>,
    /// The message's id (a number, or an SSE id/cursor as a string).
    pub id: Option<Value>,
    /// The event name, when there is one.
    pub event: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Text(String),
    Binary(Vec<u8>),
}

/// Writes received messages as lines, bare or JSON.
pub struct Printer<'a> {
    pub json: bool,
    pub out: &'a mut dyn Write,
}

impl Printer<'_> {
    /// Prints one message and flushes. A closed standard output is a
    /// failure whose text is [`BROKEN_PIPE`].
    pub fn print(&mut self, m: &Received) -> Result<(), Failure> {
        let line = if self.json {
            let mut o = Map::new();
            match &m.data {
                Data::Text(t) => {
                    o.insert("data".into(), Value::String(t.clone()));
                }
                Data::Binary(b) => {
                    o.insert("data".into(), Value::String(STANDARD.encode(b)));
                    o.insert("encoding".into(), Value::String("base64".into()));
                }
            }
            if let Some(r) = &m.room {
                o.insert("room".into(), Value::String(r.clone()));
            }
            if let Some(id) = &m.id {
                o.insert("id".into(), id.clone());
            }
            if let Some(e) = &m.event {
                o.insert("event".into(), Value::String(e.clone()));
            }
            Value::Object(o).to_string()
        } else {
            match &m.data {
                Data::Text(t) => t.clone(),
                Data::Binary(b) => STANDARD.encode(b),
            }
        };
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|e| {
                if e.kind() == ErrorKind::BrokenPipe {
                    Failure::Run(BROKEN_PIPE.into())
                } else {
                    Failure::Run(format!("writing standard output: {e}"))
                }
            })
    }
}

/// An SSE subscription (`http://` and `https://` URLs) with the same
/// options and output as [`subscribe_ws`]: each event's data (with
/// `--json`, its event type and id too), resumed with `Last-Event-ID`
/// after the server's `retry:` (at most 5 s) when the stream
/// drops.
pub fn subscribe_sse(
    url: &str,
    opts: &SubOptions,
    printer: &mut Printer<'_>,
) -> Result<(), Failure> {
    let sopts = SseOptions::new()
        .connect_options(opts.access.connect_options())
        .reconnect(opts.reconnect)
        .retry_bounds(BACKOFF_START / 10, BACKOFF_MAX)
        .on_event(|ev| {
            if let ConnectionEvent::Waiting { delay, error, .. } = ev {
                let ms = Duration::from_millis(delay.as_millis() as u64);
                eprintln!(
                    "ringcast sub: {error}; reconnecting in {}",
                    humantime::format_duration(ms)
                );
            }
        });
    let client = SseClient::new(url, sopts).map_err(|e| Failure::Usage(e.to_string()))?;
    let items = client
        .into_background()
        .map_err(|e| Failure::Run(format!("starting the client: {e}")))?;
    let mut received = 0u64;
    let mut last_activity = Instant::now();
    loop {
        let item = match opts.timeout {
            None => items.recv_blocking(),
            Some(t) => match items.recv_timeout(t.saturating_sub(last_activity.elapsed())) {
                Some(item) => item,
                None => {
                    return Err(Failure::Run(format!(
                        "no message for {}",
                        humantime::format_duration(t)
                    )))
                }
            },
        };
        match item {
            Ok(Some(SseItem::Event(e))) => {
                printer.print(&Received {
                    data: Data::Text(e.data),
                    room: None,
                    id: (!e.id.is_empty()).then_some(Value::String(e.id)),
                    event: Some(e.event),
                })?;
                last_activity = Instant::now();
                received += 1;
                if opts.count.is_some_and(|n| received >= n) {
                    return Ok(());
                }
            }
            Ok(Some(SseItem::Gap(g))) => eprintln!(
                "ringcast sub: messages of room {:?} after {} are gone ({}){}",
                g.room,
                g.since,
                g.reason,
                g.resume_from
                    .map(|id| format!("; resuming from {id}"))
                    .unwrap_or_default()
            ),
            Ok(None) => {
                eprintln!("ringcast sub: the server ended the stream");
                return Ok(());
            }
            Err(e) => return Err(Failure::Run(e.to_string())),
        }
    }
}

/// Where a resuming subscription stands: the rooms of the URL and the last
/// id received from each (JSON envelope only).
struct Resume {
    /// The URL without any `last_event_id` parameter.
    base: String,
    /// The `last_event_id` the URL itself carried (used until a message arrives).
    initial: Option<String>,
    /// The URL's rooms, in order.
    rooms: Vec<String>,
    /// Rooms that sent messages but are not in the URL (the auto-join room).
    extra: Vec<String>,
    last: HashMap<String, u64>,
    /// The server counts one more room than we know of (an auto-join room
    /// that has sent nothing yet): add a `0` position.
    pad: bool,
}

impl Resume {
    fn new(url: &str) -> Resume {
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, q),
            None => (url, ""),
        };
        let mut kept = Vec::new();
        let mut initial = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap_or("");
            if name == "last_event_id" {
                initial = pair
                    .split_once('=')
                    .and_then(|(_, v)| percent_decode(v).ok())
                    .filter(|v| !v.is_empty());
            } else {
                kept.push(pair);
            }
        }
        let rooms = query_params(query, "room")
            .filter_map(|r| percent_decode(r).ok())
            .collect();
        let base = if kept.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", kept.join("&"))
        };
        Resume {
            base,
            initial,
            rooms,
            extra: Vec::new(),
            last: HashMap::new(),
            pad: false,
        }
    }

    /// Records a message's id; false for one already received (a duplicate).
    fn record(&mut self, room: &str, id: u64) -> bool {
        if let Some(&last) = self.last.get(room) {
            if id <= last {
                return false;
            }
        }
        if !self.rooms.iter().any(|r| r == room) && !self.extra.iter().any(|r| r == room) {
            self.extra.push(room.to_string());
        }
        self.last.insert(room.to_string(), id);
        true
    }

    /// The URL to connect to now.
    fn url(&self) -> String {
        let cursor = if self.last.is_empty() {
            match &self.initial {
                Some(c) => c.clone(),
                None => return self.base.clone(),
            }
        } else {
            let mut positions: Vec<u64> = self
                .rooms
                .iter()
                .chain(&self.extra)
                .map(|r| self.last.get(r).copied().unwrap_or(0))
                .collect();
            if self.pad {
                positions.push(0);
            }
            let mut out = Vec::new();
            crate::proto::sse::cursor::format(&positions, &mut out);
            String::from_utf8(out).expect("digits and dots")
        };
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}last_event_id={cursor}", self.base)
    }
}

/// What a text frame holds.
enum Frame {
    /// A ringcast JSON envelope.
    Envelope(Received, String, u64),
    /// A ringcast gap notice (`{"event":"ringcast-gap",...}`).
    Gap(String),
    Plain(String),
}

fn classify(text: String) -> Frame {
    if text.starts_with('{') {
        if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&text) {
            if o.get("event").and_then(Value::as_str) == Some("ringcast-gap")
                && !o.contains_key("data")
            {
                return Frame::Gap(text);
            }
            if let (Some(Value::String(room)), Some(id), Some(Value::String(data))) = (
                o.get("room"),
                o.get("id").and_then(Value::as_u64),
                o.get("data"),
            ) {
                if o.len() <= 4 && o.get("event").is_none_or(|e| e.is_null() || e.is_string()) {
                    let event = o.get("event").and_then(Value::as_str).map(String::from);
                    let r = Received {
                        data: Data::Text(data.clone()),
                        room: Some(room.clone()),
                        id: Some(Value::from(id)),
                        event,
                    };
                    return Frame::Envelope(r, room.clone(), id);
                }
            }
        }
    }
    Frame::Plain(text)
}

/// Backoff between reconnections.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one read waits before the timeout is checked again.
const POLL: Duration = Duration::from_secs(30);

fn refused(e: &io::Error) -> Option<&HandshakeRefused> {
    e.get_ref()
        .and_then(|e| e.downcast_ref::<HandshakeRefused>())
}

/// A WebSocket subscription (`ws://`, `wss://`) with the library client.
pub fn subscribe_ws(
    url: &str,
    opts: &SubOptions,
    printer: &mut Printer<'_>,
) -> Result<(), Failure> {
    crate::client::Url::parse(url).map_err(|e| Failure::Usage(e.to_string()))?;
    let copts = opts.access.connect_options().permessage_deflate();
    let mut resume = Resume::new(url);
    let mut received = 0u64;
    let mut last_activity = Instant::now();
    let mut backoff = BACKOFF_START;
    let timed_out = |since: Instant| -> Option<Failure> {
        let t = opts.timeout?;
        (since.elapsed() >= t)
            .then(|| Failure::Run(format!("no message for {}", humantime::format_duration(t))))
    };
    let remaining = |since: Instant| -> Duration {
        match opts.timeout {
            Some(t) => t
                .saturating_sub(since.elapsed())
                .max(Duration::from_millis(1))
                .min(POLL),
            None => POLL,
        }
    };
    loop {
        let target = resume.url();
        let why = match Client::connect_with(&target, &copts) {
            Err(e) => {
                if let Some(r) = refused(&e) {
                    let status = r.response.status;
                    let body = String::from_utf8_lossy(&r.response.body).into_owned();
                    if status == 400 && body.contains("position(s)") && !resume.pad {
                        // an auto-join room we have heard nothing from yet
                        resume.pad = true;
                        continue;
                    }
                    if !(status >= 500 || status == 408 || status == 429) || !opts.reconnect {
                        return Err(Failure::Run(format!("{target}: {r}")));
                    }
                }
                if !opts.reconnect {
                    return Err(Failure::Run(format!("{target}: {e}")));
                }
                e.to_string()
            }
            Ok((mut ws, _)) => {
                backoff = BACKOFF_START;
                loop {
                    if let Some(f) = timed_out(last_activity) {
                        return Err(f);
                    }
                    let _ = ws.set_read_timeout(Some(remaining(last_activity)));
                    let msg = match ws.recv() {
                        Ok(m) => m,
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                        {
                            continue
                        }
                        Err(e) => {
                            if !opts.reconnect {
                                return Err(Failure::Run(format!("{target}: {e}")));
                            }
                            break format!("connection lost: {e}");
                        }
                    };
                    let r = match msg {
                        Message::Text(t) => match classify(t) {
                            Frame::Envelope(r, room, id) => {
                                if !resume.record(&room, id) {
                                    continue;
                                }
                                r
                            }
                            Frame::Gap(g) => {
                                eprintln!("ringcast sub: {g}");
                                continue;
                            }
                            Frame::Plain(t) => Received {
                                data: Data::Text(t),
                                room: None,
                                id: None,
                                event: None,
                            },
                        },
                        Message::Binary(b) => Received {
                            data: Data::Binary(b),
                            room: None,
                            id: None,
                            event: None,
                        },
                        Message::Ping(_) | Message::Pong(_) => continue,
                        Message::Close(code, reason) => {
                            let what = match code {
                                Some(c) => format!("closed by the server: {c} {reason}"),
                                None => "closed by the server".to_string(),
                            };
                            if !opts.reconnect {
                                return if code == Some(1000) {
                                    Ok(())
                                } else {
                                    Err(Failure::Run(format!("{target}: {}", what.trim_end())))
                                };
                            }
                            break what.trim_end().to_string();
                        }
                    };
                    printer.print(&r)?;
                    last_activity = Instant::now();
                    received += 1;
                    if opts.count.is_some_and(|n| received >= n) {
                        let _ = ws.close(1000, "");
                        return Ok(());
                    }
                }
            }
        };
        if let Some(f) = timed_out(last_activity) {
            return Err(f);
        }
        let wait = backoff.min(remaining(last_activity));
        eprintln!(
            "ringcast sub: {why}; reconnecting in {}",
            humantime::format_duration(wait)
        );
        std::thread::sleep(wait);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<SubArgs, String> {
        parse(v.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn flags() {
        let a = args(&["ws://h/ws?room=a", "--count", "3", "-t", "2s", "--json"]).unwrap();
        assert_eq!(a.opts.count, Some(3));
        assert_eq!(a.opts.timeout, Some(Duration::from_secs(2)));
        assert!(a.opts.json && a.opts.reconnect);
        assert!(!args(&["ws://h", "--no-reconnect"]).unwrap().opts.reconnect);
        assert!(args(&["ws://h", "--count", "x"])
            .unwrap_err()
            .contains("--count"));
        assert!(args(&["ws://h", "--count", "0"])
            .unwrap_err()
            .contains("--count"));
        assert!(args(&["ws://h", "--timeout", "soon"])
            .unwrap_err()
            .contains("--timeout"));
        assert!(args(&["ws://h", "--timeout"])
            .unwrap_err()
            .contains("--timeout"));
        assert!(args(&[]).unwrap_err().contains("missing URL"));
    }

    #[test]
    fn resume_cursor() {
        let mut r = Resume::new("ws://h/ws?room=a&last_event_id=5&room=b");
        assert_eq!(r.rooms, ["a", "b"]);
        assert_eq!(r.url(), "ws://h/ws?room=a&room=b&last_event_id=5");
        assert!(r.record("b", 7));
        assert!(!r.record("b", 7));
        assert_eq!(r.url(), "ws://h/ws?room=a&room=b&last_event_id=0.7");
        assert!(r.record("auto", 9));
        r.pad = false;
        assert_eq!(r.url(), "ws://h/ws?room=a&room=b&last_event_id=0.7.9");
        let mut r = Resume::new("ws://h/ws?room=a");
        assert_eq!(r.url(), "ws://h/ws?room=a");
        r.record("a", 3);
        assert_eq!(r.url(), "ws://h/ws?room=a&last_event_id=3");
    }

    #[test]
    fn frames() {
        let env = r#"{"room":"a","id":5,"event":null,"data":"hi"}"#;
        match classify(env.to_string()) {
            Frame::Envelope(r, room, id) => {
                assert_eq!((room.as_str(), id), ("a", 5));
                assert_eq!(r.data, Data::Text("hi".into()));
                assert_eq!(r.event, None);
            }
            _ => panic!("not an envelope"),
        }
        let gap =
            r#"{"event":"ringcast-gap","room":"a","since":1,"resume_from":null,"reason":"reset"}"#;
        assert!(matches!(classify(gap.to_string()), Frame::Gap(_)));
        assert!(matches!(
            classify(r#"{"x":1}"#.to_string()),
            Frame::Plain(_)
        ));
        assert!(matches!(classify("plain".to_string()), Frame::Plain(_)));
    }

    #[test]
    fn printing() {
        let mut buf = Vec::new();
        let mut p = Printer {
            json: true,
            out: &mut buf,
        };
        p.print(&Received {
            data: Data::Binary(vec![0, 1, 2]),
            room: None,
            id: None,
            event: None,
        })
        .unwrap();
        p.print(&Received {
            data: Data::Text("x".into()),
            room: Some("a".into()),
            id: Some(Value::from(4u64)),
            event: Some("e".into()),
        })
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"data":"AAEC","encoding":"base64"})
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"data":"x","room":"a","id":4,"event":"e"})
        );
    }
}
