//! Close frames (RFC 6455 §5.5.1, §7.4): status codes, which codes a peer
//! may send, parsing a received close payload and building one to send.

use bytes::{BufMut, BytesMut};

/// 1000: the purpose of the connection has been fulfilled.
pub const NORMAL: u16 = 1000;
/// 1001: the server is going down or the client navigated away.
pub const GOING_AWAY: u16 = 1001;
/// 1002: the peer broke the protocol.
pub const PROTOCOL_ERROR: u16 = 1002;
/// 1003: a data type we do not accept (e.g. binary where only text is).
pub const UNSUPPORTED_DATA: u16 = 1003;
/// 1007: data inconsistent with the message type (text that is not UTF-8).
pub const INVALID_PAYLOAD: u16 = 1007;
/// 1008: a message that violates policy.
pub const POLICY_VIOLATION: u16 = 1008;
/// 1009: a message too big to process.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// 1011: the server hit an unexpected condition.
pub const INTERNAL_ERROR: u16 = 1011;
/// 1012: the server is restarting (IANA registry).
pub const SERVICE_RESTART: u16 = 1012;
/// 1013: the server is overloaded, try again later (IANA registry).
pub const TRY_AGAIN_LATER: u16 = 1013;

/// Longest reason that fits in a close frame: 125 payload bytes minus the code.
pub const MAX_REASON_LEN: usize = 123;

/// Why we are failing the connection: the code and reason of the close frame
/// we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseError {
    pub code: u16,
    pub reason: &'static str,
}

impl CloseError {
    pub const fn new(code: u16, reason: &'static str) -> CloseError {
        CloseError { code, reason }
    }
}

impl std::fmt::Display for CloseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "close {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for CloseError {}

/// May a peer put `code` in a close frame?
///
/// Valid: 1000–1003, 1007–1011, 1012–1014 (registered with IANA after RFC
/// 6455), 3000–3999 (registered by libraries and frameworks) and 4000–4999
/// (private use). Invalid: below 1000, 1004 (reserved), 1005, 1006 and 1015
/// (must never be sent: they stand for "no code", "abnormal closure" and "TLS
/// failure"), 1016–2999 (reserved for future protocol use) and 5000 and up.
pub fn is_valid_received_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A received close frame's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// `None` when the payload was empty.
    pub code: Option<u16>,
    pub reason: &'a str,
}

/// Parses a received close payload: empty, or a 2-byte code and a UTF-8
/// reason. A 1-byte payload or a code a peer may not send is a protocol
/// error (1002); a reason that is not UTF-8 is 1007.
pub fn parse_close_payload(payload: &[u8]) -> Result<CloseFrame<'_>, CloseError> {
    match payload {
        [] => Ok(CloseFrame {
            code: None,
            reason: "",
        }),
        [_] => Err(CloseError::new(PROTOCOL_ERROR, "close payload of 1 byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_received_close_code(code) {
                return Err(CloseError::new(PROTOCOL_ERROR, "invalid close code"));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| CloseError::new(INVALID_PAYLOAD, "close reason is not UTF-8"))?;
            Ok(CloseFrame {
                code: Some(code),
                reason,
            })
        }
    }
}

/// The longest prefix of `reason` that fits a close frame, cut on a
/// character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Appends a close payload (code, then `reason` cut to fit) to `out`.
/// `code: None` writes the empty payload (the reason is then ignored, since
/// a reason needs a code in front of it).
pub fn write_close_payload(code: Option<u16>, reason: &str, out: &mut BytesMut) {
    if let Some(code) = code {
        let reason = truncate_reason(reason);
        out.reserve(2 + reason.len());
        out.put_u16(code);
        out.put_slice(reason.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_table() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ];
        let invalid = [
            0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 5001, 65535,
        ];
        for code in valid {
            assert!(is_valid_received_close_code(code), "{code} should be valid");
        }
        for code in invalid {
            assert!(
                !is_valid_received_close_code(code),
                "{code} should be invalid"
            );
        }
        // Exhaustive cross-check against the ranges spelled out.
        for code in 0..=u16::MAX {
            let expected = (1000..=1003).contains(&code)
                || (1007..=1014).contains(&code)
                || (3000..=4999).contains(&code);
            assert_eq!(is_valid_received_close_code(code), expected, "{code}");
        }
    }

    #[test]
    fn named_constants() {
        assert_eq!(
            [NORMAL, GOING_AWAY, PROTOCOL_ERROR, UNSUPPORTED_DATA],
            [1000, 1001, 1002, 1003]
        );
        assert_eq!(
            [
                INVALID_PAYLOAD,
                POLICY_VIOLATION,
                MESSAGE_TOO_BIG,
                INTERNAL_ERROR
            ],
            [1007, 1008, 1009, 1011]
        );
    }

    #[test]
    fn parse_empty_payload() {
        assert_eq!(
            parse_close_payload(b""),
            Ok(CloseFrame {
                code: None,
                reason: ""
            })
        );
    }

    #[test]
    fn parse_one_byte_payload_is_protocol_error() {
        assert_eq!(parse_close_payload(&[0x03]).unwrap_err().code, 1002);
    }

    #[test]
    fn parse_code_and_reason() {
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8]),
            Ok(CloseFrame {
                code: Some(1000),
                reason: ""
            })
        );
        let mut p = vec![0x0F, 0xA0];
        p.extend_from_slice("bye ✓".as_bytes());
        assert_eq!(
            parse_close_payload(&p),
            Ok(CloseFrame {
                code: Some(4000),
                reason: "bye ✓"
            })
        );
    }

    #[test]
    fn parse_invalid_code_is_protocol_error() {
        for code in [0u16, 999, 1005, 1006, 1015, 2000, 5000] {
            let err = parse_close_payload(&code.to_be_bytes()).unwrap_err();
            assert_eq!(err.code, PROTOCOL_ERROR, "{code}");
        }
    }

    #[test]
    fn parse_bad_utf8_reason_is_1007() {
        let err = parse_close_payload(&[0x03, 0xE8, b'o', 0xCE, 0xBA, 0xE1]).unwrap_err();
        assert_eq!(err.code, INVALID_PAYLOAD);
        let err = parse_close_payload(&[0x03, 0xE8, 0xED, 0xA0, 0x80]).unwrap_err();
        assert_eq!(err.code, INVALID_PAYLOAD);
    }

    #[test]
    fn write_payloads() {
        let mut out = BytesMut::new();
        write_close_payload(Some(1000), "done", &mut out);
        assert_eq!(&out[..], b"\x03\xe8done");
        let mut out = BytesMut::new();
        write_close_payload(None, "ignored", &mut out);
        assert!(out.is_empty());
        let mut out = BytesMut::new();
        write_close_payload(Some(1009), "", &mut out);
        assert_eq!(&out[..], &[0x03, 0xF1]);
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let ascii = "x".repeat(200);
        assert_eq!(truncate_reason(&ascii).len(), 123);
        // 'é' is 2 bytes: 61 of them = 122 bytes, the 62nd would end at 124.
        let accented = "é".repeat(100);
        assert_eq!(truncate_reason(&accented).len(), 122);
        let mut out = BytesMut::new();
        write_close_payload(Some(1001), &accented, &mut out);
        assert!(out.len() <= 125);
        let parsed = parse_close_payload(&out).unwrap();
        assert_eq!(parsed.code, Some(1001));
        assert_eq!(parsed.reason, "é".repeat(61));
        assert_eq!(truncate_reason("short"), "short");
    }
}
