//! `GET /metrics`: the per-worker counters in Prometheus text exposition
//! format 0.0.4. Each worker writes only its own counters; a scrape reads
//! them all (relaxed loads) and labels each series with its worker.

use std::fmt::Write;

use crate::conn::worker::Shared;
use crate::io::stats::WorkerStats;

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Reads one series' value from a worker's counters.
type Read = fn(&WorkerStats) -> u64;

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// Extra labels, then the counter, per worker.
    series: &'static [(&'static str, Read)],
}

macro_rules! get {
    ($field:ident) => {
        |s: &WorkerStats| s.$field.get()
    };
}

static FAMILIES: &[Family] = &[
    Family {
        name: "ringcast_connections",
        kind: "gauge",
        help: "Open connections by kind.",
        series: &[
            ("kind=\"http\"", |s| {
                s.open
                    .get()
                    .saturating_sub(s.sse_open.get() + s.ws_open.get())
            }),
            ("kind=\"sse\"", get!(sse_open)),
            ("kind=\"ws\"", get!(ws_open)),
        ],
    },
    Family {
        name: "ringcast_connections_parked",
        kind: "gauge",
        help: "Open connections parked: quiet for a second, kept as their state alone (no task).",
        series: &[("", get!(parked))],
    },
    Family {
        name: "ringcast_connections_accepted_total",
        kind: "counter",
        help: "Connections accepted.",
        series: &[("", get!(accepted))],
    },
    Family {
        name: "ringcast_connections_closed_total",
        kind: "counter",
        help: "Connections closed.",
        series: &[("", get!(closed))],
    },
    Family {
        name: "ringcast_http_requests_total",
        kind: "counter",
        help: "HTTP requests answered.",
        series: &[("", get!(http_requests))],
    },
    Family {
        name: "ringcast_messages_published_total",
        kind: "counter",
        help: "Messages numbered by this worker as their room's home.",
        series: &[("", get!(messages_published))],
    },
    Family {
        name: "ringcast_messages_delivered_total",
        kind: "counter",
        help: "Messages queued to this worker's subscribers.",
        series: &[("", get!(messages_delivered))],
    },
    Family {
        name: "ringcast_bytes_received_total",
        kind: "counter",
        help: "Bytes read from clients.",
        series: &[("", get!(bytes_in))],
    },
    Family {
        name: "ringcast_bytes_sent_total",
        kind: "counter",
        help: "Bytes written to clients.",
        series: &[("", get!(bytes_out))],
    },
    Family {
        name: "ringcast_slow_consumer_drops_total",
        kind: "counter",
        help: "Subscribers disconnected for falling more than hub.max_queued_bytes behind.",
        series: &[("", get!(slow_consumer_drops))],
    },
    Family {
        name: "ringcast_rejected_handshakes_total",
        kind: "counter",
        help: "Stream and WebSocket handshakes, room reads and publishes refused, by reason.",
        series: &[
            ("reason=\"websocket\"", get!(ws_handshake_rejects)),
            ("reason=\"hub_rules\"", get!(hub_rejects)),
            ("reason=\"unauthorized\"", get!(auth_unauthorized)),
            ("reason=\"forbidden\"", get!(auth_forbidden)),
        ],
    },
    Family {
        name: "ringcast_limit_hits_total",
        kind: "counter",
        help: "Times a configured limit was hit, by limit.",
        series: &[
            ("limit=\"max_connections\"", get!(rejected_max_connections)),
            ("limit=\"max_connections_per_ip\"", get!(rejected_per_ip)),
            (
                "limit=\"handshake_rate_per_ip\"",
                get!(rejected_handshake_rate),
            ),
            ("limit=\"max_rooms\"", get!(rejected_max_rooms)),
            (
                "limit=\"max_rooms_per_connection\"",
                get!(rejected_rooms_per_connection),
            ),
            ("limit=\"file_descriptors\"", get!(accept_resource_errors)),
            ("limit=\"max_body_size\"", get!(http_413)),
            ("limit=\"max_request_line\"", get!(http_414)),
            ("limit=\"max_header_bytes\"", get!(http_431)),
            ("limit=\"timeouts\"", get!(timeouts)),
            (
                "limit=\"max_pending_output\"",
                get!(pending_output_pauses),
            ),
            ("limit=\"ws_message_rate\"", get!(ws_rate_limited)),
        ],
    },
    Family {
        name: "ringcast_http_errors_total",
        kind: "counter",
        help: "Requests refused as malformed (400) or with another error status.",
        series: &[
            ("status=\"400\"", get!(http_400)),
            ("status=\"other\"", get!(http_other_errors)),
        ],
    },
    Family {
        name: "ringcast_access_log_dropped_total",
        kind: "counter",
        help: "Access-log lines dropped because the log writer fell behind (workers never wait for it).",
        series: &[("", get!(access_log_dropped))],
    },
    Family {
        name: "ringcast_history_messages",
        kind: "gauge",
        help: "Messages held in the histories of the rooms this worker is home of.",
        series: &[("", get!(history_messages))],
    },
    Family {
        name: "ringcast_home_rooms",
        kind: "gauge",
        help: "Rooms this worker is home of.",
        series: &[("", get!(home_rooms))],
    },
];

