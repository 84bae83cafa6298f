//! The limits that can change while the server runs (SIGHUP), and the
//! per-client-IP bookkeeping behind `max_connections_per_ip` and
//! `handshake_rate_per_ip`.
//!
//! Limits are plain atomics read with relaxed loads: a reload stores new
//! values and every later check sees them. The per-IP table is only touched
//! when one of the per-IP limits is on; it is striped so that workers
//! accepting at once rarely meet on the same lock, and it holds an entry only
//! while the address has open connections or a bucket that is still refilling.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::Config;

/// The limits a SIGHUP may change, as the workers read them.
#[derive(Debug, Default)]
pub struct Limits {
    /// The file-descriptor ceiling found at start-up (what `max_connections = 0` means).
    fd_ceiling: usize,
    pub max_connections: AtomicUsize,
    pub max_connections_per_worker: AtomicUsize,
    /// 0 = off.
    pub max_connections_per_ip: AtomicUsize,
    /// Handshakes per second per IP; 0 = off.
    pub handshake_rate_per_ip: AtomicU32,
    pub handshake_burst_per_ip: AtomicU32,
    /// Shared with every worker's home rooms.
    pub max_rooms: Arc<AtomicUsize>,
    pub sse_max_rooms_per_connection: AtomicUsize,
    pub ws_rooms_max_rooms_per_connection: AtomicUsize,
    /// `ws.echo` and `ws.rooms` message rates (messages/s, burst), read when a connection opens.
    pub ws_echo_rate: AtomicU32,
    pub ws_echo_burst: AtomicU32,
    pub ws_rooms_rate: AtomicU32,
    pub ws_rooms_burst: AtomicU32,
}

/// The configuration keys [`Limits::apply`] changes on a running server.
pub const LIVE_KEYS: &[&str] = &[
    "server.max_connections",
    "server.max_connections_per_worker",
    "server.max_connections_per_ip",
    "server.handshake_rate_per_ip",
    "server.handshake_burst_per_ip",
    "hub.max_rooms",
    "sse.max_rooms_per_connection",
    "ws.rooms.max_rooms_per_connection",
    "ws.echo.max_messages_per_sec",
    "ws.echo.burst",
    "ws.rooms.max_messages_per_sec",
    "ws.rooms.burst",
];

/// Keys a SIGHUP applies to the running server: the limits above, the log
/// level, `[auth]`, `hub.publish_token` and the TLS certificates (tables
/// as their name alone).
pub fn live_keys() -> Vec<&'static str> {
    let mut keys = LIVE_KEYS.to_vec();
    keys.extend([
        "log.level",
        "auth",
        "hub.publish_token",
        "tls.cert",
        "tls.key",
        "tls.certificates",
    ]);
    keys
}

/// Whether a dotted key (`auth.leeway`) changes on the running server.
pub fn is_live(key: &str) -> bool {
    live_keys()
        .iter()
        .any(|k| key == *k || key.strip_prefix(k).is_some_and(|r| r.starts_with('.')))
}

impl Limits {
    pub fn new(cfg: &Config, fd_ceiling: usize) -> Limits {
        let l = Limits {
            fd_ceiling,
            ..Limits::default()
        };
        l.apply(cfg);
        l
    }

    /// Stores `cfg`'s values; later checks see them.
    pub fn apply(&self, cfg: &Config) {
        let s = &cfg.server;
        let max = match s.max_connections {
            0 => self.fd_ceiling,
            n => n,
        };
        self.max_connections.store(max, Relaxed);
        self.max_connections_per_worker.store(
            match s.max_connections_per_worker {
                0 => max,
                n => n,
            },
            Relaxed,
        );
        self.max_connections_per_ip
            .store(s.max_connections_per_ip, Relaxed);
        self.handshake_rate_per_ip
            .store(s.handshake_rate_per_ip, Relaxed);
        self.handshake_burst_per_ip
            .store(s.handshake_burst_per_ip, Relaxed);
        self.max_rooms.store(cfg.hub.max_rooms, Relaxed);
        self.sse_max_rooms_per_connection
            .store(cfg.sse.max_rooms_per_connection, Relaxed);
        self.ws_rooms_max_rooms_per_connection
            .store(cfg.ws.rooms.max_rooms_per_connection, Relaxed);
        self.ws_echo_rate
            .store(cfg.ws.echo.max_messages_per_sec, Relaxed);
        self.ws_echo_burst.store(cfg.ws.echo.burst, Relaxed);
        self.ws_rooms_rate
            .store(cfg.ws.rooms.max_messages_per_sec, Relaxed);
        self.ws_rooms_burst.store(cfg.ws.rooms.burst, Relaxed);
    }

