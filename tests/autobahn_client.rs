//! The library's WebSocket client (`ringcast::client::Client`) against a
//! server nobody here wrote: Autobahn|Testsuite's fuzzingserver
//! (`wstest -m fuzzingserver`).
//!
//! The test sets up wstest's Python 2.7 env (`bench-scripts/autobahn/setup.sh`,
//! into `target/autobahn-venv`), starts the fuzzingserver on a free port,
//! asks it for the case count (`/getCaseCount`), runs every case with the
//! client as an echo client (`/runCase?case=N&agent=ringcast-client`: every
//! text and binary message is sent back until the server closes; pings are
//! answered by the client itself; a protocol violation by the server fails
//! the connection with the close code the codec names), writes the report
//! (`/updateReports`) and judges it with `bench-scripts/autobahn/judge.py`:
//! every case OK, NON-STRICT or INFORMATIONAL, with a clean close.
//!
//! Cases 1.* to 10.* by default; `AUTOBAHN_CLIENT_CASES="1.*,12.*,13.*"`
//! replaces the list (the client offers permessage-deflate on every
//! connection; the fuzzingserver accepts it in 12.* and 13.* only). The
//! output (spec, wstest's log, reports/) is in `target/autobahn-client/`.
//!
//! There is no skipping: without Python 2.7 (or when wstest cannot be
//! installed) the test fails and says how to fix it.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringcast::client::{Client, ConnectOptions, Message, DEFLATE_OFFER};

const AGENT: &str = "ringcast-client";
const DEFAULT_CASES: &str = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*";

/// The fuzzingserver process, stopped when dropped.
struct Fuzzingserver(Child);

