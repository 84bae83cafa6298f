//! Property tests for every parser that faces the network or the user: HTTP
//! request heads and query strings, percent-decoding, WebSocket frames, the
//! receive state machine, permessage-deflate, incremental UTF-8, close
//! payloads, the opening handshake, SSE cursors, JWTs, config units and room
//! names.
//!
//! Each property feeds arbitrary (or arbitrarily mutated) input and checks
//! that the parser never panics, stays within its limits, and that what the
//! encoders produce decodes back to what went in, however the bytes are
//! split. The number of cases comes from `PROPTEST_CASES` (256 by default);
//! inputs stay under a few KiB so each case is quick in a debug build.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::json;

use ringcast::app::static_files::{percent_decode, relative_path};
use ringcast::auth::jwt;
use ringcast::client::{parse_deflate_response, Url};
use ringcast::config::units::{parse_duration, parse_size};
use ringcast::config::{ByteSize, Period};
use ringcast::hub::valid_room_name;
use ringcast::proto::http::request::{self, has_token, query_params, HeadLimits, Parsed};
use ringcast::proto::sse::cursor;
use ringcast::proto::ws::close::{
    is_valid_received_close_code, parse_close_payload, truncate_reason, write_close_payload,
    MAX_REASON_LEN,
};
use ringcast::proto::ws::codec::{Decoder, DecoderConfig, Event};
use ringcast::proto::ws::deflate::{
    negotiate, DeflateConfig, DeflateParams, Deflater, InflateError, Inflater,
};
use ringcast::proto::ws::frame::{
    encode_masked_frame, header, header_len, parse_header, OpCode, MAX_CONTROL_PAYLOAD,
    MAX_HEADER_LEN,
};
use ringcast::proto::ws::handshake::{origin_allowed, validate_upgrade};
use ringcast::proto::ws::utf8::Utf8Validator;

// ---------------------------------------------------------------------------
// Helpers

/// `data` cut into consecutive pieces whose sizes cycle through `sizes`
/// (each at least 1).
fn pieces<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < data.len() {
        let n = sizes[i % sizes.len()].max(1).min(data.len() - pos);
        out.push(&data[pos..pos + n]);
        pos += n;
        i += 1;
    }
    out
}

/// Sizes to cut a byte stream with: from one byte at a time to large pieces.
fn cut_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![1usize]),
        vec(1usize..8, 1..8),
        vec(1usize..200, 1..8),
        Just(vec![usize::MAX]),
    ]
}

/// Bytes that look like UTF-8 text part of the time: valid strings, random
/// bytes, and strings with bytes around the edges of the encoding forms.
fn utf8ish() -> impl Strategy<Value = Vec<u8>> {
    let tricky = prop_oneof![
        any::<u8>(),
        Just(0x80u8),
        Just(0xBF),
        Just(0xC0),
        Just(0xC2),
        Just(0xDF),
        Just(0xE0),
        Just(0xED),
        Just(0xEF),
        Just(0xF0),
        Just(0xF4),
        Just(0xF5),
        Just(0xA0),
        Just(0x90),
        Just(0x8F),
    ];
    prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        vec(any::<u8>(), 0..64),
        vec(
            prop_oneof![
                any::<char>().prop_map(|c| c.to_string().into_bytes()),
                vec(tricky, 1..4),
            ],
            0..40
        )
        .prop_map(|parts| parts.concat()),
    ]
}

// ---------------------------------------------------------------------------
// HTTP request heads

fn head_limits() -> impl Strategy<Value = HeadLimits> {
    (8usize..300, 16usize..2048, 1usize..24).prop_map(|(l, h, n)| HeadLimits {
        max_request_line: l,
        max_header_bytes: h,
        max_headers: n,
    })
}

/// What a parse gave, owned (the head borrows its header storage).
#[derive(Debug, PartialEq)]
enum HeadOutcome {
    Incomplete,
    Rejected(u16),
    Complete {
        method: String,
        path: String,
        query: String,
        target: String,
        minor: u8,
        headers: usize,
        head_len: usize,
        content_length: u64,
        keep_alive: bool,
    },
}

fn parse_head(buf: &[u8], limits: &HeadLimits) -> HeadOutcome {
    let mut storage = request::header_storage();
    match request::parse(buf, &mut storage, limits) {
        Ok(Parsed::Incomplete) => HeadOutcome::Incomplete,
        Err(r) => HeadOutcome::Rejected(r.status),
        Ok(Parsed::Complete(h)) => HeadOutcome::Complete {
            method: h.method.to_string(),
            path: h.path.to_string(),
            query: h.query.to_string(),
            target: h.target.to_string(),
            minor: h.minor_version,
            headers: h.headers.len(),
            head_len: h.head_len,
            content_length: h.content_length,
            keep_alive: h.keep_alive,
        },
    }
}

/// Header names the parser gives a meaning to; generated extra headers avoid them.
const SPECIAL_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
];

/// A well-formed request head and what parsing it must give.
#[derive(Debug, Clone)]
struct ValidHead {
    bytes: Vec<u8>,
    target: String,
    /// Index of the request line's `\n`.
    line_nl: usize,
    method: String,
    path: String,
    query: String,
    minor: u8,
    headers: usize,
    content_length: u64,
    keep_alive: bool,
}

fn valid_head() -> impl Strategy<Value = ValidHead> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        "/[a-zA-Z0-9/._~-]{0,200}",
        prop::option::of("[a-zA-Z0-9=&%._~-]{0,100}"),
        0u8..2,
        vec(
            ("[A-Za-z][A-Za-z0-9-]{0,20}", "([!-~]([ !-~]{0,60}[!-~])?)?"),
            0..30,
        ),
        prop::option::of(0u64..1_000_000_000_000),
        prop::option::of(prop::sample::select(vec!["close", "keep-alive", "Upgrade"])),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(|(method, path, query, minor, extra, cl, conn, body)| {
            let target = match &query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            let line = format!("{method} {target} HTTP/1.{minor}\r\n");
            let mut head = line.clone();
            head.push_str("Host: example.com\r\n");
            let mut headers = 1;
            for (name, value) in &extra {
                if SPECIAL_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
                    continue;
                }
                head.push_str(&format!("{name}: {value}\r\n"));
                headers += 1;
            }
            if let Some(cl) = cl {
                head.push_str(&format!("Content-Length: {cl}\r\n"));
                headers += 1;
            }
            let mut keep_alive = minor == 1;
            if let Some(c) = conn {
                head.push_str(&format!("Connection: {c}\r\n"));
                headers += 1;
                match c {
                    "close" => keep_alive = false,
                    "keep-alive" => keep_alive = true,
                    _ => {}
                }
            }
            head.push_str("\r\n");
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&body);
            ValidHead {
                bytes,
                target,
                line_nl: line.len() - 1,
                method: method.to_string(),
                path,
                query: query.unwrap_or_default(),
                minor,
                headers,
                content_length: cl.unwrap_or(0),
                keep_alive,
            }
        })
}

impl ValidHead {
    fn head_len(&self) -> usize {
        self.bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a generated head ends with a blank line")
            + 4
    }
}

/// Request-like bytes: pieces of real requests, garbage and odd line endings.
fn request_ish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"GET ".to_vec()),
        Just(b"POST".to_vec()),
        Just(b" / ".to_vec()),
        Just(b"http://a/b?c".to_vec()),
        Just(b"HTTP/1.1".to_vec()),
        Just(b"HTTP/1.0".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"Host: x".to_vec()),
        Just(b"Content-Length: ".to_vec()),
        Just(b"Transfer-Encoding: chunked".to_vec()),
        Just(b"Expect: 100-continue".to_vec()),
        Just(b"Connection: close".to_vec()),
        Just(b": ".to_vec()),
        "[0-9]{1,25}".prop_map(String::into_bytes),
        "[ -~]{0,40}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..8),
    ];
    prop_oneof![
        vec(any::<u8>(), 0..4096),
        vec(token, 0..60).prop_map(|t| t.concat()),
        valid_head().prop_map(|h| h.bytes),
        (valid_head(), any::<Index>(), any::<u8>()).prop_map(|(h, i, b)| {
            let mut bytes = h.bytes;
            let at = i.index(bytes.len());
            bytes[at] = b;
            bytes
        }),
    ]
}

