//! The opening handshake (RFC 6455 §4.2): validating a client's upgrade
//! request, the accept key, subprotocol and Origin decisions, and the
//! `101 Switching Protocols` response (or the 400/426 refusal).
//!
//! Input is what httparse produced for the request; nothing here reads or
//! writes a socket. What is checked here is the HTTP version
//! ([`require_http11`]), the method and the WebSocket-related headers.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use sha1::{Digest, Sha1};

/// The GUID every server appends to the client's key (RFC 6455 §1.3).
pub const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `base64(sha1(client_key ++ GUID))`: the `Sec-WebSocket-Accept` value.
pub fn accept_key(client_key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key);
    sha.update(WEBSOCKET_GUID);
    BASE64.encode(sha.finalize())
}

/// A valid upgrade request: what the server needs to answer it. Borrows from
/// the request buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade<'a> {
    /// `Sec-WebSocket-Key`, trimmed; base64 of 16 bytes.
    pub key: &'a [u8],
    /// Subprotocols from every `Sec-WebSocket-Protocol` header, in the
    /// client's order of preference.
    pub protocols: Vec<&'a str>,
    /// `Origin`, if the client sent one (browsers always do).
    pub origin: Option<&'a [u8]>,
    /// Every `Sec-WebSocket-Extensions` value, raw, in order.
    pub extensions: Vec<&'a [u8]>,
}

impl Upgrade<'_> {
    /// The `Sec-WebSocket-Accept` value for this request.
    pub fn accept_key(&self) -> String {
        accept_key(self.key)
    }
}

/// Why an upgrade request is refused: the HTTP status and a precise reason
/// naming the header and the rule it broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeError {
    status: u16,
    reason: &'static str,
}

impl HandshakeError {
    const fn bad_request(reason: &'static str) -> HandshakeError {
        HandshakeError {
            status: 400,
            reason,
        }
    }

    const fn upgrade_required(reason: &'static str) -> HandshakeError {
        HandshakeError {
            status: 426,
            reason,
        }
    }

    /// 400 (Bad Request), or 426 (Upgrade Required) for a wrong or missing
    /// version, whose response must carry `Sec-WebSocket-Version: 13` (see
    /// [`HandshakeError::extra_headers`]; [`HandshakeError::write_response`]
    /// includes it).
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Header lines the refusal must carry, each ending in CRLF. A 426 must
    /// tell the client which version we speak (RFC 6455 §4.4).
    pub fn extra_headers(&self) -> &'static str {
        if self.status == 426 {
            "Sec-WebSocket-Version: 13\r\n"
        } else {
            ""
        }
    }

    /// Appends the whole refusal: status line, headers, the reason as a
    /// plain-text body. The connection is closed after it: a client whose
    /// upgrade failed is in no state to go on with HTTP.
    pub fn write_response(&self, out: &mut BytesMut) {
        let status_text = if self.status == 426 {
            "Upgrade Required"
        } else {
            "Bad Request"
        };
        let body_len = self.reason.len() + 1;
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
            self.status,
            status_text,
            body_len,
            self.extra_headers()
        );
        out.reserve(head.len() + body_len);
        out.put_slice(head.as_bytes());
        out.put_slice(self.reason.as_bytes());
        out.put_u8(b'\n');
    }
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)
    }
}

impl std::error::Error for HandshakeError {}

fn trim(v: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

/// The non-empty elements of a comma-separated header list, trimmed.
fn list_items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',').map(trim).filter(|t| !t.is_empty())
}

/// An RFC 9110 token character.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(t: &[u8]) -> bool {
    !t.is_empty() && t.iter().all(|b| is_tchar(*b))
}

/// RFC 6455 §4.2.1: the opening handshake is an HTTP/1.1 (or later)
/// request. An upgrade over HTTP/1.0 (`minor_version` 0) is refused with
/// 400: the client's HTTP is understood (so not 505), and a 426 would
/// invite it to upgrade to a protocol it already asked for.
pub fn require_http11(minor_version: u8) -> Result<(), HandshakeError> {
    if minor_version == 0 {
        return Err(HandshakeError::bad_request(
            "a WebSocket upgrade must be an HTTP/1.1 request (RFC 6455 §4.2.1); this one is HTTP/1.0",
        ));
    }
    Ok(())
}

