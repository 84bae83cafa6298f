//! The dashboard's HTML fragments: one per SSE event, swapped by htmx into
//! the page (`sse-swap`). Bars are CSS widths, trends are inline SVG
//! polylines; every figure is a number we format, so nothing needs escaping.

use std::fmt::Write;

/// One sample of the server's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub http: u64,
    pub sse: u64,
    pub ws: u64,
    pub published_per_sec: f64,
    pub delivered_per_sec: f64,
    /// Per worker: CPU % of one core (None where /proc has no figure), open connections.
    pub workers: Vec<(Option<f64>, u64)>,
    /// CPU % of one core used by the whole process.
    pub process_cpu: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub rooms: u64,
    pub uptime_secs: u64,
}

fn bar(out: &mut String, label: &str, value: &str, fraction: f64, class: &str) {
    let pct = (fraction.clamp(0.0, 1.0) * 100.0).round();
    let _ = write!(
        out,
        r#"<div class="row"><span class="label">{label}</span><span class="track"><span class="fill {class}" style="width:{pct}%"></span></span><span class="value">{value}</span></div>"#
    );
}

/// `conns`: open connections by kind.
pub fn connections(s: &Sample) -> String {
    let total = s.http + s.sse + s.ws;
    let max = total.max(1) as f64;
    let mut out = format!(r#"<p class="big">{total} <small>open</small></p>"#);
    for (label, n, class) in [
        ("HTTP", s.http, "http"),
        ("SSE", s.sse, "sse"),
        ("WebSocket", s.ws, "ws"),
    ] {
        bar(&mut out, label, &n.to_string(), n as f64 / max, class);
    }
    out
}

/// An SVG polyline of `points` (oldest first), scaled to its own maximum.
fn sparkline(out: &mut String, points: &[f64], class: &str) {
    const W: f64 = 300.0;
    const H: f64 = 60.0;
    let max = points.iter().cloned().fold(1.0_f64, f64::max);
    let step = W / (points.len().max(2) - 1) as f64;
    let _ = write!(
        out,
        r#"<svg class="spark {class}" viewBox="0 0 {W} {H}" preserveAspectRatio="none"><polyline points=""#
    );
    for (i, p) in points.iter().enumerate() {
        let x = i as f64 * step;
        let y = H - (p / max) * (H - 2.0) - 1.0;
        let _ = write!(out, "{x:.1},{y:.1} ");
    }
    out.push_str(r#""/></svg>"#);
}

/// `rates`: messages published and delivered per second, now and as a trend.
pub fn rates(s: &Sample, published: &[f64], delivered: &[f64]) -> String {
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        r#"<p class="big"><span class="pub">{:.0}</span> <small>published/s</small> &middot; <span class="del">{:.0}</span> <small>delivered/s</small></p>"#,
        s.published_per_sec, s.delivered_per_sec
    );
    sparkline(&mut out, published, "pub");
    sparkline(&mut out, delivered, "del");
    out
}

/// `workers`: each worker's CPU and connections.
pub fn workers(s: &Sample) -> String {
    let max_conns = s.workers.iter().map(|w| w.1).max().unwrap_or(0).max(1) as f64;
    let mut out = String::with_capacity(256 * s.workers.len());
    for (id, (cpu, conns)) in s.workers.iter().enumerate() {
        let (text, frac) = match cpu {
            Some(c) => (format!("{c:.0}% CPU"), c / 100.0),
            None => ("n/a".to_string(), 0.0),
        };
        bar(&mut out, &format!("worker-{id}"), &text, frac, "cpu");
        bar(
            &mut out,
            "",
            &format!("{conns} conn"),
            *conns as f64 / max_conns,
            "conn",
        );
    }
    out
}

/// `process`: CPU and memory of the whole process.
pub fn process(s: &Sample, cpus: usize) -> String {
    let mut out = String::with_capacity(512);
    let cpu_cap = 100.0 * cpus.max(1) as f64;
    match s.process_cpu {
        Some(c) => bar(&mut out, "CPU", &format!("{c:.0}%"), c / cpu_cap, "cpu"),
        None => bar(&mut out, "CPU", "n/a", 0.0, "cpu"),
    }
    let rss = s.rss_bytes.map_or("n/a".to_string(), |b| {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    });
    let _ = write!(
        out,
        r#"<p>RSS <b class="rss">{rss}</b> &middot; rooms <b>{}</b> &middot; up <b>{}s</b></p>"#,
        s.rooms, s.uptime_secs
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_bars_are_shares_of_the_total() {
        let s = Sample {
            http: 1,
            sse: 3,
            ws: 0,
            ..Default::default()
        };
        let html = connections(&s);
        assert!(html.contains("4 <small>open"), "{html}");
        assert!(html.contains(r#"fill sse" style="width:75%""#), "{html}");
        assert!(html.contains(r#"fill ws" style="width:0%""#), "{html}");
    }

    #[test]
    fn workers_and_process() {
        let s = Sample {
            workers: vec![(Some(50.0), 2), (None, 0)],
            process_cpu: Some(150.0),
            rss_bytes: Some(3 << 20),
            rooms: 4,
            uptime_secs: 9,
            ..Default::default()
        };
        let w = workers(&s);
        assert!(w.contains("worker-0") && w.contains("50% CPU") && w.contains("n/a"));
        let p = process(&s, 2);
        assert!(p.contains(r#"style="width:75%""#), "{p}");
        assert!(p.contains("3.0 MiB") && p.contains("rooms <b>4</b>"));
    }

    #[test]
    fn sparkline_scales_to_its_maximum() {
        let s = Sample::default();
        let html = rates(&s, &[0.0, 10.0], &[5.0]);
        assert!(html.contains("0.0,59.0 300.0,1.0"), "{html}");
    }
}
