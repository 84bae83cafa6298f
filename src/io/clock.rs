//! The workers' millisecond clock: compact (32 bits, kept per connection)
//! and cheap to read (the kernel's coarse monotonic clock).

use std::time::Instant;

/// Milliseconds since the clock's start, wrapping every 49 days
/// (differences stay right). Read from the kernel's coarse monotonic clock
/// (a few times cheaper than the precise one, which a busy connection
/// would read per message): it runs up to one scheduler tick behind, so
/// a deadline checked against it is late by at most that, never early.
pub fn clock_ms() -> u32 {
    let start = clock_start();
    let now = monotonic_ns(libc::CLOCK_MONOTONIC_COARSE);
    (now.saturating_sub(start.1) / 1_000_000) as u32
}

/// The instant `at` on the [`clock_ms`] clock, rounded up.
pub fn clock_ms_at(at: Instant) -> u32 {
    let since = at.saturating_duration_since(clock_start().0);
    since.as_micros().div_ceil(1000) as u32
}

/// The clock's start, as an `Instant` and in nanoseconds of the monotonic
/// clock. The nanoseconds are read second, so they are not before the
/// `Instant`: an instant converted with [`clock_ms_at`] is never earlier
/// on the [`clock_ms`] clock than it really is.
fn clock_start() -> (Instant, u64) {
    static START: std::sync::OnceLock<(Instant, u64)> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        let at = Instant::now();
        (at, monotonic_ns(libc::CLOCK_MONOTONIC))
    })
}

fn monotonic_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec into a valid local (a vDSO call, no syscall).
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
