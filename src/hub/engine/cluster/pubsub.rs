//! One node's subscription connection to one Redis instance: `SUBSCRIBE`
//! to the channels of the rooms this node has subscribers in, in batches,
//! and every message and confirmation handed to the node's link in the
//! order Redis sent them.
//!
//! It speaks the few RESP replies a subscribed connection gets itself, so
//! that what it holds is bounded: it reads only while the link takes what
//! it read (the rest waits in the kernel and then in Redis's output
//! buffer, whose `client-output-buffer-limit pubsub` disconnects a node
//! that falls too far behind; the node then catches up from the rooms'
//! streams), and no reply may be longer than `max_frame` bytes.

use std::collections::HashSet;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the subscription connection tells the link.
pub enum PubsubEvent {
    /// Connected and authenticated; subscriptions are being sent again.
    Up,
    /// The connection is gone (the text says why); it is being made again.
    Down(String),
    /// `SUBSCRIBE` to this channel took effect: every later message of the
    /// channel follows on this connection.
    Subscribed(Bytes),
    /// A message on a channel.
    Message { channel: Bytes, payload: Bytes },
}

/// A change to the set of channels.
pub enum PubsubCtl {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
}

/// Where one Redis instance is.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Target {
    /// Where the Redis client connects, with its credentials (`None` for an
    /// address that is not TCP: the configuration allows only `redis://`).
    pub fn of(info: &redis::ConnectionInfo) -> Option<Target> {
        match &info.addr {
            redis::ConnectionAddr::Tcp(host, port) => Some(Target {
                host: host.clone(),
                port: *port,
                username: info.redis.username.clone(),
                password: info.redis.password.clone(),
            }),
            _ => None,
        }
    }
}

