//! Logging: `log` records written to stderr as text (default) or one JSON
//! object per line, each starting with its time in RFC 3339, UTC, to the
//! millisecond (`2026-12-04T06:40:12.345Z`; the access log uses the same).
//! Records are formatted into a thread-local buffer and written with one
//! `write` call so lines from different workers never mix.

use std::cell::RefCell;
use std::io::Write;
use std::str::FromStr;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::LogFormat;

pub use crate::config::LOG_LEVELS as LEVELS;

/// Maps a config level name (any case) to a filter.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    LevelFilter::from_str(s).ok()
}

/// `t` in RFC 3339, UTC, to the millisecond: `2026-12-04T06:40:12.345Z`.
pub fn timestamp(t: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_millis(t)
}

struct Logger {
    format: LogFormat,
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = timestamp(SystemTime::now());
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("main");
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            match self.format {
                LogFormat::Text => {
                    let _ = writeln!(
                        line,
                        "{now} {:5} [{}] {}",
                        level_name(record.level()),
                        thread,
                        record.args()
                    );
                }
                LogFormat::Json => {
                    let msg = record.args().to_string();
                    let obj = serde_json::json!({
                        "ts": now.to_string(),
                        "level": level_name(record.level()),
                        "thread": thread,
                        "target": record.target(),
                        "msg": msg,
                    });
                    let _ = serde_json::to_writer(&mut *line, &obj);
                    line.push(b'\n');
                }
            }
            let _ = std::io::stderr().lock().write_all(&line);
        });
    }

    fn flush(&self) {}
}

/// Installs the process logger. Calling it again only changes the level.
pub fn init(level: &str, format: LogFormat) {
    let filter = parse_level(level).unwrap_or(LevelFilter::Info);
    let logger: &'static Logger = Box::leak(Box::new(Logger { format }));
    let _ = log::set_logger(logger);
    log::set_max_level(filter);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_366_412_345);
        assert_eq!(timestamp(t).to_string(), "2026-12-04T06:40:12.345Z");
        assert_eq!(
            timestamp(UNIX_EPOCH).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        // sub-millisecond digits are cut, not rounded
        let t = UNIX_EPOCH + Duration::from_micros(951_782_400_999_999);
        assert_eq!(timestamp(t).to_string(), "2000-02-29T00:00:00.999Z");
    }

    #[test]
    fn levels_parse_in_any_case() {
        assert_eq!(parse_level("info"), Some(LevelFilter::Info));
        assert_eq!(parse_level("WARN"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("off"), Some(LevelFilter::Off));
        assert_eq!(parse_level("Trace"), Some(LevelFilter::Trace));
        assert_eq!(parse_level("loud"), None);
        assert_eq!(parse_level(""), None);
        for name in LEVELS.split(", ") {
            assert!(parse_level(name).is_some(), "{name}");
        }
    }
}