/// Renders every metric family.
/// The TLS listener's series (only when there is one).
static TLS_FAMILIES: &[Family] = &[
    Family {
        name: "ringcast_tls_handshakes_total",
        kind: "counter",
        help: "TLS handshakes completed, by protocol version.",
        series: &[
            ("version=\"1.2\"", get!(tls_handshakes_12)),
            ("version=\"1.3\"", get!(tls_handshakes_13)),
        ],
    },
    Family {
        name: "ringcast_tls_sessions_resumed_total",
        kind: "counter",
        help: "TLS handshakes that resumed a session from a ticket.",
        series: &[("", get!(tls_resumed))],
    },
    Family {
        name: "ringcast_tls_handshake_failures_total",
        kind: "counter",
        help: "TLS handshakes that failed, by reason: timeout (tls.handshake_timeout), eof (client left), not_tls (first bytes not a TLS record), plain_http (an HTTP request, answered 400), peer_alert (the client refused, e.g. our certificate), incompatible (no version, suite or group in common), protocol (malformed), io; handshake_limit: closed at accept, tls.max_handshakes_per_worker running.",
        series: &[
            ("reason=\"timeout\"", get!(tls_fail_timeout)),
            ("reason=\"eof\"", get!(tls_fail_eof)),
            ("reason=\"not_tls\"", get!(tls_fail_not_tls)),
            ("reason=\"plain_http\"", get!(tls_fail_plain_http)),
            ("reason=\"peer_alert\"", get!(tls_fail_peer_alert)),
            ("reason=\"incompatible\"", get!(tls_fail_incompatible)),
            ("reason=\"protocol\"", get!(tls_fail_protocol)),
            ("reason=\"io\"", get!(tls_fail_io)),
            (
                "reason=\"handshake_limit\"",
                get!(tls_rejected_handshake_limit),
            ),
        ],
    },
    Family {
        name: "ringcast_tls_handshakes_in_progress",
        kind: "gauge",
        help: "TLS handshakes running now (bounded by tls.max_handshakes_per_worker).",
        series: &[("", get!(tls_handshaking))],
    },
];

/// A Prometheus label value: backslash, quote and newline escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_families(out: &mut String, shared: &Shared, families: &[Family]) {
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, read) in f.series {
            for (w, stats) in shared.stats.iter().enumerate() {
                let sep = if labels.is_empty() { "" } else { "," };
                let _ = writeln!(
                    out,
                    "{}{{{labels}{sep}worker=\"{w}\"}} {}",
                    f.name,
                    read(stats)
                );
            }
        }
    }
}