/// Runs the subscription connection for ever: connects, subscribes to
/// every wanted channel, forwards what arrives; on any failure reports
/// `Down`, waits (backoff up to 1 s) and starts again.
pub async fn run(
    shard: usize,
    target: Target,
    timeout: Duration,
    max_frame: usize,
    mut ctl: tokio::sync::mpsc::UnboundedReceiver<PubsubCtl>,
    events: tokio::sync::mpsc::Sender<(usize, PubsubEvent)>,
) {
    let mut wanted: HashSet<String> = HashSet::new();
    let mut backoff = Duration::from_millis(50);
    loop {
        let why = match session(
            shard,
            &target,
            timeout,
            max_frame,
            &mut wanted,
            &mut ctl,
            &events,
        )
        .await
        {
            Ok(()) => return, // the link is gone
            Err(e) => e,
        };
        if events.send((shard, PubsubEvent::Down(why))).await.is_err() {
            return;
        }
        // take the changes made while disconnected
        while let Ok(c) = ctl.try_recv() {
            apply(&mut wanted, c);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
        if events.is_closed() {
            return;
        }
    }
}

fn apply(wanted: &mut HashSet<String>, c: PubsubCtl) {
    match c {
        PubsubCtl::Subscribe(v) => wanted.extend(v),
        PubsubCtl::Unsubscribe(v) => {
            for ch in v {
                wanted.remove(&ch);
            }
        }
    }
}

/// One connection's life; `Ok` only when the link is gone.
async fn session(
    shard: usize,
    target: &Target,
    timeout: Duration,
    max_frame: usize,
    wanted: &mut HashSet<String>,
    ctl: &mut tokio::sync::mpsc::UnboundedReceiver<PubsubCtl>,
    events: &tokio::sync::mpsc::Sender<(usize, PubsubEvent)>,
) -> Result<(), String> {
    let mut conn = tokio::time::timeout(
        timeout,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| format!("connecting took more than {timeout:?}"))?
    .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = conn.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    if let Some(pass) = &target.password {
        let mut args = vec!["AUTH"];
        if let Some(u) = &target.username {
            args.push(u);
        }
        args.push(pass);
        conn.write_all(&command(&args))
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(timeout, read_value(&mut conn, &mut buf, max_frame)).await {
            Ok(Ok(Value::Simple(_))) => {}
            Ok(Ok(Value::Error(e))) => return Err(format!("AUTH refused: {e}")),
            Ok(Ok(_)) => return Err("unexpected answer to AUTH".into()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(format!("AUTH took more than {timeout:?}")),
        }
    }
    while let Ok(c) = ctl.try_recv() {
        apply(wanted, c);
    }
    if events.send((shard, PubsubEvent::Up)).await.is_err() {
        return Ok(());
    }
    let all: Vec<String> = wanted.iter().cloned().collect();
    for batch in all.chunks(BATCH) {
        subscribe(&mut conn, "SUBSCRIBE", batch).await?;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut pong_due: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            c = ctl.recv() => {
                let Some(c) = c else { return Ok(()) };
                // take every change waiting, then send them as few commands
                // as their order allows (a room left and joined again must
                // end up subscribed)
                let mut run: (&str, Vec<String>) = ("SUBSCRIBE", Vec::new());
                let mut next = Some(c);
                while let Some(c) = next {
                    let (verb, channels) = match c {
                        PubsubCtl::Subscribe(v) => ("SUBSCRIBE", v),
                        PubsubCtl::Unsubscribe(v) => ("UNSUBSCRIBE", v),
                    };
                    if verb != run.0 {
                        flush(&mut conn, &mut run).await?;
                        run.0 = verb;
                    }
                    for ch in channels {
                        let changed = if verb == "SUBSCRIBE" {
                            wanted.insert(ch.clone())
                        } else {
                            wanted.remove(&ch)
                        };
                        if changed {
                            run.1.push(ch);
                        }
                    }
                    next = ctl.try_recv().ok();
                }
                flush(&mut conn, &mut run).await?;
            }
            _ = ping.tick() => {
                if let Some(due) = pong_due {
                    if tokio::time::Instant::now() >= due {
                        return Err(format!("no answer to PING within {:?}", PING_EVERY));
                    }
                }
                conn.write_all(&command(&["PING"])).await.map_err(|e| e.to_string())?;
                pong_due.get_or_insert(tokio::time::Instant::now() + PING_EVERY);
            }
            v = read_value(&mut conn, &mut buf, max_frame) => {
                let v = v?;
                match v {
                    Value::Array(mut parts) if parts.len() >= 2 => {
                        let kind = parts[0].as_bulk().cloned().unwrap_or_default();
                        match &kind[..] {
                            b"message" if parts.len() == 3 => {
                                let payload = parts.pop().and_then(Value::into_bulk).unwrap_or_default();
                                let channel = parts.pop().and_then(Value::into_bulk).unwrap_or_default();
                                if events.send((shard, PubsubEvent::Message { channel, payload })).await.is_err() {
                                    return Ok(());
                                }
                            }
                            b"subscribe" => {
                                let channel = parts.swap_remove(1).into_bulk().unwrap_or_default();
                                if events.send((shard, PubsubEvent::Subscribed(channel))).await.is_err() {
                                    return Ok(());
                                }
                            }
                            b"pong" => pong_due = None,
                            _ => {}
                        }
                    }
                    Value::Simple(s) if s.eq_ignore_ascii_case("PONG") => pong_due = None,
                    Value::Error(e) => return Err(format!("Redis answered an error: {e}")),
                    _ => {}
                }
            }
        }
    }
}

/// Channels per `SUBSCRIBE` command.
const BATCH: usize = 256;
/// A quiet subscription connection is checked this often (a PING must be answered within as long).
const PING_EVERY: Duration = Duration::from_secs(1);

/// Sends the channels gathered in `run` with its verb, in batches.
async fn flush(conn: &mut TcpStream, run: &mut (&str, Vec<String>)) -> Result<(), String> {
    for batch in run.1.chunks(BATCH) {
        subscribe(conn, run.0, batch).await?;
    }
    run.1.clear();
    Ok(())
}

async fn subscribe(conn: &mut TcpStream, verb: &str, channels: &[String]) -> Result<(), String> {
    let mut args: Vec<&str> = Vec::with_capacity(channels.len() + 1);
    args.push(verb);
    args.extend(channels.iter().map(String::as_str));
    conn.write_all(&command(&args))
        .await
        .map_err(|e| format!("cannot write {verb}: {e}"))
}

/// A command in RESP.
fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A RESP2 reply (what a subscribed connection receives).
#[derive(Debug, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Bytes),
    Nil,
    Array(Vec<Value>),
}

impl Value {
    fn as_bulk(&self) -> Option<&Bytes> {
        match self {
            Value::Bulk(b) => Some(b),
            _ => None,
        }
    }
    fn into_bulk(self) -> Option<Bytes> {
        match self {
            Value::Bulk(b) => Some(b),
            _ => None,
        }
    }
}

/// Reads one whole reply, holding at most `max` bytes of it.
async fn read_value(conn: &mut TcpStream, buf: &mut BytesMut, max: usize) -> Result<Value, String> {
    loop {
        match parse(&buf[..], max)? {
            Some((v, used)) => {
                buf.advance(used);
                return Ok(v);
            }
            None => {
                if buf.len() >= max {
                    return Err(format!("a reply from Redis is longer than {max} bytes"));
                }
                buf.reserve(16 * 1024);
                let n = conn
                    .read_buf(buf)
                    .await
                    .map_err(|e| format!("read failed: {e}"))?;
                if n == 0 {
                    return Err("Redis closed the connection".into());
                }
            }
        }
    }
}

