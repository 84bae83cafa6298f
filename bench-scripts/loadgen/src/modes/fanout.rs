//! `fanout`: N subscribers (WebSocket or SSE, by URL scheme) in one room,
//! one keep-alive HTTP publisher POSTing numbered, timestamped messages.
//!
//! Payload: `seq:ts_ns:` then `x` padding to `--size`; `ts_ns` is
//! CLOCK_MONOTONIC when the request was queued. Every subscriber checks
//! order with its highest sequence seen plus a 128-message window bitmap
//! behind it, which tells duplicates from late (out-of-order) arrivals.
//! Missing = accepted publishes - distinct messages received, per
//! subscriber still connected at the end; subscribers the server closed are
//! counted as dropped and reported apart.
//!
//! Publishing is either paced (`--rate N/s`) or flat out: up to `--window`
//! pipelined requests, and paused while subscribers lag more than
//! `--max-lag` messages on average (0: no such pause).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use mio::{Interest, Token};

use crate::args::{parse_rate, parse_size, Args};
use crate::client::{Ev, Gone, Handler, Outbox, Pool, FOREIGN_BASE};
use crate::hist::Histogram;
use crate::json::JsonLine;
use crate::modes::common::{self, Common, Counts};
use crate::proto::http::{post_request, ResponseReader};
use crate::sys;
use crate::tls::{Stream, TlsClient};
use crate::url::{Scheme, Url};

#[derive(Default, Clone)]
struct Sub {
    open: bool,
    gone: bool,
    /// Highest sequence seen, +1 (0: none yet).
    top: u64,
    /// Bit i: sequence `top - 1 - i` was received.
    window: u128,
    unique: u64,
}

/// Parses `seq:ts:` at the start of a payload.
pub fn parse_payload(d: &[u8]) -> Option<(u64, u64)> {
    let (seq, n) = decimal(d)?;
    let (ts, m) = decimal(&d[n..])?;
    Some((seq, ts)).filter(|_| n + m <= d.len())
}

/// A decimal number ended by `:`; returns it and the bytes used, colon included.
fn decimal(d: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in d.iter().enumerate().take(21) {
        match b {
            b'0'..=b'9' => v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?,
            b':' if i > 0 => return Some((v, i + 1)),
            _ => return None,
        }
    }
    None
}

/// Writes the payload of message `seq`, stamped now, into `buf`.
pub fn make_payload(buf: &mut Vec<u8>, seq: u64, ts: u64, size: usize) {
    buf.clear();
    let _ = write!(buf, "{seq}:{ts}:");
    if buf.len() < size {
        buf.resize(size, b'x');
    }
}

/// Outcome of one received sequence number for a subscriber.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    InOrder { gap: u64 },
    Late,
    Duplicate,
}

impl Sub {
    fn see(&mut self, seq: u64) -> Seen {
        if seq >= self.top {
            let shift = seq + 1 - self.top;
            let gap = seq - self.top;
            self.window = if shift >= 128 {
                0
            } else {
                self.window << shift
            };
            self.window |= 1;
            self.top = seq + 1;
            self.unique += 1;
            return Seen::InOrder { gap };
        }
        let back = self.top - 1 - seq;
        if back < 128 {
            if self.window & (1u128 << back) != 0 {
                return Seen::Duplicate;
            }
            self.window |= 1u128 << back;
        }
        self.unique += 1;
        Seen::Late
    }
}

struct Publisher {
    url: Url,
    /// Set for an https:// publish URL.
    tls: Option<Arc<TlsClient>>,
    stream: Option<Stream>,
    connected: bool,
    out: Vec<u8>,
    out_pos: usize,
    reader: ResponseReader,
    /// Sequences sent and not yet answered, oldest first.
    inflight: VecDeque<u64>,
    /// Sequences to send again (unanswered when the server closed).
    resend: VecDeque<u64>,
    buf: Vec<u8>,
    body: Vec<u8>,
    reconnects: u64,
    resent: u64,
    error: Option<String>,
}

