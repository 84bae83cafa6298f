//! Frame headers (RFC 6455 §5.2): opcodes, parsing a header from bytes, and
//! encoding headers and whole frames into bytes.
//!
//! Parsing only looks at the header; what a header means for the connection
//! (masking required, RSV bits, fragmentation order, size limits) is decided
//! by the receive state machine in `codec`. The checks made here are the ones
//! that hold for every frame in either direction: known opcode, control frames
//! unfragmented and at most 125 bytes, 64-bit length with its top bit clear.
//!
//! Non-minimal length encodings (a 5-byte payload announced with the 16-bit
//! form, say) are accepted: RFC 6455 tells senders to use the minimal form but
//! gives receivers no rule, and rejecting them protects nothing. Our own
//! encoders always emit the minimal form.

use bytes::{BufMut, Bytes, BytesMut};

use super::mask::apply_mask;

/// Largest header any peer can send: 2 + 8 (64-bit length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;
/// Largest header the server sends (server frames are never masked).
pub const MAX_SERVER_HEADER_LEN: usize = 10;
/// Control frames carry at most this many payload bytes (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes defined by RFC 6455 §5.2. The reserved ones (3–7, 11–15)
/// are not representable: parsing them is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for the low 4 bits `v`, or `None` for a reserved value.
    #[inline]
    pub fn from_u8(v: u8) -> Option<OpCode> {
        match v {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// Close, Ping and Pong: the opcodes with the high bit set.
    #[inline]
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub rsv1: bool,
    pub rsv2: bool,
    pub rsv3: bool,
    pub opcode: OpCode,
    /// The masking key; every client-to-server frame has one.
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// A frame header that breaks RFC 6455 whoever sent it. Always answered with
/// close code 1002 (protocol error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// Opcode 3–7 or 11–15.
    ReservedOpcode(u8),
    /// A 64-bit payload length with its most significant bit set.
    LengthMsbSet,
    /// A control frame without FIN.
    FragmentedControlFrame,
    /// A control frame announcing more than 125 payload bytes.
    ControlFrameTooLong,
}

impl ProtocolError {
    /// A short reason, fit for a close frame.
    pub fn reason(&self) -> &'static str {
        match self {
            ProtocolError::ReservedOpcode(_) => "reserved opcode",
            ProtocolError::LengthMsbSet => "64-bit payload length has its top bit set",
            ProtocolError::FragmentedControlFrame => "fragmented control frame",
            ProtocolError::ControlFrameTooLong => "control frame payload over 125 bytes",
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Parses the frame header at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold the whole header, and
/// `Ok(Some((header, header_len)))` otherwise; the payload starts at
/// `buf[header_len..]` and may not have arrived yet. Errors that are visible
/// in the first two bytes are reported as soon as those two bytes are here.
#[inline]
pub fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
    let fin = b0 & 0x80 != 0;
    let len7 = b1 & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        if len7 as usize > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlFrameTooLong);
        }
    }
    // Size of the extended length field (0, 2 or 8) and of the mask key (0 or 4).
    let ext_len = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask_len = ((b1 >> 7) as usize) << 2;
    let header_len = 2 + ext_len + mask_len;
    if buf.len() < header_len {
        return Ok(None);
    }
    let payload_len = match ext_len {
        0 => len7 as u64,
        2 => u16::from_be_bytes([buf[2], buf[3]]) as u64,
        _ => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthMsbSet);
            }
            len
        }
    };
    let mask = if mask_len != 0 {
        let at = 2 + ext_len;
        Some([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
    } else {
        None
    };
    let header = FrameHeader {
        fin,
        rsv1: b0 & 0x40 != 0,
        rsv2: b0 & 0x20 != 0,
        rsv3: b0 & 0x10 != 0,
        opcode,
        mask,
        payload_len,
    };
    Ok(Some((header, header_len)))
}

/// The length of an unmasked header for a payload of `payload_len` bytes.
#[inline]
pub fn header_len(payload_len: u64) -> usize {
    match payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// The first header byte: FIN, RSV1 and the opcode.
#[inline]
pub fn first_byte(fin: bool, rsv1: bool, opcode: OpCode) -> u8 {
    ((fin as u8) << 7) | ((rsv1 as u8) << 6) | opcode as u8
}

/// A header with any first byte `b0` (FIN, RSV1–3 and the opcode as given,
/// reserved values included) and the length in its minimal form, masked
/// with `mask` when given: the bytes at the front of the array, and how many
/// there are. Nothing is checked, so tests and tools can build the frames a
/// peer must refuse; [`header`] is the checked form.
#[inline]
pub fn raw_header(b0: u8, len: u64, mask: Option<[u8; 4]>) -> ([u8; MAX_HEADER_LEN], usize) {
    let mut h = [0u8; MAX_HEADER_LEN];
    h[0] = b0;
    let n = match len {
        0..=125 => {
            h[1] = len as u8;
            2
        }
        126..=0xFFFF => {
            h[1] = 126;
            h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            h[1] = 127;
            h[2..10].copy_from_slice(&len.to_be_bytes());
            10
        }
    };
    match mask {
        None => (h, n),
        Some(key) => {
            h[1] |= 0x80;
            h[n..n + 4].copy_from_slice(&key);
            (h, n + 4)
        }
    }
}

/// Appends the header of [`raw_header`] to `out`, field by field: stores of
/// a fixed size, where copying the array's first `n` bytes would be a call
/// to `memcpy` (a few nanoseconds, as much as masking a short payload).
#[inline]
fn put_header<B: BufMut>(b0: u8, len: u64, mask: Option<[u8; 4]>, out: &mut B) {
    let masked = (mask.is_some() as u8) << 7;
    out.put_u8(b0);
    match len {
        0..=125 => out.put_u8(masked | len as u8),
        126..=0xFFFF => {
            out.put_u8(masked | 126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(masked | 127);
            out.put_u64(len);
        }
    }
    if let Some(key) = mask {
        out.put_slice(&key);
    }
}

/// An unmasked header in its minimal length form: the bytes at the front of
/// the array, and how many there are. For callers that write the payload
/// first and the header after (compressed frames).
#[inline]
pub fn header(fin: bool, rsv1: bool, opcode: OpCode, len: u64) -> ([u8; MAX_HEADER_LEN], usize) {
    debug_assert!(len >> 63 == 0, "payload length must fit in 63 bits");
    debug_assert!(!opcode.is_control() || (fin && len as usize <= MAX_CONTROL_PAYLOAD));
    raw_header(first_byte(fin, rsv1, opcode), len, None)
}

/// Appends an unmasked (server-to-client) frame header to `out`.
#[inline]
pub fn encode_header(fin: bool, rsv1: bool, opcode: OpCode, len: u64, out: &mut BytesMut) {
    let (h, n) = header(fin, rsv1, opcode, len);
    out.extend_from_slice(&h[..n]);
}

/// Appends a whole unmasked, unfragmented frame to `out`.
#[inline]
pub fn encode_frame(opcode: OpCode, payload: &[u8], out: &mut BytesMut) {
    out.reserve(header_len(payload.len() as u64) + payload.len());
    encode_header(true, false, opcode, payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// A whole unmasked frame as its own `Bytes`: encode a message once, then
/// hand clones of it to every subscriber.
pub fn frame_bytes(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(header_len(payload.len() as u64) + payload.len());
    encode_frame(opcode, payload, &mut out);
    out.freeze()
}

/// A whole unmasked text frame. `text` is a `str`, so the frame is valid.
pub fn text_frame(text: &str) -> Bytes {
    frame_bytes(OpCode::Text, text.as_bytes())
}

/// A whole unmasked binary frame.
pub fn binary_frame(payload: &[u8]) -> Bytes {
    frame_bytes(OpCode::Binary, payload)
}

/// Appends a masked (client-to-server) frame to `out` (a `BytesMut` or a
/// `Vec<u8>`): the header with the mask bit and `key`, then `payload` masked
/// with `key`.
#[inline]
pub fn encode_masked_frame<B: BufMut + AsMut<[u8]>>(
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload: &[u8],
    key: [u8; 4],
    out: &mut B,
) {
    debug_assert!(!opcode.is_control() || (fin && payload.len() <= MAX_CONTROL_PAYLOAD));
    encode_raw_frame(first_byte(fin, rsv1, opcode), payload, Some(key), out);
}

/// Appends a frame with any first byte `b0` (see [`raw_header`]), its
/// payload masked with `mask` when given, to `out` (a `BytesMut` or a
/// `Vec<u8>`). Nothing is checked: for frames that break the protocol on
/// purpose, and as the body of [`encode_masked_frame`].
#[inline]
pub fn encode_raw_frame<B: BufMut + AsMut<[u8]>>(
    b0: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    out: &mut B,
) {
    put_header(b0, payload.len() as u64, mask, out);
    let start = out.as_mut().len();
    out.put_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out.as_mut()[start..], key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> (FrameHeader, usize) {
        parse_header(buf).unwrap().expect("complete header")
    }

    fn encoded(opcode: OpCode, len: u64) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_header(true, false, opcode, len, &mut out);
        out.to_vec()
    }

    #[test]
    fn opcode_table() {
        for v in 0u8..16 {
            let op = OpCode::from_u8(v);
            match v {
                0 | 1 | 2 | 8 | 9 | 10 => assert_eq!(op.unwrap() as u8, v),
                _ => assert!(op.is_none(), "{v} is reserved"),
            }
        }
        assert!(OpCode::Close.is_control());
        assert!(OpCode::Ping.is_control());
        assert!(OpCode::Pong.is_control());
        assert!(!OpCode::Continuation.is_control());
        assert!(!OpCode::Text.is_control());
        assert!(!OpCode::Binary.is_control());
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 §5.7, unmasked "Hello".
        let (h, n) = parse(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
        assert_eq!(n, 2);
        assert_eq!(
            h,
            FrameHeader {
                fin: true,
                rsv1: false,
                rsv2: false,
                rsv3: false,
                opcode: OpCode::Text,
                mask: None,
                payload_len: 5
            }
        );
        // Masked "Hello".
        let (h, n) = parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f]);
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.payload_len, 5);
        // First fragment of an unmasked text message "Hel".
        let (h, _) = parse(&[0x01, 0x03]);
        assert!(!h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        // 256-byte binary message in a single unmasked frame.
        let (h, n) = parse(&[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!((h.opcode, h.payload_len, n), (OpCode::Binary, 256, 4));
        // 64 KiB binary message in a single unmasked frame.
        let (h, n) = parse(&[0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]);
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn rsv_bits_are_reported() {
        for (b0, rsv) in [
            (0xC1, (true, false, false)),
            (0xA1, (false, true, false)),
            (0x91, (false, false, true)),
            (0xF1, (true, true, true)),
        ] {
            let (h, _) = parse(&[b0, 0x00]);
            assert_eq!((h.rsv1, h.rsv2, h.rsv3), rsv, "byte {b0:#x}");
            assert!(h.fin);
        }
    }

    #[test]
    fn needs_more_bytes_until_header_complete() {
        assert_eq!(parse_header(&[]), Ok(None));
        assert_eq!(parse_header(&[0x81]), Ok(None));
        // 16-bit length, masked: 2 + 2 + 4 = 8 bytes.
        let full = [0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4];
        for cut in 0..full.len() {
            assert_eq!(parse_header(&full[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(parse(&full).1, 8);
        // 64-bit length, masked: 14 bytes.
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9];
        for cut in 0..full.len() {
            assert_eq!(parse_header(&full[..cut]), Ok(None), "cut {cut}");
        }
        let (h, n) = parse(&full);
        assert_eq!((h.payload_len, n, h.mask), (65536, 14, Some([9, 9, 9, 9])));
    }

    #[test]
    fn length_boundaries_round_trip() {
        for (len, hlen) in [
            (0u64, 2usize),
            (1, 2),
            (125, 2),
            (126, 4),
            (127, 4),
            (65535, 4),
            (65536, 10),
            (1 << 32, 10),
            (u64::MAX >> 1, 10),
        ] {
            let bytes = encoded(OpCode::Binary, len);
            assert_eq!(bytes.len(), hlen, "len {len}");
            assert_eq!(header_len(len), hlen);
            let (h, n) = parse(&bytes);
            assert_eq!((h.payload_len, n), (len, hlen));
        }
        assert_eq!(encoded(OpCode::Text, 125), [0x81, 125]);
        assert_eq!(encoded(OpCode::Text, 126), [0x81, 126, 0x00, 0x7E]);
        assert_eq!(encoded(OpCode::Text, 65535), [0x81, 126, 0xFF, 0xFF]);
        assert_eq!(
            encoded(OpCode::Text, 65536),
            [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        let (h, n) = parse(&[0x82, 126, 0x00, 0x05]);
        assert_eq!((h.payload_len, n), (5, 4));
        let (h, n) = parse(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0x00, 0x05]);
        assert_eq!((h.payload_len, n), (5, 10));
    }

    #[test]
    fn length_with_msb_set_is_an_error() {
        let buf = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse_header(&buf), Err(ProtocolError::LengthMsbSet));
        let buf = [0x82, 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(parse_header(&buf), Err(ProtocolError::LengthMsbSet));
        let buf = [0x82, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(parse(&buf).0.payload_len, u64::MAX >> 1);
    }

    #[test]
    fn reserved_opcodes_are_errors() {
        for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            assert_eq!(
                parse_header(&[0x80 | op, 0x80]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn control_frame_rules() {
        for op in [0x8u8, 0x9, 0xA] {
            // Not FIN.
            assert_eq!(
                parse_header(&[op, 0x80]),
                Err(ProtocolError::FragmentedControlFrame)
            );
            // 126 and 127 announce an extended length: too long for control.
            assert_eq!(
                parse_header(&[0x80 | op, 0xFE]),
                Err(ProtocolError::ControlFrameTooLong)
            );
            assert_eq!(
                parse_header(&[0x80 | op, 0x7F]),
                Err(ProtocolError::ControlFrameTooLong)
            );
            // 125 is fine.
            let (h, _) = parse(&[0x80 | op, 0x80 | 125, 1, 2, 3, 4]);
            assert_eq!(h.payload_len, 125);
        }
        // Data frames may be fragmented and long.
        assert!(parse_header(&[0x01, 0x7E, 0x10, 0x00]).unwrap().is_some());
    }

    #[test]
    fn encode_frame_layout() {
        let mut out = BytesMut::new();
        encode_frame(OpCode::Text, b"Hello", &mut out);
        assert_eq!(&out[..], &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
        encode_frame(OpCode::Pong, b"", &mut out);
        assert_eq!(&out[7..], &[0x8A, 0x00]);
        let mut out = BytesMut::new();
        encode_header(false, true, OpCode::Binary, 3, &mut out);
        encode_header(true, false, OpCode::Continuation, 0, &mut out);
        assert_eq!(&out[..], &[0x42, 0x03, 0x80, 0x00]);
    }

    #[test]
    fn frame_bytes_helpers() {
        assert_eq!(
            &text_frame("Hello")[..],
            &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']
        );
        let payload = vec![7u8; 300];
        let f = binary_frame(&payload);
        assert_eq!(&f[..4], &[0x82, 126, 0x01, 0x2C]);
        assert_eq!(&f[4..], &payload[..]);
        let f = frame_bytes(OpCode::Ping, b"hi");
        assert_eq!(&f[..], &[0x89, 0x02, b'h', b'i']);
    }

    #[test]
    fn masked_frame_matches_rfc_and_parses_back() {
        let mut out = BytesMut::new();
        encode_masked_frame(
            true,
            false,
            OpCode::Text,
            b"Hello",
            [0x37, 0xfa, 0x21, 0x3d],
            &mut out,
        );
        assert_eq!(
            &out[..],
            &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let payload: Vec<u8> = (0..70000u32).map(|i| i as u8).collect();
        let mut out = BytesMut::new();
        encode_masked_frame(
            false,
            true,
            OpCode::Binary,
            &payload,
            [1, 2, 3, 4],
            &mut out,
        );
        let (h, n) = parse(&out);
        assert_eq!(n, 14);
        assert!(!h.fin && h.rsv1);
        assert_eq!(h.payload_len, 70000);
        let mut body = out[n..].to_vec();
        apply_mask(&mut body, h.mask.unwrap());
        assert_eq!(body, payload);
    }
}