/// One reply at the start of `b` and its length, `None` if it is not
/// complete yet, or why it is not RESP.
pub fn parse(b: &[u8], max: usize) -> Result<Option<(Value, usize)>, String> {
    fn line(b: &[u8], from: usize) -> Option<(&[u8], usize)> {
        let end = b[from..].windows(2).position(|w| w == b"\r\n")?;
        Some((&b[from..from + end], from + end + 2))
    }
    fn int(s: &[u8]) -> Result<i64, String> {
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                format!(
                    "bad length {:?} in a reply from Redis",
                    String::from_utf8_lossy(s)
                )
            })
    }
    fn value(
        b: &[u8],
        at: usize,
        max: usize,
        depth: usize,
    ) -> Result<Option<(Value, usize)>, String> {
        if at >= b.len() {
            return Ok(None);
        }
        if depth > 4 {
            return Err("a reply from Redis nests too deep".into());
        }
        let Some((l, next)) = line(b, at + 1) else {
            return Ok(None);
        };
        let text = || String::from_utf8_lossy(l).into_owned();
        Ok(Some(match b[at] {
            b'+' => (Value::Simple(text()), next),
            b'-' => (Value::Error(text()), next),
            b':' => (Value::Int(int(l)?), next),
            b'$' => {
                let n = int(l)?;
                if n < 0 {
                    return Ok(Some((Value::Nil, next)));
                }
                let n = n as usize;
                if n > max {
                    return Err(format!("a reply from Redis is longer than {max} bytes"));
                }
                if b.len() < next + n + 2 {
                    return Ok(None);
                }
                (
                    Value::Bulk(Bytes::copy_from_slice(&b[next..next + n])),
                    next + n + 2,
                )
            }
            b'*' => {
                let n = int(l)?;
                if n < 0 {
                    return Ok(Some((Value::Nil, next)));
                }
                if n > 16 {
                    return Err(format!(
                        "a reply from Redis has {n} parts; at most 16 are expected"
                    ));
                }
                let mut items = Vec::with_capacity(n as usize);
                let mut at = next;
                for _ in 0..n {
                    match value(b, at, max, depth + 1)? {
                        Some((v, next)) => {
                            items.push(v);
                            at = next;
                        }
                        None => return Ok(None),
                    }
                }
                (Value::Array(items), at)
            }
            other => return Err(format!("byte 0x{other:02x} does not start a RESP reply")),
        }))
    }
    value(b, 0, max, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_confirmations_parse_whole_or_not_at_all() {
        let m = b"*3\r\n$7\r\nmessage\r\n$3\r\nr:a\r\n$5\r\nhe\r\nl\r\n";
        for cut in 0..m.len() {
            assert_eq!(parse(&m[..cut], 1024).unwrap(), None, "cut at {cut}");
        }
        let (v, used) = parse(m, 1024).unwrap().unwrap();
        assert_eq!(used, m.len());
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Bulk(Bytes::from_static(b"message")),
                Value::Bulk(Bytes::from_static(b"r:a")),
                Value::Bulk(Bytes::from_static(b"he\r\nl")),
            ])
        );
        let s = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n+PONG\r\n";
        let (v, used) = parse(s, 1024).unwrap().unwrap();
        assert!(matches!(v, Value::Array(ref p) if p[2] == Value::Int(1)));
        assert_eq!(
            parse(&s[used..], 1024).unwrap().unwrap().0,
            Value::Simple("PONG".into())
        );
    }

    #[test]
    fn oversized_and_malformed_replies_are_refused() {
        assert!(parse(b"$2000\r\n", 1024)
            .unwrap_err()
            .contains("longer than 1024"));
        assert!(parse(b"*99\r\n", 1024).unwrap_err().contains("99 parts"));
        assert!(parse(b"?x\r\n", 1024).unwrap_err().contains("0x3f"));
        assert!(parse(b"$x\r\n", 1024).unwrap_err().contains("bad length"));
    }

    #[test]
    fn urls_give_host_port_and_credentials() {
        let of = |url: &str| {
            Target::of(redis::Client::open(url).unwrap().get_connection_info()).unwrap()
        };
        let t = of("redis://:p%40ss@10.1.2.3:7000/2");
        assert_eq!((t.host.as_str(), t.port), ("10.1.2.3", 7000));
        assert_eq!((t.username, t.password.as_deref()), (None, Some("p@ss")));
        let t = of("redis://user:pw@[::1]:6380");
        assert_eq!((t.host.as_str(), t.port), ("::1", 6380));
        assert_eq!(t.username.as_deref(), Some("user"));
        let t = of("redis://localhost");
        assert_eq!((t.host.as_str(), t.port), ("localhost", 6379));
    }
}
