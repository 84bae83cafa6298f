//! A small blocking HTTP/1.1 client for `ringcast pub`: one keep-alive
//! connection over `std::net` (plain `http://`, or `https://` with rustls and
//! the same trust rules as the WebSocket client: the system's roots or a CA
//! file), content-length and chunked bodies.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::time::Duration;

use crate::client::{open_stream, ConnectOptions, Stream, Url};

/// How long connecting, and each read or write, may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body kept.
const MAX_BODY: usize = 16 << 20;

/// A parsed `http://host[:port][/base]` or `https://…` server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub tls: bool,
    /// Host name or address; an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
    /// The path prefix, without a trailing `/` ("" for the root).
    pub base: String,
}

impl BaseUrl {
    /// Parses a server base URL. Errors say what is wrong.
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not a URL: write e.g. http://127.0.0.1:8080"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(format!("{url:?}: the scheme must be http:// or https://")),
        };
        if rest.contains(['?', '#', '@']) {
            return Err(format!(
                "{url:?}: a server URL has no query, fragment or user info"
            ));
        }
        let split = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let default_port = if tls { 443 } else { 80 };
        let bad_port = || format!("{url:?}: bad port");
        let port_of = |p: &str| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad_port()),
            Ok(p) => Ok(p),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed '['"))?;
            let port = match after {
                "" => default_port,
                p => port_of(p.strip_prefix(':').ok_or_else(bad_port)?)?,
            };
            (host.to_string(), port)
        } else {
            match authority.split_once(':') {
                None => (authority.to_string(), default_port),
                Some((h, p)) => (h.to_string(), port_of(p)?),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        Ok(BaseUrl {
            tls,
            host,
            port,
            base: path.trim_end_matches('/').to_string(),
        })
    }

    /// The `Host` header's value.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// A response: status, reason and body (headers are not kept).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub body: Vec<u8>,
}

/// A keep-alive connection to one server, opened again when the server
/// closes it.
pub struct Connection {
    url: BaseUrl,
    /// TLS trust and the configuration built from it (kept, so that a
    /// connection opened again can resume the TLS session).
    opts: ConnectOptions,
    stream: Option<BufReader<Stream>>,
}

impl Connection {
    /// A connection to `url` (opened on the first request). `opts`:
    /// the TLS trust for `https://` (its timeouts are replaced by 30 s).
    pub fn new(url: BaseUrl, opts: ConnectOptions) -> Connection {
        Connection {
            url,
            opts: opts.timeout(TIMEOUT),
            stream: None,
        }
    }

    fn open(&mut self) -> io::Result<BufReader<Stream>> {
        let url = Url {
            tls: self.url.tls,
            host: self.url.host.clone(),
            port: self.url.port,
            resource: "/".into(),
        };
        Ok(BufReader::new(open_stream(&url, &self.opts)?))
    }

    /// Sends a request (`target` is the path and query) and reads the
    /// response. A reused connection the server had closed meanwhile is
    /// opened again and the request sent once more (nothing of it was read).
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ringcast/{}\r\nContent-Length: {}\r\n",
            self.url.host_header(),
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let reused = self.stream.is_some();
        match self.exchange(head.as_bytes(), body) {
            Err(Fresh::Unanswered(_)) if reused => {
                self.stream = None;
                self.exchange(head.as_bytes(), body)
                    .map_err(Fresh::into_inner)
            }
            r => r.map_err(Fresh::into_inner),
        }
    }

    fn exchange(&mut self, head: &[u8], body: &[u8]) -> Result<Response, Fresh> {
        if self.stream.is_none() {
            self.stream = Some(self.open().map_err(Fresh::Answered)?);
        }
        let s = self.stream.as_mut().expect("opened");
        let sent = (|| {
            let w = s.get_mut();
            w.write_all(head)?;
            w.write_all(body)?;
            w.flush()
        })();
        if let Err(e) = sent {
            self.stream = None;
            return Err(Fresh::Unanswered(e));
        }
        let mut line = String::new();
        match s.read_line(&mut line) {
            Ok(0) => {
                self.stream = None;
                return Err(Fresh::Unanswered(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "the server closed the connection without answering",
                )));
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.stream = None;
                return Err(Fresh::Unanswered(e));
            }
            Err(e) => {
                self.stream = None;
                return Err(Fresh::Answered(e));
            }
            Ok(_) => {}
        }
        match read_rest(s, &line) {
            Ok((resp, keep)) => {
                if !keep {
                    self.stream = None;
                }
                Ok(resp)
            }
            Err(e) => {
                self.stream = None;
                Err(Fresh::Answered(e))
            }
        }
    }
}

/// A failed exchange: whether the server may have seen the request.
enum Fresh {
    Unanswered(io::Error),
    Answered(io::Error),
}

impl Fresh {
    fn into_inner(self) -> io::Error {
        match self {
            Fresh::Unanswered(e) | Fresh::Answered(e) => e,
        }
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg.into())
}

/// Reads the rest of a response after its status line; returns it and
/// whether the connection stays open.
fn read_rest(s: &mut BufReader<Stream>, status_line: &str) -> io::Result<(Response, bool)> {
    let mut parts = status_line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!(
            "not an HTTP/1.x response: {:?}",
            status_line.trim_end()
        )));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {:?}", status_line.trim_end())))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut keep = version != "HTTP/1.0";
    let mut length: Option<usize> = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if s.read_line(&mut line)? == 0 {
            return Err(bad("the response head ended early"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("bad header line {line:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse()
                        .map_err(|_| bad(format!("bad Content-Length {value:?}")))?,
                )
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    keep = false;
                } else if v.contains("keep-alive") {
                    keep = true;
                }
            }
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut line = String::new();
            s.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad(format!("bad chunk size {:?}", line.trim())))?;
            if size == 0 {
                // trailers, then the blank line
                loop {
                    let mut t = String::new();
                    if s.read_line(&mut t)? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(bad("the response body is too large"));
            }
            let at = body.len();
            body.resize(at + size, 0);
            s.read_exact(&mut body[at..])?;
            let mut crlf = [0u8; 2];
            s.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(bad("the response body is too large"));
        }
        body.resize(n, 0);
        s.read_exact(&mut body)?;
    } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
        s.take(MAX_BODY as u64).read_to_end(&mut body)?;
        keep = false;
    }
    Ok((
        Response {
            status,
            reason,
            body,
        },
        keep,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let u = BaseUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.base.as_str()),
            (false, "127.0.0.1", 8080, "")
        );
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = BaseUrl::parse("https://edge.example/rc/").unwrap();
        assert_eq!((u.tls, u.port, u.base.as_str()), (true, 443, "/rc"));
        assert_eq!(u.host_header(), "edge.example");
        let u = BaseUrl::parse("http://[::1]:9000/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9000));
        assert_eq!(u.host_header(), "[::1]:9000");
        assert!(BaseUrl::parse("ws://x").unwrap_err().contains("http://"));
        assert!(BaseUrl::parse("http://x:0").is_err());
        assert!(BaseUrl::parse("http://x/?a=1").is_err());
        assert!(BaseUrl::parse("127.0.0.1:8080").is_err());
    }
}