proptest! {
    /// Arbitrary bytes parse, ask for more or are rejected with one of the
    /// documented statuses, and whatever is accepted is within the limits.
    #[test]
    fn http_head_arbitrary_bytes(buf in request_ish(), limits in head_limits()) {
        match parse_head(&buf, &limits) {
            HeadOutcome::Incomplete => {
                prop_assert!(buf.len() <= limits.max_header_bytes,
                    "{} bytes buffered while waiting for a head of at most {}",
                    buf.len(), limits.max_header_bytes);
                prop_assert!(buf.len() <= limits.max_request_line
                    || buf[..=limits.max_request_line].contains(&b'\n'));
            }
            HeadOutcome::Rejected(status) => {
                prop_assert!([400, 414, 417, 431, 501].contains(&status), "status {}", status);
            }
            HeadOutcome::Complete { path, query, target, head_len, headers, minor, .. } => {
                prop_assert!(head_len <= buf.len());
                prop_assert!(head_len <= limits.max_header_bytes);
                prop_assert!(headers <= limits.max_headers);
                prop_assert!(minor <= 1);
                let nl = buf.iter().position(|&b| b == b'\n').unwrap();
                prop_assert!(nl <= limits.max_request_line);
                prop_assert!(target.starts_with('/') || target == "*");
                if query.is_empty() {
                    let bare = format!("{}?", path);
                    prop_assert!(target == path || target == bare);
                } else {
                    prop_assert_eq!(target, format!("{path}?{query}"));
                }
                prop_assert!(!path.contains('?'));
            }
        }
    }

    /// A well-formed head gives exactly what was sent when within the
    /// limits, 414 when its request line is too long, and 431 when it is
    /// too large or has too many headers.
    #[test]
    fn http_head_valid_and_limits(h in valid_head(), limits in head_limits()) {
        let head_len = h.head_len();
        let got = parse_head(&h.bytes, &limits);
        let want = if h.line_nl > limits.max_request_line {
            HeadOutcome::Rejected(414)
        } else if head_len > limits.max_header_bytes || h.headers > limits.max_headers {
            HeadOutcome::Rejected(431)
        } else {
            HeadOutcome::Complete {
                method: h.method.clone(),
                path: h.path.clone(),
                query: h.query.clone(),
                target: h.target.clone(),
                minor: h.minor,
                headers: h.headers,
                head_len,
                content_length: h.content_length,
                keep_alive: h.keep_alive,
            }
        };
        prop_assert_eq!(got, want);
    }

    /// The same at the edges: limits within a few bytes (or headers) of
    /// what the head needs.
    #[test]
    fn http_head_limit_boundaries(h in valid_head(), d_line in -2i64..=2, d_head in -2i64..=2, d_count in -1i64..=1) {
        let head_len = h.head_len();
        let at = |n: usize, d: i64| (n as i64 + d).max(1) as usize;
        let limits = HeadLimits {
            max_request_line: at(h.line_nl, d_line),
            max_header_bytes: at(head_len, d_head),
            max_headers: at(h.headers, d_count),
        };
        let got = parse_head(&h.bytes, &limits);
        if h.line_nl > limits.max_request_line {
            prop_assert_eq!(got, HeadOutcome::Rejected(414));
        } else if head_len > limits.max_header_bytes || h.headers > limits.max_headers {
            prop_assert_eq!(got, HeadOutcome::Rejected(431));
        } else {
            prop_assert!(matches!(got, HeadOutcome::Complete { .. }), "{:?}", got);
        }
    }

    /// Growing a well-formed head byte by byte: every strict prefix asks for
    /// more, the whole head parses.
    #[test]
    fn http_head_prefixes_are_incomplete(h in valid_head(), cuts in vec(any::<Index>(), 1..24)) {
        let limits = HeadLimits { max_request_line: 8192, max_header_bytes: 65536, max_headers: 64 };
        let head_len = h.head_len();
        for cut in cuts {
            let at = cut.index(head_len);
            prop_assert_eq!(parse_head(&h.bytes[..at], &limits), HeadOutcome::Incomplete, "prefix {}", at);
        }
        let whole = parse_head(&h.bytes[..head_len], &limits);
        prop_assert!(matches!(whole, HeadOutcome::Complete { .. }), "{:?}", whole);
    }

    /// Query strings: every `name=` value comes back, in order, and nothing else.
    #[test]
    fn http_query_params(
        pairs in vec(("[a-c_]{0,3}", prop::option::of("[a-c=%+ ]{0,6}")), 0..12),
        name in "[a-c_]{1,3}",
    ) {
        let query = pairs
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect::<Vec<_>>()
            .join("&");
        let got: Vec<&str> = query_params(&query, &name).collect();
        let want: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
            .collect();
        prop_assert_eq!(got, want);
    }

    /// Arbitrary query strings never panic, and values never span a `&`.
    #[test]
    fn http_query_params_arbitrary(query in any::<String>(), name in "[a-z]{0,4}") {
        for v in query_params(&query, &name) {
            prop_assert!(!v.contains('&'));
            prop_assert!(query.contains(v));
        }
    }

    /// Connection-style token lists: every listed token is found, in any
    /// case and with any spaces around it; a token that is only a prefix is not.
    #[test]
    fn http_has_token(tokens in vec("[a-zA-Z-]{1,10}", 1..6), spaces in vec(" {0,2}", 12), pick in any::<Index>()) {
        let value = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{}{}{}", spaces[2 * i % 12], t, spaces[(2 * i + 1) % 12]))
            .collect::<Vec<_>>()
            .join(",");
        let t = &tokens[pick.index(tokens.len())];
        prop_assert!(has_token(value.as_bytes(), &t.to_ascii_uppercase()));
        let longer = format!("{t}x");
        prop_assert_eq!(
            has_token(value.as_bytes(), &longer),
            tokens.iter().any(|u| u.eq_ignore_ascii_case(&longer))
        );
    }

    /// Percent-encoding any string (any mix of encoded and literal bytes,
    /// either hex case) decodes back to it.
    #[test]
    fn percent_decode_round_trip(s in any::<String>(), encode in vec(any::<bool>(), 1..16), upper in any::<bool>()) {
        let mut enc = String::new();
        for (i, &b) in s.as_bytes().iter().enumerate() {
            if b == b'%' || !b.is_ascii() || encode[i % encode.len()] {
                if upper {
                    enc.push_str(&format!("%{b:02X}"));
                } else {
                    enc.push_str(&format!("%{b:02x}"));
                }
            } else {
                enc.push(b as char);
            }
        }
        prop_assert_eq!(percent_decode(&enc).ok(), Some(s));
    }

    /// Arbitrary paths: no panic, the output is never longer than the
    /// input, and a path that resolves under the static root never climbs
    /// out of it.
    #[test]
    fn percent_decode_and_relative_path_arbitrary(
        parts in vec(prop_oneof![
            Just("..".to_string()), Just("%2e%2E".to_string()), Just("%2F".to_string()),
            Just("/".to_string()), Just(".".to_string()), Just("%5c".to_string()),
            Just("%00".to_string()), Just("%".to_string()), Just("%zz".to_string()),
            Just("%c3%a9".to_string()), Just("%ff".to_string()),
            "[a-z.]{0,4}", any::<String>(),
        ], 0..12),
    ) {
        let path = parts.concat();
        if let Ok(d) = percent_decode(&path) {
            prop_assert!(d.len() <= path.len());
            if !path.contains('%') {
                prop_assert_eq!(&d, &path);
            }
        }
        if let Ok(rel) = relative_path(&path) {
            for c in rel.components() {
                prop_assert!(matches!(c, std::path::Component::Normal(_)), "{:?} in {:?}", c, rel);
                let s = c.as_os_str().to_string_lossy();
                prop_assert!(!s.contains('\\') && !s.contains('\0'));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// WebSocket frame headers

fn opcode() -> impl Strategy<Value = OpCode> {
    prop::sample::select(vec![
        OpCode::Continuation,
        OpCode::Text,
        OpCode::Binary,
        OpCode::Close,
        OpCode::Ping,
        OpCode::Pong,
    ])
}

fn payload_len() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=130,
        120u64..=0x1_0005,
        0xFFF0u64..=0x1_0010,
        any::<u64>().prop_map(|n| n >> 1),
    ]
}

proptest! {
    /// Any bytes: a header, a request for more bytes, or a protocol error;
    /// a header is never longer than 14 bytes nor than the input, and obeys
    /// the rules every frame must.
    #[test]
    fn ws_parse_header_arbitrary(buf in vec(any::<u8>(), 0..20)) {
        match parse_header(&buf) {
            Ok(None) => prop_assert!(buf.len() < MAX_HEADER_LEN),
            Ok(Some((h, n))) => {
                prop_assert!(n <= buf.len() && (2..=MAX_HEADER_LEN).contains(&n));
                prop_assert_eq!(n, 2 + [0, 2, 8][match buf[1] & 0x7F { 126 => 1, 127 => 2, _ => 0 }] + if h.mask.is_some() { 4 } else { 0 });
                prop_assert!(h.payload_len >> 63 == 0);
                if h.opcode.is_control() {
                    prop_assert!(h.fin && h.payload_len <= MAX_CONTROL_PAYLOAD as u64);
                }
                prop_assert_eq!(h.opcode as u8, buf[0] & 0x0F);
                prop_assert_eq!(h.fin, buf[0] & 0x80 != 0);
                prop_assert_eq!(h.mask.is_some(), buf[1] & 0x80 != 0);
            }
            Err(_) => prop_assert!(buf.len() >= 2),
        }
    }

    /// Encoding a header (any opcode, fin, rsv1, length, mask) and parsing
    /// it gives the same header back; every strict prefix asks for more.
    #[test]
    fn ws_header_round_trip(
        op in opcode(), fin in any::<bool>(), rsv1 in any::<bool>(),
        len in payload_len(), mask in prop::option::of(any::<[u8; 4]>()),
    ) {
        let (fin, len) = if op.is_control() { (true, len % 126) } else { (fin, len) };
        let (mut h, mut n) = header(fin, rsv1, op, len);
        prop_assert_eq!(n, header_len(len));
        if let Some(key) = mask {
            h[1] |= 0x80;
            h[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        for cut in 0..n {
            prop_assert_eq!(parse_header(&h[..cut]), Ok(None));
        }
        let (got, got_n) = parse_header(&h[..n]).unwrap().unwrap();
        prop_assert_eq!(got_n, n);
        prop_assert_eq!((got.fin, got.rsv1, got.rsv2, got.rsv3), (fin, rsv1, false, false));
        prop_assert_eq!(got.opcode, op);
        prop_assert_eq!(got.payload_len, len);
        prop_assert_eq!(got.mask, mask);
    }

    /// A masked frame (any opcode, payload, key, fin, rsv1) parses back to
    /// its header, and unmasking its payload gives the original.
    #[test]
    fn ws_masked_frame_round_trip(
        op in opcode(), fin in any::<bool>(), rsv1 in any::<bool>(),
        payload in vec(any::<u8>(), 0..1024), key in any::<[u8; 4]>(),
    ) {
        let (fin, payload) = if op.is_control() {
            (true, &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)])
        } else {
            (fin, &payload[..])
        };
        let mut out = BytesMut::new();
        encode_masked_frame(fin, rsv1, op, payload, key, &mut out);
        let (h, n) = parse_header(&out).unwrap().unwrap();
        prop_assert_eq!((h.fin, h.rsv1, h.opcode, h.mask), (fin, rsv1, op, Some(key)));
        prop_assert_eq!(h.payload_len as usize, payload.len());
        prop_assert_eq!(out.len(), n + payload.len());
        let mut body = out[n..].to_vec();
        ringcast::proto::ws::apply_mask(&mut body, key);
        prop_assert_eq!(&body[..], payload);
    }
}

// ---------------------------------------------------------------------------
// The server's receive state machine

/// One piece of a client byte stream: a frame with chosen header bits, or raw bytes.
#[derive(Debug, Clone)]
enum Piece {
    Frame {
        b0: u8,
        key: Option<[u8; 4]>,
        payload: Vec<u8>,
        /// 0: minimal length form, 1: 16-bit, 2: 64-bit.
        form: u8,
    },
    Raw(Vec<u8>),
    /// A whole well-formed message, maybe fragmented and compressed, with
    /// control frames between its fragments.
    Message(Outgoing),
}

fn encode_pieces(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Raw(b) => out.extend_from_slice(b),
            Piece::Message(m) => {
                let mut frames = BytesMut::new();
                let mut keys = || [0x5A, 0x01, 0xFF, 0x80];
                frames_of(m, &mut Deflater::new(15, true), &mut keys, &mut frames);
                out.extend_from_slice(&frames);
            }
            Piece::Frame {
                b0,
                key,
                payload,
                form,
            } => {
                out.push(*b0);
                let m = if key.is_some() { 0x80 } else { 0 };
                let len = payload.len();
                match form {
                    0 if len < 126 => out.push(m | len as u8),
                    0 | 1 if len <= 0xFFFF => {
                        out.push(m | 126);
                        out.extend_from_slice(&(len as u16).to_be_bytes());
                    }
                    _ => {
                        out.push(m | 127);
                        out.extend_from_slice(&(len as u64).to_be_bytes());
                    }
                }
                if let Some(k) = key {
                    out.extend_from_slice(k);
                }
                let body = out.len();
                out.extend_from_slice(payload);
                if let Some(k) = key {
                    ringcast::proto::ws::apply_mask(&mut out[body..], *k);
                }
            }
        }
    }
    out
}

