//! Pieces every mode shares: options common to all, the bounded
//! connect-everyone phase, server sampling and report formatting.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::args::Args;
use crate::client::{Handler, Pool, Proto, Target};
use crate::hist::Histogram;
use crate::json::JsonLine;
use crate::sys::{self, ProcSample};
use crate::tls::TlsClient;
use crate::url::Url;

/// Options most modes take.
pub struct Common {
    pub pid: Option<u32>,
    /// Handshakes in progress at once while connecting.
    pub connect_concurrency: usize,
    /// Time allowed for one connect + handshake.
    pub connect_timeout: Duration,
    /// Source addresses 127.0.0.1..N to spread connects over.
    pub src_ips: u32,
    /// PEM file of the CA (or certificate) to trust for wss:// and https://.
    pub ca: Option<PathBuf>,
    /// Keep TLS sessions and resume them (off: every handshake is full).
    pub tls_resume: bool,
}

impl Common {
    pub fn parse(a: &mut Args, default_src_ips: u32) -> Result<Common, String> {
        let pid = match a.opt("pid")? {
            Some(p) => Some(p.parse().map_err(|_| format!("--pid: bad pid {p:?}"))?),
            None => None,
        };
        if let Some(p) = pid {
            if sys::sample(p).is_none() {
                return Err(format!("--pid {p}: no such process (or /proc unreadable)"));
            }
        }
        Ok(Common {
            pid,
            connect_concurrency: a.num("connect-concurrency", 256usize)?.max(1),
            connect_timeout: a.duration("connect-timeout", Duration::from_secs(10))?,
            src_ips: a.num("src-ips", default_src_ips)?.clamp(1, 250),
            ca: a.opt("ca")?.map(PathBuf::from),
            tls_resume: a.flag("tls-resume"),
        })
    }

    /// The TLS client for a wss:// or https:// URL (None for ws://, http://).
    pub fn tls_for(&self, url: &Url) -> Result<Option<Arc<TlsClient>>, String> {
        if !url.tls {
            return Ok(None);
        }
        let ca = self.ca.as_deref().ok_or_else(|| {
            "a wss:// or https:// URL needs --ca FILE (the PEM certificate of the CA to trust)"
                .to_string()
        })?;
        Ok(Some(Arc::new(TlsClient::new(
            ca,
            url.host(),
            self.tls_resume,
        )?)))
    }
}

pub fn target(url: &str, c: &Common) -> Result<Target, String> {
    let url = Url::parse(url)?;
    let proto = Proto::of(&url);
    let tls = c.tls_for(&url)?;
    Ok(Target { url, proto, tls })
}

/// Connection counters a mode keeps for the connect phase.
pub trait Counts {
    fn opened(&self) -> usize;
    fn failed(&self) -> usize;
}

/// Opens `n` connections, at most `c.connect_concurrency` handshaking at
/// once, each bounded by `c.connect_timeout`, the whole phase by `overall`.
/// Returns the seconds it took.
pub fn connect_all<H: Handler + Counts>(
    pool: &mut Pool,
    h: &mut H,
    n: usize,
    c: &Common,
    overall: Duration,
) -> Result<f64, String> {
    let t0 = sys::now_ns();
    let deadline = t0 + overall.as_nanos() as u64;
    let mut started = 0usize;
    let mut last_expire = t0;
    let mut open_errors = 0usize;
    loop {
        let done = h.opened() + h.failed() + open_errors;
        if done >= n {
            break;
        }
        let now = sys::now_ns();
        if now > deadline {
            eprintln!(
                "connect phase: gave up after {:.1}s with {} of {} open",
                overall.as_secs_f64(),
                h.opened(),
                n
            );
            break;
        }
        let in_progress = started - done;
        let room = c.connect_concurrency.saturating_sub(in_progress);
        for _ in 0..room.min(n - started) {
            match pool.open() {
                Ok(_) => {}
                Err(e) => {
                    open_errors += 1;
                    if open_errors <= 3 {
                        eprintln!("connect: {e}");
                    }
                }
            }
            started += 1;
        }
        pool.turn(Some(Duration::from_millis(5)), h)
            .map_err(|e| format!("poll: {e}"))?;
        if now - last_expire > 100_000_000 {
            pool.expire(c.connect_timeout, h);
            last_expire = now;
        }
    }
    Ok((sys::now_ns() - t0) as f64 / 1e9)
}

/// Keeps the event loop turning until `deadline_ns` (answering pings).
pub fn idle_until<H: Handler>(pool: &mut Pool, h: &mut H, deadline_ns: u64) -> Result<(), String> {
    loop {
        let now = sys::now_ns();
        if now >= deadline_ns {
            return Ok(());
        }
        let wait = Duration::from_nanos((deadline_ns - now).min(50_000_000));
        pool.turn(Some(wait), h).map_err(|e| format!("poll: {e}"))?;
    }
}

pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    pid.and_then(sys::sample)
}

/// `1.23 ms` style, from nanoseconds.
pub fn fmt_ns(ns: u64) -> String {
    let v = ns as f64;
    if v >= 1e9 {
        format!("{:.2} s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} us", v / 1e3)
    } else {
        format!("{ns} ns")
    }
}

pub fn fmt_bytes(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b.abs() >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// Human lines for a latency histogram.
pub fn print_latency(name: &str, h: &Histogram) {
    println!(
        "  {name}: p50 {}  p99 {}  p99.9 {}  max {}  (n={})",
        fmt_ns(h.quantile(0.5)),
        fmt_ns(h.quantile(0.99)),
        fmt_ns(h.quantile(0.999)),
        fmt_ns(h.max()),
        h.count()
    );
}

/// Latency members, in microseconds: `{p}_p50_us`, `_p99_us`, `_p999_us`, `_max_us`.
pub fn json_latency(j: &mut JsonLine, p: &str, h: &Histogram) {
    let us = |v: u64| v as f64 / 1e3;
    j.float(&format!("{p}_p50_us"), us(h.quantile(0.5)))
        .float(&format!("{p}_p99_us"), us(h.quantile(0.99)))
        .float(&format!("{p}_p999_us"), us(h.quantile(0.999)))
        .float(&format!("{p}_max_us"), us(h.max()))
        .float(&format!("{p}_mean_us"), h.mean() / 1e3)
        .int(&format!("{p}_samples"), h.count());
}

/// CPU members shared by every mode.
pub fn json_cpu(j: &mut JsonLine, cpu: &sys::CpuUse, work: u64, work_name: &str) {
    j.float("wall_s", cpu.wall_secs)
        .float("loadgen_cpu_s", cpu.self_secs)
        .float("loadgen_cpu_pct", cpu.self_pct())
        .opt_float("server_cpu_s", cpu.server_secs)
        .opt_float("server_cpu_pct", cpu.server_pct())
        .opt_float(
            &format!("server_cpu_s_per_million_{work_name}"),
            cpu.server_per_million(work),
        );
}

pub fn print_cpu(cpu: &sys::CpuUse, work: u64, work_name: &str) {
    let server = match cpu.server_secs {
        Some(s) => format!(
            "server {:.2} s ({:.0}%), {} s per million {work_name}",
            s,
            cpu.server_pct().unwrap_or(0.0),
            cpu.server_per_million(work)
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| "-".into())
        ),
        None => "server CPU unknown (no --pid)".into(),
    };
    println!(
        "  cpu: loadgen {:.2} s ({:.0}% of one core), {server}",
        cpu.self_secs,
        cpu.self_pct()
    );
}

/// Prints the report line: the last line of stdout.
pub fn emit(j: &JsonLine) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", j.finish());
    let _ = out.flush();
}
