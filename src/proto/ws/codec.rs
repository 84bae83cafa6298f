//! One end of a WebSocket stream: [`Decoder`] turns the peer's bytes into
//! events (RFC 6455 §5–§8: masking, fragmentation, control frames, UTF-8,
//! close payloads, size limits, permessage-deflate), and [`Encoder`] appends
//! our frames to an output buffer.
//!
//! Both serve either [`Role`]. The server role is the hot path and the
//! default ([`Decoder::new`], [`Encoder::new`]): it requires masked frames
//! from the peer and sends its own unmasked. The client role
//! ([`Decoder::with_role`], [`Encoder::with_keys`]) is the mirror image: a
//! masked frame from the server is a protocol error (§5.1), and every frame
//! it sends is masked with a fresh key from a [`Masking`] source. The
//! permessage-deflate parameters are the same agreed set on both ends; each
//! role inflates with the peer's window and takes its own for compressing.
//!
//! The decoder takes whole frames out of the caller's read buffer and never
//! copies a single-frame uncompressed message: its payload is unmasked in
//! place and split off as `Bytes`. Limits are checked on the header, so a
//! frame or message that is too big is refused before its payload is read.
//!
//! The encoder only appends: a connection corks everything it produces while
//! handling one read into one buffer and writes it once.

use bytes::{Buf, Bytes, BytesMut};

use super::close::{
    parse_close_payload, write_close_payload, CloseError, INVALID_PAYLOAD, MESSAGE_TOO_BIG,
    PROTOCOL_ERROR,
};
use super::deflate::{
    encode_frame_no_context, DeflateParams, Deflater, InflateError, Inflater, MIN_COMPRESS_LEN,
};
use super::frame::{
    encode_frame, encode_masked_frame, encode_raw_frame, first_byte, parse_header, raw_header,
    FrameHeader, OpCode, MAX_CONTROL_PAYLOAD,
};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// Which end of the connection a codec speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Receives unmasked frames, sends masked ones.
    Client,
}

/// Limits and extensions for one connection's receive side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Largest frame payload accepted (bytes on the wire). The read buffer
    /// must be able to hold a frame of this size plus its header.
    pub max_frame_size: usize,
    /// Largest message accepted, after reassembly and decompression.
    pub max_message_size: usize,
    /// permessage-deflate, when negotiated.
    pub deflate: Option<DeflateParams>,
}

impl Default for DecoderConfig {
    fn default() -> DecoderConfig {
        DecoderConfig {
            max_frame_size: 1 << 20,
            max_message_size: 1 << 20,
            deflate: None,
        }
    }
}

/// What the peer sent: a whole message or a control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole text message, reassembled and decompressed; valid UTF-8.
    Text(Bytes),
    /// A whole binary message, reassembled and decompressed.
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// The peer's close frame, validated. Nothing is decoded after it.
    Close {
        code: Option<u16>,
        reason: String,
    },
}

/// The receive-side state of one connection.
pub struct Decoder {
    cfg: DecoderConfig,
    role: Role,
    /// Text or Binary while a message is being assembled.
    message: Option<OpCode>,
    /// The message being assembled is compressed (RSV1 on its first frame).
    compressed: bool,
    /// The message so far (decompressed, when compressed).
    assembled: BytesMut,
    /// Compressed bytes received for the current message.
    wire_len: usize,
    utf8: Utf8Validator,
    /// Created on the first compressed message. Dropped after each message
    /// when the peer uses no context takeover, so idle connections hold no
    /// inflate state.
    inflater: Option<Box<Inflater>>,
    closed: bool,
}

const fn fail(code: u16, reason: &'static str) -> CloseError {
    CloseError::new(code, reason)
}

fn data_event(opcode: OpCode, data: Bytes) -> Event {
    if opcode == OpCode::Text {
        Event::Text(data)
    } else {
        Event::Binary(data)
    }
}

impl Decoder {
    /// A decoder in the server role: it reads a client's frames.
    pub fn new(cfg: DecoderConfig) -> Decoder {
        Decoder::with_role(cfg, Role::Server)
    }