fn compressed(data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Deflater::new(15, true).compress_into(data, &mut out);
    out.to_vec()
}

/// 4 MiB of zeros, compressed (about 4 KiB).
fn bomb() -> &'static [u8] {
    static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BOMB.get_or_init(|| compressed(&vec![0; 4 << 20]))
}

fn piece() -> impl Strategy<Value = Piece> {
    // Mostly frames a client may send in some order (so that streams get
    // past their first frame), some that break one rule, a few random.
    let b0 = prop_oneof![
        6 => (prop::bool::weighted(0.7), prop::sample::select(vec![1u8, 2]))
            .prop_map(|(fin, op)| ((fin as u8) << 7) | op),
        4 => any::<bool>().prop_map(|fin| (fin as u8) << 7),
        4 => prop::sample::select(vec![0x88u8, 0x89, 0x89, 0x8A, 0x8A]),
        3 => (any::<bool>(), prop::sample::select(vec![1u8, 2]))
            .prop_map(|(fin, op)| ((fin as u8) << 7) | 0x40 | op),
        1 => any::<u8>(),
    ];
    let payload = prop_oneof![
        6 => vec(any::<u8>(), 0..40),
        2 => utf8ish(),
        1 => vec(any::<u8>(), 0..600),
        2 => utf8ish().prop_map(|d| compressed(&d)),
        1 => vec(0u8..2, 0..3000).prop_map(|d| compressed(&d)),
        1 => (0u8..0x10, 1000u16..5000, "[ -~]{0,20}")
            .prop_map(|(hi, lo, r)| [&[hi, lo as u8][..], r.as_bytes()].concat()),
    ];
    prop_oneof![
        12 => (b0, prop_oneof![30 => any::<[u8; 4]>().prop_map(Some), 1 => Just(None)], payload, prop_oneof![12 => Just(0u8), 1 => Just(1), 1 => Just(2)])
            .prop_map(|(b0, key, payload, form)| Piece::Frame { b0, key, payload, form }),
        1 => vec(any::<u8>(), 0..20).prop_map(Piece::Raw),
        12 => outgoing().prop_map(Piece::Message),
    ]
}

fn decoder_config() -> impl Strategy<Value = DecoderConfig> {
    (
        prop_oneof![1 => 0usize..200, 1 => 0usize..5000, 2 => Just(1usize << 16)],
        prop_oneof![1 => 0usize..200, 1 => 0usize..10000, 2 => Just(1usize << 16)],
        prop::option::of((any::<bool>(), 8u8..=15)),
    )
        .prop_map(
            |(max_frame_size, max_message_size, deflate)| DecoderConfig {
                max_frame_size,
                max_message_size,
                deflate: deflate.map(|(nct, bits)| DeflateParams {
                    client_no_context_takeover: nct,
                    client_max_window_bits: bits,
                    ..DeflateParams::default()
                }),
            },
        )
}

/// What decoding a stream gave: the events, then the close code of the
/// error that ended it, if any.
type Decoded = (Vec<Event>, Option<u16>);

/// Feeds `wire` to a fresh decoder in pieces, checking the invariants every
/// event and every pause must satisfy.
fn decode_stream(
    cfg: DecoderConfig,
    wire: &[u8],
    sizes: &[usize],
) -> Result<Decoded, TestCaseError> {
    let mut d = Decoder::new(cfg);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for chunk in pieces(wire, sizes) {
        buf.extend_from_slice(chunk);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(ev)) => {
                    match &ev {
                        Event::Text(t) => {
                            prop_assert!(t.len() <= cfg.max_message_size);
                            prop_assert!(std::str::from_utf8(t).is_ok());
                        }
                        Event::Binary(b) => prop_assert!(b.len() <= cfg.max_message_size),
                        Event::Ping(p) | Event::Pong(p) => {
                            prop_assert!(p.len() <= MAX_CONTROL_PAYLOAD)
                        }
                        Event::Close { code, reason } => {
                            prop_assert!(code.is_none_or(is_valid_received_close_code));
                            prop_assert!(code.is_some() || reason.is_empty());
                            prop_assert!(reason.len() <= MAX_CONTROL_PAYLOAD - 2);
                            prop_assert!(d.is_closed());
                        }
                    }
                    events.push(ev);
                }
                Ok(None) => {
                    if !d.is_closed() {
                        // Only part of one frame waits: an unfinished header, or
                        // a header within the frame limit and part of its payload.
                        prop_assert!(
                            buf.len() < MAX_HEADER_LEN + cfg.max_frame_size,
                            "{} bytes held with max_frame_size {}",
                            buf.len(),
                            cfg.max_frame_size
                        );
                    }
                    break;
                }
                Err(e) => {
                    prop_assert!([1002, 1007, 1009].contains(&e.code), "{:?}", e);
                    return Ok((events, Some(e.code)));
                }
            }
        }
    }
    Ok((events, None))
}

