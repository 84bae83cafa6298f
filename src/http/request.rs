//! HTTP/1.1 request heads: parsing with httparse under strict limits.
//!
//! Pure code over a byte buffer, no I/O. A head is either complete, still
//! incomplete, or rejected with the status the client must see (400, 414,
//! 431, 501, 505) and a reason naming the rule that was broken.

use std::mem::MaybeUninit;

/// Storage for parsed headers, kept on the caller's stack.
pub type HeaderStorage<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS_HARD];

/// The most headers any configuration may allow (config validation enforces it).
pub const MAX_HEADERS_HARD: usize = 1024;

/// Limits applied while parsing a request head.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub max_request_line: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// A parsed request head, borrowing the read buffer.
#[derive(Debug)]
pub struct RequestHead<'b> {
    pub method: &'b str,
    /// The request target as sent (origin-form after stripping an absolute-form prefix).
    pub target: &'b str,
    /// The target up to `?`.
    pub path: &'b str,
    /// The target after `?` (empty when none).
    pub query: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: &'b [httparse::Header<'b>],
    /// Bytes of the head including the blank line.
    pub head_len: usize,
    /// Bytes of body that follow the head.
    pub content_length: u64,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The client's address (set by the connection; unspecified when parsed alone).
    pub peer: std::net::IpAddr,
}

impl<'b> RequestHead<'b> {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Values of every `name=` parameter in the query string, in order (not percent-decoded).
    pub fn query_params<'q>(&'q self, name: &'q str) -> impl Iterator<Item = &'b str> + 'q {
        query_params(self.query, name)
    }
}

/// Values of every `name=` parameter of a query string, in order.
pub fn query_params<'b, 'q>(query: &'b str, name: &'q str) -> impl Iterator<Item = &'b str> + 'q
where
    'b: 'q,
{
    query.split('&').filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Why a head was rejected: the status to answer with and a precise reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
}

const fn reject(status: u16, reason: &'static str) -> Rejection {
    Rejection { status, reason }
}

/// Result of trying to parse a head from the start of `buf`.
#[derive(Debug)]
pub enum Parsed<'b> {
    Complete(RequestHead<'b>),
    /// More bytes are needed; nothing is wrong yet.
    Incomplete,
}

/// Is `token` one of the comma-separated tokens of a header value (case-insensitive)?
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a request head at the start of `buf`.
pub fn parse<'b>(
    buf: &'b [u8],
    storage: &'b mut HeaderStorage<'b>,
    limits: &HeadLimits,
) -> Result<Parsed<'b>, Rejection> {
    // Request line limit, checked before httparse so an endless line is refused early.
    let line_end = memchr_nl(buf, limits.max_request_line + 1);
    match line_end {
        None if buf.len() > limits.max_request_line => {
            return Err(reject(
                414,
                "request line is longer than http.max_request_line",
            ));
        }
        Some(i) if i > limits.max_request_line => {
            return Err(reject(
                414,
                "request line is longer than http.max_request_line",
            ));
        }
        _ => {}
    }
    let n_headers = limits.max_headers.min(MAX_HEADERS_HARD);
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, &mut storage[..n_headers]);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_bytes {
                return Err(reject(
                    431,
                    "request head is larger than http.max_header_bytes",
                ));
            }
            return Ok(Parsed::Incomplete);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(
                431,
                "request has more headers than http.max_headers",
            ));
        }
        Err(e) => return Err(reject(400, httparse_reason(e))),
    };
    if head_len > limits.max_header_bytes {
        return Err(reject(
            431,
            "request head is larger than http.max_header_bytes",
        ));
    }
    let method = req.method.unwrap_or("");
    let raw_target = req.path.unwrap_or("");
    let minor_version = req.version.unwrap_or(1);
    let headers: &'b [httparse::Header<'b>] = req.headers;

    let target = origin_form(raw_target)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let mut content_length: Option<u64> = None;
    let mut keep_alive = minor_version == 1;
    let mut expect_continue = false;
    let mut has_host = false;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let v = parse_content_length(h.value)
                .ok_or(reject(400, "Content-Length is not a decimal number"))?;
            if content_length.is_some_and(|prev| prev != v) {
                return Err(reject(400, "conflicting Content-Length headers"));
            }
            content_length = Some(v);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(reject(
                501,
                "Transfer-Encoding request bodies are not supported: send Content-Length",
            ));
        } else if name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, "close") {
                keep_alive = false;
            } else if has_token(h.value, "keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if h.value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(reject(417, "only Expect: 100-continue is supported"));
            }
        } else if name.eq_ignore_ascii_case("host") {
            if has_host {
                return Err(reject(400, "more than one Host header"));
            }
            has_host = true;
        }
    }
    if minor_version == 1 && !has_host {
        return Err(reject(400, "HTTP/1.1 request without a Host header"));
    }
    Ok(Parsed::Complete(RequestHead {
        method,
        target,
        path,
        query,
        minor_version,
        headers,
        head_len,
        content_length: content_length.unwrap_or(0),
        keep_alive,
        expect_continue,
        peer: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    }))
}

