//! The peers' command line: `--listen ADDR`, `--threads N`,
//! `--room-capacity N`, and optionally `--tls-listen ADDR --tls-cert FILE
//! --tls-key FILE` (a second listener serving the same endpoints over TLS;
//! peers built with the `tls` feature). Same flags for every peer, so the
//! benchmark runner starts them all alike.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// Address to listen on (`--listen`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Runtime threads (`--threads`, default 1). 1 = tokio `current_thread`
    /// runtime; more = `multi_thread` runtime with that many workers.
    pub threads: usize,
    /// Slots of each room's broadcast channel (`--room-capacity`, default
    /// 65536). A subscriber more than this many messages behind misses
    /// messages (it is told how many, counts them, and goes on).
    pub room_capacity: usize,
    /// The TLS listener (`--tls-listen`, `--tls-cert`, `--tls-key`: all
    /// three or none).
    pub tls: Option<TlsArgs>,
}

/// Where the TLS listener listens and what it serves.
#[derive(Debug, Clone)]
pub struct TlsArgs {
    pub listen: SocketAddr,
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            threads: 1,
            room_capacity: 65536,
            tls: None,
        }
    }
}

impl Args {
    /// Parses `std::env::args()`; prints usage and exits on `--help` or on a
    /// bad command line.
    pub fn from_env(program: &str) -> Args {
        match Args::parse(std::env::args().skip(1)) {
            Ok(Some(args)) => args,
            Ok(None) => {
                println!("{}", usage(program));
                std::process::exit(0);
            }
            Err(msg) => {
                eprintln!("{program}: {msg}\n{}", usage(program));
                std::process::exit(2);
            }
        }
    }

    /// Parses the arguments (without the program name). `Ok(None)` means
    /// help was asked for.
    pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
        let mut args = Args::default();
        let (mut tls_listen, mut tls_cert, mut tls_key) = (None, None, None);
        let mut it = argv.into_iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            if flag == "-h" || flag == "--help" {
                return Ok(None);
            }
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--listen" => {
                    let v = value()?;
                    args.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
                }
                "--threads" => {
                    let v = value()?;
                    args.threads = v.parse().map_err(|e| format!("--threads {v}: {e}"))?;
                    if args.threads == 0 {
                        return Err("--threads must be at least 1".into());
                    }
                }
                "--room-capacity" => {
                    let v = value()?;
                    args.room_capacity =
                        v.parse().map_err(|e| format!("--room-capacity {v}: {e}"))?;
                    if args.room_capacity == 0 {
                        return Err("--room-capacity must be at least 1".into());
                    }
                }
                "--tls-listen" => {
                    let v = value()?;
                    tls_listen = Some(v.parse().map_err(|e| format!("--tls-listen {v}: {e}"))?);
                }
                "--tls-cert" => tls_cert = Some(PathBuf::from(value()?)),
                "--tls-key" => tls_key = Some(PathBuf::from(value()?)),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        args.tls = match (tls_listen, tls_cert, tls_key) {
            (None, None, None) => None,
            (Some(listen), Some(cert), Some(key)) => Some(TlsArgs { listen, cert, key }),
            _ => return Err("--tls-listen, --tls-cert and --tls-key go together".into()),
        };
        Ok(Some(args))
    }
}

fn usage(program: &str) -> String {
    format!(
        "usage: {program} [--listen 127.0.0.1:8080] [--threads 1] [--room-capacity 65536]\n\
         \x20      [--tls-listen 127.0.0.1:8443 --tls-cert CHAIN.pem --tls-key KEY.pem]\n\
         \n\
         Endpoints: GET /echo (WebSocket echo), GET /ws?room=NAME (WebSocket subscriber),\n\
         GET /sse?room=NAME (SSE subscriber), POST /publish/NAME, GET /healthz;\n\
         with --tls-listen, the same over TLS (rustls, TLS 1.2 and 1.3, ALPN http/1.1)\n\
         on a second listener. Prints `listening on ADDR` once ready (after\n\
         `listening on ADDR (TLS)` with --tls-listen); exits on SIGTERM/SIGINT."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Option<Args>, String> {
        Args::parse(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_flags() {
        let a = parse(&[]).unwrap().unwrap();
        assert_eq!(a.threads, 1);
        assert_eq!(a.room_capacity, 65536);
        let a = parse(&["--listen", "127.0.0.1:9000", "--threads=2"])
            .unwrap()
            .unwrap();
        assert_eq!(a.listen.port(), 9000);
        assert_eq!(a.threads, 2);
        assert!(parse(&["--threads", "0"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(a.tls.is_none());
    }

    #[test]
    fn tls_flags_go_together() {
        let a = parse(&[
            "--tls-listen",
            "127.0.0.1:9443",
            "--tls-cert=c.pem",
            "--tls-key",
            "k.pem",
        ])
        .unwrap()
        .unwrap();
        let t = a.tls.unwrap();
        assert_eq!(t.listen.port(), 9443);
        assert_eq!(t.cert.to_str(), Some("c.pem"));
        assert_eq!(t.key.to_str(), Some("k.pem"));
        assert!(parse(&["--tls-listen", "127.0.0.1:9443"]).is_err());
        assert!(parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).is_err());
    }
}
