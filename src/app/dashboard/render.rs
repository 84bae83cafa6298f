//! The dashboard's HTML fragments: one per SSE event, swapped by htmx into
//! the page (`sse-swap`). Bars are CSS widths; the message rates are one
//! inline SVG chart, both series on one labelled scale (linear, or log when
//! the fan-out makes them orders of magnitude apart). Every figure is a
//! number we format, so nothing needs escaping.

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

/// A rate for people: three significant figures at most, `k`/`M`/`G` for
/// thousands, millions, billions (`1.23k`, `45.6M`, `250`, `0`).
pub fn human(v: f64) -> String {
    let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
    let (x, unit) = match v {
        v if v >= 1e9 => (v / 1e9, "G"),
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v => (v, ""),
    };
    let digits = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{x:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s + unit
}

/// A time window for the x axis: `15 s`, `60 s`, `5 min`, `1.5 h`.
fn span(secs: f64) -> String {
    if secs < 120.0 {
        format!("{} s", human(secs))
    } else if secs < 7200.0 {
        format!("{} min", human(secs / 60.0))
    } else {
        format!("{} h", human(secs / 3600.0))
    }
}

/// The y scale the trend chart uses. Both series always share it: a line
/// higher on the chart is always the bigger rate.
#[derive(Debug, Clone, PartialEq)]
pub enum Scale {
    /// 0 at the bottom, `top` at the top, gridlines every `step`.
    Linear { top: f64, step: f64 },
    /// Decades from `lo` (bottom, 10^a) to `hi` (top, 10^b).
    Log { lo: f64, hi: f64 },
}

/// When one series' peak is less than this fraction of the other's, a
/// linear scale would flatten it onto the zero line: use a log scale.
const LOG_BELOW: f64 = 1.0 / 20.0;
/// A log scale stays until the peaks are this close again, so that a
/// fan-out near 20 does not flip the chart between scales every sample.
const LINEAR_ABOVE: f64 = 1.0 / 10.0;

impl Scale {
    /// The scale for series whose peaks are `a` and `b` (msg/s). Linear,
    /// topped at a round number just above the larger peak; logarithmic
    /// when the smaller peak is under 1/20 of the larger (a fan-out of 20+
    /// subscribers per message), so that both lines stay readable and the
    /// gap between them reads as the ratio. `was_log`: the previous chart
    /// was logarithmic (it stays so up to 1/10).
    pub fn for_peaks(a: f64, b: f64, was_log: bool) -> Scale {
        let (small, big) = if a < b { (a, b) } else { (b, a) };
        let limit = if was_log { LINEAR_ABOVE } else { LOG_BELOW };
        if small > 0.0 && small < big * limit {
            let lo = 10f64.powf(small.log10().floor() - 1.0).max(0.1);
            let hi = 10f64.powf(big.log10().ceil()).max(lo * 10.0);
            return Scale::Log { lo, hi };
        }
        // A round step (1, 2, 2.5 or 5 times a power of ten) giving 2 to 5
        // intervals, with the lowest top (then the fewest gridlines); idle,
        // the axis still reads 0..4 msg/s.
        let big = big.max(4.0);
        let pow = 10f64.powf((big / 4.0).log10().floor());
        let (top, step) = [1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0]
            .iter()
            .map(|m| {
                let step = m * pow;
                ((big / step - 1e-9).ceil() * step, step)
            })
            .filter(|(top, step)| (2.0..=5.0 + 1e-9).contains(&(top / step)))
            .fold((f64::INFINITY, 0.0), |best, c| {
                if c.0 < best.0 * (1.0 - 1e-9) || (c.0 <= best.0 * (1.0 + 1e-9) && c.1 > best.1) {
                    c
                } else {
                    best
                }
            });
        Scale::Linear { top, step }
    }

    /// Where `v` sits, from 0.0 (bottom) to 1.0 (top).
    pub fn fraction(&self, v: f64) -> f64 {
        let f = match *self {
            Scale::Linear { top, .. } => v / top,
            Scale::Log { lo, hi } if v > lo => (v / lo).log10() / (hi / lo).log10(),
            Scale::Log { .. } => 0.0,
        };
        f.clamp(0.0, 1.0)
    }

    /// Whether `v` has a place on the scale (a log scale has no 0).
    pub fn shows(&self, v: f64) -> bool {
        match *self {
            Scale::Linear { .. } => v.is_finite(),
            Scale::Log { lo, .. } => v >= lo * (1.0 - 1e-9),
        }
    }

    /// The gridlines: values from the bottom up.
    pub fn ticks(&self) -> Vec<f64> {
        let mut out = Vec::new();
        match *self {
            Scale::Linear { top, step } => {
                let n = (top / step).round() as usize;
                out.extend((0..=n).map(|i| i as f64 * step));
            }
            Scale::Log { lo, hi } => {
                let mut v = lo;
                while v <= hi * (1.0 + 1e-9) {
                    out.push(v);
                    v *= 10.0;
                }
            }
        }
        out
    }
}

/// The trend window: how many samples it holds and how far apart they are.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub slots: usize,
    pub interval_secs: f64,
}