/// Strips an absolute-form `http://authority` prefix; refuses anything that is not a path.
fn origin_form(target: &str) -> Result<&str, Rejection> {
    if target.starts_with('/') {
        return Ok(target);
    }
    for scheme in ["http://", "https://"] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &target[scheme.len()..];
            return Ok(match rest.find('/') {
                Some(i) => &rest[i..],
                None => "/",
            });
        }
    }
    if target == "*" {
        return Ok(target);
    }
    Err(reject(400, "request target is not an absolute path"))
}

fn parse_content_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add((d - b'0') as u64)
    })
}

fn memchr_nl(buf: &[u8], limit: usize) -> Option<usize> {
    buf[..buf.len().min(limit)].iter().position(|&b| b == b'\n')
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    use httparse::Error::*;
    match e {
        HeaderName => "invalid byte in a header name",
        HeaderValue => "invalid byte in a header value",
        NewLine => "invalid line ending (expected CRLF)",
        Status => "invalid status",
        Token => "invalid byte in the method",
        TooManyHeaders => "too many headers",
        Version => "invalid HTTP version (expected HTTP/1.0 or HTTP/1.1)",
    }
}

/// Fresh header storage for [`parse`].
pub fn header_storage<'b>() -> HeaderStorage<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS_HARD]
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: HeadLimits = HeadLimits {
        max_request_line: 64,
        max_header_bytes: 256,
        max_headers: 4,
    };

    /// path, query, content length, keep-alive, head length
    type Summary = (String, String, u64, bool, usize);

    fn p(buf: &[u8]) -> Result<Option<Summary>, Rejection> {
        let mut st = header_storage();
        match parse(buf, &mut st, &L)? {
            Parsed::Complete(h) => Ok(Some((
                h.path.to_string(),
                h.query.to_string(),
                h.content_length,
                h.keep_alive,
                h.head_len,
            ))),
            Parsed::Incomplete => Ok(None),
        }
    }

    #[test]
    fn simple_get() {
        let r = p(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r, ("/a".into(), "b=1".into(), 0, true, 32));
    }

    #[test]
    fn incomplete_then_complete() {
        let full = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for i in 0..full.len() {
            assert!(p(&full[..i]).unwrap().is_none(), "prefix {i}");
        }
        assert!(p(full).unwrap().is_some());
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!p(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().3);
        assert!(
            p(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .unwrap()
                .3
        );
        assert!(
            !p(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n")
                .unwrap()
                .unwrap()
                .3
        );
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(80));
        assert_eq!(p(long.as_bytes()).unwrap_err().status, 414);
        // no newline yet but already over the line limit
        assert_eq!(p(&long.as_bytes()[..70]).unwrap_err().status, 414);
        let many = b"GET / HTTP/1.1\r\nHost: x\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n";
        assert_eq!(p(many).unwrap_err().status, 431);
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\n", "v".repeat(300));
        assert_eq!(p(big.as_bytes()).unwrap_err().status, 431);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n").unwrap_err().status,
            400
        );
        assert_eq!(p(b"G(T / HTTP/1.1\r\n\r\n").unwrap_err().status, 400);
        assert_eq!(p(b"GET / HTTP/9.9\r\n\r\n").unwrap_err().status, 400);
        assert_eq!(p(b"GET / HTTP/1.1\r\n\r\n").unwrap_err().status, 400); // no Host
        assert_eq!(
            p(b"GET foo HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn bodies() {
        let r = p(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.2, 12);
        let e = p(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(e.unwrap_err().status, 400);
        let e = p(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(e.unwrap_err().status, 400);
        let e = p(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e.unwrap_err().status, 501);
        let e = p(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n");
        assert_eq!(e.unwrap_err().status, 400);
    }

    #[test]
    fn absolute_form() {
        let r = p(b"GET http://example.com/a/b?q HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((r.0.as_str(), r.1.as_str()), ("/a/b", "q"));
    }

    #[test]
    fn tokens_and_query() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(!has_token(b"upgrades", "upgrade"));
        let v: Vec<_> = query_params("room=a&x=1&room=b&room", "room").collect();
        assert_eq!(v, ["a", "b", ""]);
    }
}
