//! Target URLs: `ws://host:port/path?query` and `http://host:port/path`,
//! and their TLS forms `wss://` and `https://` (default ports 80 and 443).

use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ws,
    Http,
}

#[derive(Debug, Clone)]
pub struct Url {
    pub scheme: Scheme,
    /// `wss://` or `https://`.
    pub tls: bool,
    /// `host:port` as sent in the Host header.
    pub authority: String,
    /// Path and query, always starting with `/`.
    pub path: String,
    pub addr: SocketAddr,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let (scheme, tls, rest) = if let Some(r) = s.strip_prefix("ws://") {
            (Scheme::Ws, false, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (Scheme::Http, false, r)
        } else if let Some(r) = s.strip_prefix("wss://") {
            (Scheme::Ws, true, r)
        } else if let Some(r) = s.strip_prefix("https://") {
            (Scheme::Http, true, r)
        } else {
            return Err(format!("{s}: expected ws://, wss://, http:// or https://"));
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
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{s}: {e}"))?
            .next()
            .ok_or_else(|| format!("{s}: no address"))?;
        Ok(Url {
            scheme,
            tls,
            authority: authority.to_string(),
            path,
            addr,
        })
    }

    /// The host as written (no port): the TLS server name.
    pub fn host(&self) -> &str {
        match self.authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() && !self.authority.ends_with(']') => h,
            _ => &self.authority,
        }
    }

    /// For modes that speak plain TCP only.
    pub fn refuse_tls(&self, mode: &str) -> Result<(), String> {
        if self.tls {
            return Err(format!(
                "{mode} speaks plain TCP only: use a ws:// or http:// URL"
            ));
        }
        Ok(())
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
        assert!(!u.tls);
        assert_eq!(u.host(), "127.0.0.1");
        assert!(Url::parse("ftp://x/").is_err());
    }

    #[test]
    fn tls_forms() {
        let u = Url::parse("wss://127.0.0.1:9443/ws?room=a").unwrap();
        assert_eq!((u.scheme, u.tls), (Scheme::Ws, true));
        assert_eq!(u.host(), "127.0.0.1");
        assert_eq!(u.addr.port(), 9443);
        let u = Url::parse("https://127.0.0.1/publish/r").unwrap();
        assert_eq!((u.scheme, u.tls), (Scheme::Http, true));
        assert_eq!(u.addr.port(), 443);
        assert_eq!(u.authority, "127.0.0.1");
        let u = Url::parse("wss://[::1]:9443/echo").unwrap();
        assert_eq!(u.host(), "[::1]");
        assert!(u.refuse_tls("slowloris").is_err());
    }
}