/// A message to send: its type, its bytes, how to fragment it, whether to
/// compress it, and control frames to slip in between its fragments.
#[derive(Debug, Clone)]
struct Outgoing {
    text: bool,
    data: Vec<u8>,
    cuts: Vec<Index>,
    compress: bool,
    pings: Vec<(bool, Vec<u8>)>,
}

fn outgoing() -> impl Strategy<Value = Outgoing> {
    (
        any::<bool>(),
        prop_oneof![
            3 => vec(any::<u8>(), 0..2048),
            3 => "[a-z ]{0,2048}".prop_map(String::into_bytes),
            3 => any::<String>().prop_map(String::into_bytes),
            1 => Just(Vec::new()),
        ],
        vec(any::<Index>(), 0..6),
        any::<bool>(),
        vec((any::<bool>(), vec(any::<u8>(), 0..=125)), 0..4),
    )
        .prop_map(|(text, data, cuts, compress, pings)| {
            let data = if text {
                String::from_utf8_lossy(&data).into_owned().into_bytes()
            } else {
                data
            };
            Outgoing {
                text,
                data,
                cuts,
                compress,
                pings,
            }
        })
}

/// The masked frames of one message (fragmented at `cuts`, control frames
/// between the fragments), and the events they must decode to. `deflater`
/// compresses when the message asks for it.
fn frames_of(
    m: &Outgoing,
    deflater: &mut Deflater,
    keys: &mut impl FnMut() -> [u8; 4],
    out: &mut BytesMut,
) -> (Vec<Event>, Vec<usize>) {
    let body = if m.compress {
        let mut c = BytesMut::new();
        deflater.compress_into(&m.data, &mut c);
        c.to_vec()
    } else {
        m.data.clone()
    };
    let mut at: Vec<usize> = m.cuts.iter().map(|c| c.index(body.len() + 1)).collect();
    at.push(0);
    at.push(body.len());
    at.sort_unstable();
    at.dedup();
    if at.len() == 1 {
        at.push(body.len());
    }
    let mut events = Vec::new();
    let mut frame_sizes = Vec::new();
    let n = at.len() - 1;
    for i in 0..n {
        let frag = &body[at[i]..at[i + 1]];
        let op = match (i, m.text) {
            (0, true) => OpCode::Text,
            (0, false) => OpCode::Binary,
            _ => OpCode::Continuation,
        };
        encode_masked_frame(i + 1 == n, m.compress && i == 0, op, frag, keys(), out);
        frame_sizes.push(frag.len());
        if let Some((pong, p)) = m.pings.get(i).filter(|_| i + 1 < n) {
            let op = if *pong { OpCode::Pong } else { OpCode::Ping };
            encode_masked_frame(true, false, op, p, keys(), out);
            events.push(if *pong {
                Event::Pong(p.clone().into())
            } else {
                Event::Ping(p.clone().into())
            });
        }
    }
    let data = bytes::Bytes::from(m.data.clone());
    events.push(if m.text {
        Event::Text(data)
    } else {
        Event::Binary(data)
    });
    (events, frame_sizes)
}

proptest! {
    /// Arbitrary client streams (well-formed and broken frames, garbage,
    /// compressed and not), fed in arbitrary pieces under arbitrary limits:
    /// no panic, every event within the limits, the read buffer never holds
    /// more than one frame's worth, and the pieces the stream was cut into
    /// make no difference.
    #[test]
    fn ws_decoder_arbitrary_streams(
        stream in vec(piece(), 0..12), cfg in decoder_config(), sizes in cut_sizes(),
    ) {
        let wire = encode_pieces(&stream);
        let chunked = decode_stream(cfg, &wire, &sizes)?;
        let whole = decode_stream(cfg, &wire, &[usize::MAX])?;
        prop_assert_eq!(chunked, whole);
    }

    /// Pure noise is refused or waited on, never a panic.
    #[test]
    fn ws_decoder_noise(wire in vec(any::<u8>(), 0..4096), cfg in decoder_config(), sizes in cut_sizes()) {
        decode_stream(cfg, &wire, &sizes)?;
    }

    /// Messages of any type and size, fragmented anywhere, compressed or
    /// not (with and without context takeover), with control frames between
    /// the fragments, masked with any keys and cut into any pieces, decode
    /// to exactly what was sent.
    #[test]
    fn ws_decoder_round_trip(
        msgs in vec(outgoing(), 1..4), nct in any::<bool>(), seed in any::<u32>(),
        sizes in cut_sizes(),
    ) {
        let mut deflater = Deflater::new(15, nct);
        let mut x = seed | 1;
        let mut keys = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_be_bytes()
        };
        let mut wire = BytesMut::new();
        let mut want = Vec::new();
        for m in &msgs {
            want.extend(frames_of(m, &mut deflater, &mut keys, &mut wire).0);
        }
        let cfg = DecoderConfig {
            max_frame_size: 1 << 16,
            max_message_size: 1 << 16,
            deflate: Some(DeflateParams { client_no_context_takeover: nct, ..DeflateParams::default() }),
        };
        let (events, err) = decode_stream(cfg, &wire, &sizes)?;
        prop_assert_eq!(err, None);
        prop_assert_eq!(events, want);
    }

    /// A message is delivered exactly when every frame is within
    /// max_frame_size and the message (on the wire and decompressed) within
    /// max_message_size; otherwise the connection fails with 1009.
    #[test]
    fn ws_decoder_size_limits(
        m in outgoing(), max_frame_size in 0usize..3000, max_message_size in 0usize..3000,
        sizes in cut_sizes(),
    ) {
        let m = Outgoing { pings: Vec::new(), ..m };
        let mut deflater = Deflater::new(15, true);
        let mut keys = || [1, 2, 3, 4];
        let mut wire = BytesMut::new();
        let (want, frame_sizes) = frames_of(&m, &mut deflater, &mut keys, &mut wire);
        let cfg = DecoderConfig {
            max_frame_size,
            max_message_size,
            deflate: Some(DeflateParams::default()),
        };
        let wire_total: usize = frame_sizes.iter().sum();
        let fits = frame_sizes.iter().all(|&f| f <= max_frame_size)
            && wire_total <= max_message_size
            && m.data.len() <= max_message_size;
        let (events, err) = decode_stream(cfg, &wire, &sizes)?;
        if fits {
            prop_assert_eq!(err, None);
            prop_assert_eq!(events, want);
        } else {
            prop_assert_eq!(err, Some(1009));
            prop_assert!(events.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// permessage-deflate

fn compressible() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..4096),
        vec(0u8..4, 0..4096),
        ("[a-z ]{1,16}", 1usize..300).prop_map(|(s, n)| s.repeat(n).into_bytes()),
        Just(Vec::new()),
    ]
}

