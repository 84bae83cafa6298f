//! `churn`: opens connections at a steady rate, completes each handshake and
//! closes it again (a WebSocket close handshake, or for SSE a plain close),
//! for the whole duration. The server's fds and RSS are sampled before,
//! once a second during, and after it settles; drift = after - before.
//!
//! Over TLS (wss://, https://) every cycle is also a TLS handshake: full
//! ones unless `--tls-resume`. A handshake counts as completed when the
//! TLS handshake is done and the HTTP or WebSocket answer has arrived;
//! the report gives completed handshakes per second of wall time and per
//! second of server CPU (the server runs on one core, so the latter is
//! handshakes per second per core, whether or not the client kept the
//! server busy), how many were full or resumed, the version and cipher
//! suite, and the TLS part of the handshake time.

use std::time::Duration;

use crate::args::{parse_rate, Args};
use crate::client::{Ev, Gone, Handler, Outbox, Pool};
use crate::hist::Histogram;
use crate::json::JsonLine;
use crate::modes::common::{self, fmt_bytes, Common};
use crate::sys::{self, ProcSample};
use crate::tls::{self, TlsOpen};

#[derive(Default)]
struct Churn {
    opened: u64,
    closed: u64,
    failed: u64,
    rejected: u64,
    server_closed: u64,
    errors: Vec<String>,
    handshake: Histogram,
    /// Completed TLS handshakes (with their HTTP answer), full and resumed.
    tls_full: u64,
    tls_resumed: u64,
    /// TCP connect to TLS handshake done.
    tls_handshake: Histogram,
    /// The first TLS connection's outcome (version, suite).
    tls_first: Option<TlsOpen>,
    tls_other_version: u64,
}

impl Handler for Churn {
    fn on_event(&mut self, _idx: usize, ev: Ev<'_>, out: &mut Outbox) {
        if let Ev::Open { handshake_ns, tls } = ev {
            self.opened += 1;
            self.handshake.record(handshake_ns);
            if let Some(t) = tls {
                if t.kind == Some(rustls::HandshakeKind::Resumed) {
                    self.tls_resumed += 1;
                } else {
                    self.tls_full += 1;
                }
                self.tls_handshake.record(t.handshake_ns);
                match &self.tls_first {
                    None => self.tls_first = Some(t),
                    Some(f) if f.version != t.version => self.tls_other_version += 1,
                    Some(_) => {}
                }
            }
            out.close();
        }
    }

    fn on_gone(&mut self, idx: usize, why: Gone) {
        match &why {
            Gone::Local => {
                self.closed += 1;
                return;
            }
            Gone::Rejected(_) => self.rejected += 1,
            Gone::Eof | Gone::ServerClose(_) => self.server_closed += 1,
            Gone::Error(_) => self.failed += 1,
        }
        if self.errors.len() < 5 {
            self.errors.push(format!("conn {idx}: {why:?}"));
        }
    }
}

