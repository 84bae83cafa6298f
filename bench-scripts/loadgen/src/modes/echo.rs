//! `echo`: N WebSocket connections, each keeping K messages in flight to an
//! echo endpoint. Every echo is compared byte for byte with what was sent
//! (payloads are slices of a random pool at an offset derived from the
//! connection and the message number, so checking costs a memcmp).
//! Reports messages/s and round-trip percentiles over the measured window.

use std::collections::VecDeque;
use std::time::Duration;

use crate::args::{parse_size, Args};
use crate::client::{Ev, Gone, Handler, Outbox, Pool, Proto};
use crate::hist::Histogram;
use crate::json::JsonLine;
use crate::modes::common::{self, Common, Counts};
use crate::proto::ws;
use crate::rng::Rng;
use crate::sys;

const POOL: usize = 1 << 16;

struct PerConn {
    sent: u64,
    recv: u64,
    /// Send times of the messages in flight, oldest first.
    sent_at: VecDeque<u64>,
    open: bool,
}

struct Echo {
    conns: Vec<PerConn>,
    payloads: Vec<u8>,
    size: usize,
    inflight: usize,
    binary: bool,
    running: bool,
    measuring: bool,
    hist: Histogram,
    measured_msgs: u64,
    total_echoes: u64,
    mismatches: u64,
    first_mismatch: Option<String>,
    opened: usize,
    failed: usize,
    lost_conns: usize,
    errors: Vec<String>,
}

