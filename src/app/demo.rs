//! The live demos of the built-in pages (only when `static.dir` is not set
//! and `demo.enabled`): one publisher thread that feeds the tickers demo
//! (prices, clock, server load) and runs the progress demo's simulated jobs,
//! and the fixed settings of the demo chat's WebSocket endpoint.
//!
//! A progress job starts when its stream has subscribed (the room's home
//! counts the subscriber before it numbers any later message), so the page
//! cannot miss an early progress event, whatever the delay between the click
//! and the stream connecting.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::conn::worker::Shared;
use crate::hub::{Hub, HubError, Message};

/// Room of the tickers demo.
pub const TICKERS_ROOM: &str = "demo-tickers";
/// Room of the chat demo.
/// The chat demo's WebSocket endpoint (written into `assets/demo/chat.html`).
pub const CHAT_PATH: &str = "/demo/chat/ws";

pub const CHAT_ROOM: &str = "demo-chat";
/// A progress job publishes to `demo-job-{id}`.
pub const JOB_ROOM_PREFIX: &str = "demo-job-";
/// What a chat message becomes: every field HTML-escaped, appended to
/// `#messages` out of band (htmx `hx-swap-oob`).
pub const CHAT_TEMPLATE: &str = r#"<div id="messages" hx-swap-oob="beforeend"><p class="msg"><b>{{user}}</b>: {{message}}</p></div>"#;
/// Progress jobs waiting for their stream or running at once; beyond it: 503.
pub const MAX_JOBS: usize = 64;
/// A job whose stream never subscribes is forgotten after this long.
const JOB_WAIT: Duration = Duration::from_secs(30);
/// A job advances this much per step...
const JOB_STEP_PERCENT: u32 = 5;
/// ...every this long (about 2 seconds from 0 to 100%).
const JOB_STEP: Duration = Duration::from_millis(100);

/// Starts progress jobs from the workers (held in [`Shared`]).
pub struct Jobs {
    tx: flume::Sender<u64>,
    next: AtomicU64,
    /// Jobs not finished yet (waiting or running).
    active: Arc<AtomicUsize>,
}

impl Jobs {
    /// The handle and the receiving end for the publisher thread.
    pub fn new() -> (Jobs, flume::Receiver<u64>, Arc<AtomicUsize>) {
        let (tx, rx) = flume::bounded(MAX_JOBS);
        let active = Arc::new(AtomicUsize::new(0));
        let jobs = Jobs {
            tx,
            next: AtomicU64::new(1),
            active: active.clone(),
        };
        (jobs, rx, active)
    }

    /// Queues a new job; its id names its room. Errs when [`MAX_JOBS`] are active.
    pub fn start(&self) -> Result<u64, &'static str> {
        let n = self.active.fetch_add(1, Ordering::Relaxed);
        if n >= MAX_JOBS {
            self.active.fetch_sub(1, Ordering::Relaxed);
            return Err("too many demo progress jobs are running; try again in a few seconds");
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(id).is_err() {
            self.active.fetch_sub(1, Ordering::Relaxed);
            return Err("the demo publisher is not running");
        }
        Ok(id)
    }
}

/// The fragment `POST /demo/progress/start` answers: a stream on the job's
/// room whose `progress` events fill the bar and whose `done` event closes it.
pub fn job_fragment(id: u64, sse_path: &str) -> String {
    format!(
        r#"<div class="job" hx-ext="sse" sse-connect="{sse_path}?room={JOB_ROOM_PREFIX}{id}" sse-close="done">
  <p>Job {id}</p>
  <div class="bar" sse-swap="progress"><div class="fill" style="width:0%"></div><span>0%</span></div>
  <p class="status" sse-swap="done">running&hellip;</p>
</div>
"#
    )
}

fn progress_fragment(percent: u32) -> String {
    format!(r#"<div class="fill" style="width:{percent}%"></div><span>{percent}%</span>"#)
}

enum JobState {
    /// Waiting for its stream to subscribe (since when).
    Waiting(Instant),
    /// Running: percent done.
    Running(u32),
}

/// A tiny deterministic generator for the prices (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The symbols of the tickers demo and their starting prices.
const SYMBOLS: [(&str, f64); 3] = [("ACME", 120.0), ("GLOBEX", 48.5), ("INITECH", 310.0)];

/// Starts the publisher thread. It stops when the server does (the hub answers `Closed`).
pub fn spawn(
    shared: Arc<Shared>,
    hub: Hub,
    rx: flume::Receiver<u64>,
    active: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("demo".into())
        .spawn(move || {
            if let Err(e) = run(&shared, &hub, &rx, &active) {
                log::debug!("demo publisher stopped: {e}");
            }
        })?;
    Ok(())
}

fn run(
    shared: &Shared,
    hub: &Hub,
    rx: &flume::Receiver<u64>,
    active: &AtomicUsize,
) -> Result<(), HubError> {
    let interval = shared.cfg.demo.interval.0;
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let mut prices: Vec<f64> = SYMBOLS.iter().map(|s| s.1).collect();
    let mut jobs: Vec<(u64, JobState)> = Vec::new();
    let mut next_tick = Instant::now();
    let mut next_step = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + interval;
            if hub.room_info_blocking(TICKERS_ROOM)?.subscribers > 0 {
                publish_tickers(shared, hub, &mut rng, &mut prices)?;
            }
        }
        let wait = if jobs.is_empty() {
            next_tick
        } else {
            next_tick.min(next_step)
        }
        .saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(id) => jobs.push((id, JobState::Waiting(Instant::now()))),
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        while let Ok(id) = rx.try_recv() {
            jobs.push((id, JobState::Waiting(Instant::now())));
        }
        if !jobs.is_empty() && Instant::now() >= next_step {
            next_step = Instant::now() + JOB_STEP;
            let before = jobs.len();
            step_jobs(hub, &mut jobs)?;
            active.fetch_sub(before - jobs.len(), Ordering::Relaxed);
        }
    }
}

