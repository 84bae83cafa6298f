//! Payload masking (RFC 6455 §5.3): XOR with a 4-byte key, a word at a time.
//!
//! Masking is its own inverse, so the same functions mask (client side) and
//! unmask (server side). Both work in place on any length and any alignment.

/// Below this many bytes, [`apply_mask`] works in unaligned 8-byte chunks:
/// an aligned middle is not worth its byte-by-byte head and tail.
const SMALL: usize = 64;

/// XORs `buf` with `key`, the first byte of `buf` taking `key[0]`.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    if buf.len() < SMALL {
        return mask_small(buf, key);
    }
    // The bulk goes through aligned u64 words; the unaligned head and the
    // short tail go byte by byte. The word key is rotated by the head length
    // so that the byte at offset i of `buf` is always XORed with key[i % 4].
    //
    // SAFETY: every bit pattern is a valid u64 and a valid u8, so viewing the
    // aligned middle of a byte slice as u64s is sound.
    let (head, words, tail) = unsafe { buf.align_to_mut::<u64>() };
    mask_bytes(head, key);
    let shift = head.len() & 3;
    let rotated = rotate(key, shift);
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    for w in words.iter_mut() {
        *w ^= word;
    }
    // Every word is 8 bytes, a multiple of 4: the tail starts where the
    // head's rotation left off.
    mask_bytes(tail, rotated);
}

/// XORs `buf` with `key` as if `buf` started `offset` bytes into a payload:
/// the first byte of `buf` takes `key[offset % 4]`. Lets a payload that
/// arrives in pieces be unmasked piece by piece.
#[inline]
pub fn apply_mask_offset(buf: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask(buf, rotate(key, offset & 3));
}

/// The key as seen from `shift` bytes further on.
#[inline]
fn rotate(key: [u8; 4], shift: usize) -> [u8; 4] {
    u32::from_le_bytes(key)
        .rotate_right(8 * shift as u32)
        .to_le_bytes()
}

/// [`apply_mask`] for short buffers: 8 bytes at a time with unaligned
/// loads and stores, then the tail (which starts at `key[0]` again, every
/// chunk being a multiple of 4 bytes).
#[inline]
fn mask_small(buf: &mut [u8], key: [u8; 4]) {
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(&*chunk) else {
            unreachable!("chunks_exact_mut(8) yields 8 bytes");
        };
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    mask_bytes(chunks.into_remainder(), key);
}

#[inline]
fn mask_bytes(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Masking keys and handshake nonces for a client: xorshift64*, fast and
/// with no cryptographic claims (RFC 6455 asks masks to be unpredictable to
/// scripts in a browser, not secret).
#[derive(Clone, Copy, Debug)]
pub struct KeyRng(u64);

impl KeyRng {
    /// A generator from `seed` (mixed with splitmix64, so that nearby seeds diverge).
    pub fn new(seed: u64) -> KeyRng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        KeyRng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// A generator seeded from the clock, the process id, a per-process
    /// counter and a stack address: two made at once still differ.
    pub fn from_entropy() -> KeyRng {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let local = 0u8;
        KeyRng::new(
            nanos
                ^ ((std::process::id() as u64) << 32)
                ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
                ^ (&local as *const u8 as u64).rotate_left(17),
        )
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A frame's masking key.
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// 16 random bytes (a `Sec-WebSocket-Key` nonce).
    pub fn bytes16(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_ne_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_ne_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rng_is_repeatable_per_seed_and_differs_between_seeds() {
        let run = |seed| {
            let mut r = KeyRng::new(seed);
            [r.next_u64(), r.next_u64(), r.next_u64()]
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1)[0], run(2)[0]);
        assert_ne!(KeyRng::new(0).next_u64(), 0);
        let (mut a, mut b) = (KeyRng::from_entropy(), KeyRng::from_entropy());
        assert_ne!(a.bytes16(), b.bytes16(), "two made at once");
        assert_ne!(a.mask(), a.mask());
    }

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(i + offset) % 4];
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
        let mut payload = *b"Hello";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn rotate_moves_key_bytes() {
        let key = [1, 2, 3, 4];
        assert_eq!(rotate(key, 0), [1, 2, 3, 4]);
        assert_eq!(rotate(key, 1), [2, 3, 4, 1]);
        assert_eq!(rotate(key, 2), [3, 4, 1, 2]);
        assert_eq!(rotate(key, 3), [4, 1, 2, 3]);
    }

    #[test]
    fn matches_naive_for_every_length_and_alignment() {
        let key = [0xa1, 0x5b, 0x03, 0xfe];
        let backing = pattern(300);
        for start in 0..16 {
            for len in 0..(backing.len() - start) {
                let mut fast = backing.clone();
                let mut slow = backing.clone();
                apply_mask(&mut fast[start..start + len], key);
                naive(&mut slow[start..start + len], key, 0);
                assert_eq!(fast, slow, "start {start} len {len}");
            }
        }
    }

    #[test]
    fn offset_matches_naive() {
        let key = [0x11, 0x22, 0x33, 0x44];
        for offset in 0..12 {
            for len in [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 33, 100] {
                let mut fast = pattern(len);
                let mut slow = fast.clone();
                apply_mask_offset(&mut fast, key, offset);
                naive(&mut slow, key, offset);
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn masking_in_chunks_equals_masking_at_once() {
        let key = [9, 8, 7, 6];
        let original = pattern(1000);
        let mut whole = original.clone();
        apply_mask(&mut whole, key);
        for chunk in [1, 2, 3, 5, 7, 13, 64, 999] {
            let mut pieces = original.clone();
            let mut offset = 0;
            for piece in pieces.chunks_mut(chunk) {
                let n = piece.len();
                apply_mask_offset(piece, key, offset);
                offset += n;
            }
            assert_eq!(pieces, whole, "chunk {chunk}");
        }
    }

    #[test]
    fn zero_key_is_identity_and_mask_is_involution() {
        let original = pattern(77);
        let mut buf = original.clone();
        apply_mask(&mut buf, [0; 4]);
        assert_eq!(buf, original);
        apply_mask(&mut buf[3..], [0xde, 0xad, 0xbe, 0xef]);
        assert_ne!(buf, original);
        apply_mask(&mut buf[3..], [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(buf, original);
    }
}
