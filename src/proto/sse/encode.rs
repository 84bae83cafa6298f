//! Server-Sent Events wire format (WHATWG HTML, "server-sent events"):
//! `id`, `event`, `retry` fields, `data` split into one `data:` line per
//! line of the payload (`\n`, `\r\n` and `\r` all break lines), comments.
//! Pure code: bytes in, bytes out.

use bytes::{BufMut, BytesMut};

/// Appends one event. `id` and `event` must not contain line breaks (checked by the caller).
pub fn event(out: &mut BytesMut, id: Option<&[u8]>, event: Option<&str>, data: &[u8]) {
    out.reserve(data.len() + 32);
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id);
        out.put_u8(b'\n');
    }
    if let Some(e) = event {
        out.put_slice(b"event: ");
        out.put_slice(e.as_bytes());
        out.put_u8(b'\n');
    }
    data_lines(out, data);
    out.put_u8(b'\n');
}

/// Appends `data:` lines for a payload, one per line of it.
pub fn data_lines(out: &mut BytesMut, data: &[u8]) {
    let mut rest = data;
    loop {
        let brk = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        out.put_slice(b"data: ");
        match brk {
            None => {
                out.put_slice(rest);
                out.put_u8(b'\n');
                return;
            }
            Some(i) => {
                out.put_slice(&rest[..i]);
                out.put_u8(b'\n');
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
}

/// Appends a comment (ignored by clients; used as keep-alive). Line breaks in `text` become spaces.
pub fn comment(out: &mut BytesMut, text: &str) {
    out.put_slice(b": ");
    for b in text.bytes() {
        out.put_u8(if b == b'\n' || b == b'\r' { b' ' } else { b });
    }
    out.put_slice(b"\n\n");
}

/// Appends a `retry:` field as its own block: the client's reconnection delay.
pub fn retry(out: &mut BytesMut, ms: u64) {
    out.put_slice(b"retry: ");
    out.put_slice(itoa::Buffer::new().format(ms).as_bytes());
    out.put_slice(b"\n\n");
}

/// Whether an event name can be sent (no line breaks, not empty, bounded).
pub fn valid_event_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && !name.bytes().any(|b| b == b'\n' || b == b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: Option<&str>, e: Option<&str>, data: &str) -> String {
        let mut out = BytesMut::new();
        event(&mut out, id.map(str::as_bytes), e, data.as_bytes());
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn single_line() {
        assert_eq!(ev(Some("7"), None, "hello"), "id: 7\ndata: hello\n\n");
        assert_eq!(ev(None, Some("tick"), "1"), "event: tick\ndata: 1\n\n");
    }

    #[test]
    fn every_line_break_splits() {
        assert_eq!(
            ev(None, None, "a\nb\r\nc\rd"),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(ev(None, None, "a\n"), "data: a\ndata: \n\n");
        assert_eq!(ev(None, None, "\r\n\r\n"), "data: \ndata: \ndata: \n\n");
        assert_eq!(ev(None, None, ""), "data: \n\n");
    }

    #[test]
    fn comments_and_retry() {
        let mut out = BytesMut::new();
        comment(&mut out, "keep\nalive");
        retry(&mut out, 3000);
        assert_eq!(&out[..], b": keep alive\n\nretry: 3000\n\n");
    }

    #[test]
    fn event_names() {
        assert!(valid_event_name("notification"));
        assert!(!valid_event_name("a\nb"));
        assert!(!valid_event_name(""));
    }
}