proptest! {
    /// Deflate then inflate gives back every message, with any window,
    /// with or without context takeover, however the compressed bytes are
    /// split into frames.
    #[test]
    fn deflate_inflate_round_trip(
        msgs in vec(compressible(), 1..6), bits in 9u8..=15, nct in any::<bool>(),
        cuts in vec(any::<Index>(), 0..5),
    ) {
        let mut d = Deflater::new(bits, nct);
        let mut i = Inflater::new(bits, nct);
        for msg in &msgs {
            let mut c = BytesMut::new();
            d.compress_into(msg, &mut c);
            let mut at: Vec<usize> = cuts.iter().map(|x| x.index(c.len() + 1)).collect();
            at.push(0);
            at.push(c.len());
            at.sort_unstable();
            let mut out = BytesMut::new();
            let n = at.len() - 1;
            for (k, w) in at.windows(2).enumerate() {
                i.inflate(&c[w[0]..w[1]], k + 1 == n, &mut out, msg.len()).unwrap();
            }
            prop_assert_eq!(&out[..], &msg[..]);
        }
    }

    /// A limit below the message's size is refused with TooBig, having
    /// written at most one byte past the limit and allocated at most about
    /// twice the limit.
    #[test]
    fn inflate_refuses_over_limit(
        msg in compressible().prop_map(|m| if m.is_empty() { vec![1] } else { m }),
        bits in 9u8..=15,
        max in any::<Index>(),
    ) {
        let max = max.index(msg.len());
        let mut c = BytesMut::new();
        Deflater::new(bits, true).compress_into(&msg, &mut c);
        let mut out = BytesMut::new();
        let r = Inflater::new(bits, true).inflate(&c, true, &mut out, max);
        prop_assert_eq!(r, Err(InflateError::TooBig));
        prop_assert!(out.len() <= max + 1);
        prop_assert!(out.capacity() <= 2 * (max + 1) + 64, "capacity {} for limit {}", out.capacity(), max);
        prop_assert_eq!(&out[..], &msg[..out.len()]);
    }

    /// Arbitrary input, and bombs (tiny input that inflates to far more than
    /// the limit): no panic, output and allocation bounded by the limit.
    #[test]
    fn inflate_arbitrary_and_bombs(
        input in prop_oneof![
            vec(any::<u8>(), 0..2048),
            (0usize..4, 1usize..200_000).prop_map(|(b, n)| compressed(&vec![b as u8; n])),
            vec(any::<u8>(), 0..64).prop_map(|p| [bomb(), &p[..]].concat()),
        ],
        pieces_at in vec(any::<Index>(), 0..4),
        max in prop_oneof![0usize..64, 0usize..70000],
        bits in 8u8..=15,
    ) {
        let mut i = Inflater::new(bits, false);
        let mut at: Vec<usize> = pieces_at.iter().map(|x| x.index(input.len() + 1)).collect();
        at.push(0);
        at.push(input.len());
        at.sort_unstable();
        let mut out = BytesMut::new();
        let n = at.len() - 1;
        for (k, w) in at.windows(2).enumerate() {
            let r = i.inflate(&input[w[0]..w[1]], k + 1 == n, &mut out, max);
            match r {
                Ok(()) => prop_assert!(out.len() <= max),
                Err(InflateError::TooBig) => prop_assert!(out.len() <= max + 1),
                Err(InflateError::Corrupt) => {}
            }
            prop_assert!(out.capacity() <= 2 * (max + 1) + 64, "capacity {} for limit {}", out.capacity(), max);
            if r.is_err() {
                break;
            }
        }
    }
}

// permessage-deflate offers

fn offer_param() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
        "Server_Max_Window_Bits",
        "x-unknown",
    ]);
    let value = prop_oneof![
        Just(String::new()),
        (7u8..17).prop_map(|b| format!("={b}")),
        (8u8..16).prop_map(|b| format!("=\"{b}\"")),
        Just("=\"1\\5\"".to_string()),
        Just("=09".to_string()),
        Just("=".to_string()),
        "[ -~]{0,6}",
    ];
    (name, value, " {0,2}").prop_map(|(n, v, s)| format!("{s}{n}{v}{s}"))
}

fn offer() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "permessage-deflate",
            "PerMessage-Deflate",
            "x-webkit-deflate-frame",
            "permessage-deflate ",
        ]),
        vec(offer_param(), 0..5),
    )
        .prop_map(|(name, params)| {
            let mut s = name.to_string();
            for p in params {
                s.push(';');
                s.push_str(&p);
            }
            s
        })
}

fn deflate_config() -> impl Strategy<Value = DeflateConfig> {
    (any::<bool>(), any::<bool>(), 8u8..=15, 8u8..=15).prop_map(|(s, c, sb, cb)| DeflateConfig {
        enabled: true,
        server_no_context_takeover: s,
        client_no_context_takeover: c,
        server_max_window_bits: sb,
        client_max_window_bits: cb,
    })
}

proptest! {
    /// Any offers: no panic; an accepted one respects the configuration, and
    /// the response header it produces is one a client parses back to the
    /// same parameters.
    #[test]
    fn deflate_negotiate_offers(
        headers in vec(prop_oneof![
            vec(offer(), 1..3).prop_map(|o| o.join(", ")),
            any::<String>(),
            "[a-z_=;,\" \\\\0-9-]{0,60}",
        ], 0..3),
        cfg in deflate_config(),
    ) {
        let offers: Vec<&[u8]> = headers.iter().map(|h| h.as_bytes()).collect();
        if let Some(p) = negotiate(&offers, &cfg) {
            prop_assert!((9..=15).contains(&p.server_max_window_bits));
            prop_assert!(p.server_max_window_bits <= cfg.server_max_window_bits.max(9));
            prop_assert!((8..=15).contains(&p.client_max_window_bits));
            prop_assert!(p.server_no_context_takeover >= cfg.server_no_context_takeover);
            prop_assert!(p.client_no_context_takeover >= cfg.client_no_context_takeover);
            let response = p.response_header();
            let back = parse_deflate_response(&response).map_err(|e| TestCaseError::fail(format!("{response}: {e}")))?;
            prop_assert_eq!(
                (back.server_no_context_takeover, back.client_no_context_takeover,
                 back.server_max_window_bits, back.client_max_window_bits),
                (p.server_no_context_takeover, p.client_no_context_takeover,
                 p.server_max_window_bits, p.client_max_window_bits)
            );
        }
        let off = DeflateConfig { enabled: false, ..cfg };
        prop_assert_eq!(negotiate(&offers, &off), None);
    }

    /// A well-formed offer is accepted with exactly the windows it asks for
    /// (within what the server allows).
    #[test]
    fn deflate_negotiate_valid_offer(
        snct in any::<bool>(), cnct in any::<bool>(),
        sbits in prop::option::of(9u8..=15), cbits in prop::option::of(prop::option::of(8u8..=15)),
        cfg in deflate_config(),
    ) {
        let mut offer = "permessage-deflate".to_string();
        if snct { offer.push_str("; server_no_context_takeover"); }
        if cnct { offer.push_str("; client_no_context_takeover"); }
        if let Some(b) = sbits { offer.push_str(&format!("; server_max_window_bits={b}")); }
        match cbits {
            Some(Some(b)) => offer.push_str(&format!("; client_max_window_bits=\"{b}\"")),
            Some(None) => offer.push_str("; client_max_window_bits"),
            None => {}
        }
        let p = negotiate(&[offer.as_bytes()], &cfg).expect("a well-formed offer is accepted");
        let ours = cfg.server_max_window_bits.clamp(9, 15);
        prop_assert_eq!(p.server_max_window_bits, sbits.map_or(ours, |b| b.min(ours)));
        prop_assert_eq!(p.client_max_window_bits, match cbits {
            None => 15,
            Some(b) => b.unwrap_or(15).min(cfg.client_max_window_bits),
        });
        prop_assert_eq!(p.server_no_context_takeover, snct || cfg.server_no_context_takeover);
        prop_assert_eq!(p.client_no_context_takeover, cnct || cfg.client_no_context_takeover);
    }
}

// ---------------------------------------------------------------------------
// Incremental UTF-8

proptest! {
    /// Fed in any pieces, the validator fails exactly at the first piece
    /// after which the text can no longer be valid UTF-8, and finishes
    /// cleanly exactly when std accepts the whole text.
    #[test]
    fn utf8_incremental_agrees_with_std(data in utf8ish(), sizes in cut_sizes(), empties in any::<bool>()) {
        let mut v = Utf8Validator::new();
        let mut seen = 0;
        let mut failed = false;
        for chunk in pieces(&data, &sizes) {
            if empties {
                prop_assert!(v.feed(&[]).is_ok());
            }
            seen += chunk.len();
            let hopeless = matches!(std::str::from_utf8(&data[..seen]), Err(e) if e.error_len().is_some());
            let r = v.feed(chunk);
            prop_assert_eq!(r.is_err(), hopeless, "after {} of {:x?}", seen, data);
            if r.is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            prop_assert_eq!(v.finish().is_ok(), std::str::from_utf8(&data).is_ok());
            // finish leaves the validator ready for the next message
            prop_assert!(v.is_complete());
            prop_assert!(v.feed("é".as_bytes()).is_ok() && v.finish().is_ok());
        }
    }
}

// ---------------------------------------------------------------------------
// Close payloads