    /// A decoder for `role`, the end this side speaks for: `Role::Client`
    /// reads a server's frames.
    pub fn with_role(cfg: DecoderConfig, role: Role) -> Decoder {
        Decoder {
            cfg,
            role,
            message: None,
            compressed: false,
            assembled: BytesMut::new(),
            wire_len: 0,
            utf8: Utf8Validator::new(),
            inflater: None,
            closed: false,
        }
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Holds nothing a new decoder with the same settings would not (no
    /// message in progress, no inflate context, not closed): it can be
    /// dropped and made again.
    pub fn is_fresh(&self) -> bool {
        self.message.is_none() && self.inflater.is_none() && !self.closed
    }

    /// A fragmented message has started and not finished.
    pub fn message_in_progress(&self) -> bool {
        self.message.is_some()
    }

    /// The peer's close frame has been decoded.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Takes complete frames from the front of `buf` until one completes an
    /// event. `Ok(None)`: more bytes are needed (an incomplete frame stays in
    /// `buf` untouched), or the peer has closed. `Err`: fail the
    /// connection with that close code; the decoder must not be used again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, CloseError> {
        loop {
            if self.closed {
                return Ok(None);
            }
            let (header, header_len) = match parse_header(buf) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(None),
                Err(e) => return Err(fail(PROTOCOL_ERROR, e.reason())),
            };
            self.check_header(&header)?;
            // check_header bounded the length by max_frame_size.
            let len = header.payload_len as usize;
            if buf.len() - header_len < len {
                return Ok(None);
            }
            buf.advance(header_len);
            let mut payload = buf.split_to(len);
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key);
            }
            if let Some(event) = self.on_frame(&header, payload)? {
                return Ok(Some(event));
            }
        }
    }

    /// Every rule that can be judged from the header alone.
    fn check_header(&self, h: &FrameHeader) -> Result<(), CloseError> {
        // Client frames are masked, server frames are not (RFC 6455 §5.1).
        if h.mask.is_none() != (self.role == Role::Client) {
            return Err(fail(
                PROTOCOL_ERROR,
                match self.role {
                    Role::Server => "client frame is not masked",
                    Role::Client => "server frame is masked",
                },
            ));
        }
        if h.rsv2 || h.rsv3 {
            return Err(fail(
                PROTOCOL_ERROR,
                "RSV2/RSV3 set without a negotiated extension",
            ));
        }
        if h.rsv1 {
            if self.cfg.deflate.is_none() {
                return Err(fail(
                    PROTOCOL_ERROR,
                    "RSV1 set without a negotiated extension",
                ));
            }
            if !matches!(h.opcode, OpCode::Text | OpCode::Binary) {
                return Err(fail(
                    PROTOCOL_ERROR,
                    "RSV1 set on a frame that does not start a message",
                ));
            }
        }
        if h.payload_len > self.cfg.max_frame_size as u64 {
            return Err(fail(MESSAGE_TOO_BIG, "frame exceeds the size limit"));
        }
        let len = h.payload_len as usize;
        match h.opcode {
            OpCode::Continuation => {
                if self.message.is_none() {
                    return Err(fail(
                        PROTOCOL_ERROR,
                        "continuation frame without a message to continue",
                    ));
                }
                let so_far = if self.compressed {
                    self.wire_len
                } else {
                    self.assembled.len()
                };
                if so_far + len > self.cfg.max_message_size {
                    return Err(fail(MESSAGE_TOO_BIG, "message exceeds the size limit"));
                }
            }
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(fail(
                        PROTOCOL_ERROR,
                        "new data frame before the previous message finished",
                    ));
                }
                if len > self.cfg.max_message_size {
                    return Err(fail(MESSAGE_TOO_BIG, "message exceeds the size limit"));
                }
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => {}
        }
        Ok(())
    }

    fn on_frame(
        &mut self,
        h: &FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Event>, CloseError> {
        match h.opcode {
            OpCode::Ping => Ok(Some(Event::Ping(payload.freeze()))),
            OpCode::Pong => Ok(Some(Event::Pong(payload.freeze()))),
            OpCode::Close => {
                let close = parse_close_payload(&payload)?;
                self.closed = true;
                Ok(Some(Event::Close {
                    code: close.code,
                    reason: close.reason.to_owned(),
                }))
            }
            OpCode::Text | OpCode::Binary if h.fin && !h.rsv1 => {
                // A whole message in one frame: no copy.
                if h.opcode == OpCode::Text && std::str::from_utf8(&payload).is_err() {
                    return Err(fail(INVALID_PAYLOAD, "text message is not valid UTF-8"));
                }
                Ok(Some(data_event(h.opcode, payload.freeze())))
            }
            OpCode::Text | OpCode::Binary => {
                self.message = Some(h.opcode);
                self.compressed = h.rsv1;
                self.append(&payload, h.fin)
            }
            OpCode::Continuation => self.append(&payload, h.fin),
        }
    }

    /// Adds a fragment to the message being assembled; the last one yields
    /// the message.
    fn append(&mut self, payload: &[u8], fin: bool) -> Result<Option<Event>, CloseError> {
        let Some(opcode) = self.message else {
            unreachable!("check_header rejects a continuation without a message");
        };
        let text = opcode == OpCode::Text;
        if self.compressed {
            let Some(params) = self.cfg.deflate else {
                unreachable!("check_header rejects RSV1 without deflate");
            };
            self.wire_len += payload.len();
            let (window_bits, no_context_takeover) = peer_compression(self.role, &params);
            let inflater = self
                .inflater
                .get_or_insert_with(|| Box::new(Inflater::new(window_bits, no_context_takeover)));
            let start = self.assembled.len();
            inflater
                .inflate(payload, fin, &mut self.assembled, self.cfg.max_message_size)
                .map_err(|e| match e {
                    InflateError::TooBig => fail(MESSAGE_TOO_BIG, "message exceeds the size limit"),
                    InflateError::Corrupt => fail(INVALID_PAYLOAD, "invalid compressed data"),
                })?;
            if text && self.utf8.feed(&self.assembled[start..]).is_err() {
                return Err(fail(INVALID_PAYLOAD, "text message is not valid UTF-8"));
            }
        } else {
            if text && self.utf8.feed(payload).is_err() {
                return Err(fail(INVALID_PAYLOAD, "text message is not valid UTF-8"));
            }
            self.assembled.extend_from_slice(payload);
        }
        if !fin {
            return Ok(None);
        }
        if text && self.utf8.finish().is_err() {
            return Err(fail(INVALID_PAYLOAD, "text message is not valid UTF-8"));
        }
        if self.compressed
            && self
                .cfg
                .deflate
                .is_some_and(|p| peer_compression(self.role, &p).1)
        {
            self.inflater = None;
        }
        self.message = None;
        self.compressed = false;
        self.wire_len = 0;
        let data = std::mem::take(&mut self.assembled).freeze();
        Ok(Some(data_event(opcode, data)))
    }
}

/// The window and the no-context-takeover promise of the end opposite
/// `role`: what its messages are inflated with.
fn peer_compression(role: Role, p: &DeflateParams) -> (u8, bool) {
    match role {
        Role::Server => (p.client_max_window_bits, p.client_no_context_takeover),
        Role::Client => (p.server_max_window_bits, p.server_no_context_takeover),
    }
}

/// Where the masking key of each frame an [`Encoder`] appends comes from;
/// its type gives the encoder its role.
///
/// `next_key` takes `&self` so that the encoder's control-frame methods do
/// too (the server shares its encoder behind a `RefCell`); a source with
/// state keeps it in a `Cell`.
pub trait Masking {
    /// The role of an encoder with these keys: only `Role::Client` masks.
    const ROLE: Role;
    /// The key for the next frame; asked in the client role only.
    fn next_key(&self) -> [u8; 4];
}

/// The server role: frames go out unmasked. Costs nothing: the encoder's
/// role checks are constants, and its masking branches compile away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unmasked;

impl Masking for Unmasked {
    const ROLE: Role = Role::Server;

    fn next_key(&self) -> [u8; 4] {
        unreachable!("a server's frames are not masked")
    }
}

/// The client role: every frame masked with a fresh key from the closure
/// (a random source for a real client, a fixed sequence for a test).
pub struct Masked<F>(pub F);

impl<F: Fn() -> [u8; 4]> Masking for Masked<F> {
    const ROLE: Role = Role::Client;

    #[inline]
    fn next_key(&self) -> [u8; 4] {
        (self.0)()
    }
}

/// The send side of one connection: appends frames to a buffer. `M` gives
/// the role: [`Unmasked`] (server, the default) or a key source (client).
pub struct Encoder<M = Unmasked> {
    deflate: Option<DeflateParams>,
    /// A server's only with server context takeover; without it, the
    /// worker's shared compressor is used and the connection holds none.
    /// A client's from its first compressed message on.
    deflater: Option<Box<Deflater>>,
    keys: M,
}

