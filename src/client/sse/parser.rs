//! Server-Sent Events: the `text/event-stream` parser of the HTML
//! standard ("Interpreting an event stream"), bounded so that a hostile
//! server cannot make it allocate without limit. The reconnecting
//! [`SseClient`](super::SseClient) is built on it.

use std::fmt;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event type (`message` unless the server named one).
    pub event: String,
    /// The data lines, joined with `\n`.
    pub data: String,
    /// The last event id at dispatch (empty if none was ever set).
    pub id: String,
}

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A line longer than [`Parser::max_line`] bytes.
    LineTooLong(usize),
    /// An event whose data grew beyond [`Parser::max_event`] bytes.
    EventTooLarge(usize),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::LineTooLong(n) => {
                write!(f, "event-stream line longer than {n} bytes")
            }
            ParseError::EventTooLarge(n) => {
                write!(f, "event-stream event larger than {n} bytes")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// The incremental parser: feed it what arrives, in any pieces.
///
/// ```
/// use ringcast::client::sse::{Event, Parser};
///
/// let mut p = Parser::new();
/// let mut got = Vec::new();
/// p.feed(b"id: 7\nevent: tick\ndata: a\ndata: b\n\n", |e| got.push(e)).unwrap();
/// assert_eq!(got, [Event { event: "tick".into(), data: "a\nb".into(), id: "7".into() }]);
/// assert_eq!(p.last_event_id(), "7");
/// ```
///
/// The rules, all of which the unit tests check: a UTF-8 byte order mark
/// at the very start is skipped; lines end with CRLF, LF or CR, also when a
/// CRLF is split between two reads; lines starting with `:` are comments;
/// a line without a colon is a field with an empty value; one space after
/// the colon is removed; `data` lines are joined with `\n`; an `id` that
/// contains NUL is ignored; `retry` counts only when it is all ASCII
/// digits; an empty line dispatches the event, unless it has no data (then
/// only the last event id stays); the event type goes back to `message`
/// after each dispatch; unknown fields are ignored; bytes that are not
/// UTF-8 become U+FFFD; an event cut off by the end of the stream is not
/// dispatched.
#[derive(Debug)]
pub struct Parser {
    line: Vec<u8>,
    data: String,
    event: String,
    last_id: String,
    retry: Option<u64>,
    /// The previous piece ended with CR: an LF starting the next one belongs to it.
    after_cr: bool,
    /// Still at the start of the stream (where a BOM may be).
    at_start: bool,
    max_line: usize,
    max_event: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// A parser with the default bounds: lines of 64 KiB, events of 1 MiB.
    pub fn new() -> Parser {
        Parser::with_limits(64 << 10, 1 << 20)
    }

    /// A parser refusing lines longer than `max_line` bytes and events whose
    /// data is larger than `max_event` bytes.
    pub fn with_limits(max_line: usize, max_event: usize) -> Parser {
        Parser {
            line: Vec::new(),
            data: String::new(),
            event: String::new(),
            last_id: String::new(),
            retry: None,
            after_cr: false,
            at_start: true,
            max_line,
            max_event,
        }
    }

    /// The longest line accepted.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The largest event accepted.
    pub fn max_event(&self) -> usize {
        self.max_event
    }

    /// The last event id the stream set (for `Last-Event-ID` on reconnect).
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    /// Sets the last event id, as a resuming client starts from (an id
    /// containing NUL is ignored, as in the stream).
    pub fn set_last_event_id(&mut self, id: &str) {
        if !id.contains('\0') {
            self.last_id = id.to_string();
        }
    }

    /// The reconnection time the stream asked for last, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry
    }

    /// A new connection of the same stream: the partial line and event are
    /// dropped; the last event id and the retry time stay.
    pub fn reconnected(&mut self) {
        self.line.clear();
        self.data.clear();
        self.event.clear();
        self.after_cr = false;
        self.at_start = true;
    }

    /// Parses `bytes`, calling `dispatch` for every complete event.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        mut dispatch: impl FnMut(Event),
    ) -> Result<(), ParseError> {
        if self.at_start {
            // the BOM may itself arrive in pieces
            let bom = b"\xef\xbb\xbf";
            let have = self.line.len();
            let take = (bom.len() - have).min(bytes.len());
            if bom[have..have + take] == bytes[..take] {
                self.line.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.line.len() < bom.len() {
                    return Ok(());
                }
                self.line.clear();
            }
            // (otherwise any bytes kept were not a BOM: they start the first line)
            self.at_start = false;
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(i) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            if self.line.len() + i > self.max_line {
                return Err(ParseError::LineTooLong(self.max_line));
            }
            self.line.extend_from_slice(&bytes[..i]);
            let cr = bytes[i] == b'\r';
            bytes = &bytes[i + 1..];
            if cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut dispatch)?;
            self.line = line;
            self.line.clear();
        }
        if self.line.len() + bytes.len() > self.max_line {
            return Err(ParseError::LineTooLong(self.max_line));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_done(
        &mut self,
        line: &[u8],
        dispatch: &mut impl FnMut(Event),
    ) -> Result<(), ParseError> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event.clear();
                return Ok(());
            }
            if self.data.ends_with('\n') {
                self.data.pop();
            }
            let event = if self.event.is_empty() {
                "message".to_string()
            } else {
                std::mem::take(&mut self.event)
            };
            dispatch(Event {
                event,
                data: std::mem::take(&mut self.data),
                id: self.last_id.clone(),
            });
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max_event {
                    return Err(ParseError::EventTooLarge(self.max_event));
                }
                self.data.push_str(&value);
                self.data.push('\n');
            }
            b"id" if !value.contains('\0') => self.last_id = value.into_owned(),
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // (digits beyond u64 saturate: a bound the client clamps anyway)
                self.retry = Some(value.parse().unwrap_or(u64::MAX));
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> (Vec<Event>, Parser) {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |e| out.push(e)).unwrap();
        }
        (out, p)
    }

    fn ev(event: &str, data: &str, id: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
            id: id.into(),
        }
    }

    #[test]
    fn a_bom_at_the_start_is_skipped_even_in_pieces_and_only_there() {
        let (out, _) = parse(&[b"\xef\xbb\xbfdata: a\n\n"]);
        assert_eq!(out, [ev("message", "a", "")]);
        let (out, _) = parse(&[b"\xef", b"\xbb", b"\xbfdata: a\n\n"]);
        assert_eq!(out, [ev("message", "a", "")]);
        // a second BOM is part of the first field name: not "data"
        let (out, _) = parse(&[b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n", b"data: b\n\n"]);
        assert_eq!(out, [ev("message", "b", "")]);
    }

    #[test]
    fn every_line_end_counts_also_split_between_reads() {
        let (out, _) = parse(&[b"data: a\r\ndata: b\rdata: c\n\r\n"]);
        assert_eq!(out, [ev("message", "a\nb\nc", "")]);
        let (out, _) = parse(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\r\r"]);
        assert_eq!(out, [ev("message", "a", ""), ev("message", "b", "")]);
    }

    #[test]
    fn comments_fields_without_colon_and_the_one_space() {
        let (out, _) = parse(&[b": a comment\ndata\ndata:  two spaces\ndata:none\n\n"]);
        assert_eq!(out, [ev("message", "\n two spaces\nnone", "")]);
    }

    #[test]
    fn event_type_resets_after_each_dispatch_and_unknown_fields_are_ignored() {
        let (out, _) = parse(&[b"event: a\nfoo: bar\ndata: 1\n\ndata: 2\n\n"]);
        assert_eq!(out, [ev("a", "1", ""), ev("message", "2", "")]);
    }

    #[test]
    fn ids_persist_ids_with_nul_are_ignored_and_dataless_events_update_only_the_id() {
        let (out, p) = parse(&[b"id: 1\ndata: a\n\nid: 2\n\nid: x\0y\ndata: b\n\n"]);
        assert_eq!(out, [ev("message", "a", "1"), ev("message", "b", "2")]);
        assert_eq!(p.last_event_id(), "2");
        // an empty id resets it
        let (out, _) = parse(&[b"id: 1\ndata: a\n\nid\ndata: b\n\n"]);
        assert_eq!(out, [ev("message", "a", "1"), ev("message", "b", "")]);
    }

    #[test]
    fn retry_counts_only_when_all_digits() {
        for (input, want) in [
            (&b"retry: 1500\n"[..], Some(1500)),
            (b"retry: 15x\n", None),
            (b"retry: -1\n", None),
            (b"retry:\n", None),
            (b"retry: 1.5\n", None),
            (b"retry: 99999999999999999999999\n", Some(u64::MAX)),
        ] {
            let (_, p) = parse(&[input]);
            assert_eq!(p.retry_ms(), want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn a_cut_off_event_is_not_dispatched_and_reconnecting_drops_it() {
        let (out, mut p) = parse(&[b"id: 5\ndata: a\n\ndata: partial"]);
        assert_eq!(out, [ev("message", "a", "5")]);
        p.reconnected();
        let mut more = Vec::new();
        p.feed(b"data: b\n\n", |e| more.push(e)).unwrap();
        assert_eq!(more, [ev("message", "b", "5")]);
    }

    #[test]
    fn bytes_that_are_not_utf8_become_replacement_characters() {
        let (out, _) = parse(&[b"data: a\xffb\n\n"]);
        assert_eq!(out, [ev("message", "a\u{fffd}b", "")]);
        // a character split between reads stays whole
        let (out, _) = parse(&[b"data: \xc3", b"\xa9\n\n"]);
        assert_eq!(out, [ev("message", "\u{e9}", "")]);
    }

    // The stream-format cases of the web-platform-tests `eventsource`
    // suite, as the parser sees them (the BOM, line-end, retry and UTF-8
    // cases are above; the request, status, content-type, redirect and
    // reconnection cases are in tests/sse_client.rs).

    /// format-comments: comments (with CR, NUL and long ones) between data
    /// lines, every kind of line end.
    #[test]
    fn wpt_format_comments() {
        let long = ":".to_string() + &"c".repeat(2048);
        let stream =
            format!("data:1\r:\0\n:\r\ndata:2\n{long}\rdata:3\n:data:no\r{long}\ndata:4\n\n");
        let (out, _) = parse(&[stream.as_bytes()]);
        assert_eq!(out, [ev("message", "1\n2\n3\n4", "")]);
    }

    /// format-data-before-final-empty-line: an event the stream ends in
    /// the middle of is not dispatched, nor its id used.
    #[test]
    fn wpt_format_data_before_final_empty_line() {
        let (out, p) = parse(&[b"retry:1000\ndata:test1\n\nid:test\ndata:test2"]);
        assert_eq!(out, [ev("message", "test1", "")]);
        assert_eq!(p.retry_ms(), Some(1000));
    }

    /// format-null-character: NUL in data is data.
    #[test]
    fn wpt_format_null_character() {
        let (out, _) = parse(&[b"data:\0\n\n"]);
        assert_eq!(out, [ev("message", "\0", "")]);
    }

    /// format-field-event-empty: an empty `event` is `message`.
    #[test]
    fn wpt_format_field_event_empty() {
        let (out, _) = parse(&[b"event: \ndata:data\n\n"]);
        assert_eq!(out, [ev("message", "data", "")]);
    }

    /// format-field-id-3: the id persists across events and a reconnection,
    /// changes when set again, and an empty `id` resets it.
    #[test]
    fn wpt_format_field_id_persists_changes_and_resets() {
        let (mut out, mut p) = parse(&[b"id: 1\ndata: a\n\n"]);
        p.reconnected();
        let streams: [&[u8]; 3] = [
            b"data: b\n\n",
            b"id: 2\ndata: c\n\ndata: d\n\n",
            b"id\ndata: e\n\n",
        ];
        for s in streams {
            p.feed(s, |e| out.push(e)).unwrap();
        }
        let ids: Vec<&str> = out.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["1", "1", "2", "2", ""]);
    }

    /// Feeds `chunk` up to `times` times: the first error.
    fn first_error(p: &mut Parser, chunk: &[u8], times: usize) -> Result<(), ParseError> {
        (0..times).try_for_each(|_| p.feed(chunk, |_| {}))
    }

    #[test]
    fn hostile_streams_are_bounded() {
        let mut p = Parser::with_limits(16, 32);
        assert_eq!(
            p.feed(&[b'a'; 40], |_| {}),
            Err(ParseError::LineTooLong(16))
        );
        let mut p = Parser::with_limits(16, 32);
        let r = first_error(&mut p, b"data: 0123456\n", 10);
        assert_eq!(r, Err(ParseError::EventTooLarge(32)));
        // a long line arriving in many small pieces is refused too
        let mut p = Parser::with_limits(16, 32);
        assert_eq!(
            first_error(&mut p, b"aa", 20),
            Err(ParseError::LineTooLong(16))
        );
    }
}
