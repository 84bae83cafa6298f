//! The access log: a line per HTTP request and per stream (SSE, WebSocket)
//! open and close, with status, bytes and duration.
//!
//! Off the hot path: a worker formats lines into its own buffer (no lock, no
//! syscall) and hands full buffers (or, every second, what it has) to one
//! writer thread over a bounded channel. A worker never waits for the disk:
//! when the writer falls behind, the buffer is dropped and counted
//! (`ringcast_access_log_dropped_total`).
//!
//! A line holds the request target, never a header, and every target goes
//! through `AccessLog::put_target`, which redacts the token query
//! parameter (`auth.query_param`, as reloaded): no token reaches the log.

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::auth::Auth;
use crate::config::LogFormat;

use crate::io::stats::WorkerStats;

/// A worker hands over its buffer once it holds this much.
const FLUSH_AT: usize = 32 << 10;
/// Buffers in flight to the writer at most.
const CHANNEL: usize = 256;

/// Where access lines go: `log.access`.
pub enum Sink {
    Stderr,
    Stdout,
    File(std::fs::File),
}

impl Sink {
    /// Opens `log.access`; `None` when it is "off".
    pub fn open(spec: &str) -> std::io::Result<Option<Sink>> {
        Ok(match spec {
            "off" | "" => None,
            "stderr" => Some(Sink::Stderr),
            "stdout" => Some(Sink::Stdout),
            path => Some(Sink::File(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(Path::new(path))?,
            )),
        })
    }

    fn write(&mut self, bytes: &[u8]) {
        let _ = match self {
            Sink::Stderr => std::io::stderr().lock().write_all(bytes),
            Sink::Stdout => std::io::stdout().lock().write_all(bytes),
            Sink::File(f) => f.write_all(bytes),
        };
    }
}