impl Encoder {
    /// An encoder in the server role.
    pub fn new(deflate: Option<DeflateParams>) -> Encoder {
        Encoder::with_keys(deflate, Unmasked)
    }
}

impl<M: Masking> Encoder<M> {
    /// An encoder in the role of `keys`: the client's for a [`Masked`]
    /// source, which masks every frame with its next key.
    pub fn with_keys(deflate: Option<DeflateParams>, keys: M) -> Encoder<M> {
        Encoder {
            deflate,
            deflater: None,
            keys,
        }
    }

    pub fn role(&self) -> Role {
        M::ROLE
    }

    /// The masking key for the next frame: none in the server role.
    #[inline(always)]
    fn key(&self) -> Option<[u8; 4]> {
        match M::ROLE {
            Role::Server => None,
            Role::Client => Some(self.keys.next_key()),
        }
    }

    /// The permessage-deflate parameters agreed, if any.
    pub fn params(&self) -> Option<DeflateParams> {
        self.deflate
    }

    /// Whether data messages may go out compressed: permessage-deflate was
    /// negotiated and, for a client, the server allows it a window of at
    /// least 9 bits (zlib cannot produce an 8-bit one).
    pub fn compresses(&self) -> bool {
        match (M::ROLE, self.deflate) {
            (Role::Client, Some(p)) => p.client_max_window_bits >= 9,
            (_, deflate) => deflate.is_some(),
        }
    }

    /// Appends a text message; returns whether it went out compressed.
    pub fn text(&mut self, text: &str, out: &mut BytesMut) -> bool {
        self.data(OpCode::Text, text.as_bytes(), out)
    }

    /// Appends a binary message; returns whether it went out compressed.
    pub fn binary(&mut self, payload: &[u8], out: &mut BytesMut) -> bool {
        self.data(OpCode::Binary, payload, out)
    }

    /// Appends a data message (`Text` payloads must be UTF-8), compressed
    /// when deflate was negotiated and the payload is worth compressing: a
    /// server compresses from [`MIN_COMPRESS_LEN`] bytes, a client every
    /// non-empty message (its messages are few, and each one exercises the
    /// server's inflater).
    pub fn data(&mut self, opcode: OpCode, payload: &[u8], out: &mut BytesMut) -> bool {
        debug_assert!(matches!(opcode, OpCode::Text | OpCode::Binary));
        if let Some(key) = self.key() {
            return self.client_data(opcode, payload, key, out);
        }
        let params = match self.deflate {
            Some(p) if payload.len() >= MIN_COMPRESS_LEN => p,
            _ => {
                encode_frame(opcode, payload, out);
                return false;
            }
        };
        if params.server_no_context_takeover {
            return encode_frame_no_context(opcode, payload, params.server_max_window_bits, out);
        }
        self.deflater
            .get_or_insert_with(|| Box::new(Deflater::new(params.server_max_window_bits, false)))
            .encode_frame(opcode, payload, false, out)
    }

    /// [`Encoder::data`] in the client role: compressed with the client's
    /// window and context promise, masked with `key`.
    fn client_data(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        key: [u8; 4],
        out: &mut BytesMut,
    ) -> bool {
        let params = match self.deflate {
            Some(p) if self.compresses() && !payload.is_empty() => p,
            _ => {
                encode_masked_frame(true, false, opcode, payload, key, out);
                return false;
            }
        };
        let deflater = self.deflater.get_or_insert_with(|| {
            Box::new(Deflater::new(
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ))
        });
        let mut body = BytesMut::new();
        deflater.compress_into(payload, &mut body);
        encode_masked_frame(true, true, opcode, &body, key, out);
        true
    }

