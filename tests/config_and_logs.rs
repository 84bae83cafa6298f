//! What an operator sees: a bad configuration stops start-up (and
//! `--check-config`) with a message naming the key and the rule, and every
//! log line starts with its time in RFC 3339, UTC, to the millisecond.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Runs `ringcast --config <text> --check-config [flags]`: exit code and stderr.
fn check_config(text: &str, flags: &[&str]) -> (i32, String) {
    let d = TempDir::new("cfglog");
    let p = d.0.join("c.toml");
    std::fs::write(&p, text).unwrap();
    let out = Command::new(bin())
        .arg("--config")
        .arg(&p)
        .args(flags)
        .arg("--check-config")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `2026-12-04T06:40:12.345Z`, and within a minute of now.
fn assert_rfc3339_millis_now(ts: &str) {
    assert_eq!(ts.len(), 24, "{ts:?}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts:?}");
    let t = humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("{ts:?}: {e}"));
    let off = SystemTime::now()
        .duration_since(t)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap();
    assert!(off < Duration::from_secs(60), "{ts:?} is {off:?} from now");
}

#[test]
fn a_bad_value_stops_check_config_naming_the_key_and_the_rule() {
    let cases = [
        (
            "[hub]\nhistory_size = -5\n",
            "hub.history_size: a whole number, 0 or more (0 keeps no history)",
        ),
        (
            "[server]\nlisten = \"localhost\"\n",
            "server.listen = \"localhost\" is not an address: write an IP address and port, e.g. \"127.0.0.1:8080\" or \"[::]:8080\"",
        ),
        (
            "[http]\nmax_body_size = \"1M\"\n",
            "http.max_body_size = \"1M\" has an ambiguous size unit \"M\": write MB (1000^2 bytes) or MiB (1024^2 bytes)",
        ),
        (
            "[http]\nmax_body_size = \"1.1KiB\"\n",
            "is not a whole number of bytes (it is between 1126 and 1127)",
        ),
        (
            "[ws]\nping_interval = \"5 fortnights\"\n",
            "ws.ping_interval = \"5 fortnights\" has an unknown duration unit \"fortnights\": use ms (milliseconds), s (seconds), m (minutes) or h (hours)",
        ),
    ];
    for (text, want) in cases {
        let (code, msg) = check_config(text, &[]);
        assert_eq!(code, 2, "{text:?}: {msg}");
        assert!(
            msg.starts_with("ringcast: invalid configuration: "),
            "{msg}"
        );
        assert!(msg.contains(want), "{text:?}: {msg}");
    }
    let (code, msg) = check_config("", &["--listen", "localhost"]);
    assert_eq!(code, 2, "{msg}");
    assert!(
        msg.contains("--listen \"localhost\" is not an address: write an IP address and port"),
        "{msg}"
    );
    // SI and IEC sizes, with a decimal that comes to whole bytes
    let (code, msg) = check_config(
        "[http]\nmax_body_size = \"1MB\"\nread_buffer_size = \"1.5MiB\"\nbody_timeout = \"1.5s\"\n",
        &[],
    );
    assert_eq!(code, 0, "{msg}");
}

#[test]
fn text_log_lines_start_with_an_rfc3339_utc_timestamp() {
    let mut srv = TestServer::start("");
    let line = srv.wait_log("listening on ");
    let (ts, rest) = line.split_once(' ').unwrap();
    assert_rfc3339_millis_now(ts);
    assert!(rest.trim_start().starts_with("info "), "{line}");
}

#[test]
fn json_log_lines_carry_an_rfc3339_utc_timestamp() {
    let mut srv = TestServer::start("[log]\nformat = \"json\"\naccess = \"stderr\"\n");
    let line = srv.wait_log("listening on ");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_rfc3339_millis_now(v["ts"].as_str().unwrap());
    assert_eq!(v["level"], "info");
    // the access log writes the same form
    assert_eq!(srv.connect().get("/healthz").status, 200);
    let line = srv.wait_log("\"target\":\"/healthz\"");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_rfc3339_millis_now(v["ts"].as_str().unwrap());
}