/// Checks a client's upgrade request (RFC 6455 §4.2.1). Header names match
/// in any case; `Upgrade` and `Connection` are token lists that may be split
/// over several header lines.
pub fn validate_upgrade<'a>(
    method: &str,
    headers: &[httparse::Header<'a>],
) -> Result<Upgrade<'a>, HandshakeError> {
    if method != "GET" {
        return Err(HandshakeError::bad_request(
            "a WebSocket upgrade must use the GET method",
        ));
    }
    let mut host = false;
    let mut upgrade_seen = false;
    let mut upgrade_websocket = false;
    let mut connection_seen = false;
    let mut connection_upgrade = false;
    let mut version: Option<&[u8]> = None;
    let mut key: Option<&'a [u8]> = None;
    let mut origin: Option<&'a [u8]> = None;
    let mut protocols = Vec::new();
    let mut extensions = Vec::new();

    for h in headers {
        let name = h.name.as_bytes();
        let value: &'a [u8] = h.value;
        if name.eq_ignore_ascii_case(b"host") {
            host = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_seen = true;
            upgrade_websocket |= list_items(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection_seen = true;
            connection_upgrade |= list_items(value).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
        } else if name.eq_ignore_ascii_case(b"sec-websocket-version") {
            if version.is_some() {
                return Err(HandshakeError::bad_request(
                    "Sec-WebSocket-Version header must appear only once",
                ));
            }
            version = Some(trim(value));
        } else if name.eq_ignore_ascii_case(b"sec-websocket-key") {
            if key.is_some() {
                return Err(HandshakeError::bad_request(
                    "Sec-WebSocket-Key header must appear only once",
                ));
            }
            key = Some(trim(value));
        } else if name.eq_ignore_ascii_case(b"origin") {
            if origin.is_some() {
                return Err(HandshakeError::bad_request(
                    "Origin header must appear only once",
                ));
            }
            origin = Some(trim(value));
        } else if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
            for item in list_items(value) {
                if !is_token(item) {
                    return Err(HandshakeError::bad_request(
                        "Sec-WebSocket-Protocol must be a comma-separated list of tokens",
                    ));
                }
                // Tokens are ASCII, so this cannot fail.
                if let Ok(p) = std::str::from_utf8(item) {
                    protocols.push(p);
                }
            }
        } else if name.eq_ignore_ascii_case(b"sec-websocket-extensions") {
            extensions.push(value);
        }
    }

    if !host {
        return Err(HandshakeError::bad_request(
            "missing Host header (required in a WebSocket upgrade)",
        ));
    }
    if !upgrade_seen {
        return Err(HandshakeError::bad_request(
            "missing Upgrade header (must contain the token \"websocket\")",
        ));
    }
    if !upgrade_websocket {
        return Err(HandshakeError::bad_request(
            "Upgrade header must contain the token \"websocket\"",
        ));
    }
    if !connection_seen {
        return Err(HandshakeError::bad_request(
            "missing Connection header (must contain the token \"Upgrade\")",
        ));
    }
    if !connection_upgrade {
        return Err(HandshakeError::bad_request(
            "Connection header must contain the token \"Upgrade\"",
        ));
    }
    match version {
        None => {
            return Err(HandshakeError::upgrade_required(
                "missing Sec-WebSocket-Version header (this server speaks version 13)",
            ))
        }
        Some(v) if v != b"13" => {
            return Err(HandshakeError::upgrade_required(
                "Sec-WebSocket-Version must be 13 (the only version this server speaks)",
            ))
        }
        Some(_) => {}
    }
    let Some(key) = key else {
        return Err(HandshakeError::bad_request(
            "missing Sec-WebSocket-Key header",
        ));
    };
    // 16 bytes in canonical base64 are exactly 24 characters ending in "==".
    let mut decoded = [0u8; 18];
    let ok = key.len() == 24 && matches!(BASE64.decode_slice(key, &mut decoded), Ok(16));
    if !ok {
        return Err(HandshakeError::bad_request(
            "Sec-WebSocket-Key must be the base64 encoding of exactly 16 bytes",
        ));
    }
    Ok(Upgrade {
        key,
        protocols,
        origin,
        extensions,
    })
}

/// The subprotocol to accept: the first one the client offers (in its order
/// of preference) that is configured. Names match exactly (case-sensitive).
pub fn select_subprotocol<'a>(offered: &[&'a str], configured: &[String]) -> Option<&'a str> {
    offered
        .iter()
        .copied()
        .find(|p| configured.iter().any(|c| c == p))
}