fn offset(conn: usize, seq: u64) -> usize {
    let h =
        (conn as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((h ^ (h >> 29)) % POOL as u64) as usize
}

impl Echo {
    fn payload(&self, conn: usize, seq: u64) -> &[u8] {
        let o = offset(conn, seq);
        &self.payloads[o..o + self.size]
    }

    fn send_one(&mut self, idx: usize, out: &mut Outbox) {
        let seq = self.conns[idx].sent;
        let op = if self.binary {
            ws::OpCode::Binary
        } else {
            ws::OpCode::Text
        };
        let o = offset(idx, seq);
        out.send(op, &self.payloads[o..o + self.size]);
        let c = &mut self.conns[idx];
        c.sent += 1;
        c.sent_at.push_back(sys::now_ns());
    }

    fn outstanding(&self) -> u64 {
        self.conns
            .iter()
            .filter(|c| c.open)
            .map(|c| c.sent - c.recv)
            .sum()
    }
}

impl Counts for Echo {
    fn opened(&self) -> usize {
        self.opened
    }
    fn failed(&self) -> usize {
        self.failed
    }
}

impl Handler for Echo {
    fn on_event(&mut self, idx: usize, ev: Ev<'_>, out: &mut Outbox) {
        if self.conns.len() <= idx {
            self.conns.resize_with(idx + 1, || PerConn {
                sent: 0,
                recv: 0,
                sent_at: VecDeque::new(),
                open: false,
            });
        }
        match ev {
            Ev::Open { .. } => {
                self.opened += 1;
                // A slot may be reused after a failed connection.
                self.conns[idx] = PerConn {
                    sent: 0,
                    recv: 0,
                    sent_at: VecDeque::new(),
                    open: true,
                };
            }
            Ev::Msg {
                text,
                data,
                at_ns: now,
            } => {
                let seq = self.conns[idx].recv;
                let ok = text != self.binary && data == self.payload(idx, seq);
                if !ok {
                    self.mismatches += 1;
                    if self.first_mismatch.is_none() {
                        let show =
                            |d: &[u8]| String::from_utf8_lossy(&d[..d.len().min(40)]).into_owned();
                        self.first_mismatch = Some(format!(
                            "conn {idx} message {seq}: got {} bytes ({}) {:?}, want {} bytes {:?}",
                            data.len(),
                            if text { "text" } else { "binary" },
                            show(data),
                            self.size,
                            show(self.payload(idx, seq)),
                        ));
                    }
                }
                let c = &mut self.conns[idx];
                c.recv += 1;
                let t = c.sent_at.pop_front().unwrap_or(now);
                self.total_echoes += 1;
                if self.measuring {
                    self.hist.record(now.saturating_sub(t));
                    self.measured_msgs += 1;
                }
                if self.running {
                    self.send_one(idx, out);
                }
            }
        }
    }

    fn on_gone(&mut self, idx: usize, why: Gone) {
        let was_open = self.conns.get(idx).is_some_and(|c| c.open);
        if was_open {
            self.conns[idx].open = false;
            self.lost_conns += 1;
        } else {
            self.failed += 1;
        }
        if self.errors.len() < 5 {
            self.errors.push(format!("conn {idx}: {why:?}"));
        }
    }
}

pub fn run(mut a: Args) -> Result<i32, String> {
    let url = a.req("url")?;
    let conns: usize = a.num("conns", 100)?;
    let inflight: usize = a.num("inflight", 1)?;
    let size = parse_size(&a.opt("size")?.unwrap_or_else(|| "32".into()))?;
    let binary = a.flag("binary");
    let duration = a.duration("duration", Duration::from_secs(10))?;
    let warmup = a.duration("warmup", Duration::from_secs(2))?;
    let drain = a.duration("drain", Duration::from_secs(5))?;
    let common = Common::parse(&mut a, 1)?;
    a.finish()?;
    let target = common::target(&url, &common)?;
    if target.proto != Proto::Ws {
        return Err("echo needs a ws:// URL".into());
    }
    if conns == 0 || inflight == 0 {
        return Err("--conns and --inflight must be at least 1".into());
    }
    sys::raise_nofile();

    let mut rng = Rng::from_entropy();
    let mut payloads = vec![0u8; POOL + size];
    for b in payloads.iter_mut() {
        let r = rng.next_u64();
        *b = if binary {
            r as u8
        } else {
            b'a' + (r % 26) as u8
        };
    }
    let mut h = Echo {
        conns: Vec::new(),
        payloads,
        size,
        inflight,
        binary,
        running: false,
        measuring: false,
        hist: Histogram::new(),
        measured_msgs: 0,
        total_echoes: 0,
        mismatches: 0,
        first_mismatch: None,
        opened: 0,
        failed: 0,
        lost_conns: 0,
        errors: Vec::new(),
    };
    let mut pool = Pool::new(target.clone(), common.src_ips).map_err(|e| e.to_string())?;
    let connect_s =
        common::connect_all(&mut pool, &mut h, conns, &common, Duration::from_secs(60))?;
    println!(
        "echo: {} of {} connections open in {:.2}s ({}), {} in flight each, {} B {}",
        h.opened,
        conns,
        connect_s,
        url,
        inflight,
        size,
        if binary { "binary" } else { "text" }
    );
    if h.opened == 0 {
        for e in &h.errors {
            eprintln!("  {e}");
        }
        return Err("no connection opened".into());
    }

    // Start: K messages on every open connection.
    h.running = true;
    for idx in 0..h.conns.len() {
        if h.conns[idx].open {
            pool.send(idx, &mut h, |h, ob| {
                for _ in 0..h.inflight {
                    h.send_one(idx, ob);
                }
            });
        }
    }
    let t_start = sys::now_ns();
    let t_measure = t_start + warmup.as_nanos() as u64;
    let t_end = t_measure + duration.as_nanos() as u64;
    let mut cpu_win = None;
    let mut cpu = None;
    loop {
        let now = sys::now_ns();
        if cpu_win.is_none() && now >= t_measure {
            h.hist.clear();
            h.measured_msgs = 0;
            h.measuring = true;
            cpu_win = Some(sys::CpuWindow::start(common.pid));
        }
        if now >= t_end {
            break;
        }
        let next = if cpu_win.is_none() { t_measure } else { t_end };
        let wait = Duration::from_nanos((next - now).clamp(100_000, 50_000_000));
        pool.turn(Some(wait), &mut h)
            .map_err(|e| format!("poll: {e}"))?;
        if pool.live() == 0 {
            break;
        }
    }
    h.measuring = false;
    h.running = false;
    if let Some(w) = &cpu_win {
        cpu = Some(w.stop());
    }
    let cpu = cpu.unwrap_or_else(|| sys::CpuWindow::start(common.pid).stop());
    // Drain: every message sent must come back.
    let drain_end = sys::now_ns() + drain.as_nanos() as u64;
    while h.outstanding() > 0 && sys::now_ns() < drain_end && pool.live() > 0 {
        pool.turn(Some(Duration::from_millis(10)), &mut h)
            .map_err(|e| format!("poll: {e}"))?;
    }
    let missing = h.outstanding();
    pool.drop_all();

    let rate = h.measured_msgs as f64 / cpu.wall_secs.max(1e-9);
    println!(
        "  {} echoes in {:.2}s measured: {:.0} msgs/s ({:.1} MB/s each way)",
        h.measured_msgs,
        cpu.wall_secs,
        rate,
        rate * size as f64 / 1e6
    );
    common::print_latency("rtt", &h.hist);
    common::print_cpu(&cpu, h.measured_msgs, "messages");
    println!(
        "  checked {} echoes: {} mismatched, {} missing after drain, {} connections lost, {} failed to open",
        h.total_echoes, h.mismatches, missing, h.lost_conns, h.failed
    );
    if let Some(m) = &h.first_mismatch {
        println!("  first mismatch: {m}");
    }
    for e in &h.errors {
        println!("  {e}");
    }
    let ok = h.mismatches == 0 && missing == 0 && h.lost_conns == 0 && h.failed == 0;
    let mut j = JsonLine::new();
    j.str("mode", "echo")
        .str("url", &url)
        .int("conns", conns as u64)
        .int("conns_open", h.opened as u64)
        .int("conns_failed", h.failed as u64)
        .int("conns_lost", h.lost_conns as u64)
        .int("inflight", inflight as u64)
        .int("size", size as u64)
        .bool("binary", binary)
        .float("warmup_s", warmup.as_secs_f64())
        .int("msgs", h.measured_msgs)
        .float("msgs_per_sec", rate)
        .int("echoes_checked", h.total_echoes)
        .int("mismatches", h.mismatches)
        .int("missing", missing);
    common::json_latency(&mut j, "rtt", &h.hist);
    common::json_cpu(&mut j, &cpu, h.measured_msgs, "msgs");
    j.bool("ok", ok);
    common::emit(&j);
    Ok(if ok { 0 } else { 1 })
}
