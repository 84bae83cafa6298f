//! The opening handshake (RFC 6455 §4.2): validating a client's upgrade
//! request, the accept key, subprotocol and Origin decisions, and the
//! `101 Switching Protocols` response (or the 400/426 refusal).
//!
//! Input is what httparse produced for the request; nothing here reads or
//! writes a socket. What is checked here is the HTTP version
//! ([`require_http11`]), the method and the WebSocket-related headers.
//!
//! The client's side (RFC 6455 §4.1) is at the end: the key
//! ([`client_key`]), the upgrade request ([`ClientRequest`]), and the checks
//! of the server's 101 ([`validate_101`], [`parse_deflate_response`]).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use sha1::{Digest, Sha1};

use super::deflate::{DeflateParams, EXTENSION_NAME};

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

// ---------------------------------------------------------------------------
// Client side (RFC 6455 §4.1)

/// A `Sec-WebSocket-Key`: the base64 encoding of 16 random bytes.
pub fn client_key(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

/// A client's upgrade request. [`ClientRequest::new`] makes the plain one;
/// the other fields offer subprotocols and extensions, and add, replace or
/// leave out headers (tests of a server's checks need all three).
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// Path and query, as sent in the request line.
    pub resource: &'a str,
    /// The `Host` value.
    pub host: &'a str,
    /// The `Sec-WebSocket-Key` value (see [`client_key`]).
    pub key: &'a str,
    /// Offered in one `Sec-WebSocket-Protocol` header, in this order.
    pub subprotocols: &'a [String],
    /// The `Sec-WebSocket-Extensions` offer, sent as given.
    pub extensions: Option<&'a str>,
    /// Sent after the others. One named like a header the request has
    /// anyway (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`,
    /// `Sec-WebSocket-Version`, `Sec-WebSocket-Protocol`,
    /// `Sec-WebSocket-Extensions`) replaces it; several with one name are
    /// all sent.
    pub headers: &'a [(String, String)],
    /// Headers the request has anyway that are left out (names, any case).
    pub omit: &'a [String],
}

