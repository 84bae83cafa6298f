//! HTTP/1.1 responses written straight into a connection's output buffer.
//!
//! Every response produced while handling one read is appended to the same
//! buffer and leaves in one write (cork). Pure code, no I/O.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};

/// Reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

thread_local! {
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((0, [0; 29])) };
}

/// Writes `Date: <IMF-fixdate>\r\n`, formatting at most once per second per thread.
fn put_date(out: &mut BytesMut) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let s = httpdate::fmt_http_date(now);
            d.1.copy_from_slice(&s.as_bytes()[..29]);
            d.0 = secs;
        }
        out.put_slice(b"Date: ");
        out.put_slice(&d.1);
        out.put_slice(b"\r\n");
    });
}

/// Starts a response: status line, `Server` and `Date`.
pub fn start(out: &mut BytesMut, status: u16) {
    out.reserve(128);
    out.put_slice(b"HTTP/1.1 ");
    let mut code = itoa::Buffer::new();
    out.put_slice(code.format(status).as_bytes());
    out.put_u8(b' ');
    out.put_slice(reason(status).as_bytes());
    out.put_slice(b"\r\nServer: ringcast\r\n");
    put_date(out);
}

/// Adds one header line.
pub fn header(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Ends the head with `Content-Length` and `Connection`, then the body unless `head_only`.
pub fn finish(out: &mut BytesMut, body: &[u8], keep_alive: bool, head_only: bool) {
    finish_len(out, body.len() as u64, keep_alive);
    if !head_only {
        out.put_slice(body);
    }
}

/// Ends the head with a `Content-Length` of `len`; the caller writes the body.
pub fn finish_len(out: &mut BytesMut, len: u64, keep_alive: bool) {
    let mut n = itoa::Buffer::new();
    out.put_slice(b"Content-Length: ");
    out.put_slice(n.format(len).as_bytes());
    out.put_slice(if keep_alive {
        b"\r\n\r\n".as_slice()
    } else {
        b"\r\nConnection: close\r\n\r\n".as_slice()
    });
}

/// Makes the response that starts at `start` in `out` say `Connection:
/// keep-alive` (after its status line), unless its head already has a
/// `Connection` header. An HTTP/1.0 client closes after an answer that does
/// not say so (RFC 9112 §9.3), so a kept-open HTTP/1.0 connection needs it.
pub fn mark_keep_alive(out: &mut BytesMut, start: usize) {
    let Some(resp) = out.get(start..) else {
        return;
    };
    let head_end = find(resp, b"\r\n\r\n").map_or(resp.len(), |i| i + 2);
    let head = &resp[..head_end];
    let Some(line_end) = find(head, b"\r\n") else {
        return;
    };
    let has_connection = head[line_end..]
        .split(|&b| b == b'\n')
        .any(|l| l.len() > 11 && l[..11].eq_ignore_ascii_case(b"connection:"));
    if has_connection {
        return;
    }
    insert_header(out, start, "Connection", b"keep-alive");
}

/// Adds a header line right after the status line of the response that
/// starts at `start` in `out` (nothing if there is no whole status line there).
pub fn insert_header(out: &mut BytesMut, start: usize, name: &str, value: &[u8]) {
    let Some(line_end) = out.get(start..).and_then(|r| find(r, b"\r\n")) else {
        return;
    };
    let tail = out.split_off(start + line_end + 2);
    header(out, name, value);
    out.unsplit(tail);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A complete short plain-text response (errors, `ok`).
pub fn simple(out: &mut BytesMut, status: u16, body: &str, keep_alive: bool, head_only: bool) {
    start(out, status);
    header(out, "Content-Type", b"text/plain; charset=utf-8");
    finish(out, body.as_bytes(), keep_alive, head_only);
}

/// An error response whose body names the status and the reason.
pub fn error(out: &mut BytesMut, status: u16, why: &str, keep_alive: bool, head_only: bool) {
    let body = format!("{status} {}: {why}\n", reason(status));
    simple(out, status, &body, keep_alive, head_only);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_response_bytes() {
        let mut out = BytesMut::new();
        simple(&mut out, 200, "ok", true, false);
        let s = String::from_utf8(out.to_vec()).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\nServer: ringcast\r\nDate: "));
        assert!(s.ends_with(
            " GMT\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nok"
        ));
    }

    #[test]
    fn keep_alive_marked_once_after_the_status_line() {
        let mut out = BytesMut::from(&b"earlier"[..]);
        simple(&mut out, 200, "ok", true, false);
        mark_keep_alive(&mut out, 7);
        let s = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            s.starts_with(
                "earlierHTTP/1.1 200 OK\r\nConnection: keep-alive\r\nServer: ringcast\r\n"
            ),
            "{s}"
        );
        assert!(s.ends_with("\r\n\r\nok"), "{s}");
        // a head that already says Connection is left alone
        let mut out = BytesMut::new();
        error(&mut out, 400, "x", false, false);
        let before = out.clone();
        mark_keep_alive(&mut out, 0);
        assert_eq!(out, before);
        // nothing to mark
        let mut out = BytesMut::new();
        mark_keep_alive(&mut out, 0);
        mark_keep_alive(&mut out, 5);
        assert!(out.is_empty());
    }

    #[test]
    fn close_and_head() {
        let mut out = BytesMut::new();
        error(&mut out, 404, "no such path", false, true);
        let s = String::from_utf8(out.to_vec()).unwrap();
        assert!(s.contains("Connection: close\r\n\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
        assert!(s.contains("Content-Length: 28\r\n"), "{s}");
    }
}
