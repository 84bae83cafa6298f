//! Compressing server messages and inflating client messages
//! (permessage-deflate, RFC 7692 §7).
//!
//! Compression uses flate2 on the zlib-rs backend (pure Rust), which honours
//! window sizes below 15 bits. **Small messages** are sent uncompressed
//! (RSV1 clear): the RFC lets the sender choose per message. Below
//! [`MIN_COMPRESS_LEN_NO_CONTEXT`] bytes (no context takeover) or
//! [`MIN_COMPRESS_LEN`] (context takeover), and whenever a no-context message
//! would not shrink.

use std::cell::RefCell;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::proto::ws::frame::{encode_frame, header, OpCode, MAX_SERVER_HEADER_LEN};

/// What a sync flush ends with; stripped from every compressed message and
/// put back before inflating (RFC 7692 §7.2.1, §7.2.2).
pub const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];
/// zlib compression level: the usual balance of speed and size.
pub const COMPRESSION_LEVEL: u32 = 6;
/// Messages shorter than this are sent uncompressed: deflate's block
/// overhead leaves nothing to win.
pub const MIN_COMPRESS_LEN: usize = 16;
/// Without context takeover a message is compressed on its own, and short
/// JSON-like messages barely shrink (64 bytes become about 61) while costing
/// a few microseconds each: below this length they are sent plain.
pub const MIN_COMPRESS_LEN_NO_CONTEXT: usize = 128;

/// Compresses messages, server to client.
pub struct Deflater {
    compress: Compress,
    no_context_takeover: bool,
}

impl Deflater {
    /// `window_bits` is clamped to 9..=15.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Deflater {
        Deflater {
            compress: Compress::new_with_window_bits(
                Compression::new(COMPRESSION_LEVEL),
                false,
                window_bits.clamp(9, 15),
            ),
            no_context_takeover,
        }
    }

    /// Appends `payload` compressed as one message (sync flush, tail
    /// stripped) to `out`.
    pub fn compress_into(&mut self, payload: &[u8], out: &mut BytesMut) {
        let start = out.len();
        let mut consumed = 0;
        // Enough for incompressible input in one pass: stored blocks cost 5
        // bytes per 64 KiB, the flush 5 more.
        out.reserve(payload.len() + payload.len() / 1024 + 32);
        loop {
            let (in_before, out_before) = (self.compress.total_in(), self.compress.total_out());
            let spare = out.spare_capacity_mut();
            let spare_len = spare.len();
            // A sync flush on a healthy stream cannot fail: errors only come
            // from a stream used after a fatal error, which never happens here.
            self.compress
                .compress_uninit(&payload[consumed..], spare, FlushCompress::Sync)
                .expect("deflate with a sync flush does not fail");
            let produced = (self.compress.total_out() - out_before) as usize;
            consumed += (self.compress.total_in() - in_before) as usize;
            // SAFETY: the compressor initialised the first `produced` bytes
            // of the spare capacity.
            unsafe { out.set_len(out.len() + produced) };
            // Output space left over means the flush is complete.
            if consumed == payload.len() && produced < spare_len {
                break;
            }
            out.reserve(spare_len.max(64));
        }
        if out.len() == start {
            // A sync flush with no input since the previous one writes
            // nothing (zlib has no progress to make). Send a single 0x00
            // (RFC 7692 §7.2.3.6): with the tail the receiver appends, an
            // empty stored block, which keeps both ends of the stream in step.
            out.put_u8(0);
        } else {
            debug_assert!(out[start..].ends_with(&DEFLATE_TAIL));
            out.truncate(out.len() - DEFLATE_TAIL.len());
        }
        if self.no_context_takeover {
            self.compress.reset();
        }
    }

    /// Appends a whole data frame holding `payload` compressed (RSV1 set).
    /// With `allow_plain`, a payload that would not shrink is sent as a plain
    /// frame instead (only sound without context takeover, where skipping a
    /// message leaves no trace in the compressor). Returns whether the frame
    /// is compressed.
    pub fn encode_frame(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        allow_plain: bool,
        out: &mut BytesMut,
    ) -> bool {
        let frame_start = out.len();
        out.put_bytes(0, MAX_SERVER_HEADER_LEN);
        let body_start = out.len();
        self.compress_into(payload, out);
        let body_len = out.len() - body_start;
        if allow_plain && self.no_context_takeover && body_len >= payload.len() {
            out.truncate(frame_start);
            encode_frame(opcode, payload, out);
            return false;
        }
        let (h, n) = header(true, true, opcode, body_len as u64);
        out.copy_within(body_start..body_start + body_len, frame_start + n);
        out[frame_start..frame_start + n].copy_from_slice(&h[..n]);
        out.truncate(frame_start + n + body_len);
        true
    }
}

