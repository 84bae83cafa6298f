//! `midwrite`: subscribers that vanish while the server is writing to them.
//! Each cycle opens `--subs` subscribers (SSE or WebSocket, by URL scheme)
//! with a 4 KiB receive buffer, publishes `--backlog` bytes in `--size`
//! messages to their room (more than their windows and the server's send
//! buffers take at once, so writes to them are in progress), waits
//! `--hold`, then drops them without reading: alternately with a reset
//! (SO_LINGER 0) and a plain close with unread data (which the kernel turns
//! into a reset too). One cycle every `--every` until `--duration` is over.
//! Blocking sockets, one at a time: this mode makes faults, not load.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use crate::args::{parse_size, Args};
use crate::json::JsonLine;
use crate::modes::common;
use crate::proto::http::{self, post_request, ResponseReader};
use crate::proto::ws;
use crate::rng::Rng;
use crate::sys;
use crate::url::{Scheme, Url};

const IO_LIMIT: Duration = Duration::from_secs(10);

/// A blocking connection whose receive buffer is set small before connecting.
pub(crate) fn connect_small(url: &Url, rcvbuf: i32) -> std::io::Result<TcpStream> {
    // SAFETY: plain socket calls on a descriptor this function owns; it is
    // closed on the error path or handed to TcpStream.
    let s = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &rcvbuf as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
        TcpStream::from_raw_fd(fd)
    };
    connect_v4(&s, url)?;
    s.set_read_timeout(Some(IO_LIMIT))?;
    s.set_write_timeout(Some(IO_LIMIT))?;
    Ok(s)
}

