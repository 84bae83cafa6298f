//! Operating-system facts and calls: the monotonic clock, file-descriptor
//! limit, own CPU time (getrusage), a server's RSS, fd count and CPU time
//! from /proc, and non-blocking sockets bound to a chosen source address.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::FromRawFd;

/// CLOCK_MONOTONIC in nanoseconds (the same clock for every process on the
/// machine, so a publisher's timestamp can be compared with a receive time).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to rlimit structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
    }
    r.rlim_cur
}

/// This process's user + system CPU seconds.
pub fn self_cpu_secs() -> f64 {
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// This process's resident set, bytes.
pub fn self_rss() -> Option<u64> {
    rss_of("self")
}

fn rss_of(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// One reading of a server process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub rss: u64,
    pub fds: u64,
}

/// Reads RSS (VmRSS) and the number of open fds.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let rss = rss_of(&pid.to_string())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcSample { rss, fds })
}

/// CPU seconds (utime + stime over CLK_TCK) of a process.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&stat)
}

fn parse_stat_cpu(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((ut + st) as f64 / tck)
}

/// Server CPU meter over a window, when a pid is known.
pub struct CpuWindow {
    pid: Option<u32>,
    t0: u64,
    self0: f64,
    server0: Option<f64>,
}

pub struct CpuUse {
    pub wall_secs: f64,
    pub self_secs: f64,
    pub server_secs: Option<f64>,
}

impl CpuUse {
    pub fn self_pct(&self) -> f64 {
        100.0 * self.self_secs / self.wall_secs.max(1e-9)
    }
    pub fn server_pct(&self) -> Option<f64> {
        self.server_secs
            .map(|s| 100.0 * s / self.wall_secs.max(1e-9))
    }
    /// Server CPU-seconds per million of `n` units of work.
    pub fn server_per_million(&self, n: u64) -> Option<f64> {
        match self.server_secs {
            Some(s) if n > 0 => Some(s / (n as f64 / 1e6)),
            _ => None,
        }
    }
}

impl CpuWindow {
    pub fn start(pid: Option<u32>) -> Self {
        CpuWindow {
            pid,
            t0: now_ns(),
            self0: self_cpu_secs(),
            server0: pid.and_then(cpu_secs),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let server = match (self.pid.and_then(cpu_secs), self.server0) {
            (Some(b), Some(a)) => Some(b - a),
            _ => None,
        };
        CpuUse {
            wall_secs: (now_ns() - self.t0) as f64 / 1e9,
            self_secs: self_cpu_secs() - self.self0,
            server_secs: server,
        }
    }
}

/// Starts a non-blocking TCP connect with TCP_NODELAY; with `src`, binds that
/// IPv4 source address first (the port is still chosen at connect time, so
/// each source address brings its own ephemeral port range).
pub fn connect(addr: SocketAddr, src: Option<Ipv4Addr>) -> io::Result<mio::net::TcpStream> {
    let SocketAddr::V4(v4) = addr else {
        let s = mio::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        return Ok(s);
    };
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // descriptor is closed on every error path or handed to TcpStream.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fail = |fd| {
            let e = io::Error::last_os_error();
            libc::close(fd);
            Err(e)
        };
        let one: libc::c_int = 1;
        let optlen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let p = &one as *const libc::c_int as *const libc::c_void;
        if libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, p, optlen) != 0 {
            return fail(fd);
        }
        if let Some(ip) = src {
            // Failure here only costs port-range width; ignore it.
            libc::setsockopt(
                fd,
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                p,
                optlen,
            );
            let sa = sockaddr_in(ip, 0);
            if libc::bind(
                fd,
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ) != 0
            {
                return fail(fd);
            }
        }
        let sa = sockaddr_in(*v4.ip(), v4.port());
        let r = libc::connect(
            fd,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINPROGRESS) {
            return fail(fd);
        }
        Ok(mio::net::TcpStream::from_raw_fd(fd))
    }
}

fn sockaddr_in(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_fields() {
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let line = "123 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 300 200 0 0 20 0";
        let got = parse_stat_cpu(line).unwrap();
        assert!((got - 500.0 / tck).abs() < 1e-9);
    }

    #[test]
    fn samples_self() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss > 0 && s.fds > 0);
        assert!(self_cpu_secs() >= 0.0);
        assert!(raise_nofile() > 0);
    }
}
