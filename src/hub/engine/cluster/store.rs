//! What a room is in Redis, and the commands that read and write it.
//!
//! Keys of room `R` (prefix `P`):
//! - `P:r:R:m`, a hash: `b`, the room's base (the id before its first
//!   message: microseconds since the Unix epoch when the room was created
//!   in this Redis) and `n`, the messages numbered so far. A message's id
//!   is `b + n`, so ids mean what they mean on a single process.
//! - `P:r:R:s`, the history stream, at most `hub.history_size` entries,
//!   each with the id `b-n` and fields `m` (the message) and `t` (when,
//!   milliseconds since the epoch).
//! - `P:r:R:p`, a hash: each node's subscriber count, as `count:expiry_ms`.
//! - channel `P:r:R`: every message as `b:n:` followed by the entry's `m`.
//!
//! One script numbers, keeps and announces a message; a room whose `m` key
//! is gone (Redis restarted without its data, or evicted it) starts again
//! with a later base, so every client's older cursor is seen as from before
//! a reset.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::Value;

use crate::hub::{Message, RoomName};

/// The publish script (see the module documentation).
const PUBLISH: &str = r#"
local b = redis.call('HGET', KEYS[1], 'b')
if not b then
  local now = redis.call('TIME')
  b = now[1] .. string.format('%06d', tonumber(now[2]))
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if top[1] then
    local ms = string.match(top[1][1], '^(%d+)-')
    if tonumber(ms) >= tonumber(b) then b = string.format('%.0f', tonumber(ms) + 1) end
  end
  redis.call('HSET', KEYS[1], 'b', b, 'n', 0)
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local now = redis.call('TIME')
local ms = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], b .. '-' .. n, 'm', ARGV[1], 't', ms)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], b .. ':' .. n .. ':' .. ARGV[1])
return {b, n}
"#;

/// Key and channel names of one cluster.
#[derive(Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
        }
    }
    pub fn channel(&self, room: &str) -> String {
        format!("{}:r:{room}", self.prefix)
    }
    /// The room of a channel name, if it is one of this cluster's.
    pub fn room_of_channel<'a>(&self, channel: &'a [u8]) -> Option<&'a str> {
        let rest = channel.strip_prefix(self.prefix.as_bytes())?;
        std::str::from_utf8(rest.strip_prefix(b":r:")?).ok()
    }
    fn meta(&self, room: &str) -> String {
        format!("{}:r:{room}:m", self.prefix)
    }
    fn stream(&self, room: &str) -> String {
        format!("{}:r:{room}:s", self.prefix)
    }
    fn presence(&self, room: &str) -> String {
        format!("{}:r:{room}:p", self.prefix)
    }
}

/// A message's place in its room: the room's base and its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub base: u64,
    pub n: u64,
}

impl Pos {
    pub fn id(self) -> u64 {
        self.base + self.n
    }
}

/// The body a message is kept and sent as: `len:event` (or `-:` without
/// an event) then the data.
pub fn encode_body(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.data.len() + 16);
    match &msg.event {
        Some(e) => {
            out.extend_from_slice(e.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(e.as_bytes());
        }
        None => out.extend_from_slice(b"-:"),
    }
    out.extend_from_slice(&msg.data);
    out
}

/// The message of a body written by [`encode_body`].
pub fn decode_body(body: &Bytes) -> Option<Message> {
    let colon = body.iter().position(|&b| b == b':')?;
    let head = &body[..colon];
    if head == b"-" {
        return Some(Message::new(body.slice(colon + 1..)));
    }
    let len: usize = std::str::from_utf8(head).ok()?.parse().ok()?;
    let event = body.get(colon + 1..colon + 1 + len)?;
    Some(Message {
        event: Some(String::from_utf8(event.to_vec()).ok()?),
        data: body.slice(colon + 1 + len..),
    })
}

/// A channel message: its place and its message.
pub fn decode_announce(payload: &Bytes) -> Option<(Pos, Message)> {
    let mut parts = payload.splitn(3, |&b| b == b':');
    let base = num(parts.next()?)?;
    let n = num(parts.next()?)?;
    let at = payload.len() - parts.next()?.len();
    Some((Pos { base, n }, decode_body(&payload.slice(at..))?))
}

