//! Human units in the config file: durations (`"10s"`, `"250ms"`, `"2m"`,
//! `"1h"`, or a bare number of seconds) and byte sizes (SI `"1MB"` = 10^6
//! bytes, IEC `"1MiB"` = 2^20 bytes, or a bare number of bytes). Both
//! deserialize with errors that start with the value and say what was expected.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written as `"10s"`, `"250ms"`, `"2m"`, `"1h"` or a bare integer of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period(pub Duration);

/// A byte count written as `"64KiB"`, `"1MB"`, `"1.5MiB"`, `"512B"` or a bare integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl Period {
    /// `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        Period(Duration::from_secs(s))
    }
    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Period(Duration::from_millis(ms))
    }
}

impl ByteSize {
    /// The count as a `usize`.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// The size units and what they mean, as error messages list them.
const SIZE_UNITS: &str =
    "B, kB or KB (1000), MB (1000^2), GB (1000^3), KiB (1024), MiB (1024^2) or GiB (1024^3)";

/// A number as written: the whole part and the digits after a decimal point.
struct Number<'a> {
    whole: &'a str,
    frac: &'a str,
}

/// Splits `"1.5 MiB"` into the number `1.5` and the unit `MiB` (spaces
/// around either are allowed). `None` when it does not start with a number.
fn split_number(t: &str) -> Option<(Number<'_>, &str)> {
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let w = digits(t);
    if w == 0 {
        return None;
    }
    let (whole, rest) = t.split_at(w);
    let (frac, unit) = match rest.strip_prefix('.') {
        Some(r) => {
            let f = digits(r);
            if f == 0 {
                return None;
            }
            r.split_at(f)
        }
        None => ("", rest),
    };
    Some((Number { whole, frac }, unit.trim()))
}

/// How a number times a unit failed to be a whole count.
enum Scaled {
    TooLarge,
    /// Between this whole count and the next.
    NotWhole(u128),
}

/// `number × mult`, which must be a whole count that fits in a u64.
fn scale(n: &Number, mult: u64) -> Result<u64, Scaled> {
    let digits = |s: &str| -> Result<u128, Scaled> {
        // at most 38 digits fit in a u128; more is surely too large (or too precise)
        if s.len() > 38 {
            return Err(Scaled::TooLarge);
        }
        Ok(s.parse::<u128>().unwrap_or(0))
    };
    let frac = n.frac.trim_end_matches('0');
    let den = 10u128
        .checked_pow(frac.len() as u32)
        .ok_or(Scaled::TooLarge)?;
    let num = digits(n.whole)?
        .checked_mul(den)
        .and_then(|w| w.checked_add(digits(frac).ok()?))
        .and_then(|v| v.checked_mul(u128::from(mult)))
        .ok_or(Scaled::TooLarge)?;
    if num % den != 0 {
        return Err(Scaled::NotWhole(num / den));
    }
    u64::try_from(num / den).map_err(|_| Scaled::TooLarge)
}

/// Parses a duration: a number and a unit, `ms`, `s`, `m` or `h` (`"10s"`,
/// `"250ms"`, `"1.5s"`); a bare number is seconds. A decimal is accepted
/// when the result is a whole number of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let Some((n, unit)) = split_number(t) else {
        return Err(format!(
            "{text:?} is not a duration: write a number and a unit (ms, s, m or h), e.g. \"10s\", \"250ms\", \"2m\""
        ));
    };
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => {
            return Err(format!(
                "{text:?} has an unknown duration unit {other:?}: use ms (milliseconds), s (seconds), m (minutes) or h (hours)"
            ))
        }
    };
    // Bounded to u64 milliseconds, so that every duration accepted can be
    // written back out (as `"<n>ms"`) and read again.
    match scale(&n, unit_ms) {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(Scaled::TooLarge) => Err(format!("{text:?} is too large a duration")),
        Err(Scaled::NotWhole(lo)) => Err(format!(
            "{text:?} is not a whole number of milliseconds (it is between {lo}ms and {}ms): write e.g. \"{lo}ms\"",
            lo + 1
        )),
    }
}

/// A bare number of seconds, bounded like [`parse_duration`].
fn duration_from_secs(secs: u64) -> Result<Duration, String> {
    secs.checked_mul(1000)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{secs} is too large a duration"))
}

/// Parses a byte size: a number and a unit, SI (`kB`/`KB` = 1000, `MB`,
/// `GB`) or IEC (`KiB` = 1024, `MiB`, `GiB`), or `B`; a bare number is
/// bytes. A decimal is accepted when the result is a whole number of bytes
/// (`"1.5MiB"` = 1572864). A unit that could mean either (`K`, `M`, `G`,
/// `kb`, `mb`, ...) is refused, naming both.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let Some((n, unit)) = split_number(t) else {
        return Err(format!(
            "{text:?} is not a size: write a number and a unit ({SIZE_UNITS}), e.g. \"64KiB\", \"1MB\", or a number of bytes"
        ));
    };
    let mult: u64 = match unit {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            // K, M, G, kb, mb, ... : decimal or binary? (and b is a bit)
            let both = match other.to_ascii_lowercase().as_str() {
                "k" | "kb" | "kib" => Some(("kB", "1000", "KiB", "1024")),
                "m" | "mb" | "mib" => Some(("MB", "1000^2", "MiB", "1024^2")),
                "g" | "gb" | "gib" => Some(("GB", "1000^3", "GiB", "1024^3")),
                _ => None,
            };
            return Err(match both {
                Some((si, si_n, iec, iec_n)) => format!(
                    "{text:?} has an ambiguous size unit {other:?}: write {si} ({si_n} bytes) or {iec} ({iec_n} bytes)"
                ),
                None => format!("{text:?} has an unknown size unit {other:?}: use {SIZE_UNITS}"),
            });
        }
    };
    match scale(&n, mult) {
        Ok(v) => Ok(v),
        Err(Scaled::TooLarge) => Err(format!("{text:?} is too large a size")),
        Err(Scaled::NotWhole(lo)) => Err(format!(
            "{text:?} is not a whole number of bytes (it is between {lo} and {}): write e.g. \"{lo}B\"",
            lo + 1
        )),
    }
}

