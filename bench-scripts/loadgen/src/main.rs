//! loadgen: the load generator of ringcast's benchmarks.
//!
//! One thread, one mio event loop, raw non-blocking sockets and its own
//! small HTTP, WebSocket and SSE client code (`proto/`), so that one core of
//! it can keep one core of a server busy, and so that it shares no code
//! with the server it measures (except the WebSocket codec, ringcast's own).
//! `wss://` and `https://` targets go through rustls (`tls`). Each mode
//! prints a human summary, then one JSON object on the last line of stdout.

mod args;
mod client;
mod hist;
mod json;
mod modes;
mod proto;
mod rng;
mod sys;
mod tls;
mod url;

const USAGE: &str = "\
usage: loadgen MODE [options]

modes:
  echo    --url ws://HOST:PORT/echo [--conns 100] [--inflight 1] [--size 32]
          [--binary] [--duration 10s] [--warmup 2s] [--drain 5s]
          N WebSocket connections, K messages in flight each; every echo is
          checked byte for byte; msgs/s and round-trip p50/p99/p99.9.
  fanout  --sub-url ws://HOST:PORT/ws?room=R | http://HOST:PORT/sse?room=R (or several, comma-separated: subscribers go to each in turn)
          --publish-url http://HOST:PORT/publish/R [--subs 1000] [--size 64]
          [--rate N/s | --window 16 --max-lag 32] [--duration 10s]
          [--settle 500ms] [--tail 5s]
          N subscribers, one keep-alive publisher; order, loss, duplicates,
          deliveries/s and publish-to-receive latency.
  hold    --url ws://...|http://.../sse?room=R [--conns 1000] [--hold 10s]
          [--sample-after 500ms]
          N idle connections; server RSS and fds per connection (needs --pid),
          sampled once a second from --sample-after on.
  churn   --url ws://...|http://... [--rate 500/s] [--duration 120s]
          [--settle 10s] [--max-open 2000]
          connect, handshake, close, continuously; server fd and RSS drift.
          Over TLS: completed handshakes/s and per server CPU-second, full
          (the default: no session resumption) or resumed (--tls-resume).
  slowloris --url http://HOST:PORT/path [--conns 100] [--interval 1s]
          [--duration 30s] [--expect-cut-within D]
          N connections sending a never-ending request head one byte per
          interval; counts 408s; fails on another ending, or (with
          --expect-cut-within) on a connection still open after D.
  midwrite --sub-url ws://...|http://.../sse?room=R --publish-url
          http://HOST:PORT/publish/R [--subs 10] [--size 32KiB]
          [--backlog 512KiB] [--hold 200ms] [--every 1s] [--duration 30s]
          subscribers with small windows that vanish (reset, or close with
          unread data) while the server writes a backlog to them.
  hostile --url http://HOST:PORT [--duration 30s] [--only flood,utf8,resume]
          [--static-path /assets/htmx-2.0.11.min.js] [--flood-conns 4]
          [--flood-requests 1000] [--flood-every 5s] [--flood-hold 2s]
          [--flood-rcvbuf 4KiB] [--text-room demo-chat] [--raw-room hostile-raw]
          [--chat-ws /demo/chat/ws] [--utf8-every 200ms]
          [--resume-room hostile-resume] [--resume-count 64]
          [--resume-size 60000] [--resume-every 10s] [--resume-over 1MiB]
          three attackers at once: pipelined GETs never read for a while
          (every answer must arrive complete), invalid UTF-8 publishes (text
          rooms refuse them; a chat subscriber sees only UTF-8 text frames
          and every valid message), and a client resuming after missing more
          than --resume-over (hub.max_queued_bytes): nothing may be missing.

options of every mode:
  --pid PID                  server process: RSS, fds and CPU from /proc
  --connect-concurrency 256  handshakes in progress at once
  --connect-timeout 10s      limit for one connect + handshake
  --src-ips N                spread connects over 127.0.0.1..127.0.0.N
                             (default 1; churn 16)
  --ca FILE                  PEM CA (or certificate) to trust for wss:// and
                             https:// URLs (echo, fanout, hold, churn; the
                             server name is the URL's host, IP or DNS name)
  --tls-resume               keep TLS sessions and resume them (default: off,
                             every connection makes a full handshake)

Every ws:// URL may be wss:// and every http:// URL https:// in echo,
fanout (subscribers and publisher), hold and churn (rustls, TLS 1.2/1.3,
ALPN http/1.1); slowloris, midwrite and hostile speak plain TCP only.

values: durations 10s, 500ms, 2m; rates 500/s, 30000/m; sizes 32, 16KiB;
counts 19000, 10k. Exit status: 0 ok, 1 a check failed (mismatch, loss,
duplicate, disorder, failed connection, fd drift), 2 usage or setup error.
";

fn main() {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() || argv[0] == "-h" || argv[0] == "--help" || argv[0] == "help" {
        print!("{USAGE}");
        std::process::exit(if argv.is_empty() { 2 } else { 0 });
    }
    let mode = argv.remove(0);
    let a = args::Args::new(argv);
    let r = match mode.as_str() {
        "echo" => modes::echo::run(a),
        "fanout" => modes::fanout::run(a),
        "hold" => modes::hold::run(a),
        "churn" => modes::churn::run(a),
        "slowloris" => modes::slowloris::run(a),
        "midwrite" => modes::midwrite::run(a),
        "hostile" => modes::hostile::run(a),
        other => Err(format!("unknown mode {other:?}\n\n{USAGE}")),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("loadgen {mode}: {e}");
            // Still end with the one report line, saying what went wrong.
            let mut j = json::JsonLine::new();
            j.str("mode", &mode).bool("ok", false).str("error", &e);
            println!("{}", j.finish());
            std::process::exit(2);
        }
    }
}
