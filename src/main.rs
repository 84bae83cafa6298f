//! The `ringcast` binary: the client subcommands (`pub`, `sub`, `token`),
//! or, without one, flags and config, logging, the server, and
//! SIGHUP's reload of the configuration file (the drain on SIGTERM/SIGINT is
//! the library's [`ringcast::ServerHandle::run_until_signal_with`]).

use std::process::ExitCode;

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(code) = ringcast::cli::subcommand(&argv) {
        return code;
    }
    let args = match ringcast::cli::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ringcast: {e}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        print!("{}", ringcast::cli::USAGE);
        return ExitCode::SUCCESS;
    }
    if args.version {
        println!("ringcast {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let cfg = match ringcast::cli::load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringcast: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        // the certificates too: a start would load them
        if cfg.tls.listen_addr().is_some() {
            if let Err(e) = ringcast::io::tls::certs::TlsContext::from_config(&cfg.tls) {
                eprintln!("ringcast: invalid configuration: {e}");
                return ExitCode::from(2);
            }
        }
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    ringcast::logging::init(&cfg.log.level, cfg.log.format);

    // Caught before the workers exist, so that no signal is missed between
    // listening and waiting for it.
    let signals = match ringcast::server::ShutdownSignals::catch()
        .and_then(|s| s.catch_reload().map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringcast: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match ringcast::Server::new(cfg).and_then(ringcast::Server::start) {
        Ok(s) => s,
        Err(ringcast::Error::Config(e)) => {
            eprintln!("ringcast: invalid configuration: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut running = server.shared().cfg.as_ref().clone();
    let clean = server.run_until_signal_with(signals, |server| reload(&args, server, &mut running));
    if clean {
        log::info!("drained; bye");
    } else {
        log::warn!("shutdown_timeout reached with connections still open; exiting");
    }
    ExitCode::SUCCESS
}

/// SIGHUP: re-reads the configuration. The keys of
/// [`ringcast::conn::limits::live_keys`] (limits, log level, auth) change live;
/// every other changed key is named and takes effect after a restart. A file
/// that does not validate is refused and the running configuration stays.
fn reload(
    args: &ringcast::cli::Args,
    server: &ringcast::ServerHandle,
    running: &mut ringcast::config::Config,
) {
    let mut new = match ringcast::cli::load_config(args) {
        Ok(c) => c,
        Err(e) => {
            log::error!("SIGHUP: configuration not reloaded, the running one stays: {e}");
            return;
        }
    };
    // The certificate files are read again whether or not their names
    // changed (a renewal rewrites the same files).
    if server.tls_addr().is_some() {
        match server.reload_tls(&new) {
            Ok(()) => {
                for c in server.tls_certificates() {
                    log::info!(
                        "SIGHUP: tls certificate {} loaded for {} (not after {} s since the epoch)",
                        c.file,
                        c.names.join(", "),
                        c.not_after
                    );
                }
            }
            Err(e) => {
                log::error!("SIGHUP: {e}; the running certificates stay");
                new.tls.cert = running.tls.cert.clone();
                new.tls.key = running.tls.key.clone();
                new.tls.certificates = running.tls.certificates.clone();
            }
        }
    }
    let changes = ringcast::config::diff(running, &new);
    if changes.is_empty() {
        log::info!("SIGHUP: configuration re-read; nothing changed");
        return;
    }
    if let Err(e) = server.reload_auth(&new) {
        log::error!("SIGHUP: configuration not reloaded, the running one stays: {e}");
        return;
    }
    server.apply_limits(&new);
    if let Some(level) = ringcast::logging::parse_level(&new.log.level) {
        log::set_max_level(level);
    }
    for (key, old, new_value) in changes {
        if ringcast::conn::limits::is_live(&key) {
            log::info!("SIGHUP: {key}: {old} -> {new_value} (applied)");
        } else {
            log::warn!("SIGHUP: {key}: {old} -> {new_value} (takes effect after a restart)");
        }
    }
    // What runs now: the new live values, the old values of everything else.
    *running =
        ringcast::config::with_keys_from(running, &new, &ringcast::conn::limits::live_keys());
}
