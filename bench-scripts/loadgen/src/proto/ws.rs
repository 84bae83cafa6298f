//! WebSocket client side (RFC 6455), pure: the handshake request and the
//! masked frames come from ringcast's own protocol code
//! (`ringcast::proto::ws`, the same the server and its client library use);
//! here is only the load generator's incremental frame reader, which hands
//! out messages as borrowed slices of the read buffer. No I/O here.

pub use ringcast::proto::ws::frame::OpCode;
use ringcast::proto::ws::frame::{encode_masked_frame, parse_header};
use ringcast::proto::ws::handshake::ClientRequest;
pub use ringcast::proto::ws::handshake::{accept_key, client_key};
use ringcast::proto::ws::mask::apply_mask;

/// Largest message accepted from a server (bounded memory).
pub const MAX_MESSAGE: usize = 64 << 20;

pub fn handshake_request(host: &str, path: &str, key: &str) -> Vec<u8> {
    ClientRequest::new(path, host, key).head().into_bytes()
}

/// Appends one masked frame (FIN set) to `out`.
#[inline]
pub fn encode_masked(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], mask: [u8; 4]) {
    encode_masked_frame(true, false, opcode, payload, mask, out);
}

/// Appends a masked close frame with `code` to `out`.
pub fn encode_close(out: &mut Vec<u8>, code: u16, mask: [u8; 4]) {
    encode_masked(out, OpCode::Close, &code.to_be_bytes(), mask);
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
        let (h, hlen) = match parse_header(&buf[at..]).map_err(|e| e.to_string())? {
            Some(h) => h,
            None => return Ok(at),
        };
        if h.rsv1 || h.rsv2 || h.rsv3 {
            return Err("reserved bits set without an extension".into());
        }
        if h.payload_len > MAX_MESSAGE as u64
            || frag.len() as u64 + h.payload_len > MAX_MESSAGE as u64
        {
            return Err("message too large".into());
        }
        let end = at + hlen + h.payload_len as usize;
        if buf.len() < end {
            return Ok(at);
        }
        let mut payload = &buf[at + hlen..end];
        if let Some(m) = h.mask {
            unmask.clear();
            unmask.extend_from_slice(payload);
            apply_mask(unmask, m);
            payload = unmask;
        }
        match h.opcode {
            OpCode::Text | OpCode::Binary => {
                if frag_text.is_some() {
                    return Err("new data frame inside a fragmented message".into());
                }
                let text = h.opcode == OpCode::Text;
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
            OpCode::Continuation => {
                let text = frag_text.ok_or("continuation frame without a message")?;
                frag.extend_from_slice(payload);
                if h.fin {
                    on(WsEvent::Message { text, data: frag });
                    frag.clear();
                    *frag_text = None;
                }
            }
            OpCode::Ping => on(WsEvent::Ping(payload)),
            OpCode::Pong => on(WsEvent::Pong(payload)),
            OpCode::Close => {
                let code = if payload.len() >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                };
                on(WsEvent::Close { code });
            }
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast::proto::ws::frame::{encode_raw_frame, first_byte};

    /// An unmasked (server) frame.
    fn server_frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_raw_frame(first_byte(fin, false, op), payload, None, &mut v);
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
        s.extend(server_frame(true, OpCode::Text, b"hi"));
        s.extend(server_frame(false, OpCode::Binary, b"ab"));
        s.extend(server_frame(true, OpCode::Ping, b"p"));
        s.extend(server_frame(false, OpCode::Continuation, b"cd"));
        s.extend(server_frame(true, OpCode::Continuation, b"ef"));
        s.extend(server_frame(true, OpCode::Binary, &mid));
        s.extend(server_frame(true, OpCode::Binary, &big));
        s.extend(server_frame(true, OpCode::Pong, b""));
        s.extend(server_frame(true, OpCode::Close, &1001u16.to_be_bytes()));
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
        encode_masked(&mut f, OpCode::Text, b"secret", [1, 2, 3, 4]);
        assert_eq!(collect(&[&f]), vec![Owned::Msg(true, b"secret".to_vec())]);
    }
}
