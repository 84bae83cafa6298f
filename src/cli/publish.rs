//! `ringcast pub URL ROOM [MESSAGE]`: publishes with `POST /publish/ROOM`.

use std::io::{BufRead, Write};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::http::{BaseUrl, Connection};
use super::{flag_value, Access, Failure};

pub const USAGE: &str = "\
ringcast pub: publish messages to a room

USAGE:
    ringcast pub [OPTIONS] URL ROOM [MESSAGE]

URL is the server, e.g. http://127.0.0.1:8080 (or https://). MESSAGE is
published to ROOM with POST /publish/ROOM; without MESSAGE, every line of
standard input is published as one message, in order, on one keep-alive
connection. Prints the id the server gave each message, one per line.
An answer other than 2xx stops with its status and body (exit 1).

OPTIONS:
        --event <NAME>      the SSE event name of the messages (?event=)
        --token <TOKEN>     sent as Authorization: Bearer (default: the
                            environment variable RINGCAST_TOKEN)
        --ca-file <FILE>    https://: trust only the CA certificates of this
                            PEM file instead of the system's roots
    -h, --help              print this help
";

/// What `ringcast pub` was asked.
#[derive(Debug, Default)]
pub struct PubArgs {
    pub url: String,
    pub room: String,
    pub message: Option<String>,
    pub event: Option<String>,
    pub access: Access,
    pub help: bool,
}

pub fn parse<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> Result<PubArgs, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut a = PubArgs::default();
    let mut positional = Vec::new();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("event") => a.event = Some(flag_value(&mut p, "--event")?),
            Long(f @ ("token" | "ca-file")) => {
                let f = f.to_owned();
                a.access.flag(&f, &mut p)?
            }
            Short('h') | Long("help") => a.help = true,
            Value(v) => positional.push(v.string().map_err(|v| format!("{v:?} is not UTF-8"))?),
            _ => return Err(format!("{}\n\n{USAGE}", arg.unexpected())),
        }
    }
    if a.help {
        return Ok(a);
    }
    let mut it = positional.into_iter();
    a.url = it
        .next()
        .ok_or_else(|| format!("missing URL and ROOM\n\n{USAGE}"))?;
    a.room = it
        .next()
        .ok_or_else(|| format!("missing ROOM\n\n{USAGE}"))?;
    a.message = it.next();
    if let Some(extra) = it.next() {
        return Err(format!(
            "unexpected argument {extra:?}: quote a MESSAGE with spaces\n\n{USAGE}"
        ));
    }
    a.access.token_from_env();
    Ok(a)
}

/// Characters escaped in a path segment or query value.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// Publishes; prints each id to `out`.
pub fn run(a: &PubArgs, input: &mut dyn BufRead, out: &mut dyn Write) -> Result<(), Failure> {
    let url = BaseUrl::parse(&a.url).map_err(Failure::Usage)?;
    let mut target = format!(
        "{}/publish/{}",
        url.base,
        utf8_percent_encode(&a.room, ESCAPE)
    );
    if let Some(e) = &a.event {
        target.push_str(&format!("?event={}", utf8_percent_encode(e, ESCAPE)));
    }
    let auth = a.access.authorization();
    let mut headers = vec![("Content-Type", "text/plain; charset=utf-8")];
    if let Some(v) = &auth {
        headers.push(("Authorization", v.as_str()));
    }
    let mut conn = Connection::new(url, a.access.connect_options());
    let mut publish_one = |msg: &[u8], out: &mut dyn Write| -> Result<(), Failure> {
        let r = conn
            .request("POST", &target, &headers, msg)
            .map_err(|e| Failure::Run(format!("{}: {e}", a.url)))?;
        if !(200..300).contains(&r.status) {
            let body = String::from_utf8_lossy(&r.body);
            return Err(Failure::Run(format!(
                "HTTP {} {}: {}",
                r.status,
                r.reason,
                body.trim()
            )));
        }
        let id = serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_u64()));
        match id {
            Some(id) => writeln!(out, "{id}"),
            None => writeln!(out, "{}", String::from_utf8_lossy(&r.body).trim()),
        }
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Run(format!("writing standard output: {e}")))
    };
    match &a.message {
        Some(m) => publish_one(m.as_bytes(), out),
        None => {
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = input
                    .read_until(b'\n', &mut line)
                    .map_err(|e| Failure::Run(format!("reading standard input: {e}")))?;
                if n == 0 {
                    return Ok(());
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                publish_one(&line, out)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<PubArgs, String> {
        parse(v.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn positional_and_flags() {
        let a = args(&["--event", "x", "http://h:1", "news", "hello"]).unwrap();
        assert_eq!(
            (a.url.as_str(), a.room.as_str(), a.message.as_deref()),
            ("http://h:1", "news", Some("hello"))
        );
        assert_eq!(a.event.as_deref(), Some("x"));
        assert!(args(&["http://h:1"]).unwrap_err().contains("missing ROOM"));
        assert!(args(&["http://h:1", "r", "a", "b"])
            .unwrap_err()
            .contains("\"b\""));
        assert!(args(&["--event"]).unwrap_err().contains("--event"));
        assert!(args(&["--frob"]).unwrap_err().contains("--frob"));
    }
}
