//! The waits of the reconnecting clients: exponential backoff with jitter
//! and a cap, counted over failures in a row.

use std::io;
use std::time::Duration;

use super::background::Closer;
use super::reconnect::{ConnectionEvent, EventHook};

/// Failures in a row, and the randomness of the jitter.
#[derive(Debug)]
pub(crate) struct Backoff {
    failures: u32,
    rng: u64,
}

/// One wait: which failure in a row it follows, its base and the delay
/// actually waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wait {
    /// Failures in a row, this one included.
    pub attempt: u32,
    /// `min(max, initial * 2^(attempt-1))`.
    pub base: Duration,
    /// Between half of `base` and `base`.
    pub delay: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        Backoff {
            failures: 0,
            rng: h.finish() | 1,
        }
    }

    /// Failures in a row so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure is the first again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// Counts a failure and says how long to wait before the next attempt.
    pub(crate) fn fail(&mut self, initial: Duration, max: Duration) -> Wait {
        self.failures = self.failures.saturating_add(1);
        let shift = (self.failures - 1).min(30);
        let base = initial.saturating_mul(1u32 << shift).min(max);
        let delay = base.mul_f64(0.5 + 0.5 * self.random_unit());
        Wait {
            attempt: self.failures,
            base,
            delay,
        }
    }

    /// Counts the failure `error` and waits before the next attempt
    /// (`limits`: the initial and longest delay, and the failures in a row
    /// to give up at), telling `hook`. Errors: the give-up error (naming
    /// `error`), or the closer's.
    pub(crate) fn wait(
        &mut self,
        limits: (Duration, Duration, Option<u32>),
        hook: &EventHook,
        closer: &Closer,
        error: &io::Error,
    ) -> io::Result<()> {
        let (initial, max, max_attempts) = limits;
        let w = self.fail(initial, max);
        if max_attempts.is_some_and(|max| w.attempt >= max) {
            return Err(io::Error::new(
                error.kind(),
                format!("{} failure(s) in a row; the last: {error}", w.attempt),
            ));
        }
        hook.emit(&ConnectionEvent::Waiting {
            attempt: w.attempt,
            base: w.base,
            delay: w.delay,
            error,
        });
        closer.sleep(w.delay)
    }

    /// Uniform in [0, 1): xorshift64*.
    fn random_unit(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new();
        let ms = Duration::from_millis;
        let bases: Vec<Duration> = (0..6).map(|_| b.fail(ms(100), ms(1000)).base).collect();
        assert_eq!(
            bases,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        for _ in 0..100 {
            let w = b.fail(ms(100), ms(1000));
            assert!(w.delay >= w.base / 2 && w.delay <= w.base, "{w:?}");
        }
        b.reset();
        assert_eq!(b.fail(ms(100), ms(1000)).attempt, 1);
        // a huge initial delay is capped, a zero one stays zero
        assert_eq!(b.fail(Duration::MAX, ms(5)).base, ms(5));
        b.reset();
        assert_eq!(b.fail(Duration::ZERO, ms(5)).base, Duration::ZERO);
    }
}
