//! The library's one error type, [`Error`]: what [`crate::Server::new`],
//! [`crate::Server::start`], [`crate::ServerHandle::reload_auth`] and
//! [`crate::ServerHandle::run_until_signal`] return. A configuration error
//! keeps its [`ConfigError`] (and with it the key at fault), an I/O error its
//! [`std::io::Error`] (and kind), a hub error its [`HubError`].

use std::fmt;
use std::io;

use crate::config::ConfigError;
use crate::hub::HubError;

/// Why the server could not be built, started or reconfigured.
///
/// `Display` shows the underlying error's message (which names the key for
/// a configuration error); `source()` is the underlying error's source.
/// Converts into `Box<dyn std::error::Error + Send + Sync>` with `?`.
///
/// ```
/// let mut cfg = ringcast::config::Config::bare();
/// cfg.hub.history_size = 5_000_000;
/// let err = ringcast::Server::new(cfg).err().unwrap();
/// assert!(matches!(err, ringcast::Error::Config(_)));
/// assert_eq!(err.config_key(), Some("hub.history_size"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration does not validate (or `[auth]` cannot be built from
    /// it); the message names the key, see [`Error::config_key`].
    Config(ConfigError),
    /// Starting failed: the listen address, the io driver, `static.dir`,
    /// `log.access`, a thread, the signal handlers. The message says which.
    Io(io::Error),
    /// A hub call failed.
    Hub(HubError),
}

/// The configuration's top-level sections: a dotted key starts with one.
const SECTIONS: &[&str] = &[
    "server",
    "http",
    "static",
    "log",
    "hub",
    "sse",
    "ws",
    "auth",
    "demo",
    "dashboard",
];

impl Error {
    /// For a configuration error, the dotted key it names first
    /// (`"hub.history_size"`), when it names one (a TOML syntax error may
    /// name only a line).
    pub fn config_key(&self) -> Option<&str> {
        match self {
            Error::Config(e) => first_key(&e.0),
            _ => None,
        }
    }
}

/// The first word of `msg` shaped like a configuration key: a section name,
/// a dot, then lower-case letters, digits, `_` and dots.
fn first_key(msg: &str) -> Option<&str> {
    msg.split(|c: char| c.is_whitespace() || "`\"'(),=".contains(c))
        .map(|w| w.trim_end_matches([':', '.', ';']))
        .find(|w| {
            let Some((section, rest)) = w.split_once('.') else {
                return false;
            };
            SECTIONS.contains(&section)
                && !rest.is_empty()
                && rest != "toml"
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        })
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Io(e) => e.fmt(f),
            Error::Hub(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => e.source(),
            Error::Io(e) => e.source(),
            Error::Hub(e) => e.source(),
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl From<HubError> for Error {
    fn from(e: HubError) -> Error {
        Error::Hub(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_found_in_every_message_shape() {
        let key = |m: &str| first_key(m).map(str::to_string);
        assert_eq!(
            key("hub.history_size = 5000000 is more than 1000000").as_deref(),
            Some("hub.history_size")
        );
        assert_eq!(
            key("ringcast.toml: http.max_headers = 0 must be from 1 to 1024").as_deref(),
            Some("http.max_headers")
        );
        assert_eq!(
            key("hub.toml: ws.echo.subprotocols: \"a b\" is not a valid token").as_deref(),
            Some("ws.echo.subprotocols")
        );
        assert_eq!(
            key("auth.publish = \"token\" needs hub.publish_token to be set").as_deref(),
            Some("auth.publish")
        );
        assert_eq!(key("TOML parse error at line 3"), None);
    }

    #[test]
    fn boxes_with_question_mark() {
        fn f() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            Err(Error::from(ConfigError(
                "sse.keepalive must be more than 0".into(),
            )))?;
            Ok(())
        }
        let e = f().unwrap_err();
        assert_eq!(e.to_string(), "sse.keepalive must be more than 0");
    }
}