    /// `ws.echo` (messages/s, burst) as a connection opening now gets it.
    pub fn ws_echo_rate(&self) -> (u32, u32) {
        (
            self.ws_echo_rate.load(Relaxed),
            self.ws_echo_burst.load(Relaxed),
        )
    }

    /// `ws.rooms` (messages/s, burst) as a connection opening now gets it.
    pub fn ws_rooms_rate(&self) -> (u32, u32) {
        (
            self.ws_rooms_rate.load(Relaxed),
            self.ws_rooms_burst.load(Relaxed),
        )
    }
}

const STRIPES: usize = 64;
/// A stripe this full is swept of idle entries before it grows further.
const SWEEP_AT: usize = 256;

#[derive(Debug, Clone, Copy)]
struct IpEntry {
    conns: u32,
    /// Handshake tokens left at `stamp`.
    tokens: f64,
    stamp: Instant,
}

impl IpEntry {
    fn refill(&mut self, now: Instant, rate: u32, burst: u32) {
        let dt = now.saturating_duration_since(self.stamp).as_secs_f64();
        self.tokens = (self.tokens + dt * f64::from(rate)).min(f64::from(burst));
        self.stamp = now;
    }

    /// Nothing to remember: no connection, and a bucket that is full by `now`.
    fn idle(&self, now: Instant, rate: u32, burst: u32) -> bool {
        if self.conns > 0 {
            return false;
        }
        if rate == 0 {
            return true;
        }
        let dt = now.saturating_duration_since(self.stamp).as_secs_f64();
        self.tokens + dt * f64::from(rate) >= f64::from(burst)
    }
}

/// Open connections and handshake buckets per client IP address.
pub struct PerIp {
    stripes: Vec<Mutex<HashMap<IpAddr, IpEntry>>>,
}

