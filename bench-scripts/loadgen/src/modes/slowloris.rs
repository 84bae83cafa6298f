//! `slowloris`: holds N connections that each send their request head one
//! byte per `--interval` and never finish it (after the request line come
//! endless `X-Slow-N: ...` header lines). A server with a head deadline
//! answers 408 and closes; every connection it ends is replaced by a new
//! one until `--duration` is over. With `--expect-cut-within D`, a
//! connection that lives longer than D after its first byte, or that is
//! ended without a 408, fails the run.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::args::Args;
use crate::hist::Histogram;
use crate::json::JsonLine;
use crate::modes::common::{self, fmt_ns};
use crate::sys;
use crate::url::Url;

struct Loris {
    stream: TcpStream,
    /// When the first byte went out.
    t0: u64,
    sent: usize,
    got: Vec<u8>,
}

/// Byte `i` of an endless, never complete request head.
fn head_byte(path: &str, host: &str, i: usize) -> u8 {
    let start = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    if i < start.len() {
        return start.as_bytes()[i];
    }
    const LINE: &[u8] = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    LINE[(i - start.len()) % LINE.len()]
}

/// How a slow connection ended.
enum End {
    Cut408,
    /// Closed or reset by the server without a 408.
    CutOther(String),
}

pub fn run(mut a: Args) -> Result<i32, String> {
    let url = Url::parse(
        &a.opt("url")?
            .unwrap_or_else(|| "http://127.0.0.1:8080/".into()),
    )?;
    url.refuse_tls("slowloris")?;
    let conns: usize = a.num("conns", 100)?;
    let interval = a.duration("interval", Duration::from_secs(1))?;
    let duration = a.duration("duration", Duration::from_secs(30))?;
    let expect = match a.opt("expect-cut-within")? {
        Some(v) => Some(crate::args::parse_duration(&v)?),
        None => None,
    };
    a.finish()?;
    if conns == 0 || interval.is_zero() {
        return Err("--conns and --interval must be positive".into());
    }
    sys::raise_nofile();
    let t_start = sys::now_ns();
    let end = t_start + duration.as_nanos() as u64;
    let open = |now: u64| -> io::Result<Loris> {
        let s = TcpStream::connect(url.addr)?;
        s.set_nonblocking(true)?;
        s.set_nodelay(true)?;
        Ok(Loris {
            stream: s,
            t0: now,
            sent: 0,
            got: Vec::new(),
        })
    };
    let mut held: Vec<Option<Loris>> = Vec::with_capacity(conns);
    let mut opened = 0u64;
    let mut cut_408 = 0u64;
    let mut cut_other = 0u64;
    let mut not_cut = 0u64;
    let mut errors = Vec::new();
    let mut connect_errors = 0u64;
    let mut bytes_sent = 0u64;
    let mut lifetime = Histogram::new();
    for _ in 0..conns {
        held.push(None);
    }
    let mut buf = [0u8; 4096];
    loop {
        let now = sys::now_ns();
        if now >= end {
            break;
        }
        for slot in held.iter_mut() {
            if slot.is_none() {
                match open(now) {
                    Ok(l) => {
                        opened += 1;
                        *slot = Some(l);
                    }
                    Err(e) => {
                        connect_errors += 1;
                        if errors.len() < 5 {
                            errors.push(format!("connect: {e}"));
                        }
                        continue;
                    }
                }
            }
            let l = slot.as_mut().unwrap();
            // What the server said since the last byte.
            let mut ended = None;
            loop {
                match l.stream.read(&mut buf) {
                    Ok(0) => {
                        ended = Some(if l.got.starts_with(b"HTTP/1.1 408 ") {
                            End::Cut408
                        } else {
                            End::CutOther(format!(
                                "closed after {:?}",
                                String::from_utf8_lossy(&l.got[..l.got.len().min(40)])
                            ))
                        });
                        break;
                    }
                    Ok(n) => l.got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // A reset after the 408 still counts as the 408.
                        ended = Some(if l.got.starts_with(b"HTTP/1.1 408 ") {
                            End::Cut408
                        } else {
                            End::CutOther(format!("read: {e}"))
                        });
                        break;
                    }
                }
            }
            if ended.is_none() && l.got.starts_with(b"HTTP/1.1 408 ") {
                // Answered; the close follows (the server lingers for our FIN).
                ended = Some(End::Cut408);
            }
            if ended.is_none() && !l.got.is_empty() && l.got.len() >= 12 {
                ended = Some(End::CutOther(format!(
                    "answered {:?}",
                    String::from_utf8_lossy(&l.got[..12])
                )));
            }
            match ended {
                Some(End::Cut408) => {
                    cut_408 += 1;
                    lifetime.record(now.saturating_sub(l.t0));
                    *slot = None;
                    continue;
                }
                Some(End::CutOther(why)) => {
                    cut_other += 1;
                    if errors.len() < 5 {
                        errors.push(why);
                    }
                    *slot = None;
                    continue;
                }
                None => {}
            }
            if let Some(limit) = expect {
                if l.sent > 0 && now.saturating_sub(l.t0) > limit.as_nanos() as u64 {
                    not_cut += 1;
                    if errors.len() < 5 {
                        errors.push(format!(
                            "still open {} after its first byte",
                            fmt_ns(now - l.t0)
                        ));
                    }
                    *slot = None;
                    continue;
                }
            }
            if l.sent == 0 {
                l.t0 = now;
            }
            let b = head_byte(&url.path, &url.authority, l.sent);
            match l.stream.write(&[b]) {
                Ok(1) => {
                    l.sent += 1;
                    bytes_sent += 1;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The server closed: the next read tells how.
                Err(_) => {}
            }
        }
        let now = sys::now_ns();
        if now < end {
            std::thread::sleep(interval.min(Duration::from_nanos(end - now)));
        }
    }
    let still_open = held.iter().filter(|s| s.is_some()).count();
    drop(held);
    let wall = (sys::now_ns() - t_start) as f64 / 1e9;
    println!(
        "slowloris: {conns} connections, one byte per {:?}, {:.1}s: opened {opened}, cut with 408 {cut_408}, ended otherwise {cut_other}, over the limit {not_cut}, open at the end {still_open}, connect errors {connect_errors}",
        interval, wall
    );
    if lifetime.count() > 0 {
        common::print_latency("first byte to 408", &lifetime);
    }
    for e in &errors {
        println!("  {e}");
    }
    let ok =
        cut_other == 0 && not_cut == 0 && connect_errors == 0 && (expect.is_none() || cut_408 > 0);
    let mut j = JsonLine::new();
    j.str("mode", "slowloris")
        .str("url", &format!("http://{}{}", url.authority, url.path))
        .int("conns", conns as u64)
        .float("interval_s", interval.as_secs_f64())
        .float("duration_s", wall)
        .int("opened", opened)
        .int("bytes_sent", bytes_sent)
        .int("cut_408", cut_408)
        .int("cut_other", cut_other)
        .int("not_cut", not_cut)
        .int("open_at_end", still_open as u64)
        .int("connect_errors", connect_errors);
    common::json_latency(&mut j, "cut_after", &lifetime);
    j.bool("ok", ok);
    common::emit(&j);
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_never_ends() {
        let head: Vec<u8> = (0..400).map(|i| head_byte("/x", "h:1", i)).collect();
        let text = String::from_utf8(head).unwrap();
        assert!(text.starts_with("GET /x HTTP/1.1\r\nHost: h:1\r\nX-Slow: a"));
        assert!(!text.contains("\r\n\r\n"));
    }
}
