//! HTTP/1.1 request heads: parsing with httparse under strict limits.
//!
//! Pure code over a byte buffer, no I/O. A head is either complete, still
//! incomplete, or rejected with the status the client must see (400, 414,
//! 431, 501, 505) and a reason naming the rule that was broken.
//!
//! `Host` (RFC 9112 §3.2): an HTTP/1.1 request must have exactly one; any
//! request's `Host` must be `uri-host [ ":" port ]` (RFC 3986 §3.2.2-3.2.3),
//! else 400. An empty `Host` is valid (the authority is empty).

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
                // RFC 9110 §10.1.1: an HTTP/1.0 client's 100-continue is ignored
                expect_continue = minor_version == 1;
            } else {
                return Err(reject(417, "only Expect: 100-continue is supported"));
            }
        } else if name.eq_ignore_ascii_case("host") {
            if has_host {
                return Err(reject(400, "more than one Host header (RFC 9112 §3.2)"));
            }
            valid_host(h.value).map_err(|why| reject(400, why))?;
            has_host = true;
        }
    }
    if minor_version == 1 && !has_host {
        return Err(reject(
            400,
            "HTTP/1.1 request without a Host header (RFC 9112 §3.2)",
        ));
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

/// Checks a `Host` value against RFC 9112 §3.2: `uri-host [ ":" port ]`,
/// where uri-host is an IP-literal in brackets (IPv6 or IPvFuture), an IPv4
/// address or a reg-name (RFC 3986 §3.2.2), and port is digits up to 65535.
/// No userinfo, no whitespace inside. The error names the rule broken.
pub fn valid_host(value: &[u8]) -> Result<(), &'static str> {
    let v = value.trim_ascii();
    if v.iter().any(|&b| b == b' ' || b == b'\t') {
        return Err("Host contains whitespace (RFC 9112 §3.2: Host = uri-host [ \":\" port ])");
    }
    if v.contains(&b'@') {
        return Err("Host contains userinfo (\"@\"), which RFC 9112 §3.2 does not allow");
    }
    let (host, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return Err("Host has an IP-literal without its closing \"]\" (RFC 3986 §3.2.2)");
        };
        if !valid_ip_literal(&rest[..close]) {
            return Err(
                "Host has an IP-literal that is neither an IPv6 address nor IPvFuture (RFC 3986 §3.2.2)",
            );
        }
        match &rest[close + 1..] {
            [] => (&[][..], None),
            [b':', port @ ..] => (&[][..], Some(port)),
            _ => {
                return Err(
                    "Host has bytes after its IP-literal other than \":\" port (RFC 3986 §3.2.2)",
                )
            }
        }
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    if !valid_reg_name(host) {
        return Err(
            "Host has a byte outside reg-name (A-Z a-z 0-9 - . _ ~ %XX ! $ & ' ( ) * + , ; =) or an unbalanced \"]\" (RFC 3986 §3.2.2)",
        );
    }
    if let Some(port) = port {
        if !port.iter().all(u8::is_ascii_digit) {
            return Err("Host port is not a decimal number (RFC 3986 §3.2.3: port = *DIGIT)");
        }
        let n = port.iter().try_fold(0u32, |acc, &d| {
            Some(acc * 10 + u32::from(d - b'0')).filter(|&n| n <= 65535)
        });
        if n.is_none() {
            return Err("Host port is above 65535");
        }
    }
    Ok(())
}

/// RFC 3986 unreserved or sub-delims.
fn is_unreserved_or_sub_delim(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (IPv4 addresses are reg-names too).
fn valid_reg_name(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            }
            b if is_unreserved_or_sub_delim(b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// Inside the brackets: `IPv6address / IPvFuture` (no zone identifier).
fn valid_ip_literal(s: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = s {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (ver, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !ver.is_empty()
            && ver.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| b == b':' || is_unreserved_or_sub_delim(b));
    }
    std::str::from_utf8(s).is_ok_and(|t| t.parse::<std::net::Ipv6Addr>().is_ok())
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

/// Percent-decodes a URL path or query value. `+` stays `+` (it is only a
/// space in forms). A `%` not followed by two hex digits is refused (the
/// decoder would keep it as it is), and so is a result that is not UTF-8.
pub fn percent_decode(text: &str) -> Result<String, &'static str> {
    let b = text.as_bytes();
    let hex = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
    if (0..b.len()).any(|i| b[i] == b'%' && !(hex(i + 1) && hex(i + 2))) {
        return Err("malformed percent-encoding in the path");
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "the path is not valid UTF-8")
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
    fn host_values() {
        for good in [
            "example.com",
            "example.com:8080",
            "example.com:",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]:65535",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a%2Db",
            "",
            "  x  ",
        ] {
            assert_eq!(valid_host(good.as_bytes()), Ok(()), "{good:?}");
        }
        for (bad, rule) in [
            ("a b", "whitespace"),
            ("a\tb", "whitespace"),
            ("user@evil.example", "userinfo"),
            ("@x", "userinfo"),
            ("[::1", "closing"),
            ("[::1]x", "after its IP-literal"),
            ("[::g]", "IPv6"),
            ("[fe80::1%25eth0]", "IPv6"),
            ("[v.x]", "IPv6"),
            ("[]", "IPv6"),
            ("<x>", "reg-name"),
            ("a]", "reg-name"),
            ("a/b", "reg-name"),
            ("a%2", "reg-name"),
            ("a%zz", "reg-name"),
            ("caf\u{e9}", "reg-name"),
            ("a:99999", "65535"),
            ("a:65536", "65535"),
            ("a:x", "decimal"),
            ("a:1:2", "decimal"),
            ("a:-1", "decimal"),
        ] {
            let why = valid_host(bad.as_bytes()).unwrap_err();
            assert!(why.contains(rule), "{bad:?}: {why}");
        }
    }

    #[test]
    fn host_header_rules() {
        let bad = |h: &str| {
            let req = format!("GET / HTTP/1.1\r\nHost: {h}\r\n\r\n");
            p(req.as_bytes()).unwrap_err()
        };
        assert_eq!(bad("a b").status, 400);
        assert_eq!(bad("user@evil.example").status, 400);
        assert_eq!(bad("[::1").status, 400);
        assert_eq!(bad("<x>").status, 400);
        assert!(bad("a:x").reason.contains("port"));
        let two = p(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n").unwrap_err();
        assert!(two.reason.contains("more than one Host"), "{two:?}");
        // HTTP/1.0 needs no Host, but one it sends must be valid
        assert!(p(b"GET / HTTP/1.0\r\n\r\n").is_ok());
        assert_eq!(
            p(b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        // an empty Host is valid (RFC 9112 §3.2)
        assert!(p(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").is_ok());
    }

    #[test]
    fn expect_continue_only_for_http11() {
        let exp = |req: &[u8]| {
            let mut st = header_storage();
            match parse(req, &mut st, &L).unwrap() {
                Parsed::Complete(h) => h.expect_continue,
                Parsed::Incomplete => panic!("incomplete"),
            }
        };
        assert!(exp(
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"
        ));
        assert!(!exp(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"));
    }

    #[test]
    fn tokens_and_query() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(!has_token(b"upgrades", "upgrade"));
        let v: Vec<_> = query_params("room=a&x=1&room=b&room", "room").collect();
        assert_eq!(v, ["a", "b", ""]);
    }
}