/// The writer thread and the way to it.
pub struct Writer {
    tx: flume::Sender<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(mut sink: Sink) -> std::io::Result<Writer> {
        let (tx, rx) = flume::bounded::<Vec<u8>>(CHANNEL);
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                // An empty buffer is the request to stop (all workers have finished).
                while let Ok(buf) = rx.recv() {
                    if buf.is_empty() {
                        break;
                    }
                    sink.write(&buf);
                }
                if let Sink::File(f) = &mut sink {
                    let _ = f.flush();
                }
            })?;
        Ok(Writer {
            tx,
            thread: Some(thread),
        })
    }

    pub fn sender(&self) -> flume::Sender<Vec<u8>> {
        self.tx.clone()
    }

    /// Writes what the workers handed over, then stops the thread (at most `limit`).
    pub fn finish(&mut self, limit: Duration) {
        let _ = self.tx.send_timeout(Vec::new(), limit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a stream ended, for its close line.
pub type EndName = &'static str;

/// One worker's access log.
pub struct AccessLog {
    buf: RefCell<Vec<u8>>,
    tx: flume::Sender<Vec<u8>>,
    json: bool,
    /// The rules in force: their token query parameter is redacted.
    auth: Arc<ArcSwap<Auth>>,
}

impl AccessLog {
    pub fn new(
        tx: flume::Sender<Vec<u8>>,
        format: LogFormat,
        auth: Arc<ArcSwap<Auth>>,
    ) -> AccessLog {
        AccessLog {
            buf: RefCell::new(Vec::with_capacity(FLUSH_AT + 1024)),
            tx,
            json: format == LogFormat::Json,
            auth,
        }
    }

    /// Writes a request target (the JSON field, or the escaped text): the
    /// one way a target reaches a line, with its token values redacted.
    fn put_target(&self, b: &mut Vec<u8>, target: &str) {
        let auth = self.auth.load();
        let target = auth.redact(target);
        if self.json {
            kv_str(b, "target", &target);
        } else {
            text_escaped(b, &target);
        }
    }

    /// An HTTP request: `request_line` is `METHOD TARGET`, `dur` from its first byte.
    #[allow(clippy::too_many_arguments)]
    pub fn http(
        &self,
        stats: &WorkerStats,
        peer: IpAddr,
        method: &str,
        target: &str,
        minor_version: u8,
        status: u16,
        bytes: u64,
        dur: Duration,
    ) {
        let mut b = self.start(peer);
        if self.json {
            kv_str(&mut b, "method", method);
            self.put_target(&mut b, target);
            kv_num(&mut b, "status", u64::from(status));
            kv_num(&mut b, "bytes", bytes);
            kv_ms(&mut b, dur);
            b.extend_from_slice(b"}\n");
        } else {
            let _ = write!(b, "\"{method} ");
            self.put_target(&mut b, target);
            let _ = writeln!(
                b,
                " HTTP/1.{minor_version}\" {status} {bytes} {:.3}ms",
                dur.as_secs_f64() * 1000.0
            );
        }
        self.maybe_flush(&mut b, stats);
    }

    /// A stream opened (`kind` is "sse" or "ws"); `target` is the request target.
    pub fn stream_open(&self, stats: &WorkerStats, kind: &str, peer: IpAddr, target: &str) {
        let mut b = self.start(peer);
        if self.json {
            kv_str(&mut b, "stream", kind);
            kv_str(&mut b, "event", "open");
            self.put_target(&mut b, target);
            b.extend_from_slice(b"}\n");
        } else {
            let _ = write!(b, "{kind} open \"");
            self.put_target(&mut b, target);
            b.extend_from_slice(b"\"\n");
        }
        self.maybe_flush(&mut b, stats);
    }

    /// A stream closed after `dur`, having sent `bytes`; `end` says why.
    pub fn stream_close(
        &self,
        stats: &WorkerStats,
        kind: &str,
        peer: IpAddr,
        dur: Duration,
        bytes: u64,
        end: EndName,
    ) {
        let mut b = self.start(peer);
        if self.json {
            kv_str(&mut b, "stream", kind);
            kv_str(&mut b, "event", "close");
            kv_num(&mut b, "bytes", bytes);
            kv_ms(&mut b, dur);
            kv_str(&mut b, "end", end);
            b.extend_from_slice(b"}\n");
        } else {
            let _ = writeln!(
                b,
                "{kind} close {bytes} {:.3}ms {end}",
                dur.as_secs_f64() * 1000.0
            );
        }
        self.maybe_flush(&mut b, stats);
    }

    /// Starts a line: the time and the client (`{"ts":"T","peer":"P"` or `T P `),
    /// T as `2026-12-04T06:40:12.345Z`.
    fn start(&self, peer: IpAddr) -> std::cell::RefMut<'_, Vec<u8>> {
        let mut b = self.buf.borrow_mut();
        if self.json {
            b.extend_from_slice(b"{\"ts\":");
            ts(&mut b, true);
            kv_str(&mut b, "peer", &peer.to_string());
        } else {
            ts(&mut b, false);
            let _ = write!(b, " {peer} ");
        }
        b
    }

    fn maybe_flush(&self, b: &mut Vec<u8>, stats: &WorkerStats) {
        if b.len() >= FLUSH_AT {
            self.hand_over(b, stats);
        }
    }

    /// Hands what is buffered to the writer (called every second and at exit).
    pub fn flush(&self, stats: &WorkerStats) {
        let mut b = self.buf.borrow_mut();
        if !b.is_empty() {
            self.hand_over(&mut b, stats);
        }
    }

    fn hand_over(&self, b: &mut Vec<u8>, stats: &WorkerStats) {
        let full = std::mem::replace(b, Vec::with_capacity(FLUSH_AT + 1024));
        let lines = full.iter().filter(|&&c| c == b'\n').count() as u64;
        if self.tx.try_send(full).is_err() {
            stats.access_log_dropped.add(lines);
        }
    }
}

/// The time of a line: RFC 3339, UTC, to the millisecond, as in the
/// server's log (a JSON string in JSON lines).
fn ts(b: &mut Vec<u8>, json: bool) {
    let now = crate::logging::timestamp(SystemTime::now());
    let _ = if json {
        write!(b, "\"{now}\"")
    } else {
        write!(b, "{now}")
    };
}

fn kv_str(b: &mut Vec<u8>, k: &str, v: &str) {
    let _ = write!(b, ",\"{k}\":");
    let _ = serde_json::to_writer(&mut *b, v);
}

fn kv_num(b: &mut Vec<u8>, k: &str, v: u64) {
    let _ = write!(b, ",\"{k}\":{v}");
}

fn kv_ms(b: &mut Vec<u8>, dur: Duration) {
    let _ = write!(b, ",\"duration_ms\":{:.3}", dur.as_secs_f64() * 1000.0);
}

/// A request target in a text line: `"` and `\` and anything outside
/// printable ASCII as `\xNN`, so a line is always one line.
fn text_escaped(b: &mut Vec<u8>, s: &str) {
    for &c in s.as_bytes() {
        if c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c) {
            let _ = write!(b, "\\x{c:02X}");
        } else {
            b.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml: &str) -> Arc<ArcSwap<Auth>> {
        let cfg = crate::config::Config::from_toml(toml, "t").unwrap();
        Arc::new(ArcSwap::from_pointee(Auth::from_config(&cfg).unwrap()))
    }

    fn log(format: LogFormat) -> (AccessLog, flume::Receiver<Vec<u8>>, WorkerStats) {
        let (tx, rx) = flume::bounded(1);
        let log = AccessLog::new(tx, format, rules(""));
        (log, rx, WorkerStats::default())
    }

    #[test]
    fn token_values_are_redacted_in_every_line_and_after_a_reload() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let (tx, rx) = flume::bounded(4);
            let auth = rules("");
            let (l, st) = (
                AccessLog::new(tx, format, auth.clone()),
                WorkerStats::default(),
            );
            let ip: IpAddr = "10.0.0.1".parse().unwrap();
            l.http(
                &st,
                ip,
                "GET",
                "/rooms/r?token=SECRET1",
                1,
                401,
                9,
                Duration::ZERO,
            );
            l.stream_open(&st, "sse", ip, "/sse?room=r&%74oken=SECRET2&token=SECRET3");
            // the parameter's name changes on reload: the next line follows it
            let cfg =
                crate::config::Config::from_toml("[auth]\nquery_param = \"jwt\"\n", "t").unwrap();
            auth.store(Arc::new(Auth::from_config(&cfg).unwrap()));
            l.stream_open(&st, "ws", ip, "/ws?room=r&jwt=SECRET4");
            l.flush(&st);
            let text = String::from_utf8(rx.try_recv().unwrap()).unwrap();
            assert!(!text.contains("SECRET"), "{text}");
            assert_eq!(text.matches("[redacted]").count(), 4, "{text}");
            assert!(text.contains("/rooms/r?token=[redacted]"), "{text}");
            assert!(text.contains("/ws?room=r&jwt=[redacted]"), "{text}");
        }
    }

    #[test]
    fn text_lines() {
        let (l, rx, st) = log(LogFormat::Text);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        l.http(
            &st,
            ip,
            "GET",
            "/a\"b",
            1,
            200,
            42,
            Duration::from_micros(1500),
        );
        l.stream_open(&st, "sse", ip, "/sse?room=x");
        l.stream_close(&st, "sse", ip, Duration::from_secs(2), 99, "client");
        l.flush(&st);
        let text = String::from_utf8(rx.try_recv().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with(" 10.1.2.3 \"GET /a\\x22b HTTP/1.1\" 200 42 1.500ms"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with(" 10.1.2.3 sse open \"/sse?room=x\""),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(" 10.1.2.3 sse close 99 2000.000ms client"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn json_lines_parse() {
        let (l, rx, st) = log(LogFormat::Json);
        let ip: IpAddr = "::1".parse().unwrap();
        l.http(&st, ip, "POST", "/p?x=\"", 0, 202, 7, Duration::ZERO);
        l.stream_close(&st, "ws", ip, Duration::from_millis(5), 3, "drain");
        l.flush(&st);
        let text = String::from_utf8(rx.try_recv().unwrap()).unwrap();
        let v: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v[0]["target"], "/p?x=\"");
        assert_eq!(v[0]["status"], 202);
        assert_eq!(v[1]["stream"], "ws");
        assert_eq!(v[1]["end"], "drain");
        assert_eq!(v[1]["duration_ms"], 5.0);
    }

    #[test]
    fn a_full_channel_drops_and_counts_never_blocks() {
        let (l, _rx, st) = log(LogFormat::Text);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            l.stream_open(&st, "ws", ip, "/x");
            l.flush(&st);
        }
        // the channel holds one buffer; the other two lines are dropped
        assert_eq!(st.access_log_dropped.get(), 2);
    }
}