// The chart's geometry, in SVG user units (the SVG scales to the panel's width).
const CW: f64 = 480.0;
const CH: f64 = 190.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 24.0;

fn y_of(scale: &Scale, v: f64) -> f64 {
    let plot_h = CH - TOP - BOTTOM;
    CH - BOTTOM - scale.fraction(v) * plot_h
}

/// Polylines of `points` (oldest first), the newest at the right edge. On a
/// log scale a rate under the bottom gridline (0 above all) leaves a gap:
/// drawn on the floor it would read as the bottom label.
fn line(out: &mut String, scale: &Scale, points: &[f64], window: Window, class: &str) {
    let plot_w = CW - LEFT - RIGHT;
    let step = plot_w / (window.slots.max(2) - 1) as f64;
    let points = &points[points.len().saturating_sub(window.slots)..];
    let n = points.len();
    let mut open = false;
    for (i, p) in points.iter().enumerate() {
        if !scale.shows(*p) {
            if open {
                out.push_str(r#""/>"#);
                open = false;
            }
            continue;
        }
        if !open {
            let _ = write!(out, r#"<polyline class="line {class}" points=""#);
            open = true;
        }
        let x = CW - RIGHT - (n - 1 - i) as f64 * step;
        let _ = write!(out, "{x:.1},{:.1} ", y_of(scale, *p));
    }
    if open {
        out.push_str(r#""/>"#);
    }
    if let Some(last) = points.last().filter(|v| scale.shows(**v)) {
        let _ = write!(
            out,
            r#"<circle class="dot {class}" cx="{:.1}" cy="{:.1}" r="3"/>"#,
            CW - RIGHT,
            y_of(scale, *last)
        );
    }
}

/// The trend chart: both series on one labelled scale, an x axis naming the window.
fn chart(
    out: &mut String,
    published: &[f64],
    delivered: &[f64],
    window: Window,
    was_log: bool,
) -> Scale {
    let peak = |s: &[f64]| {
        s.iter()
            .cloned()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
    };
    let scale = Scale::for_peaks(peak(published), peak(delivered), was_log);
    let (x0, x1, y_bottom) = (LEFT, CW - RIGHT, CH - BOTTOM);
    let log = matches!(scale, Scale::Log { .. });
    // each sample is the rate over the interval before it
    let secs = window.interval_secs * window.slots as f64;
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {CW} {CH}" role="img" aria-label="published and delivered messages per second over the last {}, {} scale"><text class="unit" x="{:.1}" y="12" text-anchor="end">msg/s</text><text class="note" x="{x1}" y="12" text-anchor="end">last {}{}</text>"#,
        span(secs),
        if log { "log" } else { "linear" },
        x0 - 6.0,
        span(secs),
        if log {
            " &#183; log scale: 10&#215; per gridline"
        } else {
            ""
        }
    );
    for t in scale.ticks() {
        let y = y_of(&scale, t);
        let class = if t == scale.ticks()[0] {
            "axis"
        } else {
            "grid"
        };
        let _ = write!(
            out,
            r#"<line class="{class}" x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            x0 - 6.0,
            y + 4.0,
            human(t)
        );
    }
    let _ = write!(
        out,
        r#"<line class="axis" x1="{x0}" y1="{TOP}" x2="{x0}" y2="{y_bottom}"/>"#
    );
    // x ticks: the window's start, its middle, now
    for (i, label) in [
        format!("&#8722;{}", span(secs)),
        format!("&#8722;{}", span(secs / 2.0)),
        "now".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let x = x0 + (x1 - x0) * i as f64 / 2.0;
        let anchor = ["start", "middle", "end"][i];
        let _ = write!(
            out,
            r#"<line class="axis" x1="{x:.1}" y1="{y_bottom}" x2="{x:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{label}</text>"#,
            y_bottom + 4.0,
            CH - 5.0,
        );
    }
    line(out, &scale, delivered, window, "del");
    line(out, &scale, published, window, "pub");
    out.push_str("</svg>");
    scale
}

/// `rates`: messages published and delivered per second: the current values
/// (also the chart's legend) and their trend over the window. `log`: whether
/// the chart is on a log scale, kept from one sample to the next.
pub fn rates(
    s: &Sample,
    published: &[f64],
    delivered: &[f64],
    window: Window,
    log: &mut bool,
) -> String {
    let mut out = String::with_capacity(4096);
    let (p, d) = (s.published_per_sec, s.delivered_per_sec);
    let _ = write!(
        out,
        r#"<p class="big legend"><span class="key pub"></span><span class="now pub" data-value="{p:.1}">{}</span> <small>published/s</small> <span class="key del"></span><span class="now del" data-value="{d:.1}">{}</span> <small>delivered/s</small></p>"#,
        human(p),
        human(d)
    );
    *log = matches!(
        chart(&mut out, published, delivered, window, *log),
        Scale::Log { .. }
    );
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

    const W60: Window = Window {
        slots: 60,
        interval_secs: 1.0,
    };

    /// The y of the polyline's last point, from a rendered chart.
    fn last_y(html: &str, class: &str) -> f64 {
        let at = html
            .find(&format!(r#"class="line {class}" points=""#))
            .unwrap();
        let pts = html[at..].split('"').nth(3).unwrap();
        let last = pts.split_whitespace().last().unwrap();
        last.split(',').nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn both_series_share_one_scale() {
        let s = Sample::default();
        let html = rates(&s, &[0.0, 100.0], &[0.0, 500.0], W60, &mut false);
        let bottom = CH - BOTTOM;
        let plot_h = CH - TOP - BOTTOM;
        // 500 is the top of the scale; 100 is a fifth of the way up, not the top.
        assert!((last_y(&html, "del") - TOP).abs() < 0.1, "{html}");
        assert!(
            (last_y(&html, "pub") - (bottom - plot_h / 5.0)).abs() < 0.1,
            "{html}"
        );
        // and the series are swapped the same way round
        let html = rates(&s, &[0.0, 500.0], &[0.0, 100.0], W60, &mut false);
        assert!((last_y(&html, "pub") - TOP).abs() < 0.1, "{html}");
        assert!((last_y(&html, "del") - (bottom - plot_h / 5.0)).abs() < 0.1);
    }

    #[test]
    fn axes_are_labelled() {
        let s = Sample {
            published_per_sec: 100.0,
            delivered_per_sec: 500.0,
            ..Default::default()
        };
        let html = rates(&s, &[100.0], &[500.0], W60, &mut false);
        assert!(html.contains(">msg/s</text>"), "{html}");
        for tick in [">0<", ">250<", ">500<"] {
            assert!(html.contains(tick), "{tick} in {html}");
        }
        assert!(html.contains("last 60 s"), "{html}");
        assert!(html.contains(">now<"), "{html}");
        assert!(!html.contains("log scale:"), "{html}");
        // the legend gives the current values, in the series' colours
        assert!(
            html.contains(r#"class="now pub" data-value="100.0">100<"#),
            "{html}"
        );
        assert!(
            html.contains(r#"class="now del" data-value="500.0">500<"#),
            "{html}"
        );
    }

    #[test]
    fn linear_scale_tops_at_a_round_number() {
        let top = |a, b| match Scale::for_peaks(a, b, false) {
            Scale::Linear { top, step } => (top, step),
            other => panic!("{other:?}"),
        };
        assert_eq!(top(100.0, 500.0), (500.0, 250.0));
        assert_eq!(top(0.0, 0.0), (4.0, 2.0));
        assert_eq!(top(30.0, 430.0), (500.0, 250.0));
        assert_eq!(top(900.0, 1200.0), (1250.0, 250.0));
        assert_eq!(top(1e5, 1.9e6), (2e6, 1e6));
        assert_eq!(top(3.0, 7.0), (7.5, 2.5));
    }

    #[test]
    fn far_apart_series_get_a_labelled_log_scale() {
        // 10 publishes/s to 1000 subscribers: 10 000 deliveries/s.
        let scale = Scale::for_peaks(10.0, 10_000.0, false);
        assert_eq!(
            scale,
            Scale::Log {
                lo: 1.0,
                hi: 10_000.0
            }
        );
        assert_eq!(scale.ticks(), vec![1.0, 10.0, 100.0, 1000.0, 10_000.0]);
        assert!(
            scale.fraction(10.0) > 0.2,
            "the small series stays off the floor"
        );
        let s = Sample::default();
        let html = rates(&s, &[10.0], &[10_000.0], W60, &mut false);
        assert!(html.contains("log scale:"), "{html}");
        for tick in [">1<", ">10<", ">100<", ">1k<", ">10k<"] {
            assert!(html.contains(tick), "{tick} in {html}");
        }
        assert!(
            last_y(&html, "pub") > last_y(&html, "del"),
            "smaller is lower"
        );
    }

    #[test]
    fn the_scale_does_not_flip_at_the_threshold() {
        let is_log = |a, b, was| matches!(Scale::for_peaks(a, b, was), Scale::Log { .. });
        assert!(!is_log(100.0, 1900.0, false));
        assert!(is_log(100.0, 2100.0, false));
        assert!(
            is_log(100.0, 1900.0, true),
            "a fan-out near 20 keeps its scale"
        );
        assert!(!is_log(100.0, 900.0, true));
        assert!(!is_log(0.0, 900.0, true), "nothing published: linear");
        let mut log = false;
        rates(&Sample::default(), &[10.0], &[1000.0], W60, &mut log);
        assert!(log);
        rates(&Sample::default(), &[10.0], &[150.0], W60, &mut log);
        assert!(log);
        rates(&Sample::default(), &[10.0], &[90.0], W60, &mut log);
        assert!(!log);
    }

    #[test]
    fn humans_read_rates() {
        assert_eq!(human(0.0), "0");
        assert_eq!(human(7.0), "7");
        assert_eq!(human(12.34), "12.3");
        assert_eq!(human(250.0), "250");
        assert_eq!(human(1000.0), "1k");
        assert_eq!(human(1234.0), "1.23k");
        assert_eq!(human(2500.0), "2.5k");
        assert_eq!(human(3_400_000.0), "3.4M");
        assert_eq!(human(f64::NAN), "0");
        assert_eq!(span(59.0), "59 s");
        assert_eq!(span(300.0), "5 min");
    }
}
