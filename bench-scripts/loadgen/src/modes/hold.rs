//! `hold`: opens N idle connections (handshakes complete), then holds them,
//! sampling the server's RSS and fd count before connecting and once a
//! second while holding, from `--sample-after` on (by default 500 ms after
//! the last connection opened; a server that parks idle connections after
//! a delay is measured in its steady state by waiting longer than that).
//! Reports bytes of RSS and fds per held connection (median of the samples
//! taken while holding, minus the baseline).

use std::time::Duration;

use crate::args::Args;
use crate::client::{Ev, Gone, Handler, Outbox, Pool};
use crate::json::JsonLine;
use crate::modes::common::{self, fmt_bytes, Common, Counts};
use crate::sys::{self, ProcSample};

struct Hold {
    opened: usize,
    failed: usize,
    lost: usize,
    msgs: u64,
    errors: Vec<String>,
    open: Vec<bool>,
}

impl Counts for Hold {
    fn opened(&self) -> usize {
        self.opened
    }
    fn failed(&self) -> usize {
        self.failed
    }
}

impl Handler for Hold {
    fn on_event(&mut self, idx: usize, ev: Ev<'_>, _out: &mut Outbox) {
        if self.open.len() <= idx {
            self.open.resize(idx + 1, false);
        }
        match ev {
            Ev::Open { .. } => {
                self.opened += 1;
                self.open[idx] = true;
            }
            Ev::Msg { .. } => self.msgs += 1,
        }
    }

    fn on_gone(&mut self, idx: usize, why: Gone) {
        if self.open.get(idx).copied().unwrap_or(false) {
            self.open[idx] = false;
            self.lost += 1;
        } else {
            self.failed += 1;
        }
        if self.errors.len() < 5 {
            self.errors.push(format!("conn {idx}: {why:?}"));
        }
    }
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

pub fn run(mut a: Args) -> Result<i32, String> {
    let url = a.req("url")?;
    let conns: usize = a.num("conns", 1000)?;
    let hold = a.duration("hold", Duration::from_secs(10))?;
    let sample_after = a.duration("sample-after", Duration::from_millis(500))?;
    let common = Common::parse(&mut a, 1)?;
    a.finish()?;
    let target = common::target(&url, &common)?;
    let limit = sys::raise_nofile();
    if conns as u64 + 64 > limit {
        return Err(format!(
            "--conns {conns} needs more descriptors than RLIMIT_NOFILE {limit} allows"
        ));
    }
    let before = common::sample(common.pid);
    let self_before = sys::self_rss().unwrap_or(0);

    let mut pool = Pool::new(target.clone(), common.src_ips).map_err(|e| e.to_string())?;
    let mut h = Hold {
        opened: 0,
        failed: 0,
        lost: 0,
        msgs: 0,
        errors: Vec::new(),
        open: Vec::with_capacity(conns),
    };
    let overall = Duration::from_secs(30 + conns as u64 / 500);
    let connect_s = common::connect_all(&mut pool, &mut h, conns, &common, overall)?;
    let held = h.opened - h.lost;
    println!(
        "hold: {} of {} {} connections open in {:.2}s ({:.0}/s) ({url})",
        h.opened,
        conns,
        target.proto.name(),
        connect_s,
        h.opened as f64 / connect_s.max(1e-9)
    );
    if h.opened == 0 {
        for e in &h.errors {
            eprintln!("  {e}");
        }
        return Err("no connection opened".into());
    }

    let cpu_win = sys::CpuWindow::start(common.pid);
    let t0 = sys::now_ns();
    let end = t0 + hold.as_nanos() as u64;
    let mut samples: Vec<ProcSample> = Vec::new();
    if sample_after >= hold {
        return Err(format!(
            "--sample-after {sample_after:?} leaves no sample in --hold {hold:?}"
        ));
    }
    let mut next_sample = t0 + sample_after.as_nanos() as u64;
    loop {
        let now = sys::now_ns();
        if now >= end {
            break;
        }
        if now >= next_sample {
            if let Some(s) = common::sample(common.pid) {
                samples.push(s);
            }
            next_sample += 1_000_000_000;
        }
        common::idle_until(&mut pool, &mut h, next_sample.min(end))?;
    }
    if let Some(s) = common::sample(common.pid) {
        samples.push(s);
    }
    let cpu = cpu_win.stop();
    let still_open = h.opened - h.lost;
    let self_rss = sys::self_rss().unwrap_or(0);
    pool.drop_all();

    let rss_held = median(samples.iter().map(|s| s.rss).collect());
    let fds_held = median(samples.iter().map(|s| s.fds).collect());
    let per = |held_v: Option<u64>, base: Option<u64>| match (held_v, base) {
        (Some(a), Some(b)) if held > 0 => Some((a as f64 - b as f64) / held as f64),
        _ => None,
    };
    let rss_per = per(rss_held, before.map(|s| s.rss));
    let fds_per = per(fds_held, before.map(|s| s.fds));
    println!(
        "  held {} for {:.1}s ({} still open at the end, {} messages received, {} failed to open)",
        held,
        hold.as_secs_f64(),
        still_open,
        h.msgs,
        h.failed
    );
    match (before, rss_held, fds_held) {
        (Some(b), Some(r), Some(f)) => println!(
            "  server: RSS {} -> {} ({} per connection), fds {} -> {} ({:.2} per connection)",
            fmt_bytes(b.rss as f64),
            fmt_bytes(r as f64),
            fmt_bytes(rss_per.unwrap_or(0.0)),
            b.fds,
            f,
            fds_per.unwrap_or(0.0)
        ),
        _ => println!("  server memory unknown (no --pid)"),
    }
    println!(
        "  loadgen RSS {} ({} per connection)",
        fmt_bytes(self_rss as f64),
        fmt_bytes((self_rss as f64 - self_before as f64) / held.max(1) as f64)
    );
    common::print_cpu(&cpu, held as u64, "connections");
    for e in &h.errors {
        println!("  {e}");
    }
    let ok = h.failed == 0 && h.lost == 0;
    let mut j = JsonLine::new();
    j.str("mode", "hold")
        .str("url", &url)
        .str("proto", target.proto.name())
        .int("conns", conns as u64)
        .int("conns_open", h.opened as u64)
        .int("conns_failed", h.failed as u64)
        .int("conns_lost", h.lost as u64)
        .float("connect_s", connect_s)
        .float("hold_s", hold.as_secs_f64())
        .float("sample_after_s", sample_after.as_secs_f64())
        .int("samples", samples.len() as u64)
        .opt_int("server_rss_before", before.map(|s| s.rss))
        .opt_int("server_rss_held", rss_held)
        .opt_float("server_rss_per_conn", rss_per)
        .opt_int("server_fds_before", before.map(|s| s.fds))
        .opt_int("server_fds_held", fds_held)
        .opt_float("server_fds_per_conn", fds_per)
        .int("loadgen_rss", self_rss);
    common::json_cpu(&mut j, &cpu, held as u64, "conns");
    j.bool("ok", ok);
    common::emit(&j);
    Ok(if ok { 0 } else { 1 })
}