impl Publisher {
    fn connect(&mut self, poll: &mio::Poll) -> Result<(), String> {
        let tcp =
            sys::connect(self.url.addr, None).map_err(|e| format!("publisher connect: {e}"))?;
        let mut s = match &self.tls {
            None => Stream::Plain(tcp),
            Some(tls) => tls.wrap(tcp).map_err(|e| format!("publisher TLS: {e}"))?,
        };
        poll.registry()
            .register(
                s.tcp_mut(),
                Token(FOREIGN_BASE),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| e.to_string())?;
        self.stream = Some(s);
        self.connected = false;
        self.out.clear();
        self.out_pos = 0;
        self.reader = ResponseReader::new();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        let Some(s) = self.stream.as_mut() else {
            return Ok(());
        };
        if !self.connected {
            if let Ok(Some(e)) | Err(e) = s.tcp().take_error() {
                return Err(format!("publisher connect: {e}"));
            }
            match s.tcp().peer_addr() {
                Ok(_) => self.connected = true,
                Err(_) => return Ok(()),
            }
        }
        s.flush_tls().map_err(|e| format!("publisher write: {e}"))?;
        while self.out_pos < self.out.len() {
            match s.write(&self.out[self.out_pos..]) {
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("publisher write: {e}")),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        Ok(())
    }
}

struct Fanout {
    subs: Vec<Sub>,
    opened: usize,
    failed: usize,
    dropped: usize,
    drop_reasons: Vec<String>,
    errors: Vec<String>,
    live_unique: u64,
    live_subs: u64,
    deliveries: u64,
    duplicates: u64,
    late: u64,
    gaps: u64,
    malformed: u64,
    foreign: u64,
    hist: Histogram,
    last_delivery_ns: u64,
    measuring: bool,
    // Publisher side.
    publisher: Publisher,
    size: usize,
    sent: u64,
    accepted: u64,
    rejected: u64,
    reject_status: Vec<u16>,
    pub_rtt: Histogram,
    pub_sent_at: VecDeque<u64>,
    poll_registry: Option<mio::Registry>,
}

impl Counts for Fanout {
    fn opened(&self) -> usize {
        self.opened
    }
    fn failed(&self) -> usize {
        self.failed
    }
}

impl Handler for Fanout {
    fn on_event(&mut self, idx: usize, ev: Ev<'_>, _out: &mut Outbox) {
        if self.subs.len() <= idx {
            self.subs.resize(idx + 1, Sub::default());
        }
        match ev {
            Ev::Open { .. } => {
                self.opened += 1;
                // A slot may be reused after a failed or dropped connection.
                self.subs[idx] = Sub {
                    open: true,
                    ..Sub::default()
                };
                self.live_subs += 1;
            }
            Ev::Msg {
                data, at_ns: now, ..
            } => {
                let Some((seq, ts)) = parse_payload(data) else {
                    self.malformed += 1;
                    return;
                };
                if seq >= self.sent {
                    // Not ours (an earlier run's message in the same room).
                    self.foreign += 1;
                    return;
                }
                self.deliveries += 1;
                self.last_delivery_ns = now;
                let s = &mut self.subs[idx];
                match s.see(seq) {
                    Seen::InOrder { gap } => {
                        self.gaps += gap;
                        self.live_unique += 1;
                    }
                    Seen::Late => {
                        self.late += 1;
                        self.live_unique += 1;
                    }
                    Seen::Duplicate => self.duplicates += 1,
                }
                if self.measuring {
                    self.hist.record(now.saturating_sub(ts));
                }
            }
        }
    }

    fn on_gone(&mut self, idx: usize, why: Gone) {
        if self.subs.len() <= idx {
            self.subs.resize(idx + 1, Sub::default());
        }
        let s = &mut self.subs[idx];
        if s.open && !s.gone {
            s.gone = true;
            self.dropped += 1;
            self.live_subs -= 1;
            self.live_unique -= s.unique;
            if self.drop_reasons.len() < 5 {
                self.drop_reasons.push(format!("sub {idx}: {why:?}"));
            }
        } else if !s.open {
            self.failed += 1;
            if self.errors.len() < 5 {
                self.errors.push(format!("sub {idx}: {why:?}"));
            }
        }
    }

    fn on_foreign(&mut self, _token: usize, readable: bool, _writable: bool) {
        if let Err(e) = self.publisher_io(readable) {
            self.publisher_lost(e);
        }
    }
}

impl Fanout {
    fn publisher_io(&mut self, readable: bool) -> Result<(), String> {
        self.publisher.flush()?;
        if !readable {
            return Ok(());
        }
        let mut eof = false;
        loop {
            let p = &mut self.publisher;
            let Some(s) = p.stream.as_mut() else {
                return Ok(());
            };
            let n = match s.read(&mut p.buf) {
                Ok(0) => {
                    eof = true;
                    0
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("publisher read: {e}")),
            };
            let mut statuses = Vec::new();
            if n > 0 {
                let Publisher { reader, buf, .. } = p;
                reader.feed(&buf[..n], &mut |st| statuses.push(st))?;
            } else {
                p.reader.eof(&mut |st| statuses.push(st));
            }
            let now = sys::now_ns();
            for st in statuses {
                let Some(_seq) = self.publisher.inflight.pop_front() else {
                    return Err("response without a request".into());
                };
                if let Some(t) = self.pub_sent_at.pop_front() {
                    self.pub_rtt.record(now.saturating_sub(t));
                }
                if (200..300).contains(&st) {
                    self.accepted += 1;
                } else {
                    self.rejected += 1;
                    if self.reject_status.len() < 5 {
                        self.reject_status.push(st);
                    }
                }
            }
            if eof || self.publisher.reader.closed() {
                return Err("server closed the publisher connection".into());
            }
        }
        self.publisher.flush()
    }