/// `scheme://host[:port]` lower-cased, without a trailing `/` and without the
/// scheme's default port, so `https://Example.com:443/` and
/// `https://example.com` compare equal.
fn normalize_origin(origin: &[u8]) -> Vec<u8> {
    let mut o = origin.to_ascii_lowercase();
    while o.last() == Some(&b'/') {
        o.pop();
    }
    for (scheme, port) in [
        (&b"http://"[..], &b":80"[..]),
        (b"ws://", b":80"),
        (b"https://", b":443"),
        (b"wss://", b":443"),
    ] {
        if o.starts_with(scheme) && o.ends_with(port) {
            o.truncate(o.len() - port.len());
            break;
        }
    }
    o
}

/// Whether `Origin` names the same host and port as the request's `Host`
/// (case-insensitively, a default port the same as none): what a handshake
/// authenticated by a cookie must show when no origins are listed.
pub fn origin_matches_host(origin: &[u8], host: &[u8]) -> bool {
    let o = normalize_origin(origin);
    let Some(sep) = o.windows(3).position(|w| w == b"://") else {
        return false;
    };
    let (scheme, authority) = (&o[..sep + 3], &o[sep + 3..]);
    // the Host as that scheme's origin would spell it
    let mut as_origin = scheme.to_vec();
    as_origin.extend_from_slice(&host.to_ascii_lowercase());
    !authority.is_empty() && normalize_origin(&as_origin) == o
}

/// Is a request with this `Origin` allowed? An empty list or a `*` entry
/// allows every origin. Otherwise the origin must equal an entry,
/// case-insensitively, after dropping a trailing `/` and a default port.
///
/// A request without `Origin` is allowed: browsers always send it, and the
/// check exists to stop pages on other sites from opening sockets with the
/// visitor's cookies (cross-site WebSocket hijacking); clients that omit it
/// are not browsers and could forge any value anyway.
pub fn origin_allowed(origin: Option<&[u8]>, allowed: &[String]) -> bool {
    if allowed.is_empty() || allowed.iter().any(|a| a == "*") {
        return true;
    }
    let Some(origin) = origin else {
        return true;
    };
    let origin = normalize_origin(origin);
    allowed
        .iter()
        .any(|a| normalize_origin(a.as_bytes()) == origin)
}