struct PeriodVisitor;
impl Visitor<'_> for PeriodVisitor {
    type Value = Period;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a duration such as \"10s\", \"250ms\", \"2m\", \"1h\" or a whole number of seconds",
        )
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Period, E> {
        let v = u64::try_from(v).map_err(|_| {
            E::custom(format!(
                "{v} is not a duration: a duration is not negative (a bare number is seconds)"
            ))
        })?;
        self.visit_u64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Period, E> {
        duration_from_secs(v).map(Period).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Period, E> {
        parse_duration(v).map(Period).map_err(E::custom)
    }
}
impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PeriodVisitor)
    }
}

struct SizeVisitor;
impl Visitor<'_> for SizeVisitor {
    type Value = ByteSize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size such as \"64KiB\", \"1MB\" or a whole number of bytes")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("{v} is not a size: a size is not negative")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        parse_size(v).map(ByteSize).map_err(E::custom)
    }
}
impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_millis()))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration(" 3 s "), Ok(Duration::from_secs(3)));
        assert_eq!(
            parse_duration("10 parsecs").unwrap_err(),
            "\"10 parsecs\" has an unknown duration unit \"parsecs\": use ms (milliseconds), s (seconds), m (minutes) or h (hours)"
        );
        assert_eq!(
            parse_duration("s").unwrap_err(),
            "\"s\" is not a duration: write a number and a unit (ms, s, m or h), e.g. \"10s\", \"250ms\", \"2m\""
        );
        assert!(parse_duration("-5s")
            .unwrap_err()
            .contains("is not a duration"));
        assert!(parse_duration("5124095576031h")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn duration_decimals_must_be_whole_milliseconds() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.25m"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1.50"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            parse_duration("0.5ms").unwrap_err(),
            "\"0.5ms\" is not a whole number of milliseconds (it is between 0ms and 1ms): write e.g. \"0ms\""
        );
        assert!(parse_duration("1.0005s")
            .unwrap_err()
            .contains("between 1000ms and 1001ms"));
        assert!(parse_duration("1.s")
            .unwrap_err()
            .contains("is not a duration"));
        assert!(parse_duration(".5s")
            .unwrap_err()
            .contains("is not a duration"));
    }

    #[test]
    fn si_and_iec_sizes() {
        // SI: powers of 1000
        assert_eq!(parse_size("1kB"), Ok(1000));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        // IEC: powers of 1024
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        // bytes
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size(" 64 KiB "), Ok(65536));
    }

    #[test]
    fn size_decimals_must_be_whole_bytes() {
        assert_eq!(parse_size("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_size("1.5kB"), Ok(1500));
        assert_eq!(parse_size("0.5KiB"), Ok(512));
        assert_eq!(parse_size("2.000GB"), Ok(2_000_000_000));
        assert_eq!(
            parse_size("0.3KiB").unwrap_err(),
            "\"0.3KiB\" is not a whole number of bytes (it is between 307 and 308): write e.g. \"307B\""
        );
        assert!(parse_size("1.5")
            .unwrap_err()
            .contains("whole number of bytes"));
        assert!(parse_size("1.5B")
            .unwrap_err()
            .contains("whole number of bytes"));
    }

    #[test]
    fn ambiguous_and_unknown_size_units_are_refused() {
        assert_eq!(
            parse_size("1M").unwrap_err(),
            "\"1M\" has an ambiguous size unit \"M\": write MB (1000^2 bytes) or MiB (1024^2 bytes)"
        );
        for (text, both) in [
            ("2G", "GB (1000^3 bytes) or GiB (1024^3 bytes)"),
            ("64K", "kB (1000 bytes) or KiB (1024 bytes)"),
            ("64k", "kB (1000 bytes) or KiB (1024 bytes)"),
            ("64kb", "kB (1000 bytes) or KiB (1024 bytes)"),
            ("1mb", "MB (1000^2 bytes) or MiB (1024^2 bytes)"),
            ("1Mb", "MB (1000^2 bytes) or MiB (1024^2 bytes)"),
            ("1gib", "GB (1000^3 bytes) or GiB (1024^3 bytes)"),
        ] {
            let e = parse_size(text).unwrap_err();
            assert!(e.contains("ambiguous") && e.ends_with(both), "{text}: {e}");
        }
        assert_eq!(
            parse_size("3 bananas").unwrap_err(),
            "\"3 bananas\" has an unknown size unit \"bananas\": use B, kB or KB (1000), MB (1000^2), GB (1000^3), KiB (1024), MiB (1024^2) or GiB (1024^3)"
        );
        assert!(parse_size("1TB").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("MiB").unwrap_err().contains("is not a size"));
        assert!(parse_size("-1MiB").unwrap_err().contains("is not a size"));
        assert!(parse_size("99999999999999999999GiB")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("18446744073709551616")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }
}