    /// Appends one uncompressed frame exactly as given (FIN, RSV1, opcode;
    /// nothing is checked, so a fragmented or long control frame goes out
    /// too), masked in the client role: for fragmenting by hand and for
    /// tests of a peer's error handling.
    pub fn frame(&self, fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8], out: &mut BytesMut) {
        encode_raw_frame(first_byte(fin, rsv1, opcode), payload, self.key(), out);
    }

    /// Appends a whole uncompressed frame in this encoder's role.
    #[inline]
    fn whole(&self, opcode: OpCode, payload: &[u8], out: &mut BytesMut) {
        match self.key() {
            Some(key) => encode_masked_frame(true, false, opcode, payload, key, out),
            None => encode_frame(opcode, payload, out),
        }
    }

    /// Appends a ping. Payloads over 125 bytes are cut to 125.
    pub fn ping(&self, payload: &[u8], out: &mut BytesMut) {
        debug_assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        self.whole(
            OpCode::Ping,
            &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)],
            out,
        );
    }

    /// Appends a pong (echo the ping's payload). Payloads over 125 bytes are
    /// cut to 125.
    pub fn pong(&self, payload: &[u8], out: &mut BytesMut) {
        debug_assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        self.whole(
            OpCode::Pong,
            &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)],
            out,
        );
    }

    /// Appends a close frame: empty for `None`, else the code and the reason
    /// cut to fit in 125 bytes.
    pub fn close(&self, code: Option<u16>, reason: &str, out: &mut BytesMut) {
        let len = match code {
            None => 0,
            Some(_) => 2 + super::close::truncate_reason(reason).len(),
        };
        let key = self.key();
        let (h, n) = raw_header(first_byte(true, false, OpCode::Close), len as u64, key);
        out.extend_from_slice(&h[..n]);
        let start = out.len();
        write_close_payload(code, reason, out);
        if let Some(key) = key {
            apply_mask(&mut out[start..], key);
        }
    }

    /// Appends the close frame that fails the connection for `err`.
    pub fn close_error(&self, err: &CloseError, out: &mut BytesMut) {
        self.close(Some(err.code), err.reason, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::proto::ws::test_util::noise;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        frame_rsv(fin, false, opcode, payload)
    }

    fn frame_rsv(fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_masked_frame(fin, rsv1, opcode, payload, KEY, &mut out);
        out.to_vec()
    }

    fn decoder() -> Decoder {
        Decoder::new(DecoderConfig::default())
    }

    fn deflate_decoder(client_no_context_takeover: bool) -> Decoder {
        Decoder::new(DecoderConfig {
            deflate: Some(DeflateParams {
                client_no_context_takeover,
                server_no_context_takeover: true,
                ..DeflateParams::default()
            }),
            ..DecoderConfig::default()
        })
    }

    /// Decodes every event in `bytes`, stopping at the first error.
    fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Event>, CloseError> {
        let mut buf = BytesMut::from(bytes);
        let mut events = Vec::new();
        while let Some(e) = d.decode(&mut buf)? {
            events.push(e);
        }
        Ok(events)
    }

    fn err_code(bytes: &[u8]) -> u16 {
        decode_all(&mut decoder(), bytes).unwrap_err().code
    }

    fn text(s: &str) -> Event {
        Event::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn single_text_frame() {
        let events = decode_all(&mut decoder(), &frame(true, OpCode::Text, b"Hello")).unwrap();
        assert_eq!(events, vec![text("Hello")]);
        // The RFC's masked "Hello" byte for byte.
        let rfc = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            decode_all(&mut decoder(), &rfc).unwrap(),
            vec![text("Hello")]
        );
    }

    #[test]
    fn single_frame_message_is_not_copied() {
        let mut buf = BytesMut::from(&frame(true, OpCode::Binary, &[5u8; 300])[..]);
        let base = buf.as_ptr() as usize;
        let end = base + buf.len();
        let Some(Event::Binary(data)) = decoder().decode(&mut buf).unwrap() else {
            panic!("expected a binary message");
        };
        let at = data.as_ptr() as usize;
        assert!(at >= base && at + data.len() <= end, "payload was copied");
        assert_eq!(&data[..], &[5u8; 300][..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn empty_messages() {
        let bytes = cat(&[
            frame(true, OpCode::Text, b""),
            frame(true, OpCode::Binary, b""),
        ]);
        assert_eq!(
            decode_all(&mut decoder(), &bytes).unwrap(),
            vec![Event::Text(Bytes::new()), Event::Binary(Bytes::new())]
        );
    }

    #[test]
    fn length_boundaries_byte_by_byte() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let wire = frame(true, OpCode::Binary, &payload);
            let mut d = decoder();
            let mut buf = BytesMut::new();
            // Every prefix shorter than the frame yields nothing and consumes nothing.
            let step = if len > 1000 { 997 } else { 1 };
            let mut fed = 0;
            while fed + step < wire.len() {
                buf.extend_from_slice(&wire[fed..fed + step]);
                fed += step;
                assert_eq!(d.decode(&mut buf).unwrap(), None, "len {len} fed {fed}");
                assert_eq!(buf.len(), fed);
            }
            buf.extend_from_slice(&wire[fed..]);
            let event = d.decode(&mut buf).unwrap();
            assert_eq!(
                event,
                Some(Event::Binary(Bytes::from(payload))),
                "len {len}"
            );
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn header_split_at_every_byte() {
        let wire = frame(true, OpCode::Text, &[b'a'; 300]);
        for cut in 0..wire.len() {
            let mut d = decoder();
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(d.decode(&mut buf).unwrap(), None);
            buf.extend_from_slice(&wire[cut..]);
            assert!(matches!(d.decode(&mut buf).unwrap(), Some(Event::Text(t)) if t.len() == 300));
        }
    }

    #[test]
    fn several_frames_in_one_buffer_come_out_one_by_one() {
        let bytes = cat(&[
            frame(true, OpCode::Text, b"one"),
            frame(true, OpCode::Ping, b"p"),
            frame(true, OpCode::Binary, b"two"),
        ]);
        let mut d = decoder();
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), Some(text("one")));
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some(Event::Ping(Bytes::from_static(b"p")))
        );
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some(Event::Binary(Bytes::from_static(b"two")))
        );
        assert_eq!(d.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn fragmented_message_with_interleaved_control_frames() {
        let bytes = cat(&[
            frame(false, OpCode::Text, b"Hel"),
            frame(true, OpCode::Ping, b"are you there"),
            frame(false, OpCode::Continuation, b"lo "),
            frame(true, OpCode::Pong, b""),
            frame(false, OpCode::Continuation, b""),
            frame(true, OpCode::Continuation, "wörld".as_bytes()),
        ]);
        let mut d = decoder();
        let events = decode_all(&mut d, &bytes).unwrap();
        assert_eq!(
            events,
            vec![
                Event::Ping(Bytes::from_static(b"are you there")),
                Event::Pong(Bytes::new()),
                text("Hello wörld"),
            ]
        );
        assert!(!d.message_in_progress());
    }

    #[test]
    fn fragmented_binary_then_another_message() {
        let bytes = cat(&[
            frame(false, OpCode::Binary, &[1, 2]),
            frame(true, OpCode::Continuation, &[3]),
            frame(true, OpCode::Text, b"next"),
        ]);
        assert_eq!(
            decode_all(&mut decoder(), &bytes).unwrap(),
            vec![Event::Binary(Bytes::from_static(&[1, 2, 3])), text("next")]
        );
    }

    #[test]
    fn unmasked_client_frame_is_1002() {
        assert_eq!(err_code(&[0x81, 0x02, b'h', b'i']), 1002);
    }

    #[test]
    fn reserved_bits_without_extension_are_1002() {
        for b0 in [0xC1u8, 0xA1, 0x91] {
            let mut f = frame(true, OpCode::Text, b"x");
            f[0] = b0;
            assert_eq!(err_code(&f), 1002, "first byte {b0:#x}");
        }
    }

    #[test]
    fn rsv1_rules_with_deflate() {
        // Allowed on the first frame of a data message only.
        for bad in [
            cat(&[
                frame(false, OpCode::Text, b"a"),
                frame_rsv(true, true, OpCode::Continuation, b"b"),
            ]),
            frame_rsv(true, true, OpCode::Ping, b""),
            frame_rsv(true, true, OpCode::Close, &[0x03, 0xE8]),
        ] {
            assert_eq!(
                decode_all(&mut deflate_decoder(true), &bad)
                    .unwrap_err()
                    .code,
                1002
            );
        }
        // RSV2 stays reserved.
        let mut f = frame(true, OpCode::Text, b"x");
        f[0] |= 0x20;
        assert_eq!(
            decode_all(&mut deflate_decoder(true), &f).unwrap_err().code,
            1002
        );
    }

    #[test]
    fn reserved_opcodes_are_1002() {
        for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            let mut f = frame(true, OpCode::Binary, b"");
            f[0] = 0x80 | op;
            assert_eq!(err_code(&f), 1002, "opcode {op}");
        }
    }

    #[test]
    fn control_frame_rules_are_1002() {
        // Fragmented ping (FIN clear), masked with a zero key.
        assert_eq!(err_code(&[0x09, 0x80, 0, 0, 0, 0]), 1002);
        // 126-byte ping: the header alone is refused.
        assert_eq!(err_code(&[0x89, 0xFE, 0x00, 0x7E]), 1002);
        // Fragmented close with a valid payload.
        assert_eq!(err_code(&[0x08, 0x82, 0, 0, 0, 0, 0x03, 0xE8]), 1002);
        // 125 is the most a control frame may carry.
        let f = frame(true, OpCode::Ping, &[9u8; 125]);
        assert_eq!(
            decode_all(&mut decoder(), &f).unwrap(),
            vec![Event::Ping(Bytes::from(vec![9u8; 125]))]
        );
    }

    #[test]
    fn continuation_without_message_is_1002() {
        assert_eq!(err_code(&frame(true, OpCode::Continuation, b"x")), 1002);
        assert_eq!(err_code(&frame(false, OpCode::Continuation, b"x")), 1002);
        // Also after a message has been completed.
        let bytes = cat(&[
            frame(true, OpCode::Text, b"a"),
            frame(true, OpCode::Continuation, b"b"),
        ]);
        let mut d = decoder();
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), Some(text("a")));
        assert_eq!(d.decode(&mut buf).unwrap_err().code, 1002);
    }

    #[test]
    fn new_data_frame_inside_a_message_is_1002() {
        for op in [OpCode::Text, OpCode::Binary] {
            let bytes = cat(&[frame(false, OpCode::Text, b"a"), frame(true, op, b"b")]);
            assert_eq!(err_code(&bytes), 1002);
        }
    }

    #[test]
    fn invalid_utf8_single_frame_is_1007() {
        assert_eq!(
            err_code(&frame(
                true,
                OpCode::Text,
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
            )),
            1007
        );
        // Binary is not checked.
        assert!(decode_all(&mut decoder(), &frame(true, OpCode::Binary, b"\xff")).is_ok());
    }

    #[test]
    fn invalid_utf8_fails_on_the_fragment_not_the_end() {
        // Only the first fragment has arrived; it is already impossible.
        let first = frame(false, OpCode::Text, b"ok \xf4\x90");
        let mut buf = BytesMut::from(&first[..]);
        assert_eq!(decoder().decode(&mut buf).unwrap_err().code, 1007);
        // A truncated sequence at a fragment boundary is fine until the end.
        let bytes = cat(&[
            frame(false, OpCode::Text, b"\xe2\x82"),
            frame(true, OpCode::Continuation, b"\xac!"),
        ]);
        assert_eq!(
            decode_all(&mut decoder(), &bytes).unwrap(),
            vec![text("€!")]
        );
        let bytes = cat(&[
            frame(false, OpCode::Text, b"a"),
            frame(true, OpCode::Continuation, b"\xe2\x82"),
        ]);
        assert_eq!(err_code(&bytes), 1007);
    }

    #[test]
    fn close_frames() {
        let mut d = decoder();
        let bytes = cat(&[
            frame(true, OpCode::Close, b"\x03\xe8bye"),
            frame(true, OpCode::Text, b"late"),
        ]);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some(Event::Close {
                code: Some(1000),
                reason: "bye".into()
            })
        );
        assert!(d.is_closed());
        // Nothing after the close frame is decoded.
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(
            decode_all(&mut decoder(), &frame(true, OpCode::Close, b"")).unwrap(),
            vec![Event::Close {
                code: None,
                reason: String::new()
            }]
        );
        assert_eq!(err_code(&frame(true, OpCode::Close, &[0x03])), 1002);
        assert_eq!(
            err_code(&frame(true, OpCode::Close, &1005u16.to_be_bytes())),
            1002
        );
        assert_eq!(
            err_code(&frame(true, OpCode::Close, &999u16.to_be_bytes())),
            1002
        );
        assert_eq!(err_code(&frame(true, OpCode::Close, b"\x03\xe8\xff")), 1007);
        // A close may come between fragments.
        let bytes = cat(&[
            frame(false, OpCode::Text, b"a"),
            frame(true, OpCode::Close, b"\x0f\xa0"),
        ]);
        assert_eq!(
            decode_all(&mut decoder(), &bytes).unwrap(),
            vec![Event::Close {
                code: Some(4000),
                reason: String::new()
            }]
        );
    }

    fn limited(max_frame_size: usize, max_message_size: usize) -> Decoder {
        Decoder::new(DecoderConfig {
            max_frame_size,
            max_message_size,
            deflate: None,
        })
    }

    #[test]
    fn oversized_frame_is_1009_from_the_header_alone() {
        let f = frame(true, OpCode::Binary, &[0u8; 1001]);
        let mut buf = BytesMut::from(&f[..8]); // 2 + 2 + 4: header only.
        assert_eq!(
            limited(1000, 10_000).decode(&mut buf).unwrap_err().code,
            1009
        );
        // A 64-bit length announcing far more than any limit.
        let mut buf = BytesMut::from(&[0x82u8, 0xFF, 0, 0, 0x10, 0, 0, 0, 0, 0, 1, 2, 3, 4][..]);
        assert_eq!(decoder().decode(&mut buf).unwrap_err().code, 1009);
        // Exactly at the limit is fine.
        let f = frame(true, OpCode::Binary, &[0u8; 1000]);
        assert!(decode_all(&mut limited(1000, 1000), &f).is_ok());
    }

    #[test]
    fn oversized_message_is_1009_at_the_fragment_that_overflows() {
        let first = frame(false, OpCode::Text, &[b'a'; 600]);
        let second = frame(true, OpCode::Continuation, &[b'b'; 600]);
        let mut d = limited(1000, 1000);
        let mut buf = BytesMut::from(&first[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&second[..8]); // header of the second fragment only
        assert_eq!(d.decode(&mut buf).unwrap_err().code, 1009);
        // A single frame over the message limit.
        let f = frame(true, OpCode::Text, &[b'a'; 600]);
        assert_eq!(
            decode_all(&mut limited(1000, 500), &f).unwrap_err().code,
            1009
        );
        // Fragments adding up to exactly the limit are fine.
        let bytes = cat(&[
            frame(false, OpCode::Text, &[b'a'; 500]),
            frame(true, OpCode::Continuation, &[b'b'; 500]),
        ]);
        assert!(decode_all(&mut limited(1000, 1000), &bytes).is_ok());
    }

    fn client_deflate(msg: &[u8], context_takeover: Option<&mut Deflater>) -> BytesMut {
        let mut c = BytesMut::new();
        match context_takeover {
            Some(d) => d.compress_into(msg, &mut c),
            None => Deflater::new(15, true).compress_into(msg, &mut c),
        }
        c
    }

    #[test]
    fn compressed_single_frame() {
        let msg = "ringcast room message ".repeat(50);
        let c = client_deflate(msg.as_bytes(), None);
        assert!(c.len() < msg.len());
        let events = decode_all(
            &mut deflate_decoder(true),
            &frame_rsv(true, true, OpCode::Text, &c),
        )
        .unwrap();
        assert_eq!(events, vec![text(&msg)]);
        // The RFC's compressed "Hello".
        let f = frame_rsv(
            true,
            true,
            OpCode::Text,
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        );
        assert_eq!(
            decode_all(&mut deflate_decoder(true), &f).unwrap(),
            vec![text("Hello")]
        );
        // Uncompressed messages still pass through.
        let f = frame(true, OpCode::Text, b"plain");
        assert_eq!(
            decode_all(&mut deflate_decoder(true), &f).unwrap(),
            vec![text("plain")]
        );
    }

    #[test]
    fn compressed_fragmented_with_interleaved_ping() {
        let msg = "fragmented ünïcödé deflate ".repeat(40);
        let c = client_deflate(msg.as_bytes(), None);
        let (a, rest) = c.split_at(c.len() / 3);
        let (b, z) = rest.split_at(rest.len() / 2);
        let bytes = cat(&[
            frame_rsv(false, true, OpCode::Text, a),
            frame(true, OpCode::Ping, b"!"),
            frame(false, OpCode::Continuation, b),
            frame(true, OpCode::Continuation, z),
        ]);
        assert_eq!(
            decode_all(&mut deflate_decoder(true), &bytes).unwrap(),
            vec![Event::Ping(Bytes::from_static(b"!")), text(&msg)]
        );
    }

    #[test]
    fn compressed_with_client_context_takeover() {
        let mut client = Deflater::new(15, false);
        let msg = b"the same message, twice over, compressed against itself";
        let first = client_deflate(msg, Some(&mut client));
        let second = client_deflate(msg, Some(&mut client));
        assert!(second.len() < first.len());
        let bytes = cat(&[
            frame_rsv(true, true, OpCode::Binary, &first),
            frame_rsv(true, true, OpCode::Binary, &second),
        ]);
        let mut d = deflate_decoder(false);
        let events = decode_all(&mut d, &bytes).unwrap();
        assert_eq!(events, vec![Event::Binary(Bytes::from_static(msg)); 2]);
        // A decoder that dropped its context between messages could not read
        // the second one.
        let r = decode_all(&mut deflate_decoder(true), &bytes);
        assert!(r.map_or(true, |ev| ev.len() < 2
            || ev[1] != Event::Binary(Bytes::from_static(msg))));
    }

    #[test]
    fn compressed_zip_bomb_is_1009() {
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let c = client_deflate(&zeros, None);
        let mut d = Decoder::new(DecoderConfig {
            max_frame_size: 1 << 20,
            max_message_size: 1 << 20,
            deflate: Some(DeflateParams::default()),
        });
        let f = frame_rsv(true, true, OpCode::Binary, &c);
        assert!(f.len() < 1 << 20);
        assert_eq!(decode_all(&mut d, &f).unwrap_err().code, 1009);
    }

    #[test]
    fn compressed_invalid_utf8_and_corrupt_data_are_1007() {
        let c = client_deflate(b"valid start then \xed\xa0\x80 a surrogate", None);
        let f = frame_rsv(true, true, OpCode::Text, &c);
        assert_eq!(
            decode_all(&mut deflate_decoder(true), &f).unwrap_err().code,
            1007
        );
        let f = frame_rsv(true, true, OpCode::Text, &[0xff, 0xff, 0xff]);
        assert_eq!(
            decode_all(&mut deflate_decoder(true), &f).unwrap_err().code,
            1007
        );
    }

    #[test]
    fn compressed_wire_size_counts_against_the_message_limit() {
        let noisy = noise(3000);
        let c = client_deflate(&noisy, None);
        let (a, b) = c.split_at(c.len() / 2);
        let mut d = Decoder::new(DecoderConfig {
            max_frame_size: 4000,
            max_message_size: c.len() - 1,
            deflate: Some(DeflateParams::default()),
        });
        let mut buf = BytesMut::from(&frame_rsv(false, true, OpCode::Binary, a)[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        // The second fragment's header alone pushes the wire size over.
        let second = frame(true, OpCode::Continuation, b);
        buf.extend_from_slice(&second[..8]);
        assert_eq!(d.decode(&mut buf).unwrap_err().code, 1009);
    }

    fn parse_frames(mut wire: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
        let mut frames = Vec::new();
        while !wire.is_empty() {
            let (h, n) = parse_header(wire).unwrap().unwrap();
            let end = n + h.payload_len as usize;
            frames.push((h, wire[n..end].to_vec()));
            wire = &wire[end..];
        }
        frames
    }

    /// One frame of every kind, uncompressed: "hello", [1, 2, 3], ping "p",
    /// pong "q", close 1000 "bye", empty close.
    fn one_of_each<M: Masking>(e: &mut Encoder<M>, out: &mut BytesMut) {
        assert!(!e.text("hello", out));
        e.binary(&[1, 2, 3], out);
        e.ping(b"p", out);
        e.pong(b"q", out);
        e.close(Some(1000), "bye", out);
        e.close(None, "ignored", out);
    }

    #[test]
    fn encoder_corks_frames_into_one_buffer() {
        let mut e = Encoder::new(None);
        let mut out = BytesMut::new();
        one_of_each(&mut e, &mut out);
        e.close_error(&CloseError::new(1009, "too big"), &mut out);
        let frames = parse_frames(&out);
        let summary: Vec<(OpCode, Vec<u8>)> =
            frames.iter().map(|(h, p)| (h.opcode, p.clone())).collect();
        assert_eq!(
            summary,
            vec![
                (OpCode::Text, b"hello".to_vec()),
                (OpCode::Binary, vec![1, 2, 3]),
                (OpCode::Ping, b"p".to_vec()),
                (OpCode::Pong, b"q".to_vec()),
                (OpCode::Close, b"\x03\xe8bye".to_vec()),
                (OpCode::Close, vec![]),
                (OpCode::Close, b"\x03\xf1too big".to_vec()),
            ]
        );
        assert!(frames
            .iter()
            .all(|(h, _)| h.fin && !h.rsv1 && h.mask.is_none()));
        assert_eq!(&out[..7], &[0x81, 0x05, b'h', b'e', b'l', b'l', b'o']);
    }

    #[test]
    fn encoder_close_reason_is_cut_to_fit() {
        let mut out = BytesMut::new();
        Encoder::new(None).close(Some(1001), &"x".repeat(300), &mut out);
        let frames = parse_frames(&out);
        assert_eq!(frames[0].1.len(), 125);
        assert_eq!(&out[..2], &[0x88, 125]);
    }

    fn inflate(payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        Inflater::new(15, false)
            .inflate(payload, true, &mut out, 1 << 20)
            .unwrap();
        out.to_vec()
    }

    #[test]
    fn encoder_compresses_when_negotiated() {
        let msg = "a room message that repeats, a room message that repeats".repeat(10);
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let mut e = Encoder::new(Some(params));
        let mut out = BytesMut::new();
        assert!(e.text(&msg, &mut out));
        assert!(!e.text("tiny", &mut out));
        let frames = parse_frames(&out);
        assert!(frames[0].0.rsv1);
        assert_eq!(inflate(&frames[0].1), msg.as_bytes());
        assert!(!frames[1].0.rsv1);
        assert_eq!(frames[1].1, b"tiny");
        // Shared no-context frames are identical to the room helper's.
        let room = crate::proto::ws::deflate::deflate_frame_once(OpCode::Text, msg.as_bytes(), 15);
        assert_eq!(&out[..room.len()], &room[..]);
    }

    #[test]
    fn encoder_with_server_context_takeover_keeps_state() {
        let msg = "a message the client will see twice in a row";
        let mut e = Encoder::new(Some(DeflateParams::default()));
        let mut out = BytesMut::new();
        assert!(e.text(msg, &mut out));
        assert!(e.text(msg, &mut out));
        let frames = parse_frames(&out);
        assert!(frames[1].1.len() < frames[0].1.len());
        let mut client = Inflater::new(15, false);
        for (_, payload) in &frames {
            let mut plain = BytesMut::new();
            client.inflate(payload, true, &mut plain, 1 << 20).unwrap();
            assert_eq!(&plain[..], msg.as_bytes());
        }
    }

    // --- the client role ----------------------------------------------------

    /// A server (unmasked) frame, from the server role's encoder.
    fn server_frame(fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        Encoder::new(None).frame(fin, rsv1, opcode, payload, &mut out);
        out.to_vec()
    }

    fn client_decoder(deflate: Option<DeflateParams>) -> Decoder {
        Decoder::with_role(
            DecoderConfig {
                deflate,
                ..DecoderConfig::default()
            },
            Role::Client,
        )
    }

    fn client_err(bytes: &[u8], deflate: Option<DeflateParams>) -> CloseError {
        decode_all(&mut client_decoder(deflate), bytes).unwrap_err()
    }

    const NCT: DeflateParams = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
        server_max_window_bits_offered: false,
    };

    #[test]
    fn client_role_reads_unmasked_frames_and_refuses_masked_ones() {
        let mut d = client_decoder(None);
        assert_eq!(d.role(), Role::Client);
        let bytes = cat(&[
            server_frame(false, false, OpCode::Text, b"Hel"),
            server_frame(true, false, OpCode::Ping, b"p"),
            server_frame(true, false, OpCode::Continuation, b"lo"),
            server_frame(true, false, OpCode::Binary, &[7u8; 70_000]),
        ]);
        assert_eq!(
            decode_all(&mut d, &bytes).unwrap(),
            vec![
                Event::Ping(Bytes::from_static(b"p")),
                text("Hello"),
                Event::Binary(Bytes::from(vec![7u8; 70_000])),
            ]
        );
        // RFC 6455 §5.1: a masked frame from a server is a protocol error,
        // and an unmasked one from a client.
        let e = client_err(&frame(true, OpCode::Text, b"Hello"), None);
        assert_eq!((e.code, e.reason), (1002, "server frame is masked"));
        let e = decode_all(
            &mut decoder(),
            &server_frame(true, false, OpCode::Text, b"x"),
        );
        assert_eq!(e.unwrap_err().reason, "client frame is not masked");
    }

    #[test]
    fn client_role_protocol_errors() {
        let f = |fin, op: u8, payload: &[u8]| {
            let mut out = Vec::new();
            crate::proto::ws::frame::encode_raw_frame(
                (fin as u8) << 7 | op,
                payload,
                None,
                &mut out,
            );
            out
        };
        let cases: Vec<(Vec<u8>, u16, &str)> = vec![
            (f(true, 0, b"x"), 1002, "continuation frame without"),
            (
                cat(&[f(false, 1, b"a"), f(true, 1, b"b")]),
                1002,
                "before the previous message finished",
            ),
            (f(true, 0x41, b"x"), 1002, "RSV1 set without"),
            (vec![0xA1, 0], 1002, "RSV2/RSV3"),
            (vec![0x91, 0], 1002, "RSV2/RSV3"),
            (vec![0x83, 0], 1002, "reserved opcode"),
            (vec![0x8B, 0], 1002, "reserved opcode"),
            (vec![0x09, 0], 1002, "fragmented control"),
            (vec![0x89, 126, 0, 126], 1002, "over 125"),
            (f(true, 1, &[0xC3, 0x28]), 1007, "UTF-8"),
            (
                cat(&[f(false, 1, &[0xE2, 0x82]), f(true, 0, b"")]),
                1007,
                "UTF-8",
            ),
            (f(true, 8, &[3]), 1002, "1 byte"),
            (f(true, 8, &[3, 232, 0xFF]), 1007, "UTF-8"),
            (
                f(true, 8, &1005u16.to_be_bytes()),
                1002,
                "invalid close code",
            ),
        ];
        for (bytes, code, want) in cases {
            let e = client_err(&bytes, None);
            assert_eq!(e.code, code, "{bytes:?}: {e}");
            assert!(
                e.reason.contains(want),
                "{bytes:?}: {e} should say {want:?}"
            );
        }
        // RSV1 on a control frame or a continuation, even with deflate on.
        let e = client_err(&server_frame(true, true, OpCode::Ping, b""), Some(NCT));
        assert!(e.reason.contains("RSV1 set on"), "{e}");
        let cont = cat(&[
            server_frame(false, true, OpCode::Text, b""),
            server_frame(true, true, OpCode::Continuation, b""),
        ]);
        assert!(client_err(&cont, Some(NCT)).reason.contains("RSV1 set on"));
    }

    #[test]
    fn client_role_close_payloads() {
        let mut with_reason = 1001u16.to_be_bytes().to_vec();
        with_reason.extend_from_slice("bye ✓".as_bytes());
        for (payload, code, reason) in [
            (&b""[..], None, ""),
            (&with_reason[..], Some(1001), "bye ✓"),
            (&1002u16.to_be_bytes()[..], Some(1002), ""),
        ] {
            let mut d = client_decoder(None);
            let f = server_frame(true, false, OpCode::Close, payload);
            let reason = reason.to_string();
            assert_eq!(
                decode_all(&mut d, &f).unwrap(),
                vec![Event::Close { code, reason }]
            );
            assert!(d.is_closed());
        }
    }

    #[test]
    fn client_role_inflate_errors_and_limit() {
        let f = server_frame(true, true, OpCode::Binary, &[0xFF; 8]);
        let e = client_err(&f, Some(NCT));
        assert_eq!((e.code, e.reason), (1007, "invalid compressed data"));
        let body = client_deflate(&vec![0u8; 100_000], None);
        let mut d = Decoder::with_role(
            DecoderConfig {
                max_frame_size: 50_000,
                max_message_size: 50_000,
                deflate: Some(NCT),
            },
            Role::Client,
        );
        let f = server_frame(true, true, OpCode::Binary, &body);
        assert_eq!(decode_all(&mut d, &f).unwrap_err().code, 1009);
    }

    #[test]
    fn client_role_inflates_with_the_servers_window_and_promise() {
        // A server with context takeover: the second message refers back
        // to the first.
        let takeover = DeflateParams {
            server_no_context_takeover: false,
            ..NCT
        };
        let msg = "the same text the same text the same text ".repeat(4);
        let mut server = Encoder::new(Some(takeover));
        let mut wire = BytesMut::new();
        assert!(server.text(&msg, &mut wire));
        assert!(server.text(&msg, &mut wire));
        let mut d = client_decoder(Some(takeover));
        assert_eq!(decode_all(&mut d, &wire).unwrap(), vec![text(&msg); 2]);
        // A server that promised no context takeover and broke the promise:
        // the second message cannot be inflated.
        let r = decode_all(&mut client_decoder(Some(NCT)), &wire);
        assert_eq!(r.unwrap_err().code, 1007);
    }

    /// Keys 1, 2, 3, … in every byte: deterministic, and each frame's own.
    fn counting_keys() -> Masked<impl Fn() -> [u8; 4]> {
        let n = std::cell::Cell::new(0u8);
        Masked(move || {
            n.set(n.get() + 1);
            [n.get(); 4]
        })
    }

    #[test]
    fn client_encoder_masks_every_frame_with_a_fresh_key() {
        let mut e = Encoder::with_keys(None, counting_keys());
        assert_eq!(e.role(), Role::Client);
        assert!(!e.compresses());
        let mut out = BytesMut::new();
        one_of_each(&mut e, &mut out);
        e.frame(false, false, OpCode::Text, b"frag", &mut out);
        e.frame(true, false, OpCode::Continuation, b"ment", &mut out);
        // The RFC's masked "Hello" layout, with key 1 1 1 1.
        assert_eq!(
            &out[..11],
            &[
                0x81,
                0x85,
                1,
                1,
                1,
                1,
                b'h' ^ 1,
                b'e' ^ 1,
                b'l' ^ 1,
                b'l' ^ 1,
                b'o' ^ 1
            ]
        );
        let mut wire = &out[..];
        let mut keys = Vec::new();
        while !wire.is_empty() {
            let (h, n) = parse_header(wire).unwrap().unwrap();
            keys.push(h.mask.expect("every client frame is masked")[0]);
            wire = &wire[n + h.payload_len as usize..];
        }
        assert_eq!(keys, [1, 2, 3, 4, 5, 6, 7, 8]);
        // The server role's decoder reads it all back.
        let mut d = decoder();
        let mut buf = out.clone();
        let mut events = Vec::new();
        while let Some(ev) = d.decode(&mut buf).unwrap() {
            events.push(ev);
        }
        assert_eq!(
            events,
            vec![
                text("hello"),
                Event::Binary(Bytes::from_static(&[1, 2, 3])),
                Event::Ping(Bytes::from_static(b"p")),
                Event::Pong(Bytes::from_static(b"q")),
                Event::Close {
                    code: Some(1000),
                    reason: "bye".into()
                },
            ]
        );
    }

    #[test]
    fn client_encoder_compresses_for_the_server() {
        let takeover = DeflateParams {
            client_no_context_takeover: false,
            ..NCT
        };
        for params in [NCT, takeover] {
            let mut e = Encoder::with_keys(Some(params), counting_keys());
            assert!(e.compresses());
            let mut server = deflate_decoder(params.client_no_context_takeover);
            for i in 0..4 {
                let msg = format!("message {i}: {}", "xyz".repeat(200 + i));
                let mut out = BytesMut::new();
                assert!(e.text(&msg, &mut out));
                let (h, n) = parse_header(&out).unwrap().unwrap();
                assert!(h.rsv1 && h.mask.is_some());
                assert!(out.len() - n < msg.len());
                assert_eq!(decode_all(&mut server, &out).unwrap(), vec![text(&msg)]);
            }
            // Even a short message goes out compressed; an empty one plain.
            let mut out = BytesMut::new();
            assert!(e.text("hi", &mut out));
            assert!(!e.text("", &mut out));
            assert_eq!(
                decode_all(&mut server, &out).unwrap(),
                vec![text("hi"), text("")]
            );
        }
        // Incompressible input larger than one output step.
        let noisy = noise(200_000);
        let mut out = BytesMut::new();
        assert!(Encoder::with_keys(Some(NCT), counting_keys()).binary(&noisy, &mut out));
        assert_eq!(
            decode_all(&mut deflate_decoder(true), &out).unwrap(),
            vec![Event::Binary(Bytes::from(noisy))]
        );
        // No compression for an 8-bit client window, which zlib cannot make.
        let eight = DeflateParams {
            client_max_window_bits: 8,
            ..NCT
        };
        let mut e = Encoder::with_keys(Some(eight), counting_keys());
        assert!(!e.compresses());
        let mut out = BytesMut::new();
        assert!(!e.text(&"xyz".repeat(100), &mut out));
    }
}
