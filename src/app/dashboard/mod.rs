//! The live dashboard (`dashboard.path`, on by default): a page of the
//! server's own figures, updated over SSE. A sampling thread reads the
//! workers' counters and `/proc`, and publishes one named event per panel
//! (`conns`, `rates`, `workers`, `process`) as an HTML fragment to the
//! reserved room [`ROOM`], only while someone is subscribed to it.

pub mod procstat;
pub mod render;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::conn::worker::Shared;
use crate::hub::{Hub, HubError, Message};
use render::Sample;

/// The room the dashboard feed publishes to; `POST /publish` refuses it.
pub const ROOM: &str = crate::hub::DASHBOARD_ROOM;
/// Samples kept for the trend lines.
const TREND: usize = 60;

/// Starts the sampling thread. It stops when the server does (the hub answers `Closed`).
pub fn spawn(shared: Arc<Shared>, hub: Hub) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || {
            if let Err(e) = run(&shared, &hub) {
                log::debug!("dashboard feed stopped: {e}");
            }
        })?;
    Ok(())
}

/// Counter totals at one instant, to turn into rates.
struct Totals {
    at: Instant,
    published: u64,
    delivered: u64,
    process_ticks: Option<u64>,
    worker_ticks: Vec<Option<u64>>,
}

fn totals(shared: &Shared) -> Totals {
    Totals {
        at: Instant::now(),
        published: shared
            .stats
            .iter()
            .map(|s| s.messages_published.get())
            .sum(),
        delivered: shared
            .stats
            .iter()
            .map(|s| s.messages_delivered.get())
            .sum(),
        process_ticks: procstat::process_ticks(),
        worker_ticks: procstat::worker_ticks(shared.stats.len()),
    }
}

/// CPU % of one core between two tick readings.
fn cpu_percent(before: Option<u64>, now: Option<u64>, secs: f64, hz: f64) -> Option<f64> {
    let (b, n) = (before?, now?);
    Some(n.saturating_sub(b) as f64 / hz / secs * 100.0)
}

/// One sample from two readings of the counters.
fn sample(shared: &Shared, prev: &Totals, now: &Totals, started: Instant, hz: f64) -> Sample {
    let secs = now.at.duration_since(prev.at).as_secs_f64().max(1e-3);
    let sum = |f: fn(&crate::io::stats::WorkerStats) -> u64| -> u64 {
        shared.stats.iter().map(|s| f(s)).sum()
    };
    let open = sum(|s| s.open.get());
    let sse = sum(|s| s.sse_open.get());
    let ws = sum(|s| s.ws_open.get());
    Sample {
        http: open.saturating_sub(sse + ws),
        sse,
        ws,
        published_per_sec: now.published.saturating_sub(prev.published) as f64 / secs,
        delivered_per_sec: now.delivered.saturating_sub(prev.delivered) as f64 / secs,
        workers: shared
            .stats
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let cpu = cpu_percent(
                    prev.worker_ticks.get(i).copied().flatten(),
                    now.worker_ticks.get(i).copied().flatten(),
                    secs,
                    hz,
                );
                (cpu, s.open.get())
            })
            .collect(),
        process_cpu: cpu_percent(prev.process_ticks, now.process_ticks, secs, hz),
        rss_bytes: procstat::rss_bytes(),
        rooms: shared.room_count.load(Ordering::Relaxed) as u64,
        uptime_secs: started.elapsed().as_secs(),
    }
}

fn run(shared: &Shared, hub: &Hub) -> Result<(), HubError> {
    let interval = shared.cfg.dashboard.interval.0;
    let hz = procstat::ticks_per_sec() as f64;
    let cpus = crate::io::cpu::allowed_cpus().len();
    let started = Instant::now();
    let window = render::Window {
        slots: TREND,
        interval_secs: interval.as_secs_f64(),
    };
    let mut log_scale = false;
    let mut prev = totals(shared);
    let mut published: VecDeque<f64> = VecDeque::with_capacity(TREND);
    let mut delivered: VecDeque<f64> = VecDeque::with_capacity(TREND);
    loop {
        std::thread::sleep(interval);
        let now = totals(shared);
        let s = sample(shared, &prev, &now, started, hz);
        prev = now;
        for (q, v) in [
            (&mut published, s.published_per_sec),
            (&mut delivered, s.delivered_per_sec),
        ] {
            if q.len() == TREND {
                q.pop_front();
            }
            q.push_back(v);
        }
        // The trends keep filling while nobody watches; the fragments are
        // only rendered and published for an audience.
        if hub.room_info_blocking(ROOM)?.subscribers == 0 {
            continue;
        }
        let (p, d) = (
            published.make_contiguous().to_vec(),
            delivered.make_contiguous(),
        );
        for (event, html) in [
            ("conns", render::connections(&s)),
            ("rates", render::rates(&s, &p, d, window, &mut log_scale)),
            ("workers", render::workers(&s)),
            ("process", render::process(&s, cpus)),
        ] {
            // a full inbox skips one frame of the dashboard
            if let Err(HubError::Closed) = hub.publish(ROOM, Message::with_event(event, html)) {
                return Err(HubError::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_of_one_core() {
        assert_eq!(cpu_percent(Some(100), Some(150), 1.0, 100.0), Some(50.0));
        assert_eq!(cpu_percent(Some(100), Some(300), 2.0, 100.0), Some(100.0));
        assert_eq!(cpu_percent(None, Some(1), 1.0, 100.0), None);
    }
}