pub fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(4096);
    render_families(&mut out, shared, FAMILIES);
    if let Some(tls) = &shared.tls {
        render_families(&mut out, shared, TLS_FAMILIES);
        let _ = writeln!(
            out,
            "# HELP ringcast_tls_certificate_not_after_seconds When each loaded certificate expires (its notAfter, Unix seconds)."
        );
        let _ = writeln!(
            out,
            "# TYPE ringcast_tls_certificate_not_after_seconds gauge"
        );
        for c in tls.store.info() {
            let _ = writeln!(
                out,
                "ringcast_tls_certificate_not_after_seconds{{file=\"{}\",names=\"{}\"}} {}",
                label_value(&c.file),
                label_value(&c.names.join(",")),
                c.not_after
            );
        }
    }
    if let Some(link) = &shared.cluster {
        render_cluster(&mut out, link);
    }
    let _ = writeln!(
        out,
        "# HELP ringcast_rooms Rooms that exist in the whole process."
    );
    let _ = writeln!(out, "# TYPE ringcast_rooms gauge");
    let _ = writeln!(
        out,
        "ringcast_rooms {}",
        shared.room_count.load(std::sync::atomic::Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP ringcast_io_driver The io driver the workers run (1 for the one in use)."
    );
    let _ = writeln!(out, "# TYPE ringcast_io_driver gauge");
    for w in 0..shared.stats.len() {
        let _ = writeln!(
            out,
            "ringcast_io_driver{{worker=\"{w}\",driver=\"{}\"}} 1",
            shared.driver.name()
        );
    }
    out
}

/// The `ringcast_cluster_*` families (`[cluster] engine = "redis"`).
fn render_cluster(out: &mut String, link: &crate::hub::engine::cluster::Link) {
    use crate::hub::engine::cluster::LATENCY_BUCKETS_US;
    use std::sync::atomic::Ordering::Relaxed;
    let st = &link.stats;
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };
    head(
        out,
        "ringcast_cluster_link_up",
        "gauge",
        "Whether this node's command and subscription connections to each Redis instance are up (1) or not (0).",
    );
    for s in &link.shards {
        for (conn, up) in [("command", &s.cmd_up), ("subscription", &s.sub_up)] {
            let _ = writeln!(
                out,
                "ringcast_cluster_link_up{{redis=\"{}\",connection=\"{conn}\"}} {}",
                label_value(&s.name),
                u8::from(up.load(Relaxed))
            );
        }
    }
    let counters: [(&str, &str, u64); 6] = [
        ("ringcast_cluster_publishes_total", "Publishes Redis accepted (answered 202).", st.publishes.load(Relaxed)),
        ("ringcast_cluster_publish_failures_total", "Publishes answered 503 because Redis could not be reached or failed (nothing was published).", st.publish_failures.load(Relaxed)),
        ("ringcast_cluster_publish_overflow_total", "Publishes answered 503 because cluster.max_inflight_publishes were already waiting for Redis.", st.publish_overflow.load(Relaxed)),
        ("ringcast_cluster_resubscriptions_total", "Times a subscription connection to Redis was made again after a loss (every room is then caught up from its stream).", st.resubscriptions.load(Relaxed)),
        ("ringcast_cluster_recovered_messages_total", "Messages delivered by reading a room's stream in Redis after a loss or a skip on its channel.", st.recovered.load(Relaxed)),
        ("ringcast_cluster_catchup_gaps_total", "Gap notices sent to live subscribers because Redis no longer held what they had not received.", st.catchup_gaps.load(Relaxed)),
    ];
    for (name, help, v) in counters {
        head(out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }
    head(
        out,
        "ringcast_cluster_rooms",
        "gauge",
        "Rooms this node is subscribed to in Redis (it has subscribers in them).",
    );
    let _ = writeln!(out, "ringcast_cluster_rooms {}", st.rooms.load(Relaxed));
    head(
        out,
        "ringcast_cluster_publish_seconds",
        "histogram",
        "Time from a publish reaching this node to Redis accepting it.",
    );
    let mut cumulative = 0;
    for (i, b) in st.publish_latency_buckets.iter().enumerate() {
        cumulative += b.load(Relaxed);
        let le = LATENCY_BUCKETS_US
            .get(i)
            .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
        let _ = writeln!(
            out,
            "ringcast_cluster_publish_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "ringcast_cluster_publish_seconds_sum {}",
        st.publish_latency_us.load(Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "ringcast_cluster_publish_seconds_count {cumulative}");
}
