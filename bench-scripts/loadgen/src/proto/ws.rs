//! WebSocket client side (RFC 6455), pure: handshake request and accept
//! check, masked frame encoding, and an incremental frame reader that
//! reassembles fragmented messages. No I/O here.

use base64::Engine;
use sha1::{Digest, Sha1};

pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Largest message accepted from a server (bounded memory).
pub const MAX_MESSAGE: usize = 64 << 20;

/// `Sec-WebSocket-Key` from 16 random bytes.
pub fn key_from(nonce: [u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// The `Sec-WebSocket-Accept` a server must answer to `key`.
pub fn accept_for(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

pub fn handshake_request(host: &str, path: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// XORs `buf` with `mask`, as if `buf` started at byte `offset` of the payload.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = [0u8; 4];
    for (i, b) in m.iter_mut().enumerate() {
        *b = mask[(offset + i) % 4];
    }
    let word = u32::from_ne_bytes(m) as u64;
    let wide = word | (word << 32);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes(c.try_into().unwrap()) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// Appends one masked frame (FIN set) to `out`.
pub fn encode_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// Appends a masked close frame with `code` to `out`.
pub fn encode_close(out: &mut Vec<u8>, code: u16, mask: [u8; 4]) {
    encode_masked(out, OP_CLOSE, &code.to_be_bytes(), mask);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    pub fin: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
    /// Header bytes (2 to 14).
    pub hlen: usize,
}

/// Parses a frame header at the start of `buf`. `Ok(None)`: incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<FrameHead>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    if b0 & 0x70 != 0 {
        return Err("reserved bits set without an extension".into());
    }
    let opcode = b0 & 0x0F;
    let fin = b0 & 0x80 != 0;
    match opcode {
        OP_CONT | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin {
                return Err("fragmented control frame".into());
            }
            if b1 & 0x7F > 125 {
                return Err("control frame longer than 125 bytes".into());
            }
        }
        _ => return Err(format!("reserved opcode {opcode:#x}")),
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut hlen) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let n = u64::from_be_bytes(buf[2..10].try_into().unwrap());
            if n >> 63 != 0 {
                return Err("64-bit length with the top bit set".into());
            }
            (n, 10)
        }
        n => (n as u64, 2),
    };
    let mask = if masked {
        if buf.len() < hlen + 4 {
            return Ok(None);
        }
        let m = [buf[hlen], buf[hlen + 1], buf[hlen + 2], buf[hlen + 3]];
        hlen += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(FrameHead {
        fin,
        opcode,
        mask,
        len,
        hlen,
    }))
}

/// What the reader hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEvent<'a> {
    Message { text: bool, data: &'a [u8] },
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    Close { code: u16 },
}

/// Incremental frame reader: feed it bytes as they arrive.
#[derive(Debug, Default)]
pub struct WsReader {
    /// Bytes of an incomplete frame carried to the next feed.
    pending: Vec<u8>,
    /// Payload of a fragmented message being assembled.
    frag: Vec<u8>,
    frag_text: Option<bool>,
    /// Scratch for unmasking a masked server frame (tolerated, not expected).
    unmask: Vec<u8>,
}

impl WsReader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, input: &[u8], on: &mut dyn FnMut(WsEvent<'_>)) -> Result<(), String> {
        let WsReader {
            pending,
            frag,
            frag_text,
            unmask,
        } = self;
        if pending.is_empty() {
            let used = parse_frames(input, frag, frag_text, unmask, on)?;
            pending.extend_from_slice(&input[used..]);
        } else {
            pending.extend_from_slice(input);
            let used = parse_frames(pending, frag, frag_text, unmask, on)?;
            pending.drain(..used);
        }
        if pending.capacity() > 256 * 1024 && pending.len() < 4096 {
            pending.shrink_to(4096);
        }
        Ok(())
    }
}

