//! The binary's command line: the server's flags (the common knobs, which
//! override the config file) and the client subcommands `pub`, `sub` and
//! `token` ([`subcommand`]).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, ConfigError, LogFormat};

pub mod http;
pub mod publish;
pub mod subscribe;
pub mod token;

pub const USAGE: &str = "\
ringcast: a real-time edge server (SSE, WebSocket, HTTP) on io_uring

USAGE:
    ringcast [OPTIONS]              run the server
    ringcast pub URL ROOM [MESSAGE] publish (each line of stdin without MESSAGE)
    ringcast sub URL                print what a subscription receives (ws(s):// or
                                    SSE over http(s)://)
    ringcast token ...              mint or check a JWT for [auth]

    ringcast <pub|sub|token> --help describes a subcommand.

OPTIONS:
    -c, --config <FILE>     TOML config file (see src/config/ringcast.example.toml)
    -l, --listen <ADDR>     address to listen on, e.g. 0.0.0.0:8080 (server.listen)
    -w, --workers <N>       worker threads, 0 = one per CPU (server.workers)
        --log-format <F>    text or json (log.format)
        --log-level <L>     error, warn, info, debug or trace (log.level)
        --tls-listen <ADDR> TLS listener address, e.g. 0.0.0.0:8443 (tls.listen)
        --tls-cert <FILE>   PEM certificate chain (tls.cert)
        --tls-key <FILE>    PEM private key (tls.key)
        --self-signed       for local development: serve TLS (on 127.0.0.1:8443
                            unless tls.listen says otherwise) with a self-signed
                            certificate for localhost, 127.0.0.1 and ::1, written
                            to ./ringcast-dev-tls/ once and reused
        --check-config      validate the configuration and exit
    -h, --help              print this help
    -V, --version           print the version
";

/// What the command line asks for.
#[derive(Debug, Default)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub workers: Option<usize>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub tls_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub self_signed: bool,
    pub check_config: bool,
    pub help: bool,
    pub version: bool,
}

/// Parses flags; errors name the flag and the bad value.
pub fn parse<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut a = Args::default();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("config") => {
                a.config = Some(p.value().map_err(|e| e.to_string())?.into())
            }
            Short('l') | Long("listen") => {
                let v = p
                    .value()
                    .map_err(|e| e.to_string())?
                    .string()
                    .map_err(|e| e.to_string())?;
                a.listen =
                    Some(crate::config::parse_listen(&v).map_err(|e| format!("--listen {e}"))?);
            }
            Short('w') | Long("workers") => {
                let v = p
                    .value()
                    .map_err(|e| e.to_string())?
                    .string()
                    .map_err(|e| e.to_string())?;
                a.workers = Some(v.parse().map_err(|_| {
                    format!("--workers {v:?}: expected a whole number (0 = one per CPU)")
                })?);
            }
            Long("log-format") => {
                let v = p
                    .value()
                    .map_err(|e| e.to_string())?
                    .string()
                    .map_err(|e| e.to_string())?;
                a.log_format = Some(match v.as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(format!("--log-format {v:?}: expected text or json")),
                });
            }
            Long("log-level") => {
                a.log_level = Some(
                    p.value()
                        .map_err(|e| e.to_string())?
                        .string()
                        .map_err(|e| e.to_string())?,
                )
            }
            Long("tls-listen") => {
                let v = p
                    .value()
                    .map_err(|e| e.to_string())?
                    .string()
                    .map_err(|e| e.to_string())?;
                a.tls_listen =
                    Some(crate::config::parse_listen(&v).map_err(|e| format!("--tls-listen {e}"))?);
            }
            Long("tls-cert") => a.tls_cert = Some(p.value().map_err(|e| e.to_string())?.into()),
            Long("tls-key") => a.tls_key = Some(p.value().map_err(|e| e.to_string())?.into()),
            Long("self-signed") => a.self_signed = true,
            Long("check-config") => a.check_config = true,
            Short('h') | Long("help") => a.help = true,
            Short('V') | Long("version") => a.version = true,
            _ => return Err(format!("{}\n\n{USAGE}", arg.unexpected())),
        }
    }
    Ok(a)
}

/// A subcommand's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Bad arguments or configuration (exit 2).
    Usage(String),
    /// The command failed (exit 1).
    Run(String),
    /// The command failed and has said why on standard output (exit 1).
    Quiet,
}

/// A flag's value as UTF-8; errors name the flag.
pub(crate) fn flag_value(p: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
    let v = p.value().map_err(|_| format!("{flag} needs a value"))?;
    v.into_string()
        .map_err(|v| format!("{flag} {v:?}: not UTF-8"))
}

/// How a client subcommand proves who it is and whom it trusts: `--token`
/// (default: the environment variable `RINGCAST_TOKEN`) and `--ca-file`.
#[derive(Debug, Default, Clone)]
pub struct Access {
    /// Sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// TLS: trust only the CA certificates of this PEM file.
    pub ca_file: Option<PathBuf>,
}