impl<'a> ClientRequest<'a> {
    /// `GET resource` with `Host`, `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13`, nothing offered.
    pub fn new(resource: &'a str, host: &'a str, key: &'a str) -> ClientRequest<'a> {
        ClientRequest {
            resource,
            host,
            key,
            subprotocols: &[],
            extensions: None,
            headers: &[],
            omit: &[],
        }
    }

    /// The request head, through the empty line that ends it.
    pub fn head(&self) -> String {
        let protocols = self.subprotocols.join(", ");
        let defaults = [
            ("Host", Some(self.host)),
            ("Upgrade", Some("websocket")),
            ("Connection", Some("Upgrade")),
            ("Sec-WebSocket-Key", Some(self.key)),
            ("Sec-WebSocket-Version", Some("13")),
            (
                "Sec-WebSocket-Protocol",
                (!self.subprotocols.is_empty()).then_some(protocols.as_str()),
            ),
            ("Sec-WebSocket-Extensions", self.extensions),
        ];
        let mut req = format!("GET {} HTTP/1.1\r\n", self.resource);
        for (name, value) in defaults {
            let Some(value) = value else { continue };
            let replaced = self
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name));
            let omitted = self.omit.iter().any(|n| n.eq_ignore_ascii_case(name));
            if !replaced && !omitted {
                req.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        for (name, value) in self.headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        req
    }
}

/// Why a client refuses the server's answer to its upgrade: a reason that
/// names the header and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseError(String);

impl ResponseError {
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResponseError {}

/// What the server's 101 agreed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The subprotocol it chose, one of those offered.
    pub subprotocol: Option<String>,
    /// permessage-deflate, when it accepted the offer.
    pub deflate: Option<DeflateParams>,
}

/// Checks the server's answer to `request` (RFC 6455 §4.1): status 101,
/// `Upgrade: websocket`, `Connection` naming `upgrade`, the
/// `Sec-WebSocket-Accept` for the request's key, a subprotocol only among
/// those offered, and an extension only when one was offered: it must be
/// permessage-deflate (see [`parse_deflate_response`]). `header` looks up
/// the response's first header of a name, in any case.
pub fn validate_101<'h>(
    request: &ClientRequest<'_>,
    status: u16,
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<Accepted, ResponseError> {
    let check = |ok: bool, what: &str| match ok {
        true => Ok(()),
        false => Err(ResponseError(what.to_string())),
    };
    check(status == 101, &format!("status {status}, not 101"))?;
    check(
        header("Upgrade").is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket")),
        "Upgrade is not websocket",
    )?;
    check(
        header("Connection")
            .is_some_and(|v| list_items(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"upgrade"))),
        "Connection does not name upgrade",
    )?;
    check(
        header("Sec-WebSocket-Accept").map(str::trim)
            == Some(accept_key(request.key.as_bytes()).as_str()),
        "wrong Sec-WebSocket-Accept",
    )?;
    let subprotocol = header("Sec-WebSocket-Protocol").map(|p| p.trim().to_string());
    if let Some(p) = &subprotocol {
        check(
            request.subprotocols.iter().any(|o| o == p),
            &format!("subprotocol {p:?} was not offered"),
        )?;
    }
    let deflate = match header("Sec-WebSocket-Extensions") {
        None => None,
        Some(v) => {
            let offered = request
                .extensions
                .is_some_and(|o| o.to_ascii_lowercase().contains(EXTENSION_NAME));
            check(offered, &format!("extension {v:?} was not offered"))?;
            Some(parse_deflate_response(v)?)
        }
    };
    Ok(Accepted {
        subprotocol,
        deflate,
    })
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// Parses the `Sec-WebSocket-Extensions` value of a 101 (RFC 7692 §7.1): it
/// must name permessage-deflate once and nothing else, each parameter at
/// most once, window sizes 8..=15 without leading zeros. A window the server
/// names nowhere is 15; `server_max_window_bits_offered` tells whether it
/// named its own.
pub fn parse_deflate_response(value: &str) -> Result<DeflateParams, ResponseError> {
    let bad = |msg: String| Err(ResponseError(msg));
    let mut exts = value.split(',').map(str::trim).filter(|e| !e.is_empty());
    let Some(ext) = exts.next() else {
        return bad("empty Sec-WebSocket-Extensions in the response".into());
    };
    if exts.next().is_some() {
        return bad(format!("the server accepted several extensions: {value:?}"));
    }
    let mut parts = ext.split(';').map(str::trim);
    let name = parts.next().unwrap_or("");
    if !name.eq_ignore_ascii_case(EXTENSION_NAME) {
        return bad(format!(
            "the server accepted an extension that was not offered: {name:?}"
        ));
    }
    let mut p = DeflateParams::default();
    let mut seen_client_bits = false;
    for part in parts.filter(|p| !p.is_empty()) {
        let (key, val) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(unquote(v))),
            None => (part, None),
        };
        let dup = || ResponseError(format!("{key} twice in {value:?}"));
        let bits = |seen: &mut bool| -> Result<u8, ResponseError> {
            if std::mem::replace(seen, true) {
                return Err(dup());
            }
            match val.and_then(|v| v.parse::<u8>().ok()) {
                Some(b @ 8..=15) if !val.unwrap_or("").starts_with('0') => Ok(b),
                _ => Err(ResponseError(format!("bad {key} in {value:?}"))),
            }
        };
        let flag = |set: &mut bool| -> Result<(), ResponseError> {
            if *set {
                return Err(dup());
            }
            if val.is_some() {
                return Err(ResponseError(format!("{key} takes no value in {value:?}")));
            }
            *set = true;
            Ok(())
        };
        match key.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => flag(&mut p.server_no_context_takeover)?,
            "client_no_context_takeover" => flag(&mut p.client_no_context_takeover)?,
            "server_max_window_bits" => {
                p.server_max_window_bits = bits(&mut p.server_max_window_bits_offered)?
            }
            "client_max_window_bits" => p.client_max_window_bits = bits(&mut seen_client_bits)?,
            _ => {
                return bad(format!(
                    "unknown permessage-deflate parameter {key:?} in {value:?}"
                ))
            }
        }
    }
    Ok(p)
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

    // --- client side ----------------------------------------------------------

    #[test]
    fn client_key_and_request() {
        // RFC 6455 §1.3's sample nonce.
        assert_eq!(client_key(*b"the sample nonce"), KEY);
        let req = ClientRequest::new("/chat?room=a", "server.example.com", KEY).head();
        assert_eq!(
            req,
            "GET /chat?room=a HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        // The server's own checks accept it.
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Request::new(&mut headers);
        assert!(parsed.parse(req.as_bytes()).unwrap().is_complete());
        let up = validate_upgrade(parsed.method.unwrap(), parsed.headers).unwrap();
        assert_eq!(up.key, KEY.as_bytes());
    }

    fn response_headers<'a>(extra: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut h = vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ];
        for (name, value) in extra {
            h.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            h.push((name, value));
        }
        h
    }

    fn check_101(
        request: &ClientRequest<'_>,
        status: u16,
        headers: &[(&str, &str)],
    ) -> Result<Accepted, ResponseError> {
        validate_101(request, status, |name| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        })
    }

    #[test]
    fn a_valid_101_and_what_it_agreed() {
        let protocols = ["chat".to_string(), "v2".to_string()];
        let request = ClientRequest {
            subprotocols: &protocols,
            extensions: Some("permessage-deflate; client_max_window_bits"),
            ..ClientRequest::new("/", "h", KEY)
        };
        let plain = check_101(&request, 101, &response_headers(&[])).unwrap();
        assert_eq!(
            plain,
            Accepted {
                subprotocol: None,
                deflate: None
            }
        );
        let extra = [
            ("sec-websocket-protocol", "v2"),
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "WebSocket"),
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
            ),
        ];
        let agreed = check_101(&request, 101, &response_headers(&extra)).unwrap();
        assert_eq!(agreed.subprotocol.as_deref(), Some("v2"));
        let d = agreed.deflate.unwrap();
        assert!(d.server_no_context_takeover && !d.client_no_context_takeover);
        assert_eq!(
            (d.server_max_window_bits, d.client_max_window_bits),
            (10, 15)
        );
        assert!(d.server_max_window_bits_offered);
    }

    #[test]
    fn a_bad_101_names_what_is_wrong() {
        let request = ClientRequest::new("/", "h", KEY);
        for (status, extra, want) in [
            (200, &[][..], "status 200"),
            (101, &[("Upgrade", "h2c")][..], "Upgrade"),
            (101, &[("Connection", "keep-alive")][..], "Connection"),
            (
                101,
                &[("Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")][..],
                "Sec-WebSocket-Accept",
            ),
            (
                101,
                &[("Sec-WebSocket-Protocol", "chat")][..],
                "not offered",
            ),
            (
                101,
                &[("Sec-WebSocket-Extensions", "permessage-deflate")][..],
                "not offered",
            ),
        ] {
            let e = check_101(&request, status, &response_headers(extra)).unwrap_err();
            assert!(e.reason().contains(want), "{e} should name {want:?}");
        }
        let headers = response_headers(&[]);
        let missing: Vec<_> = headers[1..].to_vec();
        assert!(check_101(&request, 101, &missing).is_err());
    }

    #[test]
    fn deflate_response_round_trips_what_the_server_writes() {
        use crate::proto::ws::deflate::{negotiate, DeflateConfig};
        for offer in [
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ] {
            let cfg = DeflateConfig {
                enabled: true,
                ..DeflateConfig::default()
            };
            let params = negotiate(&[offer.as_bytes()], &cfg).unwrap();
            let back = parse_deflate_response(&params.response_header()).unwrap();
            assert_eq!(back, params, "{offer}");
        }
        assert_eq!(
            parse_deflate_response("permessage-deflate").unwrap(),
            DeflateParams::default()
        );
        for bad in [
            "",
            "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=010",
            "permessage-deflate; server_no_context_takeover=1",
        ] {
            assert!(parse_deflate_response(bad).is_err(), "{bad:?}");
        }
    }
}