thread_local! {
    /// One no-context compressor per window size, shared by every connection
    /// of this worker thread (allocated on first use).
    static SHARED: RefCell<[Option<Box<Deflater>>; 7]> = const { RefCell::new([None, None, None, None, None, None, None]) };
}

/// Appends a whole frame for `payload` to `out` using this thread's shared
/// no-context-takeover compressor for `window_bits` (clamped to 9..=15).
/// Payloads under [`MIN_COMPRESS_LEN_NO_CONTEXT`], or that would not shrink,
/// are sent as a plain frame. Returns whether the frame is compressed.
///
/// A frame compressed with window `w` can be read by every client that
/// negotiated `server_max_window_bits >= w`: compress a room message with the
/// smallest window among its deflate subscribers (15 unless a client asked
/// for less), or once per distinct window.
pub fn encode_frame_no_context(
    opcode: OpCode,
    payload: &[u8],
    window_bits: u8,
    out: &mut BytesMut,
) -> bool {
    if payload.len() < MIN_COMPRESS_LEN_NO_CONTEXT {
        encode_frame(opcode, payload, out);
        return false;
    }
    let bits = window_bits.clamp(9, 15);
    SHARED.with(|shared| {
        let mut shared = shared.borrow_mut();
        let slot = &mut shared[(bits - 9) as usize];
        let deflater = slot.get_or_insert_with(|| Box::new(Deflater::new(bits, true)));
        deflater.encode_frame(opcode, payload, true, out)
    })
}

/// A whole frame for `payload`, compressed with no context takeover: encode
/// a room message once, then give a clone to every deflate subscriber.
pub fn deflate_frame_once(opcode: OpCode, payload: &[u8], window_bits: u8) -> Bytes {
    let mut out = BytesMut::with_capacity(MAX_SERVER_HEADER_LEN + payload.len() + 16);
    encode_frame_no_context(opcode, payload, window_bits, &mut out);
    out.freeze()
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The output would exceed the limit (close with 1009).
    TooBig,
    /// Not a valid deflate stream.
    Corrupt,
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InflateError::TooBig => "decompressed message exceeds the size limit",
            InflateError::Corrupt => "invalid deflate data",
        })
    }
}

impl std::error::Error for InflateError {}

/// Inflates messages, client to server.
pub struct Inflater {
    decompress: Decompress,
    no_context_takeover: bool,
}

