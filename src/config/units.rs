//! Human units in the config file: durations (`"10s"`, `"250ms"`, `"2m"`, or a
//! bare number of seconds) and byte sizes (`"64KiB"`, `"1MiB"`, or a bare
//! number of bytes). Both deserialize with errors that say what was expected.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written as `"10s"`, `"250ms"`, `"2m"`, `"1h"` or a bare integer of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secs(pub Duration);

/// A byte count written as `"64KiB"`, `"1MiB"`, `"1GiB"`, `"512B"` or a bare integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl Secs {
    pub const fn from_secs(s: u64) -> Self {
        Secs(Duration::from_secs(s))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Secs(Duration::from_millis(ms))
    }
}

impl ByteSize {
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// Parses `"10s"`-style durations. Accepted units: ms, s, m, h.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("`{text}` is not a duration: write e.g. \"10s\", \"250ms\", \"2m\"")
    })?;
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => {
            return Err(format!(
                "`{text}` has unknown duration unit `{other}`: use ms, s, m or h"
            ))
        }
    };
    // Bounded to u64 milliseconds, so that every duration accepted can be
    // written back out (as `"<n>ms"`) and read again.
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A bare number of seconds, bounded like [`parse_duration`].
fn duration_from_secs(secs: u64) -> Result<Duration, String> {
    secs.checked_mul(1000)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration of {secs} seconds is too large"))
}

/// Parses `"64KiB"`-style sizes. Accepted units: B, KiB, MiB, GiB (and K/KB, M/MB, G/GB as the same powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write e.g. \"64KiB\", \"1MiB\", 4096"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" | "k" | "kB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "`{text}` has unknown size unit `{other}`: use B, KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

struct SecsVisitor;
impl Visitor<'_> for SecsVisitor {
    type Value = Secs;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration such as \"10s\", \"250ms\", \"2m\" or a number of seconds")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Secs, E> {
        let v = u64::try_from(v)
            .map_err(|_| E::custom(format!("duration must not be negative, got {v}")))?;
        self.visit_u64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Secs, E> {
        duration_from_secs(v).map(Secs).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secs, E> {
        parse_duration(v).map(Secs).map_err(E::custom)
    }
}
impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecsVisitor)
    }
}

struct SizeVisitor;
impl Visitor<'_> for SizeVisitor {
    type Value = ByteSize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size such as \"64KiB\", \"1MiB\" or a number of bytes")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("size must not be negative, got {v}")))
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

impl Serialize for Secs {
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
        assert!(parse_duration("10 parsecs")
            .unwrap_err()
            .contains("parsecs"));
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("3 bananas").unwrap_err().contains("bananas"));
        assert!(parse_size("99999999999999999999G").is_err());
    }
}
