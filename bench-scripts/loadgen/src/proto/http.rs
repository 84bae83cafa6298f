//! HTTP/1.1 client side, pure: response-head parsing, the chunked
//! transfer-coding decoder and request builders. No I/O here.

/// Largest response head accepted (status line plus headers).
pub const MAX_HEAD: usize = 16 * 1024;

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// Bytes the head took in the input, final blank line included.
    pub len: usize,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .map(|v| {
                v.rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            })
            .unwrap_or(false)
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }

    /// Does the response say the connection will close after it?
    pub fn closes(&self) -> bool {
        self.header("connection")
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            .unwrap_or(false)
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    // Accept CRLF CRLF, and bare LF LF from lenient servers.
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Parses a response head from the start of `buf`. `Ok(None)`: incomplete.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let end = match find_head_end(buf) {
        Some(e) => e,
        None if buf.len() > MAX_HEAD => return Err("response head too large".into()),
        None => return Ok(None),
    };
    if end > MAX_HEAD {
        return Err("response head too large".into());
    }
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line: {line:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Some(Head {
        status,
        headers,
        len: end,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerLine,
    TrailerEndLf,
    Done,
}

/// Incremental decoder of `Transfer-Encoding: chunked` bodies.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: ChunkState,
    size: u64,
    digits: u32,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunked {
    pub fn new() -> Self {
        Chunked {
            state: ChunkState::Size,
            size: 0,
            digits: 0,
        }
    }

    /// True once the last chunk and the trailer have been read.
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input`, handing each run of body bytes to `sink`.
    /// Returns how many input bytes were consumed: all of them, unless the
    /// body ended inside `input` (the rest belongs to the next message).
    pub fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<usize, String> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Size => {
                    let d = match b {
                        b'0'..=b'9' => Some(b - b'0'),
                        b'a'..=b'f' => Some(b - b'a' + 10),
                        b'A'..=b'F' => Some(b - b'A' + 10),
                        _ => None,
                    };
                    match d {
                        Some(d) => {
                            if self.digits >= 15 {
                                return Err("chunk size too large".into());
                            }
                            self.size = self.size * 16 + d as u64;
                            self.digits += 1;
                        }
                        None if self.digits == 0 => {
                            return Err(format!("bad chunk size byte {b:#x}"));
                        }
                        None => match b {
                            b';' | b' ' | b'\t' => self.state = ChunkState::Ext,
                            b'\r' => self.state = ChunkState::SizeLf,
                            b'\n' => self.end_size_line(),
                            _ => return Err(format!("bad chunk size byte {b:#x}")),
                        },
                    }
                    i += 1;
                }
                ChunkState::Ext => {
                    match b {
                        b'\r' => self.state = ChunkState::SizeLf,
                        b'\n' => self.end_size_line(),
                        _ => {}
                    }
                    i += 1;
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err("expected LF after chunk size".into());
                    }
                    self.end_size_line();
                    i += 1;
                }
                ChunkState::Data => {
                    let n = (input.len() - i).min(self.size as usize);
                    sink(&input[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr => {
                    match b {
                        b'\r' => self.state = ChunkState::DataLf,
                        b'\n' => self.next_chunk(),
                        _ => return Err("expected CRLF after chunk data".into()),
                    }
                    i += 1;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err("expected LF after chunk data".into());
                    }
                    self.next_chunk();
                    i += 1;
                }
                ChunkState::TrailerLineStart => {
                    match b {
                        b'\r' => self.state = ChunkState::TrailerEndLf,
                        b'\n' => self.state = ChunkState::Done,
                        _ => self.state = ChunkState::TrailerLine,
                    }
                    i += 1;
                }
                ChunkState::TrailerLine => {
                    if b == b'\n' {
                        self.state = ChunkState::TrailerLineStart;
                    }
                    i += 1;
                }
                ChunkState::TrailerEndLf => {
                    if b != b'\n' {
                        return Err("expected LF after trailer".into());
                    }
                    self.state = ChunkState::Done;
                    i += 1;
                }
                ChunkState::Done => return Ok(i),
            }
        }
        Ok(i)
    }

    fn end_size_line(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::TrailerLineStart
        } else {
            ChunkState::Data
        };
    }

    fn next_chunk(&mut self) {
        self.state = ChunkState::Size;
        self.size = 0;
        self.digits = 0;
    }
}

/// `GET` request for an SSE stream.
pub fn sse_request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    )
    .into_bytes()
}

/// Appends a keep-alive `POST` with `body` to `out`.
pub fn post_request(out: &mut Vec<u8>, host: &str, path: &str, body: &[u8]) {
    use std::io::Write;
    let _ = write!(
        out,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

/// Reads a stream of responses (to pipelined requests) one after the other.
#[derive(Debug, Default)]
pub struct ResponseReader {
    buf: Vec<u8>,
    body: Option<Body>,
    status: u16,
    close_after: bool,
    closed: bool,
}

#[derive(Debug)]
enum Body {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

impl ResponseReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// True after a complete response that said `Connection: close`; bytes
    /// after it are ignored (requests pipelined behind it went unanswered).
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Feeds received bytes; calls `done(status)` for each complete response.
    /// A response without length (read to close) is reported on `eof`.
    pub fn feed(&mut self, mut input: &[u8], done: &mut dyn FnMut(u16)) -> Result<(), String> {
        loop {
            if self.closed {
                return Ok(());
            }
            if let Some(body) = &mut self.body {
                match body {
                    Body::Length(rem) => {
                        let n = (*rem).min(input.len() as u64);
                        *rem -= n;
                        input = &input[n as usize..];
                        if *rem > 0 {
                            return Ok(());
                        }
                    }
                    Body::Chunked(c) => {
                        let n = c.feed(input, &mut |_| {})?;
                        input = &input[n..];
                        if !c.done() {
                            return Ok(());
                        }
                    }
                    Body::UntilClose => return Ok(()),
                }
                self.body = None;
                done(self.status);
                if self.close_after {
                    self.closed = true;
                    return Ok(());
                }
            }
            if input.is_empty() && self.buf.is_empty() {
                return Ok(());
            }
            let head = if self.buf.is_empty() {
                match parse_response_head(input)? {
                    Some(h) => {
                        input = &input[h.len..];
                        h
                    }
                    None => {
                        self.buf.extend_from_slice(input);
                        return Ok(());
                    }
                }
            } else {
                self.buf.extend_from_slice(input);
                match parse_response_head(&self.buf)? {
                    Some(h) => {
                        self.buf.drain(..h.len);
                        let rest = std::mem::take(&mut self.buf);
                        self.start_body(&h);
                        return self.feed(&rest, done);
                    }
                    None => return Ok(()),
                }
            };
            self.start_body(&head);
        }
    }

    fn start_body(&mut self, h: &Head) {
        self.status = h.status;
        self.close_after = h.closes();
        let no_body = h.status / 100 == 1 || h.status == 204 || h.status == 304;
        self.body = Some(if no_body {
            Body::Length(0)
        } else if h.is_chunked() {
            Body::Chunked(Chunked::new())
        } else if let Some(n) = h.content_length() {
            Body::Length(n)
        } else {
            Body::UntilClose
        });
    }

    /// The connection ended; completes a read-to-close response if one is open.
    pub fn eof(&mut self, done: &mut dyn FnMut(u16)) {
        if let Some(Body::UntilClose) = self.body {
            self.body = None;
            done(self.status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parses_status_and_headers() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: abc=\r\n\r\nrest";
        let h = parse_response_head(raw).unwrap().unwrap();
        assert_eq!(h.status, 101);
        assert_eq!(h.header("upgrade"), Some("websocket"));
        assert_eq!(h.header("SEC-WEBSOCKET-ACCEPT"), Some("abc="));
        assert_eq!(&raw[h.len..], b"rest");
    }

    #[test]
    fn head_incomplete_at_every_split() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(parse_response_head(&raw[..cut]).unwrap(), None, "cut {cut}");
        }
        assert!(parse_response_head(raw).unwrap().is_some());
    }

    #[test]
    fn head_rejects_garbage_and_oversize() {
        assert!(parse_response_head(b"SPDY/9 200 OK\r\n\r\n").is_err());
        assert!(parse_response_head(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
        assert!(parse_response_head(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }

    #[test]
    fn head_flags() {
        let h = parse_response_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(h.is_chunked());
        assert!(h.closes());
        assert_eq!(h.content_length(), None);
    }

    fn decode_all(input: &[u8], step: usize) -> (Vec<u8>, bool, usize) {
        let mut c = Chunked::new();
        let mut out = Vec::new();
        let mut consumed = 0;
        for piece in input.chunks(step.max(1)) {
            let n = c.feed(piece, &mut |d| out.extend_from_slice(d)).unwrap();
            consumed += n;
            if c.done() {
                break;
            }
        }
        (out, c.done(), consumed)
    }

    #[test]
    fn chunked_decodes_at_every_split() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let whole = b"Wikipedia in\r\n\r\nchunks.".to_vec();
        for step in 1..body.len() {
            let (out, done, consumed) = decode_all(body, step);
            assert_eq!(out, whole, "step {step}");
            assert!(done);
            assert!(consumed <= body.len() - 4);
        }
        // Every two-piece split.
        for cut in 0..=body.len() {
            let mut c = Chunked::new();
            let mut out = Vec::new();
            let a = c
                .feed(&body[..cut], &mut |d| out.extend_from_slice(d))
                .unwrap();
            let b = c
                .feed(&body[a..], &mut |d| out.extend_from_slice(d))
                .unwrap();
            assert_eq!(out, whole, "cut {cut}");
            assert_eq!(&body[a + b..], b"NEXT");
        }
    }

    #[test]
    fn chunked_accepts_bare_lf_and_rejects_garbage() {
        let (out, done, _) = decode_all(b"3\nabc\n0\n\n", 1);
        assert_eq!(out, b"abc");
        assert!(done);
        let mut c = Chunked::new();
        assert!(c.feed(b"zz\r\n", &mut |_| {}).is_err());
        let mut c = Chunked::new();
        assert!(c.feed(b"3\r\nabcX", &mut |_| {}).is_err());
        let mut c = Chunked::new();
        assert!(c.feed(b"ffffffffffffffffff\r\n", &mut |_| {}).is_err());
    }

    #[test]
    fn response_reader_pipelined_at_every_split() {
        let stream = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 429 Too Many\r\ncontent-length: 0\r\n\r\n";
        for step in 1..=stream.len() {
            let mut r = ResponseReader::new();
            let mut got = Vec::new();
            for piece in stream.chunks(step) {
                r.feed(piece, &mut |s| got.push(s)).unwrap();
            }
            assert_eq!(got, vec![200, 202, 204, 429], "step {step}");
        }
    }

    #[test]
    fn response_reader_stops_after_connection_close() {
        let mut r = ResponseReader::new();
        let mut got = Vec::new();
        r.feed(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\n",
            &mut |s| got.push(s),
        )
        .unwrap();
        assert_eq!(got, vec![200]);
        assert!(r.closed());
    }

    #[test]
    fn response_reader_until_close() {
        let mut r = ResponseReader::new();
        let mut got = Vec::new();
        r.feed(b"HTTP/1.0 200 OK\r\n\r\nbody", &mut |s| got.push(s))
            .unwrap();
        assert!(got.is_empty());
        r.eof(&mut |s| got.push(s));
        assert_eq!(got, vec![200]);
    }

    #[test]
    fn requests_are_well_formed() {
        let mut out = Vec::new();
        post_request(&mut out, "127.0.0.1:8080", "/publish/r", b"hello");
        assert_eq!(
            out,
            b"POST /publish/r HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        );
        let get = sse_request("h", "/sse?room=a");
        assert!(get.starts_with(b"GET /sse?room=a HTTP/1.1\r\n"));
        assert!(get.ends_with(b"\r\n\r\n"));
    }
}