proptest! {
    /// Any payload: the code and reason a peer may send, or 1002 / 1007.
    #[test]
    fn close_payload_arbitrary(payload in prop_oneof![
        vec(any::<u8>(), 0..130),
        (any::<u16>(), utf8ish()).prop_map(|(c, r)| [&c.to_be_bytes()[..], &r].concat()),
    ]) {
        match parse_close_payload(&payload) {
            Ok(f) => {
                match f.code {
                    None => prop_assert!(payload.is_empty()),
                    Some(c) => {
                        prop_assert!(is_valid_received_close_code(c));
                        prop_assert_eq!(c, u16::from_be_bytes([payload[0], payload[1]]));
                        prop_assert_eq!(f.reason.as_bytes(), &payload[2..]);
                    }
                }
            }
            Err(e) => {
                let want = if payload.len() == 1
                    || !is_valid_received_close_code(u16::from_be_bytes([payload[0], payload[1]]))
                {
                    1002
                } else {
                    1007
                };
                prop_assert_eq!(e.code, want);
            }
        }
    }

    /// Writing a close payload and parsing it gives the code back and the
    /// longest prefix of the reason that fits, cut on a character boundary.
    #[test]
    fn close_payload_round_trip(code in prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999], reason in any::<String>()) {
        let mut out = BytesMut::new();
        write_close_payload(Some(code), &reason, &mut out);
        prop_assert!(out.len() <= MAX_CONTROL_PAYLOAD);
        let f = parse_close_payload(&out).unwrap();
        prop_assert_eq!(f.code, Some(code));
        prop_assert_eq!(f.reason, truncate_reason(&reason));
        prop_assert!(reason.starts_with(f.reason));
        prop_assert!(f.reason.len() <= MAX_REASON_LEN);
        if f.reason.len() < reason.len() {
            let next = reason[f.reason.len()..].chars().next().unwrap();
            prop_assert!(f.reason.len() + next.len_utf8() > MAX_REASON_LEN);
        }
    }
}

// ---------------------------------------------------------------------------
// The opening handshake

