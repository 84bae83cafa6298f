//! The `ringcast` binary: flags and config, logging, the server, signals.

use std::process::ExitCode;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match ringcast::cli::parse(std::env::args_os().skip(1)) {
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
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    ringcast::logging::init(&cfg.log.level, cfg.log.format);
    let shutdown_timeout = cfg.server.shutdown_timeout.0;

    // Block the signals before any worker exists so that only the signal thread sees them.
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringcast: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match ringcast::Server::new(cfg).map(|s| s.start()) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            log::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("ringcast: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let mut server = server;
    let mut running = server.shared().cfg.as_ref().clone();
    for sig in signals.forever() {
        match sig {
            SIGHUP => reload(&args, &server, &mut running),
            _ => {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                log::info!("{name}: draining (at most {shutdown_timeout:?})");
                break;
            }
        }
    }
    server.shutdown();
    // A second SIGINT/SIGTERM during the drain exits at once.
    let handle = signals.handle();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig != SIGHUP {
                log::warn!("second signal: exiting without waiting for the drain");
                std::process::exit(1);
            }
        }
    });
    let clean = server.wait_timeout(shutdown_timeout);
    handle.close();
    if clean {
        log::info!("drained; bye");
    } else {
        log::warn!("shutdown_timeout reached with connections still open; exiting");
    }
    std::thread::sleep(Duration::from_millis(0));
    ExitCode::SUCCESS
}

/// SIGHUP: re-reads the configuration. The keys of
/// [`ringcast::server::limits::live_keys`] (limits, log level, auth) change live;
/// every other changed key is named and takes effect after a restart. A file
/// that does not validate is refused and the running configuration stays.
fn reload(
    args: &ringcast::cli::Args,
    server: &ringcast::ServerHandle,
    running: &mut ringcast::config::Config,
) {
    let new = match ringcast::cli::load_config(args) {
        Ok(c) => c,
        Err(e) => {
            log::error!("SIGHUP: configuration not reloaded, the running one stays: {e}");
            return;
        }
    };
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
        if ringcast::server::limits::is_live(&key) {
            log::info!("SIGHUP: {key}: {old} -> {new_value} (applied)");
        } else {
            log::warn!("SIGHUP: {key}: {old} -> {new_value} (takes effect after a restart)");
        }
    }
    // What runs now: the new live values, the old values of everything else.
    *running =
        ringcast::config::with_keys_from(running, &new, &ringcast::server::limits::live_keys());
}
