//! Target URLs: `ws://host:port/path?query` and `http://host:port/path`.
//! No TLS: the benchmarks run on loopback.

use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ws,
    Http,
}

#[derive(Debug, Clone)]
pub struct Url {
    pub scheme: Scheme,
    /// `host:port` as sent in the Host header.
    pub authority: String,
    /// Path and query, always starting with `/`.
    pub path: String,
    pub addr: SocketAddr,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let (scheme, rest) = if let Some(r) = s.strip_prefix("ws://") {
            (Scheme::Ws, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (Scheme::Http, r)
        } else if s.starts_with("wss://") || s.starts_with("https://") {
            return Err(format!("{s}: TLS is not supported"));
        } else {
            return Err(format!("{s}: expected ws:// or http://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => match rest.find('?') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            },
        };
        if authority.is_empty() {
            return Err(format!("{s}: no host"));
        }
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !authority.ends_with(']')
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{s}: {e}"))?
            .next()
            .ok_or_else(|| format!("{s}: no address"))?;
        Ok(Url {
            scheme,
            authority: authority.to_string(),
            path,
            addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let u = Url::parse("ws://127.0.0.1:9001/ws?room=a").unwrap();
        assert_eq!(u.scheme, Scheme::Ws);
        assert_eq!(u.authority, "127.0.0.1:9001");
        assert_eq!(u.path, "/ws?room=a");
        assert_eq!(u.addr.port(), 9001);
        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.path, "/");
        let u = Url::parse("http://127.0.0.1?x=1").unwrap();
        assert_eq!(u.path, "/?x=1");
        assert_eq!(u.addr.port(), 80);
        assert!(Url::parse("wss://x/").is_err());
        assert!(Url::parse("ftp://x/").is_err());
    }
}
