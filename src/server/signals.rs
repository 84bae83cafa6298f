//! Running until the process is told to stop: SIGTERM or SIGINT drains the
//! server (bounded by `server.shutdown_timeout`), a second one during the
//! drain exits at once, and SIGHUP, when asked for, calls a reload hook.
//! The binary and embedders share this one sequence.

use std::io;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::ServerHandle;
use crate::error::Error;

/// SIGTERM and SIGINT (and, with [`ShutdownSignals::catch_reload`],
/// SIGHUP), caught from the moment this is made: from then on they no
/// longer end the process by themselves, and one that arrives before
/// [`ServerHandle::run_until_signal_with`] waits is kept for it.
///
/// Make it before [`crate::Server::start`] so that no signal can arrive
/// between the server listening and the wait (the binary does).
pub struct ShutdownSignals {
    signals: Signals,
}

impl ShutdownSignals {
    /// Catches SIGTERM and SIGINT from now on.
    pub fn catch() -> io::Result<ShutdownSignals> {
        Ok(ShutdownSignals {
            signals: Signals::new([SIGINT, SIGTERM])?,
        })
    }

    /// Also catches SIGHUP, which then calls the `on_reload` hook of
    /// [`ServerHandle::run_until_signal_with`] (and no longer ends the process).
    pub fn catch_reload(&self) -> io::Result<()> {
        self.signals.add_signal(SIGHUP)
    }
}

impl ServerHandle {
    /// Blocks until SIGTERM or SIGINT, then drains: stops accepting,
    /// finishes in-flight requests, tells streams to reconnect elsewhere,
    /// and waits for the workers at most `server.shutdown_timeout`. A
    /// second SIGTERM or SIGINT during the drain exits the process at once
    /// (status 1). SIGHUP is left alone (see [`Self::run_until_signal_with`]).
    ///
    /// Returns whether the drain finished within `server.shutdown_timeout`;
    /// fails only when the signal handlers cannot be installed. The signals
    /// are caught from this call on: a signal that arrives between
    /// [`crate::Server::start`] and this call still ends the process the
    /// default way (use [`Self::run_until_signal_with`] with
    /// [`ShutdownSignals`] made before `start` where that matters).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), ringcast::Error> {
    /// let server = ringcast::Server::new(ringcast::config::Config::bare())?.start()?;
    /// if !server.run_until_signal()? {
    ///     eprintln!("server.shutdown_timeout reached with connections still open");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_until_signal(self) -> Result<bool, Error> {
        let signals = ShutdownSignals::catch()?;
        Ok(self.run_until_signal_with(signals, |_| {}))
    }

    /// [`Self::run_until_signal`] with signals caught earlier, and a hook
    /// for SIGHUP: when `signals` catch it ([`ShutdownSignals::catch_reload`]),
    /// each SIGHUP before the drain calls `on_reload` with the running server
    /// (the binary re-reads its configuration file there and applies it with
    /// [`Self::reload_auth`] and [`Self::apply_limits`]; the library does not
    /// know where a configuration comes from). SIGHUP during the drain is ignored.
    pub fn run_until_signal_with(
        mut self,
        signals: ShutdownSignals,
        mut on_reload: impl FnMut(&ServerHandle),
    ) -> bool {
        let mut signals = signals.signals;
        let timeout = self.shared.cfg.server.shutdown_timeout.0;
        for sig in signals.forever() {
            if sig == SIGHUP {
                on_reload(&self);
                continue;
            }
            let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
            log::info!("{name}: draining (at most {timeout:?})");
            break;
        }
        self.shutdown();
        // A second SIGINT/SIGTERM during the drain exits at once.
        let handle = signals.handle();
        let watcher = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if sig != SIGHUP {
                        log::warn!("second signal: exiting without waiting for the drain");
                        std::process::exit(1);
                    }
                }
            });
        if let Err(e) = &watcher {
            log::warn!("cannot watch for a second signal during the drain: {e}");
        }
        let clean = self.wait_timeout(timeout);
        handle.close();
        if let Ok(w) = watcher {
            let _ = w.join();
        }
        clean
    }
}