impl Access {
    /// Takes the value of the flag `--token` or `--ca-file` (`name`
    /// without its dashes).
    pub(crate) fn flag(&mut self, name: &str, p: &mut lexopt::Parser) -> Result<(), String> {
        match name {
            "token" => self.token = Some(flag_value(p, "--token")?),
            _ => self.ca_file = Some(flag_value(p, "--ca-file")?.into()),
        }
        Ok(())
    }

    /// After the flags: the token from `RINGCAST_TOKEN` when `--token` was
    /// not given.
    pub(crate) fn token_from_env(&mut self) {
        if self.token.is_none() {
            self.token = std::env::var("RINGCAST_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
        }
    }

    /// The `Authorization` header's value, with a token.
    pub fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// Connect options carrying the CA file and the token.
    pub fn connect_options(&self) -> crate::client::ConnectOptions {
        let mut opts = crate::client::ConnectOptions::new();
        opts.ca_file = self.ca_file.clone();
        if let Some(auth) = self.authorization() {
            opts = opts.header("Authorization", &auth);
        }
        opts
    }
}

/// Runs the client subcommand `args` names (`pub`, `sub` or `token`, the
/// first argument), or `None` when the first argument names none (the
/// server's flags).
pub fn subcommand(args: &[OsString]) -> Option<ExitCode> {
    let name = args.first()?.to_str()?;
    let rest = args[1..].iter().cloned();
    let stdout = std::io::stdout();
    let r = match name {
        "pub" => publish::parse(rest).map_err(Failure::Usage).and_then(|a| {
            if a.help {
                print!("{}", publish::USAGE);
                return Ok(());
            }
            let stdin = std::io::stdin();
            publish::run(&a, &mut stdin.lock(), &mut stdout.lock())
        }),
        "sub" => subscribe::parse(rest)
            .map_err(Failure::Usage)
            .and_then(|a| {
                if a.help {
                    print!("{}", subscribe::USAGE);
                    return Ok(());
                }
                subscribe::run(&a, &mut stdout.lock())
            }),
        "token" => token::parse(rest).map_err(Failure::Usage).and_then(|a| {
            if a.help {
                print!("{}", token::USAGE);
                return Ok(());
            }
            token::run(&a, &mut stdout.lock())
        }),
        _ => return None,
    };
    Some(match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("ringcast {name}: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("ringcast {name}: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Quiet) => ExitCode::FAILURE,
    })
}

/// The configuration: the file (or the defaults), then the flags on top.
pub fn load_config(args: &Args) -> Result<Config, ConfigError> {
    let mut cfg = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(w) = args.workers {
        cfg.server.workers = w;
    }
    if let Some(f) = args.log_format {
        cfg.log.format = f;
    }
    if let Some(l) = &args.log_level {
        cfg.log.level = l.clone();
    }
    if let Some(l) = args.tls_listen {
        cfg.tls.listen = l.to_string();
    }
    if let Some(c) = &args.tls_cert {
        cfg.tls.cert = c.display().to_string();
    }
    if let Some(k) = &args.tls_key {
        cfg.tls.key = k.display().to_string();
    }
    if args.self_signed {
        self_signed(&mut cfg)?;
    }
    crate::server::check_config(&cfg)?;
    Ok(cfg)
}

/// Where `--self-signed` keeps its certificate.
pub const DEV_TLS_DIR: &str = "ringcast-dev-tls";

/// `--self-signed`: a TLS listener (127.0.0.1:8443 unless one is set) with
/// the development certificate, made once in [`DEV_TLS_DIR`].
fn self_signed(cfg: &mut Config) -> Result<(), ConfigError> {
    if cfg.tls.listen.is_empty() {
        cfg.tls.listen = "127.0.0.1:8443".into();
    }
    if !cfg.tls.cert.is_empty() {
        return Ok(());
    }
    let dir = std::path::Path::new(DEV_TLS_DIR);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !(cert.exists() && key.exists()) {
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from);
        crate::io::tls::certs::write_self_signed(dir, &names)
            .map_err(|e| ConfigError(format!("--self-signed: {e}")))?;
    }
    cfg.tls.cert = cert.display().to_string();
    cfg.tls.key = key.display().to_string();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse(v.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn flags() {
        let a = args(&["--listen", "127.0.0.1:0", "-w", "2", "--log-format", "json"]).unwrap();
        assert_eq!(a.listen.unwrap().port(), 0);
        assert_eq!(a.workers, Some(2));
        assert_eq!(a.log_format, Some(LogFormat::Json));
    }

    #[test]
    fn bad_flags_are_named() {
        assert_eq!(
            args(&["--listen", "localhost"]).unwrap_err(),
            "--listen \"localhost\" is not an address: write an IP address and port, e.g. \"127.0.0.1:8080\" or \"[::]:8080\""
        );
        assert!(args(&["--workers", "two"])
            .unwrap_err()
            .contains("--workers"));
        assert!(args(&["--frobnicate"]).unwrap_err().contains("frobnicate"));
    }
}