fn num(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// One history entry.
pub struct Entry {
    pub pos: Pos,
    pub msg: Message,
    /// Milliseconds since the epoch when it was published.
    pub at_ms: u64,
}

/// A failed command: whether the connection is gone with it.
#[derive(Debug)]
pub struct StoreError {
    pub why: String,
    pub link_lost: bool,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

fn store_err(e: redis::RedisError) -> StoreError {
    StoreError {
        link_lost: e.is_io_error() || e.is_connection_dropped() || e.is_timeout(),
        why: e.to_string(),
    }
}

/// Runs `f` within `timeout` (a command that takes longer counts as a lost link).
pub async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r,
        Err(_) => Err(StoreError {
            why: format!("Redis did not answer within {timeout:?}"),
            link_lost: true,
        }),
    }
}

/// What the publish script needs besides the message.
#[derive(Clone)]
pub struct Limits {
    pub history_size: usize,
    pub history_ttl: Duration,
}

/// A pipeline whose first command reads the room's numbering (`HMGET b n`).
fn with_meta(names: &Names, room: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("HMGET").arg(names.meta(room)).arg("b").arg("n");
    pipe
}

/// The numbering an `HMGET b n` read (`None`: no such room).
fn pos_of(meta: &[Option<u64>]) -> Option<Pos> {
    match meta {
        [Some(base), Some(n)] => Some(Pos { base: *base, n: *n }),
        _ => None,
    }
}

/// Numbers, keeps and announces several messages, in their order, in one
/// round trip; their places. Each is one `EVAL` (never `EVALSHA`: a script
/// missing from Redis's cache could then fail one message and not the next,
/// and a retry would reorder them).
pub async fn publish(
    conn: &mut MultiplexedConnection,
    names: &Names,
    limits: &Limits,
    batch: &[(RoomName, Vec<u8>)],
) -> Result<Vec<Pos>, StoreError> {
    let ttl_ms = limits.history_ttl.as_millis().max(1) as u64;
    // the numbering outlives the history by a day, so a quiet room keeps its ids
    let meta_ttl_ms = ttl_ms.saturating_add(86_400_000);
    let mut pipe = redis::pipe();
    for (room, body) in batch {
        pipe.cmd("EVAL")
            .arg(PUBLISH)
            .arg(2)
            .arg(names.meta(room))
            .arg(names.stream(room))
            .arg(body)
            .arg(limits.history_size.max(1))
            .arg(ttl_ms)
            .arg(meta_ttl_ms)
            .arg(names.channel(room));
    }
    let placed: Vec<(String, u64)> = pipe.query_async(conn).await.map_err(store_err)?;
    placed
        .into_iter()
        .map(|(b, n)| {
            b.parse()
                .map(|base| Pos { base, n })
                .map_err(|_| StoreError {
                    why: format!("the publish script gave base {b:?}"),
                    link_lost: false,
                })
        })
        .collect()
}

/// A room's numbering (`None`: Redis has no such room) and the first
/// `count` history entries after `after` (`None`: from the oldest).
pub async fn read(
    conn: &mut MultiplexedConnection,
    names: &Names,
    room: &str,
    after: Option<Pos>,
    count: usize,
) -> Result<(Option<Pos>, Vec<Entry>), StoreError> {
    let start = match after {
        Some(p) => format!("({}-{}", p.base, p.n),
        None => "-".to_string(),
    };
    let (meta, entries): (Vec<Option<u64>>, Value) = with_meta(names, room)
        .cmd("XRANGE")
        .arg(names.stream(room))
        .arg(start)
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .map_err(store_err)?;
    Ok((pos_of(&meta), entries_of(entries)))
}

fn entries_of(v: Value) -> Vec<Entry> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(mut pair) = item else {
            continue;
        };
        if pair.len() != 2 {
            continue;
        }
        let fields = pair.pop();
        let id = pair.pop();
        let (Some(Value::BulkString(id)), Some(Value::Array(fields))) = (id, fields) else {
            continue;
        };
        let Some(pos) = std::str::from_utf8(&id).ok().and_then(|s| {
            let (b, n) = s.split_once('-')?;
            Some(Pos {
                base: b.parse().ok()?,
                n: n.parse().ok()?,
            })
        }) else {
            continue;
        };
        let mut body = None;
        let mut at_ms = 0;
        for kv in fields.chunks(2) {
            match kv {
                [Value::BulkString(k), Value::BulkString(v)] if k == b"m" => {
                    body = Some(Bytes::from(v.clone()))
                }
                [Value::BulkString(k), Value::BulkString(v)] if k == b"t" => {
                    at_ms = num(v).unwrap_or(0)
                }
                _ => {}
            }
        }
        if let Some(msg) = body.as_ref().and_then(decode_body) {
            out.push(Entry { pos, msg, at_ms });
        }
    }
    out
}

