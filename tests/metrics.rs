//! `GET /metrics`: Prometheus text exposition format 0.0.4, and figures that
//! follow what clients do.

mod common;
use common::*;
use std::collections::HashMap;

/// Scrapes and checks the format: every sample belongs to a family announced
/// by exactly one `# HELP` and one `# TYPE` before it. Returns sample -> value.
fn scrape(addr: std::net::SocketAddr) -> HashMap<String, f64> {
    let mut c = Client::connect(addr);
    let r = c.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    let mut help = HashMap::new();
    let mut kind = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(
                help.insert(name.to_string(), ()).is_none(),
                "two HELP for {name}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&t), "{line}");
            assert!(help.contains_key(name), "TYPE before HELP for {name}");
            assert!(kind.insert(name.to_string(), t.to_string()).is_none());
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert!(
                kind.contains_key(name),
                "sample of an undeclared family: {line}"
            );
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
            if let Some(labels) = series.strip_prefix(name) {
                if !labels.is_empty() {
                    assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                    for pair in labels[1..labels.len() - 1].split(',') {
                        let (k, v) = pair.split_once('=').unwrap();
                        assert!(
                            !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                            "{line}"
                        );
                    }
                }
            }
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            if kind[name] == "counter" {
                assert!(name.ends_with("_total"), "counters end in _total: {name}");
            }
            samples.insert(series.to_string(), v);
        }
    }
    samples
}

fn sum(m: &HashMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn metrics_are_valid_and_follow_traffic() {
    let srv = TestServer::start(
        "[server]\nworkers = 2\n[http]\nmax_body_size = 10\n[hub]\nauto_join_room = \"\"\n",
    );
    let before = scrape(srv.addr);
    assert_eq!(
        before["ringcast_io_driver{worker=\"0\",driver=\"io_uring\"}"],
        1.0
    );
    assert!(before.contains_key("ringcast_connections{kind=\"sse\",worker=\"1\"}"));

    let mut s = SseClient::open(srv.addr, "/sse?room=m", "");
    let _ws = WsClient::connect(srv.addr, "/ws?room=m", "");
    wait_subscribers(srv.addr, "m", 2);
    publish(srv.addr, "m", None, "x");
    assert_eq!(s.next_event().data, "x");
    let mut c = srv.connect();
    c.send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n");
    assert_eq!(c.read_response().status, 413);

    let after = scrape(srv.addr);
    assert_eq!(sum(&after, "ringcast_connections{kind=\"sse\""), 1.0);
    assert_eq!(sum(&after, "ringcast_connections{kind=\"ws\""), 1.0);
    assert_eq!(
        sum(&after, "ringcast_messages_published_total")
            - sum(&before, "ringcast_messages_published_total"),
        1.0
    );
    assert_eq!(sum(&after, "ringcast_messages_delivered_total"), 2.0);
    assert_eq!(
        sum(&after, "ringcast_limit_hits_total{limit=\"max_body_size\""),
        1.0
    );
    assert!(sum(&after, "ringcast_bytes_sent_total") > sum(&before, "ringcast_bytes_sent_total"));
    assert!(after["ringcast_rooms"] >= 1.0);
}

#[test]
fn metrics_path_can_be_moved_or_turned_off() {
    let srv = TestServer::start("[http]\nmetrics_path = \"\"\n");
    assert_eq!(srv.connect().get("/metrics").status, 404);
    let srv = TestServer::start("[http]\nmetrics_path = \"/internal/metrics\"\n");
    assert_eq!(srv.connect().get("/internal/metrics").status, 200);
}