impl Default for PerIp {
    fn default() -> Self {
        PerIp {
            stripes: (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl PerIp {
    fn stripe(&self, ip: &IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, IpEntry>> {
        let h = match ip {
            IpAddr::V4(a) => u32::from_ne_bytes(a.octets()) as usize,
            IpAddr::V6(a) => {
                let o = a.octets();
                o.iter()
                    .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize))
            }
        };
        let i = (h ^ (h >> 7) ^ (h >> 16)) % STRIPES;
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(
        map: &mut HashMap<IpAddr, IpEntry>,
        ip: IpAddr,
        now: Instant,
        rate: u32,
        burst: u32,
    ) -> &mut IpEntry {
        if map.len() >= SWEEP_AT && !map.contains_key(&ip) {
            map.retain(|_, e| !e.idle(now, rate, burst));
        }
        map.entry(ip).or_insert(IpEntry {
            conns: 0,
            tokens: f64::from(burst),
            stamp: now,
        })
    }

    /// Counts a new connection from `ip` unless `max` are open already.
    pub fn try_open(&self, ip: IpAddr, max: usize, limits: &Limits) -> bool {
        let (rate, burst) = bucket(limits);
        let now = Instant::now();
        let mut map = self.stripe(&ip);
        let e = Self::entry(&mut map, ip, now, rate, burst);
        if e.conns as usize >= max {
            return false;
        }
        e.conns += 1;
        true
    }

    /// Forgets a connection counted by [`PerIp::try_open`].
    pub fn close(&self, ip: IpAddr, limits: &Limits) {
        let (rate, burst) = bucket(limits);
        let now = Instant::now();
        let mut map = self.stripe(&ip);
        if let Some(e) = map.get_mut(&ip) {
            e.conns = e.conns.saturating_sub(1);
            if e.idle(now, rate, burst) {
                map.remove(&ip);
            }
        }
    }

    /// Takes one handshake token for `ip`. `Err(secs)`: over the rate, try again in `secs`.
    pub fn try_handshake(&self, ip: IpAddr, limits: &Limits) -> Result<(), u64> {
        let (rate, burst) = bucket(limits);
        if rate == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.stripe(&ip);
        let e = Self::entry(&mut map, ip, now, rate, burst);
        e.refill(now, rate, burst);
        if e.tokens >= 1.0 {
            e.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - e.tokens) / f64::from(rate);
            Err(wait.ceil().max(1.0) as u64)
        }
    }

    /// Addresses remembered right now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.stripes
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

fn bucket(limits: &Limits) -> (u32, u32) {
    (
        limits.handshake_rate_per_ip.load(Relaxed),
        limits.handshake_burst_per_ip.load(Relaxed).max(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(text: &str) -> Limits {
        Limits::new(&Config::from_toml(text, "test").unwrap(), 1000)
    }

    #[test]
    fn live_keys_include_tables() {
        assert!(is_live("auth.leeway"));
        assert!(is_live("hub.max_rooms"));
        assert!(is_live("hub.publish_token"));
        assert!(!is_live("hub.max_rooms_x"));
        assert!(!is_live("authx"));
        assert!(!is_live("http.max_headers"));
    }

    #[test]
    fn zero_means_the_ceiling_and_reload_applies() {
        let l = limits("");
        assert_eq!(l.max_connections.load(Relaxed), 1000);
        assert_eq!(l.max_connections_per_worker.load(Relaxed), 1000);
        l.apply(
            &Config::from_toml(
                "[server]\nmax_connections = 10\nmax_connections_per_ip = 2\n",
                "t",
            )
            .unwrap(),
        );
        assert_eq!(l.max_connections.load(Relaxed), 10);
        assert_eq!(l.max_connections_per_worker.load(Relaxed), 10);
        assert_eq!(l.max_connections_per_ip.load(Relaxed), 2);
    }

    #[test]
    fn per_ip_connections_are_counted_and_forgotten() {
        let l = limits("");
        let t = PerIp::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(t.try_open(a, 2, &l));
        assert!(t.try_open(a, 2, &l));
        assert!(!t.try_open(a, 2, &l), "third from the same address");
        assert!(t.try_open(b, 2, &l), "another address is not affected");
        t.close(a, &l);
        assert!(t.try_open(a, 2, &l));
        for _ in 0..2 {
            t.close(a, &l);
        }
        t.close(b, &l);
        assert_eq!(t.tracked(), 0, "nothing is remembered once all closed");
    }

    #[test]
    fn handshake_bucket_allows_the_burst_then_the_rate() {
        let l = limits("[server]\nhandshake_rate_per_ip = 1\nhandshake_burst_per_ip = 3\n");
        let t = PerIp::default();
        let a: IpAddr = "::1".parse().unwrap();
        for _ in 0..3 {
            assert!(t.try_handshake(a, &l).is_ok());
        }
        assert_eq!(t.try_handshake(a, &l), Err(1));
        assert!(t.try_handshake("::2".parse().unwrap(), &l).is_ok());
    }

    #[test]
    fn idle_entries_are_swept_so_the_table_stays_bounded() {
        let l = limits("");
        let t = PerIp::default();
        for i in 0..100_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            assert!(t.try_open(ip, 1, &l));
            t.close(ip, &l);
        }
        assert_eq!(t.tracked(), 0);
        // With a rate, entries linger only while refilling; a full stripe sweeps them.
        let l = limits("[server]\nhandshake_rate_per_ip = 1000000\nhandshake_burst_per_ip = 1\n");
        for i in 0..100_000u32 {
            let _ = t.try_handshake(IpAddr::from(i.to_be_bytes()), &l);
        }
        assert!(t.tracked() <= STRIPES * (SWEEP_AT + 1), "{}", t.tracked());
    }
}