/// The heads of several rooms (`None` where Redis has no such room).
pub async fn heads(
    conn: &mut MultiplexedConnection,
    names: &Names,
    rooms: &[RoomName],
) -> Result<Vec<Option<Pos>>, StoreError> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for r in rooms {
        pipe.cmd("HMGET").arg(names.meta(r)).arg("b").arg("n");
    }
    let metas: Vec<Vec<Option<u64>>> = pipe.query_async(conn).await.map_err(store_err)?;
    Ok(metas.iter().map(|m| pos_of(m)).collect())
}

/// How a room is, cluster-wide: subscribers on live nodes, its head and
/// history length.
pub async fn info(
    conn: &mut MultiplexedConnection,
    names: &Names,
    room: &str,
    node: &str,
    local: u64,
    now_ms: u64,
) -> Result<(u64, Option<Pos>, usize), StoreError> {
    let (meta, len, presence): (Vec<Option<u64>>, usize, Vec<(String, String)>) =
        with_meta(names, room)
            .cmd("XLEN")
            .arg(names.stream(room))
            .cmd("HGETALL")
            .arg(names.presence(room))
            .query_async(conn)
            .await
            .map_err(store_err)?;
    let mut subs = local;
    for (who, v) in presence {
        if who == node {
            continue; // this node's own count is the live one
        }
        if let Some((count, until)) = v.split_once(':') {
            let (Ok(count), Ok(until)) = (count.parse::<u64>(), until.parse::<u64>()) else {
                continue;
            };
            if until > now_ms {
                subs += count;
            }
        }
    }
    Ok((subs, pos_of(&meta).filter(|p| p.n > 0), len))
}

/// Writes this node's subscriber counts (0 removes the node's entry).
pub async fn presence(
    conn: &mut MultiplexedConnection,
    names: &Names,
    node: &str,
    counts: &[(RoomName, u64)],
    ttl: Duration,
    now_ms: u64,
) -> Result<(), StoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let until = now_ms + ttl.as_millis() as u64;
    let mut pipe = redis::pipe();
    for (room, count) in counts {
        let key = names.presence(room);
        if *count == 0 {
            pipe.cmd("HDEL").arg(&key).arg(node).ignore();
        } else {
            pipe.cmd("HSET")
                .arg(&key)
                .arg(node)
                .arg(format!("{count}:{until}"))
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl.as_millis() as u64 * 2)
                .ignore();
        }
    }
    pipe.query_async::<()>(conn).await.map_err(store_err)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    crate::hub::room_base_now() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_with_and_without_event() {
        for msg in [
            Message::new("plain: with colons\nand lines"),
            Message::with_event("tick", "a:b"),
            Message::new(Bytes::from_static(&[0, 255, b':', 1])),
            Message::new(""),
        ] {
            let body = Bytes::from(encode_body(&msg));
            assert_eq!(decode_body(&body), Some(msg.clone()));
            let announce = Bytes::from([b"1700000000000000:42:".as_slice(), &body].concat());
            let (pos, back) = decode_announce(&announce).unwrap();
            assert_eq!(
                (pos.base, pos.n, pos.id()),
                (1700000000000000, 42, 1700000000000042)
            );
            assert_eq!(back, msg);
        }
        assert_eq!(decode_body(&Bytes::from_static(b"9:ab")), None);
        assert_eq!(decode_announce(&Bytes::from_static(b"x:1:-:a")), None);
    }

    #[test]
    fn channels_name_their_room() {
        let n = Names::new("rc");
        assert_eq!(n.channel("news"), "rc:r:news");
        assert_eq!(n.room_of_channel(b"rc:r:news"), Some("news"));
        assert_eq!(n.room_of_channel(b"other:r:news"), None);
    }
}