fn connect_v4(s: &TcpStream, url: &Url) -> std::io::Result<()> {
    let std::net::SocketAddr::V4(v4) = url.addr else {
        return Err(std::io::Error::other("an IPv4 address is needed"));
    };
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr_in for the length given.
    let r = unsafe {
        libc::connect(
            s.as_raw_fd(),
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sends the subscription request and reads the response head; Err names
/// what was wrong.
fn subscribe(url: &Url, rng: &mut Rng) -> Result<TcpStream, String> {
    let mut s = connect_small(url, 4096).map_err(|e| format!("connect: {e}"))?;
    let (req, want) = match url.scheme {
        Scheme::Ws => {
            let key = ws::client_key(rng.bytes16());
            (ws::handshake_request(&url.authority, &url.path, &key), 101)
        }
        Scheme::Http => (http::sse_request(&url.authority, &url.path), 200),
    };
    s.write_all(&req).map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    loop {
        // One byte at a time would be slow; the head is small and comes in
        // one segment, the stream after it is left unread in the socket.
        let n = s.read(&mut b).map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        head.extend_from_slice(&b[..n]);
        if let Some(h) = http::parse_response_head(&head)? {
            if h.status != want {
                return Err(format!("status {} (want {want})", h.status));
            }
            return Ok(s);
        }
    }
}

/// Keeps the first few error messages.
fn note(errors: &mut Vec<String>, e: String) {
    if errors.len() < 5 {
        errors.push(e);
    }
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid linger struct for the length given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Unread bytes in a socket's receive queue.
fn unread(s: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &mut n) };
    n.max(0) as usize
}

pub fn run(mut a: Args) -> Result<i32, String> {
    let sub_url = Url::parse(&a.req("sub-url")?)?;
    let pub_url = Url::parse(&a.req("publish-url")?)?;
    sub_url.refuse_tls("midwrite")?;
    pub_url.refuse_tls("midwrite")?;
    let subs: usize = a.num("subs", 10)?;
    let size = parse_size(&a.opt("size")?.unwrap_or_else(|| "32KiB".into()))?;
    let backlog = parse_size(&a.opt("backlog")?.unwrap_or_else(|| "512KiB".into()))?;
    let hold = a.duration("hold", Duration::from_millis(200))?;
    let every = a.duration("every", Duration::from_secs(1))?;
    let duration = a.duration("duration", Duration::from_secs(30))?;
    a.finish()?;
    if pub_url.scheme != Scheme::Http {
        return Err("--publish-url must be http://".into());
    }
    if subs == 0 || size == 0 {
        return Err("--subs and --size must be positive".into());
    }
    sys::raise_nofile();
    let mut rng = Rng::from_entropy();
    let t0 = sys::now_ns();
    let end = t0 + duration.as_nanos() as u64;
    let body = vec![b'm'; size];
    let per_cycle = backlog.div_ceil(size).max(1);
    let (mut cycles, mut opened, mut resets, mut closes) = (0u64, 0u64, 0u64, 0u64);
    let (mut accepted, mut rejected, mut failed) = (0u64, 0u64, 0u64);
    let mut unread_at_close = 0u64;
    let mut errors: Vec<String> = Vec::new();
    let mut publisher: Option<(TcpStream, ResponseReader)> = None;
    while sys::now_ns() < end {
        let cycle_start = sys::now_ns();
        let mut held = Vec::with_capacity(subs);
        for _ in 0..subs {
            match subscribe(&sub_url, &mut rng) {
                Ok(s) => {
                    opened += 1;
                    held.push(s);
                }
                Err(e) => {
                    failed += 1;
                    note(&mut errors, format!("subscribe: {e}"));
                }
            }
        }
        // The backlog, over one keep-alive connection (reopened if closed).
        let mut out = Vec::new();
        for _ in 0..per_cycle {
            post_request(&mut out, &pub_url.authority, &pub_url.path, &body);
        }
        let mut statuses = Vec::new();
        let sent = (|| -> Result<(), String> {
            if publisher.is_none() {
                let s = TcpStream::connect(pub_url.addr).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(IO_LIMIT))
                    .map_err(|e| e.to_string())?;
                publisher = Some((s, ResponseReader::new()));
            }
            let (s, reader) = publisher.as_mut().unwrap();
            s.write_all(&out).map_err(|e| format!("publish: {e}"))?;
            let mut b = vec![0u8; 16 * 1024];
            while statuses.len() < per_cycle {
                let n = s.read(&mut b).map_err(|e| format!("publish answer: {e}"))?;
                if n == 0 {
                    return Err("publisher closed".into());
                }
                reader.feed(&b[..n], &mut |st| statuses.push(st))?;
            }
            Ok(())
        })();
        if let Err(e) = sent {
            publisher = None;
            failed += 1;
            note(&mut errors, e);
        }
        for st in statuses {
            if (200..300).contains(&st) {
                accepted += 1;
            } else {
                rejected += 1;
                note(&mut errors, format!("publish answered {st}"));
            }
        }
        std::thread::sleep(hold);
        for (i, s) in held.into_iter().enumerate() {
            unread_at_close += unread(&s) as u64;
            if (cycles as usize + i).is_multiple_of(2) {
                set_linger_zero(&s);
                resets += 1;
            } else {
                closes += 1;
            }
            drop(s);
        }
        cycles += 1;
        let next = cycle_start + every.as_nanos() as u64;
        let now = sys::now_ns();
        if next > now && next < end {
            std::thread::sleep(Duration::from_nanos(next - now));
        }
    }
    let wall = (sys::now_ns() - t0) as f64 / 1e9;
    println!(
        "midwrite: {cycles} cycles in {wall:.1}s: {opened} subscribers opened ({failed} failures), each cycle {per_cycle} x {size} B published ({accepted} accepted, {rejected} refused); dropped mid-write: {resets} by reset, {closes} by close with unread data ({unread_at_close} bytes unread in all)"
    );
    for e in &errors {
        println!("  {e}");
    }
    let ok = failed == 0 && rejected == 0 && opened > 0;
    let mut j = JsonLine::new();
    j.str("mode", "midwrite")
        .str("sub_path", &sub_url.path)
        .float("duration_s", wall)
        .int("cycles", cycles)
        .int("subs_opened", opened)
        .int("failed", failed)
        .int("published", accepted + rejected)
        .int("publish_accepted", accepted)
        .int("publish_rejected", rejected)
        .int("resets", resets)
        .int("closes_with_unread", closes)
        .int("unread_bytes_at_close", unread_at_close)
        .str(
            "first_error",
            errors.first().map(String::as_str).unwrap_or(""),
        );
    j.bool("ok", ok);
    common::emit(&j);
    Ok(if ok { 0 } else { 1 })
}