pub fn run(mut a: Args) -> Result<i32, String> {
    let url = a.req("url")?;
    let rate = parse_rate(&a.opt("rate")?.unwrap_or_else(|| "500/s".into()))?;
    let duration = a.duration("duration", Duration::from_secs(120))?;
    let settle = a.duration("settle", Duration::from_secs(10))?;
    let max_open: usize = a.num("max-open", 2000)?;
    let common = Common::parse(&mut a, 16)?;
    a.finish()?;
    let target = common::target(&url, &common)?;
    if rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    sys::raise_nofile();
    let before = common::sample(common.pid);
    let mut pool = Pool::new(target.clone(), common.src_ips).map_err(|e| e.to_string())?;
    let mut h = Churn {
        handshake: Histogram::new(),
        tls_handshake: Histogram::new(),
        ..Default::default()
    };
    let is_tls = target.tls.is_some();

    let cpu_win = sys::CpuWindow::start(common.pid);
    let t0 = sys::now_ns();
    let end = t0 + duration.as_nanos() as u64;
    let mut started = 0u64;
    let mut behind = 0u64;
    let mut open_errors = 0u64;
    let mut samples: Vec<(f64, ProcSample)> = Vec::new();
    let mut next_sample = t0 + 1_000_000_000;
    let mut last_expire = t0;
    loop {
        let now = sys::now_ns();
        if now >= end {
            break;
        }
        let due = ((now - t0) as f64 / 1e9 * rate) as u64;
        while started < due {
            if pool.live() >= max_open {
                behind += due - started;
                started = due;
                break;
            }
            started += 1;
            if let Err(e) = pool.open() {
                open_errors += 1;
                if h.errors.len() < 5 {
                    h.errors.push(format!("connect: {e}"));
                }
            }
        }
        if now >= next_sample {
            if let Some(s) = common::sample(common.pid) {
                samples.push(((now - t0) as f64 / 1e9, s));
            }
            next_sample += 1_000_000_000;
        }
        if now - last_expire > 100_000_000 {
            pool.expire(common.connect_timeout, &mut h);
            last_expire = now;
        }
        let step = ((1e9 / rate) as u64).clamp(100_000, 10_000_000);
        pool.turn(Some(Duration::from_nanos(step.min(end - now))), &mut h)
            .map_err(|e| format!("poll: {e}"))?;
    }
    // Let the last closes finish (bounded), then stop counting.
    let close_end = sys::now_ns() + common.connect_timeout.as_nanos() as u64;
    while pool.live() > 0 && sys::now_ns() < close_end {
        pool.turn(Some(Duration::from_millis(10)), &mut h)
            .map_err(|e| format!("poll: {e}"))?;
    }
    let leftover = pool.live() as u64;
    pool.drop_all();
    let cpu = cpu_win.stop();
    let wall = (sys::now_ns() - t0) as f64 / 1e9;

    // Settle: wait until the server's fd count is back to its baseline, or
    // stops changing for a second, bounded by --settle.
    let mut after = common::sample(common.pid);
    if let (Some(b), Some(_)) = (before, after) {
        let settle_end = sys::now_ns() + settle.as_nanos() as u64;
        let mut stable_since = sys::now_ns();
        let mut last_fds = after.map(|s| s.fds).unwrap_or(0);
        while sys::now_ns() < settle_end {
            std::thread::sleep(Duration::from_millis(100));
            let s = common::sample(common.pid);
            after = s.or(after);
            let fds = after.map(|s| s.fds).unwrap_or(0);
            if fds <= b.fds {
                break;
            }
            if fds != last_fds {
                last_fds = fds;
                stable_since = sys::now_ns();
            } else if sys::now_ns() - stable_since > 1_000_000_000 {
                break;
            }
        }
    }

    let cycles = h.closed;
    println!(
        "churn: {} connect/handshake/close cycles in {:.1}s ({:.0}/s, target {:.0}/s) to {} ({})",
        cycles,
        wall,
        cycles as f64 / wall.max(1e-9),
        rate,
        target.proto.name(),
        url
    );
    println!(
        "  opened {}, closed cleanly {}, closed by server {}, rejected {}, failed {} (+{} connect errors), skipped {} (over --max-open), unfinished {}",
        h.opened, h.closed, h.server_closed, h.rejected, h.failed, open_errors, behind, leftover
    );
    common::print_latency("handshake", &h.handshake);
    let tls_done = h.tls_full + h.tls_resumed;
    let hs_per_sec = tls_done as f64 / wall.max(1e-9);
    let hs_per_cpu = match cpu.server_secs {
        Some(s) if s > 0.0 && is_tls => Some(tls_done as f64 / s),
        _ => None,
    };
    if is_tls {
        let first = h.tls_first;
        println!(
            "  TLS: {} handshakes completed ({:.0}/s; {} per server CPU-second): {} full, {} resumed ({}), {} {}{}",
            tls_done,
            hs_per_sec,
            hs_per_cpu.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into()),
            h.tls_full,
            h.tls_resumed,
            if common.tls_resume { "resumption on" } else { "resumption off" },
            first.and_then(|t| t.version).map(tls::version_name).unwrap_or_default(),
            first.and_then(|t| t.suite).map(tls::suite_name).unwrap_or_default(),
            if h.tls_other_version > 0 {
                format!(" ({} on another version)", h.tls_other_version)
            } else {
                String::new()
            }
        );
        common::print_latency("TLS handshake", &h.tls_handshake);
    }
    let drift = match (before, after) {
        (Some(b), Some(a)) => {
            let rss_max = samples.iter().map(|(_, s)| s.rss).max().unwrap_or(a.rss);
            println!(
                "  server fds {} -> {} (drift {:+}), RSS {} -> {} (drift {}, peak while churning {})",
                b.fds,
                a.fds,
                a.fds as i64 - b.fds as i64,
                fmt_bytes(b.rss as f64),
                fmt_bytes(a.rss as f64),
                fmt_bytes(a.rss as f64 - b.rss as f64),
                fmt_bytes(rss_max as f64)
            );
            Some((b, a, rss_max))
        }
        _ => {
            println!("  server fds/RSS unknown (no --pid)");
            None
        }
    };
    common::print_cpu(&cpu, cycles, "connections");
    for e in &h.errors {
        println!("  {e}");
    }
    let fd_drift = drift.map(|(b, a, _)| a.fds as i64 - b.fds as i64);
    let ok = h.failed == 0 && h.rejected == 0 && open_errors == 0 && fd_drift.unwrap_or(0) <= 0;
    let mut j = JsonLine::new();
    j.str("mode", "churn")
        .str("url", &url)
        .str("proto", target.proto.name())
        .float("rate", rate)
        .float("duration_s", wall)
        .int("cycles", cycles)
        .float("cycles_per_sec", cycles as f64 / wall.max(1e-9))
        .int("opened", h.opened)
        .int("server_closed", h.server_closed)
        .int("rejected", h.rejected)
        .int("failed", h.failed + open_errors)
        .int("skipped", behind)
        .int("unfinished", leftover)
        .opt_int("server_fds_before", drift.map(|d| d.0.fds))
        .opt_int("server_fds_after", drift.map(|d| d.1.fds))
        .opt_int("server_rss_before", drift.map(|d| d.0.rss))
        .opt_int("server_rss_after", drift.map(|d| d.1.rss))
        .opt_int("server_rss_peak", drift.map(|d| d.2));
    match drift {
        Some((b, a, _)) => {
            j.float("server_fd_drift", a.fds as f64 - b.fds as f64)
                .float("server_rss_drift", a.rss as f64 - b.rss as f64);
        }
        None => {
            j.opt_float("server_fd_drift", None)
                .opt_float("server_rss_drift", None);
        }
    }
    common::json_latency(&mut j, "handshake", &h.handshake);
    j.bool("tls", is_tls);
    if is_tls {
        let first = h.tls_first;
        j.int("tls_handshakes", tls_done)
            .float("tls_handshakes_per_sec", hs_per_sec)
            .opt_float("tls_handshakes_per_server_cpu_s", hs_per_cpu)
            .int("tls_full", h.tls_full)
            .int("tls_resumed", h.tls_resumed)
            .bool("tls_resume", common.tls_resume)
            .str(
                "tls_version",
                &first
                    .and_then(|t| t.version)
                    .map(tls::version_name)
                    .unwrap_or_default(),
            )
            .str(
                "tls_suite",
                &first
                    .and_then(|t| t.suite)
                    .map(tls::suite_name)
                    .unwrap_or_default(),
            )
            .int("tls_other_version", h.tls_other_version);
        common::json_latency(&mut j, "tls_handshake", &h.tls_handshake);
    }
    common::json_cpu(&mut j, &cpu, cycles, "conns");
    j.bool("ok", ok);
    common::emit(&j);
    Ok(if ok { 0 } else { 1 })
}
