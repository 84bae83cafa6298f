//! The body of an event-stream response as it arrives: to the end of the
//! connection, `Content-Length` bytes, or `Transfer-Encoding: chunked`
//! (what most HTTP servers other than ringcast stream with). Pure: bytes
//! in, body bytes out, bounded (a chunk-size or trailer line longer than
//! [`MAX_CHUNK_LINE`] is an error).

use std::fmt;

/// The longest chunk-size line (with extensions) or trailer line accepted.
pub const MAX_CHUNK_LINE: usize = 4096;

/// How the body is delimited.
#[derive(Debug)]
pub(crate) enum Body {
    /// Until the server closes the connection.
    UntilClose,
    /// This many bytes are still to come.
    Length(u64),
    /// Chunked transfer coding.
    Chunked(Chunked),
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad response body: {}", self.0)
    }
}

impl std::error::Error for BodyError {}

#[derive(Debug, Default)]
pub(crate) struct Chunked {
    state: State,
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk: this many data bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

impl Body {
    /// The framing a response's headers ask for (`header` looks one up,
    /// case-insensitively). Chunked wins over a length, as RFC 9112 says.
    pub(crate) fn of<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Result<Body, BodyError> {
        if let Some(te) = header("transfer-encoding") {
            let last = te.rsplit(',').next().unwrap_or("").trim();
            if last.eq_ignore_ascii_case("chunked") {
                return Ok(Body::Chunked(Chunked::default()));
            }
            return Ok(Body::UntilClose);
        }
        match header("content-length") {
            Some(v) => v
                .trim()
                .parse()
                .map(Body::Length)
                .map_err(|_| BodyError(format!("bad Content-Length {v:?}"))),
            None => Ok(Body::UntilClose),
        }
    }

    /// Whether the whole body has arrived (the server will send no more
    /// on this response).
    pub(crate) fn done(&self) -> bool {
        match self {
            Body::UntilClose => false,
            Body::Length(n) => *n == 0,
            Body::Chunked(c) => c.state == State::Done,
        }
    }

    /// Decodes `input`, calling `out` with each run of body bytes. Bytes
    /// after the end of the body are ignored.
    pub(crate) fn decode(
        &mut self,
        mut input: &[u8],
        mut out: impl FnMut(&[u8]) -> Result<(), BodyError>,
    ) -> Result<(), BodyError> {
        match self {
            Body::UntilClose => out(input),
            Body::Length(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                *left -= n as u64;
                out(&input[..n])
            }
            Body::Chunked(c) => {
                while !input.is_empty() {
                    match c.state {
                        State::Data(left) => {
                            let n = left.min(input.len() as u64) as usize;
                            out(&input[..n])?;
                            input = &input[n..];
                            c.state = match left - n as u64 {
                                0 => State::DataEnd,
                                rest => State::Data(rest),
                            };
                        }
                        State::Done => return Ok(()),
                        _ => {
                            let Some(line) = c.take_line(&mut input)? else {
                                return Ok(());
                            };
                            c.state = next_state(c.state, &line)?;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

impl Chunked {
    /// A whole line (without its line end) from `input`, or `None` when it
    /// has not all arrived (what did is kept).
    fn take_line(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, BodyError> {
        let (part, end) = match input.iter().position(|&b| b == b'\n') {
            Some(i) => (&input[..i], Some(i + 1)),
            None => (*input, None),
        };
        if self.line.len() + part.len() > MAX_CHUNK_LINE {
            return Err(BodyError(format!(
                "a chunk line longer than {MAX_CHUNK_LINE} bytes"
            )));
        }
        self.line.extend_from_slice(part);
        let Some(end) = end else {
            *input = &[];
            return Ok(None);
        };
        *input = &input[end..];
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(line))
    }
}

/// The state after a whole line in `state` (not `Data` nor `Done`).
fn next_state(state: State, line: &[u8]) -> Result<State, BodyError> {
    Ok(match state {
        State::Size => {
            let text = String::from_utf8_lossy(line);
            let hex = text.split(';').next().unwrap_or("").trim();
            match u64::from_str_radix(hex, 16) {
                Ok(0) => State::Trailers,
                Ok(n) => State::Data(n),
                Err(_) => return Err(BodyError(format!("bad chunk size {hex:?}"))),
            }
        }
        State::DataEnd if line.is_empty() => State::Size,
        State::DataEnd => return Err(BodyError("a chunk longer than its size".into())),
        State::Trailers if line.is_empty() => State::Done,
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(body: &mut Body, input: &[u8], piece: usize) -> Result<Vec<u8>, BodyError> {
        let mut got = Vec::new();
        for p in input.chunks(piece) {
            body.decode(p, |b| {
                got.extend_from_slice(b);
                Ok(())
            })?;
        }
        Ok(got)
    }

    #[test]
    fn chunked_in_any_pieces() {
        let wire = b"5;ext=1\r\ndata:\r\n7\r\n a\n\n:x\n\r\n0\r\nTrailer: t\r\n\r\nignored";
        for piece in 1..wire.len() {
            let mut b = Body::Chunked(Chunked::default());
            let got = decode_in_pieces(&mut b, wire, piece).unwrap();
            assert_eq!(got, b"data: a\n\n:x\n", "pieces of {piece}");
            assert!(b.done());
        }
    }

    #[test]
    fn length_and_until_close() {
        let mut b = Body::of(|h| (h == "content-length").then_some("4")).unwrap();
        assert_eq!(decode_in_pieces(&mut b, b"abcdef", 3).unwrap(), b"abcd");
        assert!(b.done());
        let mut b = Body::of(|_| None).unwrap();
        assert_eq!(decode_in_pieces(&mut b, b"abcdef", 4).unwrap(), b"abcdef");
        assert!(!b.done());
        let b = Body::of(|h| (h == "transfer-encoding").then_some("gzip, chunked")).unwrap();
        assert!(matches!(b, Body::Chunked(_)));
        assert!(Body::of(|h| (h == "content-length").then_some("x")).is_err());
    }

    #[test]
    fn hostile_chunking_is_refused() {
        let mut b = Body::Chunked(Chunked::default());
        let e = decode_in_pieces(&mut b, b"zz\r\n", 10).unwrap_err();
        assert!(e.to_string().contains("chunk size"), "{e}");
        let mut b = Body::Chunked(Chunked::default());
        let endless = vec![b'1'; MAX_CHUNK_LINE + 1];
        assert!(decode_in_pieces(&mut b, &endless, 100).is_err());
        let mut b = Body::Chunked(Chunked::default());
        assert!(decode_in_pieces(&mut b, b"1\r\nab\r\n", 10).is_err());
    }
}
