//! ringcast driven by clients it does not ship: Python's httpx-sse for
//! Server-Sent Events (installed by tests/clients/setup.sh).

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn httpx_sse_receives_ids_events_and_data() {
    let py = test_clients_python();
    let srv = TestServer::start("[hub]\nauto_join_room = \"\"\n");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/sse_httpx.py");
    let url = format!("http://{}/sse?room=py", srv.addr);
    let mut child = Command::new(&py)
        .args([script, &url, "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let head: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(head["status"], 200);
    assert_eq!(head["content_type"], "text/event-stream; charset=utf-8");
    // The first block the client sees is the retry field.
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["retry"], 3000);
    let a = publish(srv.addr, "py", Some("greeting"), "hello\nworld");
    let b = publish(srv.addr, "py", None, "plain");
    for (id, event, data) in [(a, "greeting", "hello\nworld"), (b, "message", "plain")] {
        let e: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(e["id"], id.to_string());
        assert_eq!(e["event"], event);
        assert_eq!(e["data"], data);
    }
    assert!(child.wait().unwrap().success());

    // Resuming with Last-Event-ID through the same client replays what it missed.
    let c = publish(srv.addr, "py", None, "missed");
    let out = Command::new(&py)
        .args([script, &url, "3", &a.to_string()])
        .output()
        .unwrap();
    let got: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got[0]["data"], "plain");
    assert_eq!(got[1]["id"], c.to_string());
}

#[test]
fn python_websockets_echo_fragments_ping_and_deflate() {
    let py = test_clients_python();
    let srv = TestServer::start("");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/ws_websockets.py"
    );
    let out = Command::new(&py)
        .args([script, &format!("ws://{}/echo", srv.addr)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["extensions"][0], "PerMessageDeflate");
    assert_eq!(v["text"], "hello");
    assert_eq!(
        v["binary"],
        serde_json::json!([0, 255, 98, 105, 110, 97, 114, 121])
    );
    assert_eq!(v["fragmented"], "frag-mented");
    assert_eq!(v["big_ok"], true);
    assert_eq!(v["pong"], true);
    assert_eq!(v["close_code"], 1000);
}
