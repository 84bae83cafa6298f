//! Command-line options: `--name value` and `--flag`, plus the parsers of
//! the value forms used by every mode (durations, rates, sizes).

use std::time::Duration;

pub struct Args {
    items: Vec<String>,
    used: Vec<bool>,
}

impl Args {
    pub fn new(items: Vec<String>) -> Self {
        let used = vec![false; items.len()];
        Args { items, used }
    }

    /// Value of `--name value` or `--name=value`, if given.
    pub fn opt(&mut self, name: &str) -> Result<Option<String>, String> {
        let flag = format!("--{name}");
        let prefix = format!("--{name}=");
        for i in 0..self.items.len() {
            if self.used[i] {
                continue;
            }
            if self.items[i] == flag {
                let v = self
                    .items
                    .get(i + 1)
                    .ok_or_else(|| format!("{flag} needs a value"))?
                    .clone();
                self.used[i] = true;
                self.used[i + 1] = true;
                return Ok(Some(v));
            }
            if let Some(v) = self.items[i].strip_prefix(&prefix) {
                self.used[i] = true;
                return Ok(Some(v.to_string()));
            }
        }
        Ok(None)
    }

    pub fn req(&mut self, name: &str) -> Result<String, String> {
        self.opt(name)?
            .ok_or_else(|| format!("--{name} is required"))
    }

    pub fn flag(&mut self, name: &str) -> bool {
        let flag = format!("--{name}");
        for i in 0..self.items.len() {
            if !self.used[i] && self.items[i] == flag {
                self.used[i] = true;
                return true;
            }
        }
        false
    }

    pub fn num<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.opt(name)? {
            Some(v) => parse_count(&v)
                .and_then(|n| n.to_string().parse::<T>().map_err(|_| String::new()))
                .map_err(|_| format!("--{name}: bad number {v:?}")),
            None => Ok(default),
        }
    }

    pub fn duration(&mut self, name: &str, default: Duration) -> Result<Duration, String> {
        match self.opt(name)? {
            Some(v) => parse_duration(&v).map_err(|e| format!("--{name}: {e}")),
            None => Ok(default),
        }
    }

    /// Errors on anything not consumed by the getters.
    pub fn finish(&self) -> Result<(), String> {
        match self.items.iter().zip(&self.used).find(|(_, u)| !**u) {
            Some((s, _)) => Err(format!("unexpected argument {s:?}")),
            None => Ok(()),
        }
    }
}

/// `10s`, `500ms`, `2m`, `1.5s`, `250us`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?}")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `500/s`, `30000/m`, `500`: events per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let (num, per) = match s.split_once('/') {
        Some((n, p)) => (n, p),
        None => (s, "s"),
    };
    let v = parse_count(num).map_err(|_| format!("bad rate {s:?}"))? as f64;
    let per_secs = match per {
        "s" | "sec" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        _ => return Err(format!("bad rate unit in {s:?}")),
    };
    Ok(v / per_secs)
}

/// `19000`, `19_000`, `10k`, `1M`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let s: String = s.trim().chars().filter(|&c| c != '_' && c != ',').collect();
    let (num, mul) = match s.chars().last() {
        Some('k') | Some('K') => (&s[..s.len() - 1], 1_000),
        Some('M') => (&s[..s.len() - 1], 1_000_000),
        _ => (s.as_str(), 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("bad number {s:?}"))
}

/// `32`, `16KiB`, `16k` (1024), `1MiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mul = match unit {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" | "KB" | "kB" => 1024,
        "M" | "MiB" | "MB" => 1024 * 1024,
        _ => return Err(format!("bad size unit in {s:?}")),
    };
    Ok(n * mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn rates_counts_sizes() {
        assert_eq!(parse_rate("500/s").unwrap(), 500.0);
        assert_eq!(parse_rate("600/m").unwrap(), 10.0);
        assert_eq!(parse_rate("2k").unwrap(), 2000.0);
        assert_eq!(parse_count("19_000").unwrap(), 19000);
        assert_eq!(parse_count("10k").unwrap(), 10000);
        assert_eq!(parse_size("16KiB").unwrap(), 16384);
        assert_eq!(parse_size("32").unwrap(), 32);
        assert!(parse_size("3 apples").is_err());
    }

    #[test]
    fn options_and_flags() {
        let mut a = Args::new(
            ["--conns", "100", "--binary", "--size=16KiB", "--extra"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        assert_eq!(a.num::<u32>("conns", 1).unwrap(), 100);
        assert!(a.flag("binary"));
        assert_eq!(a.opt("size").unwrap().as_deref(), Some("16KiB"));
        assert_eq!(a.num::<u32>("missing", 7).unwrap(), 7);
        assert!(a.finish().is_err());
        assert!(a.flag("extra"));
        assert!(a.finish().is_ok());
    }
}
