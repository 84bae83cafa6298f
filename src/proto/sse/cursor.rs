//! Resume cursors: the `id` of every event a stream sends, and what a client
//! sends back in `Last-Event-ID` (or `?last_event_id=`) to resume.
//!
//! A single-room stream's id is the room's sequence id (`1795239875123457`).
//! A multi-room stream's id lists the position in every room of the stream,
//! in the URL's room order, joined by `.` (`1795239875123457.1795239875200001.0`);
//! `0` means "nothing received from that room yet".

/// Longest cursor accepted (bounds parsing work).
pub const MAX_CURSOR_LEN: usize = 4096;

/// Parses a cursor for a stream of `rooms` rooms. Errors say what is wrong.
pub fn parse(text: &str, rooms: usize) -> Result<Vec<u64>, String> {
    if text.len() > MAX_CURSOR_LEN {
        return Err(format!(
            "Last-Event-ID is longer than {MAX_CURSOR_LEN} bytes"
        ));
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != rooms {
        return Err(format!(
            "Last-Event-ID {text:?} has {} position(s) but the stream has {rooms} room(s)",
            parts.len()
        ));
    }
    parts
        .iter()
        .map(|p| {
            if p.is_empty() || p.len() > 20 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "Last-Event-ID {text:?}: {p:?} is not a sequence number"
                ));
            }
            p.parse::<u64>()
                .map_err(|_| format!("Last-Event-ID {text:?}: {p:?} is out of range"))
        })
        .collect()
}

/// Formats a cursor (the inverse of [`parse`]).
pub fn format(positions: &[u64], out: &mut Vec<u8>) {
    let mut buf = itoa::Buffer::new();
    for (i, p) in positions.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(buf.format(*p).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        format(&[5, 0, 1795239875123457], &mut out);
        assert_eq!(out, b"5.0.1795239875123457");
        assert_eq!(
            parse("5.0.1795239875123457", 3).unwrap(),
            [5, 0, 1795239875123457]
        );
        assert_eq!(parse("42", 1).unwrap(), [42]);
    }

    #[test]
    fn malformed_is_refused_with_a_reason() {
        assert!(parse("5.6", 3).unwrap_err().contains("2 position(s)"));
        assert!(parse("5.x", 2).unwrap_err().contains("\"x\""));
        assert!(parse("", 1).is_err());
        assert!(parse("-1", 1).is_err());
        assert!(parse("99999999999999999999", 1)
            .unwrap_err()
            .contains("out of range"));
        assert!(parse(&"1.".repeat(3000), 3000)
            .unwrap_err()
            .contains("longer"));
    }
}