fn parse_frames(
    buf: &[u8],
    frag: &mut Vec<u8>,
    frag_text: &mut Option<bool>,
    unmask: &mut Vec<u8>,
    on: &mut dyn FnMut(WsEvent<'_>),
) -> Result<usize, String> {
    let mut at = 0;
    loop {
        let h = match parse_head(&buf[at..])? {
            Some(h) => h,
            None => return Ok(at),
        };
        if h.len > MAX_MESSAGE as u64 || frag.len() as u64 + h.len > MAX_MESSAGE as u64 {
            return Err("message too large".into());
        }
        let end = at + h.hlen + h.len as usize;
        if buf.len() < end {
            return Ok(at);
        }
        let mut payload = &buf[at + h.hlen..end];
        if let Some(m) = h.mask {
            unmask.clear();
            unmask.extend_from_slice(payload);
            apply_mask(unmask, m, 0);
            payload = unmask;
        }
        match h.opcode {
            OP_TEXT | OP_BINARY => {
                if frag_text.is_some() {
                    return Err("new data frame inside a fragmented message".into());
                }
                let text = h.opcode == OP_TEXT;
                if h.fin {
                    on(WsEvent::Message {
                        text,
                        data: payload,
                    });
                } else {
                    *frag_text = Some(text);
                    frag.extend_from_slice(payload);
                }
            }
            OP_CONT => {
                let text = frag_text.ok_or("continuation frame without a message")?;
                frag.extend_from_slice(payload);
                if h.fin {
                    on(WsEvent::Message { text, data: frag });
                    frag.clear();
                    *frag_text = None;
                }
            }
            OP_PING => on(WsEvent::Ping(payload)),
            OP_PONG => on(WsEvent::Pong(payload)),
            OP_CLOSE => {
                let code = if payload.len() >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                };
                on(WsEvent::Close { code });
            }
            _ => unreachable!("opcode checked in parse_head"),
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(key_from(*b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn masked_encoding_matches_rfc_example() {
        // RFC 6455 5.7: a masked "Hello".
        let mut out = Vec::new();
        encode_masked(&mut out, OP_TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn mask_is_an_involution_at_any_offset() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for off in 0..4 {
            let mut b = data.clone();
            apply_mask(&mut b, [1, 2, 3, 4], off);
            for (i, (x, y)) in b.iter().zip(&data).enumerate() {
                assert_eq!(*x, y ^ [1, 2, 3, 4][(i + off) % 4]);
            }
            apply_mask(&mut b, [1, 2, 3, 4], off);
            assert_eq!(b, data);
        }
    }

    #[test]
    fn length_encodings_round_trip() {
        for n in [0usize, 1, 125, 126, 127, 1000, 65535, 65536, 70000] {
            let payload = vec![b'a'; n];
            let mut out = Vec::new();
            encode_masked(&mut out, OP_BINARY, &payload, [9, 8, 7, 6]);
            let h = parse_head(&out).unwrap().unwrap();
            assert_eq!(h.len as usize, n);
            assert_eq!(h.hlen, out.len() - n);
            assert_eq!(h.mask, Some([9, 8, 7, 6]));
            // Any prefix shorter than the header is incomplete.
            for cut in 0..h.hlen {
                assert_eq!(parse_head(&out[..cut]).unwrap(), None);
            }
        }
    }

    fn server_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(if fin { 0x80 } else { 0 }) | op];
        let n = payload.len();
        if n < 126 {
            v.push(n as u8);
        } else if n <= 0xFFFF {
            v.push(126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            v.push(127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Msg(bool, Vec<u8>),
        Ping(Vec<u8>),
        Pong,
        Close(u16),
    }

    fn collect(pieces: &[&[u8]]) -> Vec<Owned> {
        let mut r = WsReader::new();
        let mut got = Vec::new();
        for p in pieces {
            r.feed(p, &mut |e| {
                got.push(match e {
                    WsEvent::Message { text, data } => Owned::Msg(text, data.to_vec()),
                    WsEvent::Ping(p) => Owned::Ping(p.to_vec()),
                    WsEvent::Pong(_) => Owned::Pong,
                    WsEvent::Close { code } => Owned::Close(code),
                })
            })
            .unwrap();
        }
        got
    }

    fn sample_stream() -> (Vec<u8>, Vec<Owned>) {
        let big = vec![b'z'; 70_000];
        let mid = vec![b'm'; 300];
        let mut s = Vec::new();
        s.extend(server_frame(true, OP_TEXT, b"hi"));
        s.extend(server_frame(false, OP_BINARY, b"ab"));
        s.extend(server_frame(true, OP_PING, b"p"));
        s.extend(server_frame(false, OP_CONT, b"cd"));
        s.extend(server_frame(true, OP_CONT, b"ef"));
        s.extend(server_frame(true, OP_BINARY, &mid));
        s.extend(server_frame(true, OP_BINARY, &big));
        s.extend(server_frame(true, OP_PONG, b""));
        s.extend(server_frame(true, OP_CLOSE, &1001u16.to_be_bytes()));
        let want = vec![
            Owned::Msg(true, b"hi".to_vec()),
            Owned::Ping(b"p".to_vec()),
            Owned::Msg(false, b"abcdef".to_vec()),
            Owned::Msg(false, mid),
            Owned::Msg(false, big),
            Owned::Pong,
            Owned::Close(1001),
        ];
        (s, want)
    }

    #[test]
    fn reads_whole_stream() {
        let (s, want) = sample_stream();
        assert_eq!(collect(&[&s]), want);
    }

    #[test]
    fn reads_stream_split_at_every_byte() {
        let (s, want) = sample_stream();
        let pieces: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(collect(&pieces), want);
    }

    #[test]
    fn reads_stream_split_in_two_everywhere_in_the_small_frames() {
        let (s, want) = sample_stream();
        for cut in 0..400 {
            assert_eq!(collect(&[&s[..cut], &s[cut..]]), want, "cut {cut}");
        }
    }

    #[test]
    fn rejects_protocol_errors() {
        let bad: [&[u8]; 5] = [
            &[0xC1, 0x00],             // RSV1 without extension
            &[0x83, 0x00],             // reserved opcode
            &[0x09, 0x00],             // fragmented ping
            &[0x89, 0x7E, 0x00, 0x80], // ping longer than 125
            &[0x80, 0x01, b'x'],       // continuation without a message
        ];
        for b in bad {
            let mut r = WsReader::new();
            assert!(r.feed(b, &mut |_| {}).is_err(), "{b:?}");
        }
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert!(WsReader::new().feed(&huge, &mut |_| {}).is_err());
    }

    #[test]
    fn masked_server_frame_is_unmasked() {
        let mut f = Vec::new();
        encode_masked(&mut f, OP_TEXT, b"secret", [1, 2, 3, 4]);
        assert_eq!(collect(&[&f]), vec![Owned::Msg(true, b"secret".to_vec())]);
    }
}