fn random_case(s: &str, flips: &[bool]) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if flips[i % flips.len()] {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

proptest! {
    /// A well-formed upgrade (headers in any order and case, any 16-byte
    /// key) is accepted; leaving out any required header refuses it with 400,
    /// or 426 for the version.
    #[test]
    fn handshake_valid_and_missing_headers(
        key in any::<[u8; 16]>(), flips in vec(any::<bool>(), 1..8),
        order in Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
        drop in prop::option::of(0usize..5),
        protocols in vec("[a-z0-9.]{1,8}", 0..3),
    ) {
        use base64::Engine as _;
        let key_b64 = base64::engine::general_purpose::STANDARD.encode(key);
        let proto = protocols.join(", ");
        let all: [(String, &[u8]); 6] = [
            (random_case("Host", &flips), b"example.com"),
            (random_case("Upgrade", &flips), b"websocket"),
            (random_case("Connection", &flips), b"keep-alive, Upgrade"),
            (random_case("Sec-WebSocket-Version", &flips), b"13"),
            (random_case("Sec-WebSocket-Key", &flips), key_b64.as_bytes()),
            (random_case("Sec-WebSocket-Protocol", &flips), proto.as_bytes()),
        ];
        let headers: Vec<httparse::Header> = order
            .iter()
            .filter(|&&i| Some(i) != drop)
            .map(|&i| httparse::Header { name: &all[i].0, value: all[i].1 })
            .collect();
        match (validate_upgrade("GET", &headers), drop) {
            (Ok(u), None) => {
                prop_assert_eq!(u.key, key_b64.as_bytes());
                prop_assert_eq!(u.accept_key().len(), 28);
                prop_assert_eq!(u.protocols, protocols.iter().map(String::as_str).collect::<Vec<_>>());
            }
            (Err(e), Some(3)) => prop_assert_eq!(e.status(), 426),
            (Err(e), Some(_)) => prop_assert_eq!(e.status(), 400),
            (r, d) => prop_assert!(false, "{:?} with header {:?} left out", r, d),
        }
        prop_assert!(validate_upgrade("POST", &headers).is_err());
    }

    /// Arbitrary header values never panic; an accepted key is always the
    /// base64 of 16 bytes.
    #[test]
    fn handshake_arbitrary_values(values in vec(vec(any::<u8>(), 0..40), 6), pick in vec(0usize..6, 0..10)) {
        use base64::Engine as _;
        let names = ["Host", "Upgrade", "Connection", "Sec-WebSocket-Version", "Sec-WebSocket-Key", "Sec-WebSocket-Protocol"];
        let mut headers: Vec<httparse::Header> = names
            .iter()
            .zip(&values)
            .map(|(n, v)| httparse::Header { name: n, value: v })
            .collect();
        for &i in &pick {
            headers.push(httparse::Header { name: names[i], value: &values[(i + 1) % 6] });
        }
        if let Ok(u) = validate_upgrade("GET", &headers) {
            let decoded = base64::engine::general_purpose::STANDARD.decode(u.key);
            prop_assert_eq!(decoded.map(|d| d.len()).ok(), Some(16));
        }
    }

    /// An origin matches its own entry whatever its case, a trailing slash
    /// or the scheme's default port; another host does not.
    #[test]
    fn handshake_origin(host in "[a-z][a-z0-9.-]{0,20}", https in any::<bool>(), flips in vec(any::<bool>(), 1..8), slash in any::<bool>(), port in any::<bool>()) {
        let scheme = if https { "https" } else { "http" };
        let allowed = vec![format!("{scheme}://{host}")];
        let mut origin = random_case(&format!("{scheme}://{host}"), &flips);
        if port {
            origin.push_str(if https { ":443" } else { ":80" });
        }
        if slash {
            origin.push('/');
        }
        prop_assert!(origin_allowed(Some(origin.as_bytes()), &allowed));
        let other = format!("{scheme}://x{host}");
        prop_assert!(!origin_allowed(Some(other.as_bytes()), &allowed));
    }
}

// ---------------------------------------------------------------------------
// SSE cursors (Last-Event-ID)

proptest! {
    /// Formatting positions and parsing them back gives the same positions;
    /// the wrong room count is refused.
    #[test]
    fn sse_cursor_round_trip(positions in vec(prop_oneof![any::<u64>(), 0u64..10], 1..40)) {
        let mut text = Vec::new();
        cursor::format(&positions, &mut text);
        let text = String::from_utf8(text).unwrap();
        prop_assert_eq!(cursor::parse(&text, positions.len()), Ok(positions.clone()));
        prop_assert!(cursor::parse(&text, positions.len() + 1).is_err());
        prop_assert!(cursor::parse(&text, positions.len() - 1).is_err());
    }

    /// Any text: no panic; accepted text has one position per room, and its
    /// positions format to a cursor that parses to the same positions.
    #[test]
    fn sse_cursor_arbitrary(
        text in prop_oneof![any::<String>(), "[0-9.]{0,60}", "[0-9]{18,22}(\\.[0-9]{18,22}){0,3}"],
        rooms in 0usize..6,
    ) {
        match cursor::parse(&text, rooms) {
            Ok(p) => {
                prop_assert_eq!(p.len(), rooms);
                let mut again = Vec::new();
                cursor::format(&p, &mut again);
                prop_assert_eq!(cursor::parse(std::str::from_utf8(&again).unwrap(), rooms), Ok(p));
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    /// Cursors over the length limit are refused whatever they hold.
    #[test]
    fn sse_cursor_too_long(n in (cursor::MAX_CURSOR_LEN / 2 + 1)..cursor::MAX_CURSOR_LEN) {
        let text = vec!["0"; n].join(".");
        prop_assert!(text.len() > cursor::MAX_CURSOR_LEN);
        prop_assert!(cursor::parse(&text, n).is_err());
    }
}

// ---------------------------------------------------------------------------
// JWT

const NOW: f64 = 1_800_000_000.0;

fn signed_token() -> impl Strategy<Value = (String, Vec<u8>, String)> {
    (
        vec(any::<u8>(), jwt::MIN_SECRET_LEN..80),
        any::<String>(),
        vec("[a-z.*]{1,10}", 0..4),
        1i64..1_000_000,
        any::<bool>(),
    )
        .prop_map(|(secret, sub, rooms, ttl, typ)| {
            let header = if typ {
                json!({"alg": "HS256", "typ": "JWT"})
            } else {
                json!({"alg": "HS256"})
            };
            let claims = json!({"sub": sub, "rooms": rooms, "exp": NOW as i64 + ttl});
            (jwt::sign(&header, &claims, &secret), secret, sub)
        })
}

proptest! {
    /// A token signed with the secret verifies, with its claims; any
    /// single-byte change anywhere in it (header, payload, signature or a
    /// dot) is refused, and so is any other secret.
    #[test]
    fn jwt_sign_verify_and_mutations(
        (token, secret, sub) in signed_token(),
        at in any::<Index>(),
        replacement in prop_oneof![
            prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec()),
            0x20u8..0x7F,
        ],
        other in vec(any::<u8>(), jwt::MIN_SECRET_LEN..40),
    ) {
        let key = jwt::key(&secret);
        let claims = jwt::verify(&token, &key, NOW, 0.0).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(claims.0.get("sub").and_then(|v| v.as_str()), Some(sub.as_str()));

        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(jwt::verify(&mutated, &key, NOW, 0.0).is_err(), "byte {} changed to {:?} still verifies", i, replacement as char);

        prop_assume!(other != secret);
        prop_assert_eq!(jwt::verify(&token, &jwt::key(&other), NOW, 0.0).unwrap_err(), jwt::TokenError::BadSignature);
    }

    /// Expiry and not-before are honoured with the leeway.
    #[test]
    fn jwt_time_claims(exp in -1000i64..1000, nbf in prop::option::of(-1000i64..1000), leeway in 0u8..60) {
        let secret = [7u8; 32];
        let mut claims = json!({"exp": NOW as i64 + exp});
        if let Some(n) = nbf {
            claims["nbf"] = json!(NOW as i64 + n);
        }
        let token = jwt::sign(&json!({"alg": "HS256"}), &claims, &secret);
        let r = jwt::verify(&token, &jwt::key(&secret), NOW, leeway as f64);
        let leeway = leeway as i64;
        let want = if 0 >= exp + leeway {
            Err(jwt::TokenError::Expired)
        } else if nbf.is_some_and(|n| leeway < n) {
            Err(jwt::TokenError::NotYetValid)
        } else {
            Ok(())
        };
        prop_assert_eq!(r.map(|_| ()), want);
    }

    /// Arbitrary tokens never panic and are refused; a header naming any
    /// other algorithm is refused before the signature is looked at.
    #[test]
    fn jwt_arbitrary(
        parts in vec(prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,40}"], 0..5),
        alg in prop_oneof![Just("none".to_string()), Just("RS256".to_string()), Just("hs256".to_string()), "[A-Z0-9]{0,6}"],
    ) {
        let key = jwt::key(&[1u8; 32]);
        let token = parts.join(".");
        prop_assert!(jwt::verify(&token, &key, NOW, 0.0).is_err());
        prop_assume!(alg != "HS256");
        let forged = jwt::sign(&json!({"alg": alg}), &json!({"exp": NOW + 100.0}), &[1u8; 32]);
        prop_assert_eq!(jwt::verify(&forged, &key, NOW, 0.0).unwrap_err(), jwt::TokenError::Algorithm);
    }
}

// ---------------------------------------------------------------------------
// Config units

proptest! {
    /// `N<unit>` parses to N of that unit (with spaces around), or is refused
    /// as too large when it does not fit; never a panic, never a wrapped value.
    #[test]
    fn units_duration_parse(n in prop_oneof![0u64..100_000, any::<u64>()], unit in 0usize..5, pad in " {0,2}", inner in " {0,1}") {
        let (suffix, ms): (&str, u64) = [("ms", 1), ("s", 1000), ("", 1000), ("m", 60_000), ("h", 3_600_000)][unit];
        let text = format!("{pad}{n}{inner}{suffix}{pad}");
        let text = if suffix.is_empty() { format!("{pad}{n}{pad}") } else { text };
        match n.checked_mul(ms) {
            Some(total) => prop_assert_eq!(parse_duration(&text), Ok(std::time::Duration::from_millis(total))),
            None => prop_assert!(parse_duration(&text).is_err()),
        }
    }

    /// `N<unit>` sizes parse to N times the unit (SI units are powers of
    /// 1000, IEC ones of 1024), or are refused as too large.
    #[test]
    fn units_size_parse(n in prop_oneof![0u64..100_000, any::<u64>()], unit in 0usize..9, pad in " {0,2}") {
        let (suffix, mult): (&str, u64) = [
            ("", 1), ("B", 1), ("KB", 1000), ("kB", 1000), ("KiB", 1 << 10),
            ("MB", 1_000_000), ("MiB", 1 << 20), ("GB", 1_000_000_000), ("GiB", 1 << 30),
        ][unit];
        let text = format!("{pad}{n}{suffix}{pad}");
        match n.checked_mul(mult) {
            Some(total) => prop_assert_eq!(parse_size(&text), Ok(total)),
            None => prop_assert!(parse_size(&text).is_err()),
        }
    }

    /// `N.FFF<unit>` parses when it comes to a whole number of bytes, and is
    /// refused, saying so, when it does not.
    #[test]
    fn units_size_decimal(whole in 0u64..10_000, frac in 0u64..1000, unit in 0usize..5) {
        let (suffix, mult): (&str, u64) =
            [("B", 1), ("kB", 1000), ("KiB", 1 << 10), ("MB", 1_000_000), ("MiB", 1 << 20)][unit];
        let text = format!("{whole}.{frac:03}{suffix}");
        let thousandths = (whole * 1000 + frac) * mult;
        if thousandths % 1000 == 0 {
            prop_assert_eq!(parse_size(&text), Ok(thousandths / 1000));
        } else {
            let e = parse_size(&text).unwrap_err();
            prop_assert!(e.contains("is not a whole number of bytes"), "{}", e);
        }
    }

    /// Whatever a duration or size parses to, written back out the way the
    /// configuration serializes it and read again, is the same value.
    #[test]
    fn units_format_round_trip(
        text in prop_oneof![
            "[0-9]{1,22}(ms|s|m|h)?",
            "[0-9]{1,22}(B|K|KiB|MiB|GiB|G|kB|MB|GB)?",
            "[0-9]{1,6}\\.[0-9]{1,4}(ms|s|m|h|B|KiB|MiB|kB|MB)?",
            any::<String>(),
        ],
    ) {
        if let Ok(d) = parse_duration(&text) {
            let json = serde_json::to_string(&Period(d)).unwrap();
            let back: Period = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{text:?} -> {json}: {e}")))?;
            prop_assert_eq!(back, Period(d));
        }
        if let Ok(n) = parse_size(&text) {
            let json = serde_json::to_string(&ByteSize(n)).unwrap();
            let back: ByteSize = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, ByteSize(n));
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        }
    }
}

// ---------------------------------------------------------------------------
// Room names

const ROOM_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:@";

proptest! {
    /// Names of allowed characters within the length limit are accepted.
    #[test]
    fn room_name_valid(name in "[a-zA-Z0-9_.:@-]{1,64}", slack in 0usize..4) {
        prop_assert!(valid_room_name(&name, name.len() + slack));
        prop_assert!(!valid_room_name(&name, name.len() - 1));
    }

    /// A name with any character outside the allowed set is refused,
    /// wherever it is.
    #[test]
    fn room_name_bad_char(prefix in "[a-z0-9]{0,10}", bad in any::<char>(), suffix in "[a-z0-9]{0,10}") {
        // An allowed character is swapped for a disallowed ASCII one.
        const BAD: &[u8] = b" /?#%&=+\\\"'<>!$*()[]{}|^`~,;\t\n\r\0\x7f";
        let bad = if ROOM_CHARS.contains(bad) { BAD[bad as usize % BAD.len()] as char } else { bad };
        prop_assert!(!ROOM_CHARS.contains(bad));
        let name = format!("{prefix}{bad}{suffix}");
        prop_assert!(!valid_room_name(&name, 1024));
    }

    /// Arbitrary strings: accepted exactly when every byte is allowed.
    #[test]
    fn room_name_arbitrary(name in any::<String>(), max in 0usize..64) {
        let want = !name.is_empty() && name.len() <= max && name.chars().all(|c| ROOM_CHARS.contains(c));
        prop_assert_eq!(valid_room_name(&name, max), want);
    }
}

// ---------------------------------------------------------------------------
// WebSocket client URLs

proptest! {
    /// A `ws://` URL built from a host, a port and a resource parses back to
    /// them; arbitrary text never panics.
    #[test]
    fn ws_url_round_trip(
        host in prop_oneof!["[a-z][a-z0-9.-]{0,20}", "[0-9a-f:]{2,20}"],
        port in prop::option::of(1u16..),
        resource in prop::option::of("[/?][a-zA-Z0-9/?&=%._-]{0,40}"),
        scheme in prop::sample::select(vec!["ws", "WS", "Ws"]),
        junk in any::<String>(),
    ) {
        let v6 = host.contains(':');
        let authority = match (v6, port) {
            (true, Some(p)) => format!("[{host}]:{p}"),
            (true, None) => format!("[{host}]"),
            (false, Some(p)) => format!("{host}:{p}"),
            (false, None) => host.clone(),
        };
        let url = format!("{scheme}://{authority}{}", resource.as_deref().unwrap_or(""));
        let u = Url::parse(&url).map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
        prop_assert_eq!(&u.host, &host);
        prop_assert_eq!(u.port, port.unwrap_or(80));
        let want = match resource.as_deref() {
            None => "/".to_string(),
            Some(r) if r.starts_with('?') => format!("/{r}"),
            Some(r) => r.to_string(),
        };
        prop_assert_eq!(&u.resource, &want);
        prop_assert_eq!(Url::parse(&format!("ws://{}{}", u.host_header(), u.resource)).ok(), Some(u));
        let _ = Url::parse(&junk);
        let _ = Url::parse(&format!("ws://{junk}"));
    }
}

// ---------------------------------------------------------------------------
// SSE events, read back by a client

/// A client's view of an event stream (WHATWG HTML, "interpreting an event
/// stream"): the events dispatched, as (id, type, data).
fn sse_client(stream: &str) -> Vec<(String, String, String)> {
    let mut events = Vec::new();
    let (mut last_id, mut kind, mut data) = (String::new(), String::new(), String::new());
    let mut rest = stream;
    while !rest.is_empty() {
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[(end + skip).min(rest.len())..];
        if line.is_empty() {
            if !data.is_empty() {
                data.pop();
                let kind = if kind.is_empty() {
                    "message".to_string()
                } else {
                    std::mem::take(&mut kind)
                };
                events.push((last_id.clone(), kind, std::mem::take(&mut data)));
            }
            kind.clear();
            data.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "event" => kind = value.to_string(),
            "id" if !value.contains('\0') => last_id = value.to_string(),
            _ => {}
        }
    }
    events
}

proptest! {
    /// An encoded event, with comments around it, reaches a client with its
    /// id, its name and its data (line breaks of any kind read as `\n`).
    #[test]
    fn sse_event_round_trip(
        positions in vec(any::<u64>(), 1..4),
        name in prop::option::of("[^\r\n]{1,20}"),
        data in prop_oneof![any::<String>(), "[a\r\n ]{0,12}"],
        comment in any::<String>(),
    ) {
        use ringcast::proto::sse::encode;
        prop_assume!(name.as_deref().is_none_or(encode::valid_event_name));
        let mut id = Vec::new();
        cursor::format(&positions, &mut id);
        let mut out = BytesMut::new();
        encode::comment(&mut out, &comment);
        encode::event(&mut out, Some(&id), name.as_deref(), data.as_bytes());
        encode::comment(&mut out, &comment);
        let stream = std::str::from_utf8(&out).unwrap();
        let want_data = data.replace("\r\n", "\n").replace('\r', "\n");
        let want = vec![(
            String::from_utf8(id).unwrap(),
            name.unwrap_or_else(|| "message".to_string()),
            want_data,
        )];
        prop_assert_eq!(sse_client(stream), want);
    }
}

// ---------------------------------------------------------------------------
// Where a request's token comes from

fn auth_rules() -> ringcast::auth::Auth {
    let cfg = ringcast::config::Config::from_toml(
        "[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n",
        "properties",
    )
    .unwrap();
    ringcast::auth::Auth::from_config(&cfg).unwrap()
}

/// The token `Auth::token` finds in a request with these extra header lines.
fn token_of(
    auth: &ringcast::auth::Auth,
    target: &str,
    extra: &[(String, Vec<u8>)],
) -> Option<String> {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\n").into_bytes();
    for (name, value) in extra {
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    let limits = HeadLimits {
        max_request_line: 8192,
        max_header_bytes: 65536,
        max_headers: 64,
    };
    let mut storage = request::header_storage();
    match request::parse(&raw, &mut storage, &limits) {
        Ok(Parsed::Complete(head)) => auth.token(&head).map(|t| t.into_owned()),
        other => panic!("{other:?} for {:?}", String::from_utf8_lossy(&raw)),
    }
}

proptest! {
    /// A token is found wherever it is sent: as a bearer token, in the
    /// query parameter (percent-encoded), or in its cookie among others
    /// (quoted or not); the bearer token wins over the others, the query
    /// parameter over the cookie.
    #[test]
    fn auth_token_sources(
        token in "[A-Za-z0-9_.~-]{1,60}",
        others in vec(("[a-z_]{1,10}", "[A-Za-z0-9]{0,10}"), 0..4),
        quoted in any::<bool>(),
        sources in 1u8..8,
        encode in vec(any::<bool>(), 1..8),
    ) {
        let auth = auth_rules();
        let (in_header, in_query, in_cookie) = (sources & 1 != 0, sources & 2 != 0, sources & 4 != 0);
        let mut extra = Vec::new();
        let mut target = "/events?room=a".to_string();
        // Each source gets its own value, so the winner is known.
        if in_header {
            extra.push(("Authorization".to_string(), format!("Bearer  {token}h ").into_bytes()));
        }
        if in_query {
            target.push_str("&token=");
            for (i, b) in format!("{token}q").bytes().enumerate() {
                if encode[i % encode.len()] {
                    target.push_str(&format!("%{b:02X}"));
                } else {
                    target.push(b as char);
                }
            }
        }
        if in_cookie {
            let mut pairs: Vec<String> = others
                .iter()
                .filter(|(n, _)| n != "ringcast_token")
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            let v = if quoted { format!("\"{token}c\"") } else { format!("{token}c") };
            pairs.insert(pairs.len() / 2, format!("ringcast_token={v}"));
            extra.push(("Cookie".to_string(), pairs.join("; ").into_bytes()));
        }
        let want = if in_header {
            format!("{token}h")
        } else if in_query {
            format!("{token}q")
        } else {
            format!("{token}c")
        };
        prop_assert_eq!(token_of(&auth, &target, &extra), Some(want));
    }

    /// Arbitrary Authorization and Cookie values and query strings never
    /// panic, and whatever is found is not empty.
    #[test]
    fn auth_token_arbitrary(
        values in vec((prop::sample::select(vec!["Authorization", "Cookie", "X-Other"]), "[ -~]{0,60}"), 0..4),
        query in "[a-z=&%0-9A-F]{0,40}",
    ) {
        let auth = auth_rules();
        let extra: Vec<(String, Vec<u8>)> = values
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.trim().as_bytes().to_vec()))
            .collect();
        if let Some(t) = token_of(&auth, &format!("/events?{query}"), &extra) {
            prop_assert!(!t.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// Regressions: inputs the properties above found, kept as plain tests.

/// `parse_duration` multiplied minutes and hours into seconds unchecked: a
/// large count panicked in debug builds and wrapped to a wrong duration in
/// release builds.
#[test]
fn regression_duration_minutes_overflow() {
    assert!(parse_duration("5124095576031h").is_err());
    assert!(parse_duration("307445734561825861m").is_err());
    assert_eq!(
        parse_duration("5124095576h"),
        Ok(std::time::Duration::from_secs(5_124_095_576 * 3600))
    );
}

/// A duration whose milliseconds did not fit in a u64 was accepted, but its
/// serialized form (`"<n>ms"`) could not be read back.
#[test]
fn regression_duration_serialized_form_reads_back() {
    assert!(parse_duration("307500000000000m").is_err());
    assert!(parse_duration("18446744073709551615s").is_err());
    assert!(serde_json::from_str::<Period>("18446744073709551615").is_err());
    let max = parse_duration("18446744073709551615ms").unwrap();
    let json = serde_json::to_string(&Period(max)).unwrap();
    assert_eq!(serde_json::from_str::<Period>(&json).unwrap(), Period(max));
}

/// A compressor with context takeover, asked for two empty messages in a
/// row, writes nothing for the second (zlib has nothing to flush): that
/// tripped a debug assertion, and in release builds cut the four bytes
/// before the message off the caller's buffer (whatever was corked there).
/// An empty body is no answer either: with the tail the receiver appends it
/// is not a whole block, and the stream falls out of step (the third
/// message then inflated to garbage).
#[test]
fn regression_deflate_empty_messages_with_context_takeover() {
    let mut d = Deflater::new(15, false);
    let mut out = BytesMut::from(&b"corked frame"[..]);
    for _ in 0..3 {
        d.compress_into(b"", &mut out);
        assert!(out.starts_with(b"corked frame"));
    }
    // The case as found: empty compressed binary messages to the decoder
    // (then one that is not empty).
    let mut wire = BytesMut::new();
    let mut d = Deflater::new(15, false);
    let messages: [&[u8]; 5] = [b"", b"", b"", b"a message after them", b""];
    for m in messages {
        let mut body = BytesMut::new();
        d.compress_into(m, &mut body);
        encode_masked_frame(true, true, OpCode::Binary, &body, [0; 4], &mut wire);
    }
    let cfg = DecoderConfig {
        deflate: Some(DeflateParams::default()),
        ..DecoderConfig::default()
    };
    let mut dec = Decoder::new(cfg);
    for m in messages {
        assert_eq!(
            dec.decode(&mut wire).unwrap(),
            Some(Event::Binary(bytes::Bytes::from_static(m)))
        );
    }
}
