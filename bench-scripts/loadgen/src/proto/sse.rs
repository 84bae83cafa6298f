//! Server-Sent Events stream parser (WHATWG HTML "event stream
//! interpretation"), incremental and pure: bytes in, events out.
//!
//! Lines end in CRLF, LF or CR; `field: value` lines fill the event being
//! built, lines starting with `:` are comments, a blank line dispatches.

/// Longest line kept; a longer one is an error (bounded memory).
pub const MAX_LINE: usize = 1 << 20;

/// One dispatched event. `event` is empty for the default type "message".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub id: &'a [u8],
    pub event: &'a [u8],
    pub data: &'a [u8],
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    event: Vec<u8>,
    last_id: Vec<u8>,
    has_data: bool,
    /// The previous byte was CR: a following LF belongs to it.
    after_cr: bool,
    /// Bytes of the stream seen so far, capped (for the BOM check).
    started: bool,
    /// Comment lines seen (keep-alives).
    pub comments: u64,
    /// Last `retry:` value, if any.
    pub retry: Option<u64>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds stream bytes; calls `on` for each dispatched event.
    pub fn feed(&mut self, mut input: &[u8], on: &mut dyn FnMut(Event<'_>)) -> Result<(), String> {
        if !self.started && !input.is_empty() {
            // A UTF-8 BOM may open the stream; it can arrive split.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let have = self.line.len();
            let take = (BOM.len() - have).min(input.len());
            if BOM[have..have + take] == input[..take] {
                if have + take == BOM.len() {
                    self.line.clear();
                    self.started = true;
                    input = &input[take..];
                } else {
                    self.line.extend_from_slice(&input[..take]);
                    return Ok(());
                }
            } else {
                self.started = true;
            }
        }
        while !input.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            match input.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    self.after_cr = input[pos] == b'\r';
                    if self.line.is_empty() {
                        self.line_done(&input[..pos], on);
                    } else {
                        self.push_line(&input[..pos])?;
                        let line = std::mem::take(&mut self.line);
                        self.line_done(&line, on);
                        self.line = line;
                        self.line.clear();
                    }
                    input = &input[pos + 1..];
                }
                None => {
                    self.push_line(input)?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn push_line(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.line.len() + bytes.len() > MAX_LINE {
            return Err("SSE line too long".into());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], on: &mut dyn FnMut(Event<'_>)) {
        if line.is_empty() {
            if self.has_data {
                let mut data: &[u8] = &self.data;
                if data.last() == Some(&b'\n') {
                    data = &data[..data.len() - 1];
                }
                on(Event {
                    id: &self.last_id,
                    event: &self.event,
                    data,
                });
            }
            self.data.clear();
            self.event.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.last_id.clear();
                self.last_id.extend_from_slice(value);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct Owned {
        id: String,
        event: String,
        data: String,
    }

    fn run(pieces: &[&[u8]]) -> (Vec<Owned>, SseParser) {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            p.feed(piece, &mut |e| {
                out.push(Owned {
                    id: String::from_utf8_lossy(e.id).into(),
                    event: String::from_utf8_lossy(e.event).into(),
                    data: String::from_utf8_lossy(e.data).into(),
                })
            })
            .unwrap();
        }
        (out, p)
    }

    fn ev(id: &str, event: &str, data: &str) -> Owned {
        Owned {
            id: id.into(),
            event: event.into(),
            data: data.into(),
        }
    }

    const STREAM: &[u8] = b"\xEF\xBB\xBF: keep-alive\r\nretry: 3000\nid: 1\ndata: first\n\n\
event: tick\r\ndata:line one\r\ndata: line two\r\n\r\n\
: comment\n\nid: 7\rdata\rdata: x\r\rdata: after\nunknown: field\n\n";

    fn expected() -> Vec<Owned> {
        vec![
            ev("1", "", "first"),
            ev("1", "tick", "line one\nline two"),
            ev("7", "", "\nx"),
            ev("7", "", "after"),
        ]
    }

    #[test]
    fn parses_whole_stream() {
        let (got, p) = run(&[STREAM]);
        assert_eq!(got, expected());
        assert_eq!(p.comments, 2);
        assert_eq!(p.retry, Some(3000));
    }

    #[test]
    fn parses_stream_split_at_every_byte() {
        let pieces: Vec<&[u8]> = STREAM.chunks(1).collect();
        let (got, _) = run(&pieces);
        assert_eq!(got, expected());
    }

    #[test]
    fn parses_stream_split_in_two_everywhere() {
        for cut in 0..=STREAM.len() {
            let (got, _) = run(&[&STREAM[..cut], &STREAM[cut..]]);
            assert_eq!(got, expected(), "cut {cut}");
        }
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_line_end() {
        let (got, _) = run(&[b"data: a\r", b"\n\r", b"\ndata: b\n\n"]);
        assert_eq!(got, vec![ev("", "", "a"), ev("", "", "b")]);
    }

    #[test]
    fn no_dispatch_without_data_and_event_type_resets() {
        let (got, _) = run(&[b"event: x\n\ndata: y\n\n"]);
        assert_eq!(got, vec![ev("", "", "y")]);
    }

    #[test]
    fn id_with_nul_is_ignored_and_incomplete_event_is_not_dispatched() {
        let (got, _) = run(&[b"id: 5\n\nid: a\0b\ndata: z\n\ndata: tail"]);
        assert_eq!(got, vec![ev("5", "", "z")]);
    }

    #[test]
    fn overlong_line_is_an_error() {
        let mut p = SseParser::new();
        let big = vec![b'a'; MAX_LINE + 1];
        assert!(p.feed(&big, &mut |_| {}).is_err());
    }
}