    /// The publish connection ended: requests it had not answered are sent
    /// again, in order, on a new connection.
    fn publisher_lost(&mut self, why: String) {
        let p = &mut self.publisher;
        if let (Some(mut s), Some(reg)) = (p.stream.take(), self.poll_registry.as_ref()) {
            let _ = reg.deregister(s.tcp_mut());
        }
        p.reconnects += 1;
        while let Some(seq) = p.inflight.pop_back() {
            p.resend.push_front(seq);
            self.pub_sent_at.pop_back();
        }
        if p.reconnects > 20 {
            p.error = Some(format!(
                "publisher gave up after {} reconnects: {why}",
                p.reconnects - 1
            ));
        }
    }

    fn queue_publish(&mut self, seq: u64) {
        let now = sys::now_ns();
        let p = &mut self.publisher;
        make_payload(&mut p.body, seq, now, self.size);
        let body = std::mem::take(&mut p.body);
        post_request(&mut p.out, &p.url.authority, &p.url.path, &body);
        p.body = body;
        p.inflight.push_back(seq);
        self.pub_sent_at.push_back(now);
    }

    /// Average per-live-subscriber lag, in messages.
    fn lag(&self) -> f64 {
        if self.live_subs == 0 {
            return 0.0;
        }
        self.sent as f64 - self.live_unique as f64 / self.live_subs as f64
    }
}

pub fn run(mut a: Args) -> Result<i32, String> {
    let sub_url = a.req("sub-url")?;
    let pub_url = a.req("publish-url")?;
    let subs: usize = a.num("subs", 1000)?;
    let rate = match a.opt("rate")? {
        Some(r) => Some(parse_rate(&r)?),
        None => None,
    };
    let window: usize = a.num("window", 16)?;
    let max_lag: u64 = a.num("max-lag", 32)?;
    let size = parse_size(&a.opt("size")?.unwrap_or_else(|| "64".into()))?;
    let duration = a.duration("duration", Duration::from_secs(10))?;
    let settle = a.duration("settle", Duration::from_millis(500))?;
    let tail = a.duration("tail", Duration::from_secs(5))?;
    let common = Common::parse(&mut a, 1)?;
    a.finish()?;
    // several comma-separated URLs: subscribers go to each in turn (the nodes of a cluster)
    let mut urls = sub_url.split(',');
    let target = common::target(urls.next().unwrap_or(""), &common)?;
    let more: Vec<_> = urls
        .map(|u| common::target(u, &common))
        .collect::<Result<_, _>>()?;
    let purl = Url::parse(&pub_url)?;
    if purl.scheme != Scheme::Http {
        return Err("--publish-url must be http:// or https://".into());
    }
    let pub_tls = common.tls_for(&purl)?;
    if window == 0 || subs == 0 {
        return Err("--window and --subs must be at least 1".into());
    }
    sys::raise_nofile();

    let mut pool = Pool::new(target.clone(), common.src_ips).map_err(|e| e.to_string())?;
    for t in more {
        pool.add_target(t);
    }
    let registry = pool
        .poll
        .registry()
        .try_clone()
        .map_err(|e| e.to_string())?;
    let mut h = Fanout {
        subs: Vec::with_capacity(subs),
        opened: 0,
        failed: 0,
        dropped: 0,
        drop_reasons: Vec::new(),
        errors: Vec::new(),
        live_unique: 0,
        live_subs: 0,
        deliveries: 0,
        duplicates: 0,
        late: 0,
        gaps: 0,
        malformed: 0,
        foreign: 0,
        hist: Histogram::new(),
        last_delivery_ns: 0,
        measuring: false,
        publisher: Publisher {
            url: purl,
            tls: pub_tls,
            stream: None,
            connected: false,
            out: Vec::new(),
            out_pos: 0,
            reader: ResponseReader::new(),
            inflight: VecDeque::new(),
            resend: VecDeque::new(),
            buf: vec![0; 64 * 1024],
            body: Vec::new(),
            reconnects: 0,
            resent: 0,
            error: None,
        },
        size,
        sent: 0,
        accepted: 0,
        rejected: 0,
        reject_status: Vec::new(),
        pub_rtt: Histogram::new(),
        pub_sent_at: VecDeque::new(),
        poll_registry: Some(registry),
    };
    let overall = Duration::from_secs(30 + subs as u64 / 500);
    let connect_s = common::connect_all(&mut pool, &mut h, subs, &common, overall)?;
    println!(
        "fanout: {} of {} {} subscribers open in {:.2}s ({})",
        h.opened,
        subs,
        target.proto.name(),
        connect_s,
        sub_url
    );
    if h.opened == 0 {
        for e in &h.errors {
            eprintln!("  {e}");
        }
        return Err("no subscriber connected".into());
    }
    common::idle_until(&mut pool, &mut h, sys::now_ns() + settle.as_nanos() as u64)?;
    h.publisher.connect(&pool.poll)?;
    let subs_at_start = h.live_subs;

    // Publish phase.
    h.measuring = true;
    let cpu_win = sys::CpuWindow::start(common.pid);
    let t0 = sys::now_ns();
    let t_end = t0 + duration.as_nanos() as u64;
    let mut lag_pauses = 0u64;
    let mut paused = false;
    loop {
        let now = sys::now_ns();
        if now >= t_end {
            break;
        }
        if h.publisher.error.is_some() {
            break;
        }
        if h.publisher.stream.is_none() {
            if let Err(e) = h.publisher.connect(&pool.poll) {
                h.publisher.error = Some(e);
                break;
            }
            let again: Vec<u64> = h.publisher.resend.drain(..).collect();
            h.publisher.resent += again.len() as u64;
            for seq in again {
                h.queue_publish(seq);
            }
        }
        let due = match rate {
            Some(r) => ((now - t0) as f64 / 1e9 * r) as u64,
            None => u64::MAX,
        };
        let lagging = max_lag > 0 && h.lag() > max_lag as f64;
        if lagging && !paused {
            lag_pauses += 1;
        }
        paused = lagging;
        let cap = if rate.is_some() {
            window.max(4096)
        } else {
            window
        };
        while h.sent < due && h.publisher.inflight.len() < cap && !lagging {
            let seq = h.sent;
            h.sent += 1;
            h.queue_publish(seq);
            if rate.is_none() && h.publisher.inflight.len() >= window {
                break;
            }
        }
        if let Err(e) = h.publisher.flush() {
            h.publisher_lost(e);
        }
        let wait = match rate {
            Some(r) => Duration::from_nanos(((1e9 / r) as u64).clamp(50_000, 10_000_000)),
            None => Duration::from_millis(10),
        };
        let wait = wait.min(Duration::from_nanos(t_end - now));
        pool.turn(Some(wait), &mut h)
            .map_err(|e| format!("poll: {e}"))?;
        if h.live_subs == 0 {
            break;
        }
    }
    let publish_s = (sys::now_ns() - t0) as f64 / 1e9;
    // Wait (bounded) for the publish responses, then for the tail.
    let answers_end = sys::now_ns() + 5_000_000_000;
    while !h.publisher.inflight.is_empty() && sys::now_ns() < answers_end {
        if h.publisher.stream.is_none() {
            break;
        }
        pool.turn(Some(Duration::from_millis(10)), &mut h)
            .map_err(|e| format!("poll: {e}"))?;
    }
    let unanswered = h.publisher.inflight.len() as u64 + h.publisher.resend.len() as u64;
    let tail_end = sys::now_ns() + tail.as_nanos() as u64;
    while h.live_unique < h.accepted * h.live_subs && sys::now_ns() < tail_end {
        pool.turn(Some(Duration::from_millis(10)), &mut h)
            .map_err(|e| format!("poll: {e}"))?;
    }
    h.measuring = false;
    let cpu = cpu_win.stop();
    let window_s = (h.last_delivery_ns.max(t0) - t0) as f64 / 1e9;
    // Missing, over subscribers still connected.
    let mut missing = 0u64;
    let mut subs_missing = 0u64;
    for s in h.subs.iter().filter(|s| s.open && !s.gone) {
        if s.unique < h.accepted {
            missing += h.accepted - s.unique;
            subs_missing += 1;
        }
    }
    let live_at_end = h.live_subs;
    pool.drop_all();

    let delivered_rate = h.deliveries as f64 / window_s.max(1e-9);
    println!(
        "  published {} ({} accepted, {} rejected{}) in {:.2}s: {:.0} publishes/s{}",
        h.sent,
        h.accepted,
        h.rejected,
        if h.reject_status.is_empty() {
            String::new()
        } else {
            format!(" e.g. {:?}", h.reject_status)
        },
        publish_s,
        h.sent as f64 / publish_s.max(1e-9),
        match rate {
            Some(r) => format!(" (target {r:.0}/s)"),
            None =>
                format!(" (flat out, window {window}, max lag {max_lag}, paused {lag_pauses}x)"),
        }
    );
    println!(
        "  delivered {} in {:.2}s: {:.0} deliveries/s to {} subscribers ({} dropped by the server)",
        h.deliveries, window_s, delivered_rate, subs_at_start, h.dropped
    );
    common::print_latency("publish-to-receive", &h.hist);
    common::print_latency("publish response", &h.pub_rtt);
    common::print_cpu(&cpu, h.deliveries, "deliveries");
    println!(
        "  missing {missing} (on {subs_missing} of {live_at_end} connected subscribers), duplicates {}, out-of-order {}, malformed {}, unanswered publishes {}, publisher reconnects {} (resent {})",
        h.duplicates, h.late, h.malformed, unanswered, h.publisher.reconnects, h.publisher.resent
    );
    for r in h.drop_reasons.iter().chain(&h.errors) {
        println!("  {r}");
    }
    if let Some(e) = &h.publisher.error {
        println!("  publisher: {e}");
    }
    let ok = h.publisher.error.is_none()
        && missing == 0
        && h.duplicates == 0
        && h.late == 0
        && h.malformed == 0
        && h.failed == 0;
    let mut j = JsonLine::new();
    j.str("mode", "fanout")
        .str("sub_url", &sub_url)
        .str("publish_url", &pub_url)
        .str("proto", target.proto.name())
        .int("subs", subs as u64)
        .int("subs_open", subs_at_start)
        .int("subs_failed", h.failed as u64)
        .int("subs_dropped", h.dropped as u64)
        .int("size", size as u64)
        .opt_float("rate", rate)
        .int("window", window as u64)
        .int("max_lag", max_lag)
        .int("lag_pauses", lag_pauses)
        .float("publish_s", publish_s)
        .int("published", h.sent)
        .int("accepted", h.accepted)
        .int("rejected", h.rejected)
        .int("unanswered", unanswered)
        .float("publishes_per_sec", h.sent as f64 / publish_s.max(1e-9))
        .int("delivered", h.deliveries)
        .float("delivery_window_s", window_s)
        .float("delivered_per_sec", delivered_rate)
        .int("missing", missing)
        .int("duplicates", h.duplicates)
        .int("out_of_order", h.late)
        .int("malformed", h.malformed)
        .int("foreign", h.foreign)
        .int("publisher_reconnects", h.publisher.reconnects)
        .str(
            "publisher_error",
            h.publisher.error.as_deref().unwrap_or(""),
        );
    common::json_latency(&mut j, "latency", &h.hist);
    common::json_latency(&mut j, "publish_rtt", &h.pub_rtt);
    common::json_cpu(&mut j, &cpu, h.deliveries, "msgs");
    j.bool("ok", ok);
    common::emit(&j);
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let mut b = Vec::new();
        make_payload(&mut b, 42, 123456789, 64);
        assert_eq!(b.len(), 64);
        assert!(b.starts_with(b"42:123456789:xx"));
        assert_eq!(parse_payload(&b), Some((42, 123456789)));
        make_payload(&mut b, 1, 2, 0);
        assert_eq!(b, b"1:2:");
        assert_eq!(parse_payload(b"1:2"), None);
        assert_eq!(parse_payload(b"a:2:"), None);
        assert_eq!(parse_payload(b":2:"), None);
        assert_eq!(parse_payload(b"99999999999999999999999:2:"), None);
        assert_eq!(parse_payload(b"7:8:"), Some((7, 8)));
    }

    #[test]
    fn order_tracking() {
        let mut s = Sub::default();
        assert_eq!(s.see(0), Seen::InOrder { gap: 0 });
        assert_eq!(s.see(1), Seen::InOrder { gap: 0 });
        assert_eq!(s.see(4), Seen::InOrder { gap: 2 });
        assert_eq!(s.see(2), Seen::Late);
        assert_eq!(s.see(2), Seen::Duplicate);
        assert_eq!(s.see(4), Seen::Duplicate);
        assert_eq!(s.see(3), Seen::Late);
        assert_eq!(s.unique, 5);
        assert_eq!(s.see(300), Seen::InOrder { gap: 295 });
        assert_eq!(s.see(299), Seen::Late);
        assert_eq!(s.see(5), Seen::Late); // beyond the window: counted late
        assert_eq!(s.unique, 8);
    }
}