/// Advances every job one step (at most once per [`JOB_STEP`], as the loop wakes).
fn step_jobs(hub: &Hub, jobs: &mut Vec<(u64, JobState)>) -> Result<(), HubError> {
    let mut i = 0;
    while i < jobs.len() {
        let (id, state) = &mut jobs[i];
        let room = format!("{JOB_ROOM_PREFIX}{id}");
        let finished = match state {
            JobState::Waiting(since) => {
                if hub.room_info_blocking(&room)?.subscribers > 0 {
                    *state = JobState::Running(0);
                    false
                } else {
                    since.elapsed() > JOB_WAIT
                }
            }
            JobState::Running(p) => {
                *p = (*p + JOB_STEP_PERCENT).min(100);
                send(
                    hub,
                    &room,
                    Message::with_event("progress", progress_fragment(*p)),
                )?;
                if *p == 100 {
                    send(
                        hub,
                        &room,
                        Message::with_event("done", format!("Job {id} done.")),
                    )?;
                }
                *p == 100
            }
        };
        if finished {
            jobs.swap_remove(i);
        } else {
            i += 1;
        }
    }
    Ok(())
}

fn publish_tickers(
    shared: &Shared,
    hub: &Hub,
    rng: &mut Rng,
    prices: &mut [f64],
) -> Result<(), HubError> {
    for (i, (sym, _)) in SYMBOLS.iter().enumerate() {
        let old = prices[i];
        let change = (rng.next_f64() - 0.5) * 0.02 * old;
        let new = (old + change).max(0.01);
        prices[i] = new;
        let (class, arrow) = if new >= old {
            ("up", "&#9650;")
        } else {
            ("down", "&#9660;")
        };
        let html = format!(r#"<span class="{class}">{new:.2} {arrow}</span>"#);
        send(
            hub,
            TICKERS_ROOM,
            Message::with_event(format!("price-{sym}"), html),
        )?;
    }
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let clock = format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    send(hub, TICKERS_ROOM, Message::with_event("clock", clock))?;
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1 = loadavg.split_whitespace().next().unwrap_or("?");
    let conns: u64 = shared.stats.iter().map(|s| s.open.get()).sum();
    let load = format!("load {load1} &middot; {conns} connection(s) open");
    send(hub, TICKERS_ROOM, Message::with_event("load", load))
}

/// Publishes, skipping the message when the room's inbox is full (the demo
/// never blocks the server); stops on `Closed`.
fn send(hub: &Hub, room: &str, msg: Message) -> Result<(), HubError> {
    match hub.publish(room, msg) {
        Err(HubError::Closed) => Err(HubError::Closed),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_page_connects_to_the_chat_endpoint() {
        let page = include_str!("../assets/demo/chat.html");
        assert!(page.contains(&format!("ws-connect=\"{CHAT_PATH}\"")));
    }

    #[test]
    fn jobs_are_bounded() {
        let (jobs, rx, active) = Jobs::new();
        for _ in 0..MAX_JOBS {
            jobs.start().unwrap();
        }
        assert!(jobs.start().unwrap_err().contains("too many"));
        assert_eq!(active.load(Ordering::Relaxed), MAX_JOBS);
        assert_eq!(rx.try_recv().unwrap(), 1);
        drop(rx);
        active.store(0, Ordering::Relaxed);
        assert!(jobs.start().unwrap_err().contains("not running"));
    }

    #[test]
    fn job_fragment_connects_to_its_room_and_closes_on_done() {
        let f = job_fragment(7, "/sse");
        assert!(f.contains(r#"sse-connect="/sse?room=demo-job-7""#), "{f}");
        assert!(f.contains(r#"sse-close="done""#));
        assert!(f.contains(r#"sse-swap="progress""#));
    }

    #[test]
    fn rng_stays_in_unit_interval() {
        let mut r = Rng(12345);
        for _ in 0..1000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