/// Appends the `101 Switching Protocols` response.
pub fn write_101_response(
    accept: &str,
    subprotocol: Option<&str>,
    extensions_header: Option<&str>,
    out: &mut BytesMut,
) {
    out.reserve(160);
    out.put_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.put_slice(accept.as_bytes());
    out.put_slice(b"\r\n");
    if let Some(p) = subprotocol {
        out.put_slice(b"Sec-WebSocket-Protocol: ");
        out.put_slice(p.as_bytes());
        out.put_slice(b"\r\n");
    }
    if let Some(e) = extensions_header {
        out.put_slice(b"Sec-WebSocket-Extensions: ");
        out.put_slice(e.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn h<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
        httparse::Header {
            name,
            value: value.as_bytes(),
        }
    }

    fn base() -> Vec<httparse::Header<'static>> {
        vec![
            h("Host", "server.example.com"),
            h("Upgrade", "websocket"),
            h("Connection", "Upgrade"),
            h("Sec-WebSocket-Key", KEY),
            h("Sec-WebSocket-Version", "13"),
        ]
    }

    fn without(name: &str) -> Vec<httparse::Header<'static>> {
        base()
            .into_iter()
            .filter(|x| !x.name.eq_ignore_ascii_case(name))
            .collect()
    }

    fn replaced(name: &str, value: &'static str) -> Vec<httparse::Header<'static>> {
        let mut hs = without(name);
        let name: &'static str = Box::leak(name.to_string().into_boxed_str());
        hs.push(h(name, value));
        hs
    }

    fn err(headers: &[httparse::Header<'_>]) -> HandshakeError {
        validate_upgrade("GET", headers).unwrap_err()
    }

    #[test]
    fn rfc_accept_key_example() {
        // RFC 6455 §1.3 and §4.2.2.
        assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn parses_a_real_request_with_httparse() {
        let raw = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(raw).unwrap().is_complete());
        let up = validate_upgrade(req.method.unwrap(), req.headers).unwrap();
        assert_eq!(up.key, KEY.as_bytes());
        assert_eq!(up.protocols, vec!["chat", "superchat"]);
        assert_eq!(up.origin, Some(&b"http://example.com"[..]));
        assert!(up.extensions.is_empty());
        assert_eq!(up.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn header_names_and_tokens_in_any_case() {
        let hs = vec![
            h("HOST", "a"),
            h("upgrade", "WebSocket"),
            h("CONNECTION", "keep-alive, UPGRADE"),
            h("sec-websocket-key", KEY),
            h("SEC-WEBSOCKET-VERSION", "13"),
            h("sEc-WeBsOcKeT-eXtEnSiOnS", "permessage-deflate"),
        ];
        let up = validate_upgrade("GET", &hs).unwrap();
        assert_eq!(up.extensions, vec![&b"permessage-deflate"[..]]);
    }

    #[test]
    fn token_lists_over_several_lines() {
        let mut hs = without("Connection");
        hs.push(h("Connection", "keep-alive"));
        hs.push(h("Connection", "upgrade"));
        validate_upgrade("GET", &hs).unwrap();
        let mut hs = without("Upgrade");
        hs.push(h("Upgrade", "h2c, websocket"));
        validate_upgrade("GET", &hs).unwrap();
        // A token is a whole list item, not a substring.
        assert_eq!(err(&replaced("Connection", "upgraded")).status(), 400);
        assert_eq!(err(&replaced("Upgrade", "websockets")).status(), 400);
    }

    #[test]
    fn http10_is_refused_with_400() {
        let e = require_http11(0).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.reason().contains("RFC 6455 §4.2.1"), "{e}");
        assert_eq!(require_http11(1), Ok(()));
    }

    #[test]
    fn method_must_be_get() {
        let e = validate_upgrade("POST", &base()).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.reason().contains("GET"));
        assert_eq!(validate_upgrade("get", &base()).unwrap_err().status(), 400);
    }

    #[test]
    fn missing_or_wrong_headers_are_400_with_the_header_named() {
        for (hs, needle) in [
            (without("Host"), "Host"),
            (without("Upgrade"), "Upgrade"),
            (replaced("Upgrade", "h2c"), "Upgrade"),
            (without("Connection"), "Connection"),
            (replaced("Connection", "keep-alive"), "Connection"),
            (without("Sec-WebSocket-Key"), "Sec-WebSocket-Key"),
        ] {
            let e = err(&hs);
            assert_eq!(e.status(), 400, "{needle}");
            assert!(e.reason().contains(needle), "{} lacks {needle}", e.reason());
            assert_eq!(e.extra_headers(), "");
        }
    }

    #[test]
    fn wrong_or_missing_version_is_426() {
        for hs in [
            replaced("Sec-WebSocket-Version", "8"),
            replaced("Sec-WebSocket-Version", "13, 8"),
            without("Sec-WebSocket-Version"),
        ] {
            let e = err(&hs);
            assert_eq!(e.status(), 426);
            assert!(e.reason().contains("Sec-WebSocket-Version"));
            assert_eq!(e.extra_headers(), "Sec-WebSocket-Version: 13\r\n");
        }
        // Surrounding whitespace is not part of the value.
        validate_upgrade("GET", &replaced("Sec-WebSocket-Version", " 13 ")).unwrap();
    }

    #[test]
    fn duplicate_singleton_headers_are_400() {
        for name in ["Sec-WebSocket-Key", "Sec-WebSocket-Version"] {
            let mut hs = base();
            let value = if name == "Sec-WebSocket-Key" {
                KEY
            } else {
                "13"
            };
            hs.push(h(name, value));
            let e = err(&hs);
            assert_eq!(e.status(), 400);
            assert!(e.reason().contains(name) && e.reason().contains("once"));
        }
        let mut hs = base();
        hs.push(h("Origin", "https://a.example"));
        hs.push(h("Origin", "https://b.example"));
        assert!(err(&hs).reason().contains("Origin"));
    }

    #[test]
    fn key_must_be_base64_of_16_bytes() {
        let key15 = BASE64.encode([7u8; 15]);
        let key17 = BASE64.encode([7u8; 17]);
        let key16 = BASE64.encode([7u8; 16]);
        for bad in [
            key15.as_str(),
            key17.as_str(),
            "",
            "not base64 at all!!!!!!!",
            "dGhlIHNhbXBsZSBub25jZQ",   // padding stripped
            "dGhlIHNhbXBsZSBub25jZR==", // non-zero trailing bits
            "dGhlIHNhbXBsZSBub25j*Q==",
        ] {
            let e = err(&replaced(
                "Sec-WebSocket-Key",
                Box::leak(bad.to_string().into_boxed_str()),
            ));
            assert_eq!(e.status(), 400, "{bad}");
            assert!(e.reason().contains("Sec-WebSocket-Key") && e.reason().contains("16 bytes"));
        }
        let up = validate_upgrade(
            "GET",
            &replaced(
                "Sec-WebSocket-Key",
                Box::leak(format!("  {key16}\t").into_boxed_str()),
            ),
        )
        .unwrap();
        assert_eq!(up.key, key16.as_bytes());
    }

    #[test]
    fn subprotocols_and_extensions_collected_over_lines() {
        let mut hs = base();
        hs.push(h("Sec-WebSocket-Protocol", "v2.ringcast, , json"));
        hs.push(h("Sec-WebSocket-Protocol", "msgpack"));
        hs.push(h(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; client_max_window_bits",
        ));
        hs.push(h("Sec-WebSocket-Extensions", "x-other"));
        let up = validate_upgrade("GET", &hs).unwrap();
        assert_eq!(up.protocols, vec!["v2.ringcast", "json", "msgpack"]);
        assert_eq!(up.extensions.len(), 2);
        assert_eq!(up.extensions[1], b"x-other");
        let mut hs = base();
        hs.push(h("Sec-WebSocket-Protocol", "a b"));
        assert!(err(&hs).reason().contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn subprotocol_selection_follows_client_order() {
        let configured = vec!["json".to_string(), "msgpack".to_string()];
        assert_eq!(
            select_subprotocol(&["msgpack", "json"], &configured),
            Some("msgpack")
        );
        assert_eq!(
            select_subprotocol(&["xml", "json"], &configured),
            Some("json")
        );
        assert_eq!(select_subprotocol(&["xml"], &configured), None);
        assert_eq!(select_subprotocol(&[], &configured), None);
        assert_eq!(select_subprotocol(&["JSON"], &configured), None);
        assert_eq!(select_subprotocol(&["json"], &[]), None);
    }

    #[test]
    fn origin_rules() {
        let list = vec![
            "https://app.example.com".to_string(),
            "http://localhost:8080/".to_string(),
        ];
        assert!(origin_allowed(Some(b"https://app.example.com"), &list));
        assert!(origin_allowed(Some(b"HTTPS://App.Example.COM"), &list));
        assert!(origin_allowed(Some(b"https://app.example.com:443"), &list));
        assert!(origin_allowed(Some(b"http://localhost:8080"), &list));
        assert!(!origin_allowed(Some(b"http://localhost:8081"), &list));
        assert!(!origin_allowed(Some(b"http://app.example.com"), &list));
        assert!(!origin_allowed(
            Some(b"https://app.example.com.evil.net"),
            &list
        ));
        assert!(!origin_allowed(
            Some(b"https://evil.app.example.com"),
            &list
        ));
        assert!(!origin_allowed(Some(b"null"), &list));
        // A default port only drops for its own scheme.
        let list = vec!["http://example.com".to_string()];
        assert!(origin_allowed(Some(b"http://example.com:80"), &list));
        assert!(!origin_allowed(Some(b"http://example.com:443"), &list));
        assert!(!origin_allowed(Some(b"https://example.com"), &list));
        assert!(origin_allowed(None, &list));
        assert!(origin_allowed(Some(b"https://anything"), &[]));
        assert!(origin_allowed(
            Some(b"https://anything"),
            &["*".to_string()]
        ));
    }

    #[test]
    fn response_101_layout() {
        let mut out = BytesMut::new();
        write_101_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", None, None, &mut out);
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"[..]
        );
        let mut out = BytesMut::new();
        write_101_response(
            "abc=",
            Some("json"),
            Some("permessage-deflate; server_no_context_takeover"),
            &mut out,
        );
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains("\r\nSec-WebSocket-Protocol: json\r\n"));
        assert!(text.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
        ));
        assert!(text.ends_with("\r\n\r\n"));
        // The response parses as HTTP.
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        assert!(resp.parse(&out).unwrap().is_complete());
        assert_eq!(resp.code, Some(101));
    }

    #[test]
    fn refusal_responses() {
        let mut out = BytesMut::new();
        err(&replaced("Sec-WebSocket-Version", "8")).write_response(&mut out);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        let body_at = match resp.parse(&out).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("incomplete response"),
        };
        assert_eq!(resp.code, Some(426));
        let version = resp
            .headers
            .iter()
            .find(|h| h.name == "Sec-WebSocket-Version")
            .unwrap();
        assert_eq!(version.value, b"13");
        let len: usize = std::str::from_utf8(
            resp.headers
                .iter()
                .find(|h| h.name == "Content-Length")
                .unwrap()
                .value,
        )
        .unwrap()
        .parse()
        .unwrap();
        assert_eq!(out.len() - body_at, len);

        let mut out = BytesMut::new();
        err(&without("Host")).write_response(&mut out);
        assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(!std::str::from_utf8(&out)
            .unwrap()
            .contains("Sec-WebSocket-Version"));
    }
}