impl Inflater {
    /// `window_bits` is the client's window (8..=15); we inflate with at
    /// least 9 bits, which reads any smaller window too.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Inflater {
        Inflater {
            decompress: Decompress::new_with_window_bits(false, window_bits.clamp(9, 15)),
            no_context_takeover,
        }
    }

    /// Inflates one piece (a frame's payload) of a compressed message,
    /// appending the output to `out`. `fin` marks the message's last piece.
    /// Fails with [`InflateError::TooBig`] as soon as `out` would hold more
    /// than `max_len` bytes, having written at most one byte past it.
    ///
    /// A client may end its deflate stream with a final (BFINAL) block
    /// (RFC 7692 §7.2.3.4); whatever follows it starts a new stream.
    pub fn inflate(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        max_len: usize,
    ) -> Result<(), InflateError> {
        self.inflate_piece(input, out, max_len)?;
        if fin {
            self.inflate_piece(&DEFLATE_TAIL, out, max_len)?;
            if self.no_context_takeover {
                self.decompress.reset(false);
            }
        }
        Ok(())
    }

    /// Forgets the current message and any context: after an error, or to
    /// reuse the inflater on another connection.
    pub fn reset(&mut self) {
        self.decompress.reset(false);
    }

    fn inflate_piece(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        max_len: usize,
    ) -> Result<(), InflateError> {
        let limit = max_len.saturating_add(1);
        let mut consumed = 0;
        loop {
            if out.len() >= limit {
                return Err(InflateError::TooBig);
            }
            // Grow in steps, never past one byte over the limit.
            let step = ((input.len() - consumed) * 4).clamp(4096, 256 * 1024);
            let room = step.min(limit - out.len());
            out.reserve(room);
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            let spare = &mut out.spare_capacity_mut()[..room];
            let status = self
                .decompress
                .decompress_uninit(&input[consumed..], spare, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            let produced = (self.decompress.total_out() - out_before) as usize;
            let used = (self.decompress.total_in() - in_before) as usize;
            consumed += used;
            // SAFETY: the decompressor initialised the first `produced`
            // bytes of the spare capacity.
            unsafe { out.set_len(out.len() + produced) };
            if out.len() > max_len {
                return Err(InflateError::TooBig);
            }
            if status == Status::StreamEnd {
                self.decompress.reset(false);
                if consumed == input.len() {
                    return Ok(());
                }
                continue;
            }
            if consumed == input.len() && produced < room {
                return Ok(());
            }
            if produced == 0 && used == 0 {
                // No progress with input and output space: the stream is
                // stuck (cannot happen with valid data).
                return Err(InflateError::Corrupt);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::proto::ws::frame::parse_header;
    use crate::proto::ws::test_util::noise;

    fn inflate_all(
        inflater: &mut Inflater,
        compressed: &[u8],
        max: usize,
    ) -> Result<BytesMut, InflateError> {
        let mut out = BytesMut::new();
        inflater.inflate(compressed, true, &mut out, max)?;
        Ok(out)
    }

    fn sample_text(len: usize) -> Vec<u8> {
        let words = [
            "ringcast ",
            "room ",
            "message ",
            "{\"seq\":",
            "42}, ",
            "ünïcödé ",
        ];
        let mut v = Vec::new();
        let mut i = 0;
        while v.len() < len {
            v.extend_from_slice(words[i % words.len()].as_bytes());
            i = (i * 7 + 3) % 1009;
        }
        v.truncate(len);
        v
    }

    #[test]
    fn round_trip_no_context_takeover() {
        let mut d = Deflater::new(15, true);
        let mut i = Inflater::new(15, true);
        for len in [0, 1, 15, 16, 100, 4096, 70_000] {
            let msg = sample_text(len);
            let mut c = BytesMut::new();
            d.compress_into(&msg, &mut c);
            assert!(!c.ends_with(&DEFLATE_TAIL) || c.is_empty());
            let out = inflate_all(&mut i, &c, 1 << 20).unwrap();
            assert_eq!(&out[..], &msg[..], "len {len}");
        }
    }

    #[test]
    fn no_context_takeover_output_is_identical_per_message() {
        let mut d = Deflater::new(15, true);
        let msg = sample_text(500);
        let mut first = BytesMut::new();
        d.compress_into(&msg, &mut first);
        let mut second = BytesMut::new();
        d.compress_into(&msg, &mut second);
        assert_eq!(first, second);
        // A fresh inflater decodes the second message alone.
        let out = inflate_all(&mut Inflater::new(15, false), &second, 1 << 20).unwrap();
        assert_eq!(&out[..], &msg[..]);
    }

    #[test]
    fn context_takeover_shrinks_repeats_and_needs_the_same_inflater() {
        let mut d = Deflater::new(15, false);
        let mut i = Inflater::new(15, false);
        let msg = sample_text(500);
        let mut first = BytesMut::new();
        d.compress_into(&msg, &mut first);
        let mut second = BytesMut::new();
        d.compress_into(&msg, &mut second);
        assert!(
            second.len() < first.len() / 4,
            "{} vs {}",
            second.len(),
            first.len()
        );
        assert_eq!(&inflate_all(&mut i, &first, 1 << 20).unwrap()[..], &msg[..]);
        assert_eq!(
            &inflate_all(&mut i, &second, 1 << 20).unwrap()[..],
            &msg[..]
        );
        // A fresh inflater cannot read the back-references of the second.
        assert!(inflate_all(&mut Inflater::new(15, false), &second, 1 << 20)
            .map_or(true, |o| o[..] != msg[..]));
    }

    #[test]
    fn rfc_7692_examples_inflate() {
        // §7.2.3.1: "Hello" compressed.
        let mut i = Inflater::new(15, false);
        let out = inflate_all(&mut i, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap();
        assert_eq!(&out[..], b"Hello");
        // §7.2.3.2: the second "Hello" with context takeover.
        let out = inflate_all(&mut i, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100).unwrap();
        assert_eq!(&out[..], b"Hello");
        // §7.2.3.3: a stored (uncompressed) block.
        let mut i = Inflater::new(15, true);
        let out = inflate_all(
            &mut i,
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
            100,
        )
        .unwrap();
        assert_eq!(&out[..], b"Hello");
        // §7.2.3.4: a final (BFINAL) block, then an empty non-final
        // block's header byte; the next message starts afresh.
        let mut i = Inflater::new(15, false);
        let out = inflate_all(
            &mut i,
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
            100,
        )
        .unwrap();
        assert_eq!(&out[..], b"Hello");
        let out = inflate_all(&mut i, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap();
        assert_eq!(&out[..], b"Hello");
        // §7.2.3.5: two deflate blocks in one message.
        let out = inflate_all(
            &mut i,
            &[
                0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
            ],
            100,
        )
        .unwrap();
        assert_eq!(&out[..], b"Hello");
    }

    #[test]
    fn rfc_hello_is_what_we_produce() {
        let mut d = Deflater::new(15, false);
        let mut c = BytesMut::new();
        d.compress_into(b"Hello", &mut c);
        assert_eq!(&c[..], &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut c = BytesMut::new();
        d.compress_into(b"Hello", &mut c);
        assert_eq!(&c[..], &[0xf2, 0x00, 0x11, 0x00, 0x00]);
        // The empty message (§7.2.3.6).
        let mut d = Deflater::new(15, true);
        let mut c = BytesMut::new();
        d.compress_into(b"", &mut c);
        assert_eq!(&c[..], &[0x00]);
        let out = inflate_all(&mut Inflater::new(15, true), &c, 0).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn message_split_into_pieces_inflates_incrementally() {
        let msg = sample_text(20_000);
        let mut c = BytesMut::new();
        Deflater::new(15, true).compress_into(&msg, &mut c);
        for piece in [1, 7, 100, 4096] {
            let mut i = Inflater::new(15, true);
            let mut out = BytesMut::new();
            let chunks: Vec<&[u8]> = c.chunks(piece).collect();
            for (n, chunk) in chunks.iter().enumerate() {
                i.inflate(chunk, n + 1 == chunks.len(), &mut out, 1 << 20)
                    .unwrap();
            }
            assert_eq!(&out[..], &msg[..], "piece {piece}");
        }
    }

    #[test]
    fn zip_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let mut c = BytesMut::new();
        Deflater::new(15, true).compress_into(&zeros, &mut c);
        assert!(c.len() < 20_000, "compressed to {}", c.len());
        let limit = 1024 * 1024;
        let mut out = BytesMut::new();
        let err = Inflater::new(15, true).inflate(&c, true, &mut out, limit);
        assert_eq!(err, Err(InflateError::TooBig));
        assert!(out.len() <= limit + 1, "produced {}", out.len());
        // The same data under a big enough limit inflates fully.
        let out = inflate_all(&mut Inflater::new(15, true), &c, zeros.len()).unwrap();
        assert_eq!(out.len(), zeros.len());
    }

    #[test]
    fn limit_is_exact() {
        let msg = sample_text(5000);
        let mut c = BytesMut::new();
        Deflater::new(15, true).compress_into(&msg, &mut c);
        assert!(inflate_all(&mut Inflater::new(15, true), &c, 5000).is_ok());
        assert_eq!(
            inflate_all(&mut Inflater::new(15, true), &c, 4999),
            Err(InflateError::TooBig)
        );
        // The limit counts what `out` already holds (earlier fragments).
        let mut out = BytesMut::from(&b"0123456789"[..]);
        let r = Inflater::new(15, true).inflate(&c, true, &mut out, 5005);
        assert_eq!(r, Err(InflateError::TooBig));
    }

    #[test]
    fn corrupt_data_is_an_error() {
        let mut i = Inflater::new(15, true);
        // Block type 3 is reserved.
        assert_eq!(
            inflate_all(&mut i, &[0xff, 0xff, 0xff], 1000),
            Err(InflateError::Corrupt)
        );
        // A stored block whose length check (NLEN) is wrong.
        let mut i = Inflater::new(15, true);
        assert_eq!(
            inflate_all(&mut i, &[0x00, 0x05, 0x00, 0x00, 0x00, b'H'], 1000),
            Err(InflateError::Corrupt)
        );
        // Garbage after a final block is a new, invalid stream.
        let mut i = Inflater::new(15, true);
        assert_eq!(
            inflate_all(
                &mut i,
                &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff, 0xff],
                1000
            ),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn small_windows_round_trip() {
        let msg = sample_text(50_000);
        for bits in 9..=15 {
            let mut c = BytesMut::new();
            Deflater::new(bits, true).compress_into(&msg, &mut c);
            let out = inflate_all(&mut Inflater::new(bits, true), &c, 1 << 20).unwrap();
            assert_eq!(&out[..], &msg[..], "bits {bits}");
        }
        // The client's 8-bit window is read with a 9-bit inflater.
        let out = inflate_all(
            &mut Inflater::new(8, true),
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            10,
        )
        .unwrap();
        assert_eq!(&out[..], b"Hello");
    }

    #[test]
    fn frames_carry_rsv1_and_the_right_length() {
        let msg = sample_text(4096);
        let frame = deflate_frame_once(OpCode::Text, &msg, 15);
        let (h, n) = parse_header(&frame).unwrap().unwrap();
        assert!(h.fin && h.rsv1 && h.mask.is_none());
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.payload_len as usize, frame.len() - n);
        assert!(frame.len() < msg.len() / 2);
        let out = inflate_all(&mut Inflater::new(15, true), &frame[n..], 1 << 20).unwrap();
        assert_eq!(&out[..], &msg[..]);
        // Encoding twice gives identical frames (no context kept).
        assert_eq!(deflate_frame_once(OpCode::Text, &msg, 15), frame);
        // The body is moved behind a header of the right size: 2 bytes for
        // a body up to 125, 4 above.
        for len in [200, 300, 400, 1000, 3000] {
            let msg = sample_text(len);
            let frame = deflate_frame_once(OpCode::Text, &msg, 15);
            let (h, n) = parse_header(&frame).unwrap().unwrap();
            assert!(h.rsv1, "len {len}");
            assert_eq!(n, if h.payload_len <= 125 { 2 } else { 4 });
            assert_eq!(h.payload_len as usize, frame.len() - n);
            let out = inflate_all(&mut Inflater::new(15, true), &frame[n..], 1 << 20).unwrap();
            assert_eq!(&out[..], &msg[..]);
        }
    }

    #[test]
    fn tiny_or_incompressible_payloads_go_plain() {
        let frame = deflate_frame_once(OpCode::Text, b"hi", 15);
        assert_eq!(&frame[..], &[0x81, 0x02, b'h', b'i']);
        let short = sample_text(MIN_COMPRESS_LEN_NO_CONTEXT - 1);
        let frame = deflate_frame_once(OpCode::Text, &short, 15);
        let (h, n) = parse_header(&frame).unwrap().unwrap();
        assert!(!h.rsv1);
        assert_eq!(&frame[n..], &short[..]);
        // Long enough to try, but noise does not shrink.
        let noisy = noise(400);
        let frame = deflate_frame_once(OpCode::Binary, &noisy, 15);
        let (h, n) = parse_header(&frame).unwrap().unwrap();
        assert!(!h.rsv1);
        assert_eq!(&frame[n..], &noisy[..]);
    }

    #[test]
    fn context_takeover_never_goes_plain() {
        let noisy = noise(64);
        let mut d = Deflater::new(15, false);
        let mut out = BytesMut::new();
        assert!(d.encode_frame(OpCode::Binary, &noisy, true, &mut out));
        let (h, _) = parse_header(&out).unwrap().unwrap();
        assert!(h.rsv1);
    }
}
