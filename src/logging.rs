//! Logging: `log` records written to stderr as text (default) or one JSON
//! object per line. Records are formatted into a thread-local buffer and
//! written with one `write` call so lines from different workers never mix.

use std::cell::RefCell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::LogFormat;

/// Maps a config level name to a filter.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "off" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("main");
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            match self.format {
                LogFormat::Text => {
                    let _ = writeln!(
                        line,
                        "{}.{:03} {:5} [{}] {}",
                        now.as_secs(),
                        now.subsec_millis(),
                        level_name(record.level()),
                        thread,
                        record.args()
                    );
                }
                LogFormat::Json => {
                    let msg = record.args().to_string();
                    let obj = serde_json::json!({
                        "ts": now.as_secs_f64(),
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