impl Drop for Fuzzingserver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs setup.sh; panics with its output and the fix when it fails.
fn setup_wstest() -> PathBuf {
    let root = root();
    let script = root.join("bench-scripts/autobahn/setup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        let fix = if out.status.code() == Some(3) {
            "Python 2.7 is missing: install it (`pyenv install 2.7.18`) or set PY27 to a \
             Python 2.7 interpreter, then run bench-scripts/autobahn/setup.sh"
        } else {
            "bench-scripts/autobahn/setup.sh failed (it needs python3 with venv and network \
             access to PyPI for the pinned requirements); run it by hand to see why, or \
             delete target/autobahn-venv and target/autobahn-bootstrap and retry"
        };
        panic!(
            "Autobahn|Testsuite (wstest) could not be set up ({}).\nFix: {fix}\nsetup.sh said:\n{text}",
            out.status
        );
    }
    let wstest = root.join("target/autobahn-venv/bin/wstest");
    assert!(
        wstest.exists(),
        "setup.sh succeeded but {} is missing; delete target/autobahn-venv and retry\n{text}",
        wstest.display()
    );
    wstest
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_fuzzingserver(wstest: &Path, out: &Path, port: u16, cases: &[String]) -> Fuzzingserver {
    let spec = serde_json::json!({
        "url": format!("ws://127.0.0.1:{port}"),
        "outdir": out.join("reports").to_string_lossy(),
        "cases": cases,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    });
    let spec_path = out.join("fuzzingserver.json");
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let log = std::fs::File::create(out.join("wstest.log")).unwrap();
    let child = Command::new(wstest)
        .args(["-m", "fuzzingserver", "--webport", "0", "-s"])
        .arg(&spec_path)
        .current_dir(out)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", wstest.display()));
    let mut server = Fuzzingserver(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        if let Some(st) = server.0.try_wait().unwrap() {
            panic!(
                "wstest -m fuzzingserver exited ({st}) before listening; its log:\n{}",
                std::fs::read_to_string(out.join("wstest.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the fuzzingserver did not listen on port {port} within 60 s; its log:\n{}",
            std::fs::read_to_string(out.join("wstest.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .extensions(DEFLATE_OFFER)
        .timeout(Duration::from_secs(60))
}

/// The close code for a violation the client reported: the codec's (in
/// the error message as `(close code N)`), 1009 for a message over the
/// limit, else 1002.
fn close_code_for(err: &std::io::Error) -> u16 {
    let msg = err.to_string();
    if let Some(rest) = msg.split("(close code ").nth(1) {
        if let Ok(code) = rest.trim_end_matches(')').parse() {
            return code;
        }
    }
    if msg.contains("exceeds") {
        return 1009;
    }
    1002
}

/// One case: echo until the server closes. Returns a short summary.
fn run_case(base: &str, n: usize) -> String {
    let url = format!("{base}/runCase?case={n}&agent={AGENT}");
    let (mut ws, _) = match Client::connect_with(&url, &options()) {
        Ok(c) => c,
        Err(e) => return format!("connect failed: {e}"),
    };
    loop {
        let res = match ws.recv() {
            Ok(Message::Text(t)) => ws.send_text(&t),
            Ok(Message::Binary(b)) => ws.send_binary(&b),
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => Ok(()),
            Ok(Message::Close(code, _)) => return format!("closed by the server ({code:?})"),
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                // fail the connection: our close frame, then wait a little
                // for the server's
                let code = close_code_for(&e);
                let _ = ws.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = ws.close(code, "");
                return format!("failed with {code}: {e}");
            }
            Err(e) => return format!("ended: {e}"),
        };
        if let Err(e) = res {
            return format!("send failed: {e}");
        }
    }
}

/// A control request (`/getCaseCount`, `/updateReports`): the text
/// messages it sends before closing.
fn control(url: &str) -> Vec<String> {
    let mut ws = Client::connect(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let mut texts = Vec::new();
    loop {
        match ws.recv() {
            Ok(Message::Text(t)) => texts.push(t),
            Ok(Message::Close(..)) => return texts,
            Ok(_) => {}
            Err(e) if texts.is_empty() && e.kind() != ErrorKind::UnexpectedEof => {
                panic!("{url}: {e}")
            }
            Err(_) => return texts,
        }
    }
}

#[test]
fn autobahn_fuzzingserver_with_the_library_client() {
    let wstest = setup_wstest();
    let out = root().join("target/autobahn-client");
    let _ = std::fs::remove_dir_all(out.join("reports"));
    std::fs::create_dir_all(&out).unwrap();
    let cases: Vec<String> = std::env::var("AUTOBAHN_CLIENT_CASES")
        .unwrap_or_else(|_| DEFAULT_CASES.to_string())
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    let port = free_port();
    let _server = start_fuzzingserver(&wstest, &out, port, &cases);
    let base = format!("ws://127.0.0.1:{port}");

    let count: usize = control(&format!("{base}/getCaseCount"))
        .first()
        .and_then(|t| t.trim().parse().ok())
        .expect("the fuzzingserver's /getCaseCount answer");
    assert!(count > 0, "the fuzzingserver has no case for {cases:?}");
    eprintln!("autobahn client: {count} cases ({})", cases.join(","));

    let started = Instant::now();
    for n in 1..=count {
        let t = Instant::now();
        let how = run_case(&base, n);
        if t.elapsed() > Duration::from_secs(5) {
            eprintln!("case {n}: {how} ({:?})", t.elapsed());
        }
    }
    eprintln!(
        "autobahn client: {count} cases run in {:?}",
        started.elapsed()
    );
    control(&format!("{base}/updateReports?agent={AGENT}"));

    let index = out.join("reports/index.json");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&index)
            .unwrap_or_else(|e| panic!("no report at {}: {e}", index.display())),
    )
    .unwrap();
    let results = report[AGENT].as_object().expect("the agent's results");
    assert_eq!(
        results.len(),
        count,
        "the report holds {} results for {count} cases",
        results.len()
    );

    let mut judge = Command::new("python3");
    judge
        .arg(root().join("bench-scripts/autobahn/judge.py"))
        .arg(&index)
        .args(["--agent", AGENT, "--max-listed", "0"]);
    let verdict = judge.output().expect("python3 for judge.py");
    let text = String::from_utf8_lossy(&verdict.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&verdict.stderr));
    assert!(
        verdict.status.success(),
        "Autobahn|Testsuite found failing cases (report: {}/reports/index.html):\n{text}",
        out.display()
    );
}
