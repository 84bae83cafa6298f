//! Incremental UTF-8 validation for text messages that arrive in pieces
//! (fragments, or chunks of decompressed output).
//!
//! RFC 6455 §8.1 asks the endpoint to fail the connection as soon as text
//! cannot be valid UTF-8, so the validator rejects a chunk the moment any
//! byte rules the text out: an invalid byte, an overlong form, a surrogate, a
//! code point above U+10FFFF, including when only the first bytes of such a
//! sequence have arrived (`F4 90` can only start a code point above U+10FFFF).
//! The bulk of each chunk goes through `std::str::from_utf8`; at most three
//! bytes of an unfinished sequence are carried to the next chunk.

/// Text is not, or can no longer become, valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl std::fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for Utf8Error {}

/// Validates a byte stream chunk by chunk. After an error the validator is
/// spent: call [`Utf8Validator::reset`] before using it for another message.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The unfinished sequence at the end of the previous chunk.
    partial: [u8; 4],
    partial_len: u8,
}

/// The length of the sequence a lead byte starts (0 if it is no lead byte).
#[inline]
fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    pub fn new() -> Utf8Validator {
        Utf8Validator::default()
    }

    /// Forgets any carried bytes: ready for a new message.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }

    /// True when no unfinished sequence is carried over.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    /// Checks the next chunk. Fails as soon as the bytes seen so far cannot
    /// be the start of valid UTF-8.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), Utf8Error> {
        if self.partial_len != 0 {
            let have = self.partial_len as usize;
            let need = sequence_len(self.partial[0]);
            debug_assert!(need > have);
            let take = (need - have).min(chunk.len());
            self.partial[have..have + take].copy_from_slice(&chunk[..take]);
            let seq = &self.partial[..have + take];
            match std::str::from_utf8(seq) {
                Ok(_) => {
                    self.partial_len = 0;
                    chunk = &chunk[take..];
                }
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix, and the chunk is used up.
                    debug_assert_eq!(take, chunk.len());
                    self.partial_len = seq.len() as u8;
                    return Ok(());
                }
                Err(_) => return Err(Utf8Error),
            }
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => Ok(()),
            // `error_len() == None` means the input ended inside a sequence
            // whose bytes so far are a valid prefix (std checks the second
            // byte's range, so `E0 80`, `ED A0` and `F4 90` are errors here).
            Err(e) if e.error_len().is_none() => {
                let tail = &chunk[e.valid_up_to()..];
                debug_assert!(!tail.is_empty() && tail.len() < 4);
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// Ends the stream: fails if it stopped inside a sequence. Leaves the
    /// validator ready for the next message.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split at `cuts` and returns the index of the chunk that
    /// failed (or `chunks.len()` if `finish` failed), or `None` when valid.
    fn run(input: &[u8], cuts: &[usize]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        let mut bounds: Vec<usize> = cuts.to_vec();
        bounds.push(input.len());
        for (i, &end) in bounds.iter().enumerate() {
            if v.feed(&input[start..end]).is_err() {
                return Some(i);
            }
            start = end;
        }
        v.finish().err().map(|_| bounds.len())
    }

    fn valid_whole(input: &[u8]) -> bool {
        std::str::from_utf8(input).is_ok()
    }

    /// Every one- and two-cut split of `input` must agree with std.
    fn check_all_splits(input: &[u8]) {
        let expected = valid_whole(input);
        assert_eq!(run(input, &[]).is_none(), expected, "{input:x?} unsplit");
        for a in 0..=input.len() {
            assert_eq!(run(input, &[a]).is_none(), expected, "{input:x?} cut {a}");
            for b in a..=input.len() {
                assert_eq!(
                    run(input, &[a, b]).is_none(),
                    expected,
                    "{input:x?} cuts {a},{b}"
                );
            }
        }
    }

    #[test]
    fn autobahn_6_x_style_inputs_agree_with_std_at_every_split() {
        let cases: &[&[u8]] = &[
            b"",
            b"Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!",
            "κόσμε".as_bytes(),
            "\u{10FFFF}\u{FFFF}\u{D7FF}\u{E000}\u{80}\u{7FF}\u{800}\u{10000}".as_bytes(),
            // 6.3: the "Hello-µ@ßöäüàá-UTF-8!!" text with a bad byte.
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
            // Truncated sequences (6.6, 6.8).
            b"\xce\xba\xe1\xbd",
            b"\xf0\x90\x80",
            b"\xe0\xa0",
            b"\xc2",
            // Unexpected continuation bytes (6.9, 6.10).
            b"\x80",
            b"\xbf",
            b"a\x80\xbfb",
            // Lonely start bytes (6.11, 6.12).
            b"\xc0 \xc1 ",
            b"\xe0 ",
            b"\xf8\x88\x80\x80\x80",
            b"\xfc\x84\x80\x80\x80\x80",
            b"\xfe",
            b"\xff",
            // Overlongs (6.17–6.19).
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xf0\x80\x80\xaf",
            b"\xc1\xbf",
            b"\xe0\x9f\xbf",
            b"\xf0\x8f\xbf\xbf",
            // Surrogates (6.20, 6.21).
            b"\xed\xa0\x80",
            b"\xed\xbf\xbf",
            b"\xed\xa0\x80\xed\xb0\x80",
            // Above U+10FFFF.
            b"\xf4\x90\x80\x80",
            b"\xf5\x80\x80\x80",
            // Noncharacters are valid UTF-8 (6.22).
            b"\xef\xbf\xbe\xef\xbf\xbf\xf4\x8f\xbf\xbf",
            // Boundary code points (6.4, 6.5).
            b"\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd\xf4\x8f\xbf\xbf",
        ];
        for input in cases {
            check_all_splits(input);
        }
    }

    #[test]
    fn fails_on_the_chunk_that_makes_text_impossible() {
        // `F4 90`: the second byte already exceeds U+10FFFF.
        assert_eq!(run(b"ab\xf4\x90\x80\x80", &[3, 4]), Some(1));
        // `ED A0` starts a surrogate.
        assert_eq!(run(b"\xed\xa0\x80", &[1, 2]), Some(1));
        // `E0 80` starts an overlong.
        assert_eq!(run(b"\xe0\x80\x80", &[1, 2]), Some(1));
        // `F0 80` starts an overlong.
        assert_eq!(run(b"\xf0\x80\x80\x80", &[1]), Some(1));
        // A bad third byte is caught in the chunk that brings it.
        assert_eq!(run(b"\xe2\x82x", &[1, 2]), Some(2));
        // Bytes that never occur fail at once, whatever follows.
        assert_eq!(run(b"ok\xffmore", &[3]), Some(0));
        // A valid prefix at the end only fails at finish.
        assert_eq!(run(b"ok\xf0\x9f", &[]), Some(1));
        assert_eq!(run(b"ok\xf0\x9f\x98", &[3, 5]), Some(3));
    }

    #[test]
    fn carried_sequence_completes_across_three_chunks() {
        let smile = "😀".as_bytes();
        assert_eq!(smile.len(), 4);
        let mut v = Utf8Validator::new();
        v.feed(&smile[..1]).unwrap();
        assert!(!v.is_complete());
        v.feed(&smile[1..2]).unwrap();
        v.feed(&smile[2..3]).unwrap();
        v.feed(&smile[3..]).unwrap();
        assert!(v.is_complete());
        v.finish().unwrap();
    }

    #[test]
    fn empty_chunks_are_harmless() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xe2").unwrap();
        v.feed(b"").unwrap();
        v.feed(b"\x82").unwrap();
        v.feed(b"").unwrap();
        v.feed(b"\xac").unwrap();
        v.finish().unwrap();
    }

    #[test]
    fn finish_resets_for_the_next_message() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(Utf8Error));
        v.feed(b"plain").unwrap();
        v.finish().unwrap();
        v.feed(b"\xc3").unwrap();
        v.reset();
        v.feed(b"x").unwrap();
        v.finish().unwrap();
    }

    #[test]
    fn every_single_code_point_split_everywhere() {
        // Sample code points across every sequence length and boundary.
        let mut s = String::new();
        for c in (0u32..0x11_0000).step_by(0x3FF).filter_map(char::from_u32) {
            s.push(c);
        }
        let bytes = s.as_bytes();
        for chunk in 1..=5 {
            let mut v = Utf8Validator::new();
            for piece in bytes.chunks(chunk) {
                v.feed(piece).unwrap();
            }
            v.finish().unwrap();
        }
    }

    #[test]
    fn all_two_byte_prefixes_agree_with_std_prefix_rules() {
        // For every lead byte and second byte, the validator must accept the
        // pair as a prefix exactly when some continuation makes it valid.
        for a in 0u8..=255 {
            for b in 0u8..=255 {
                let pair = [a, b];
                let completable = [
                    &[][..],
                    &[0x80],
                    &[0x80, 0x80],
                    &[0x80, 0x80, 0x80],
                    &[0xBF],
                    &[0xBF, 0xBF],
                    &[0xBF, 0xBF, 0xBF],
                    &[0x90, 0x80, 0x80],
                ]
                .iter()
                .any(|rest| {
                    let mut full = pair.to_vec();
                    full.extend_from_slice(rest);
                    valid_whole(&full)
                });
                let mut v = Utf8Validator::new();
                let ok = v.feed(&pair[..1]).is_ok() && v.feed(&pair[1..]).is_ok();
                assert_eq!(ok, completable, "{a:#x} {b:#x}");
            }
        }
    }
}
