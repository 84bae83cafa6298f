//! Negotiating permessage-deflate (RFC 7692) in the handshake: reading the
//! client's `Sec-WebSocket-Extensions` offers and writing the response.
//!
//! Choices where the RFC leaves room:
//!
//! - **Server window of 8 bits.** zlib cannot produce a raw deflate stream
//!   with a 256-byte window (it silently uses 512 bytes, which a client that
//!   asked for 8 could not decode). An offer with `server_max_window_bits=8`
//!   is declined and the next offer is tried; a configured server window of 8
//!   is used as 9.
//! - **Client window of 8 bits** is fine: we inflate with a 9-bit window,
//!   and a larger window decodes any stream made with a smaller one.
//! - **Context takeover.** The server may always add
//!   `server_no_context_takeover` and `client_no_context_takeover` to its
//!   response. ringcast does both by default: a room message is compressed once
//!   for every subscriber (which requires no server context), and a
//!   connection keeps no inflate state between client messages (less memory
//!   per idle connection).
//! - **Unknown, duplicate or malformed parameters** decline that one offer;
//!   the next offer in the header (or the next header) is tried.

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// What the server is willing to negotiate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    pub enabled: bool,
    /// Always answer with `server_no_context_takeover` (needed to compress a
    /// room message once for every subscriber).
    pub server_no_context_takeover: bool,
    /// Always answer with `client_no_context_takeover`.
    pub client_no_context_takeover: bool,
    /// Largest window we compress with, 9..=15 (8 counts as 9).
    pub server_max_window_bits: u8,
    /// Largest window we let the client use, 8..=15, when it offers
    /// `client_max_window_bits`.
    pub client_max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> DeflateConfig {
        DeflateConfig {
            enabled: true,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// The parameters agreed for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message, so we can too.
    pub client_no_context_takeover: bool,
    /// The window the server compresses with, 9..=15.
    pub server_max_window_bits: u8,
    /// The largest window the client compresses with, 8..=15.
    pub client_max_window_bits: u8,
    /// The offer named `server_max_window_bits`, so the response must too.
    pub server_max_window_bits_offered: bool,
}

impl Default for DeflateParams {
    /// No parameters: context takeover both ways, 15-bit windows.
    fn default() -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_max_window_bits_offered: false,
        }
    }
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value for the 101 response.
    pub fn response_header(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits_offered || self.server_max_window_bits < 15 {
            s.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.client_max_window_bits < 15 {
            s.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        s
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

/// Splits `v` at `sep`, ignoring separators inside quoted strings.
fn split_unquoted(v: &[u8], sep: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in v.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            parts.push(&v[start..i]);
            start = i + 1;
        }
    }
    parts.push(&v[start..]);
    parts
}

fn is_token(t: &[u8]) -> bool {
    !t.is_empty()
        && t.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
}

/// One `name[=value]` parameter; a quoted value is unquoted. `None` when
/// malformed.
fn parse_param(part: &[u8]) -> Option<(&[u8], Option<Vec<u8>>)> {
    let (name, value) = match part.iter().position(|b| *b == b'=') {
        None => (trim(part), None),
        Some(eq) => (trim(&part[..eq]), Some(trim(&part[eq + 1..]))),
    };
    if !is_token(name) {
        return None;
    }
    let value = match value {
        None => None,
        Some(v) if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' => {
            let mut out = Vec::with_capacity(v.len());
            let mut escaped = false;
            for &b in &v[1..v.len() - 1] {
                if !escaped && b == b'\\' {
                    escaped = true;
                } else {
                    out.push(b);
                    escaped = false;
                }
            }
            Some(out)
        }
        Some(v) if is_token(v) => Some(v.to_vec()),
        Some(_) => return None,
    };
    Some((name, value))
}

/// A window size value: a decimal 8..=15 without leading zeros.
fn parse_window_bits(v: &[u8]) -> Option<u8> {
    match v {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// Decides one offer (its parameters, after the extension name).
fn accept_offer(params: &[&[u8]], cfg: &DeflateConfig) -> Option<DeflateParams> {
    let mut server_nct = false;
    let mut client_nct = false;
    let mut server_bits: Option<u8> = None;
    let mut client_bits: Option<Option<u8>> = None;
    for part in params {
        let (name, value) = parse_param(part)?;
        if name.eq_ignore_ascii_case(b"server_no_context_takeover") {
            if server_nct || value.is_some() {
                return None;
            }
            server_nct = true;
        } else if name.eq_ignore_ascii_case(b"client_no_context_takeover") {
            if client_nct || value.is_some() {
                return None;
            }
            client_nct = true;
        } else if name.eq_ignore_ascii_case(b"server_max_window_bits") {
            if server_bits.is_some() {
                return None;
            }
            server_bits = Some(parse_window_bits(&value?)?);
        } else if name.eq_ignore_ascii_case(b"client_max_window_bits") {
            if client_bits.is_some() {
                return None;
            }
            client_bits = Some(match value {
                None => None,
                Some(v) => Some(parse_window_bits(&v)?),
            });
        } else {
            return None;
        }
    }
    let ours = cfg.server_max_window_bits.clamp(9, 15);
    let server_max_window_bits = match server_bits {
        Some(8) => return None,
        Some(n) => n.min(ours),
        None => ours,
    };
    let client_max_window_bits = match client_bits {
        // Without the parameter in the offer we may not limit the client.
        None => 15,
        Some(n) => n.unwrap_or(15).min(cfg.client_max_window_bits.clamp(8, 15)),
    };
    Some(DeflateParams {
        server_no_context_takeover: server_nct || cfg.server_no_context_takeover,
        client_no_context_takeover: client_nct || cfg.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
        server_max_window_bits_offered: server_bits.is_some(),
    })
}

/// Picks the first acceptable permessage-deflate offer from the raw
/// `Sec-WebSocket-Extensions` values (in order; each may list several
/// comma-separated extensions). `None`: no extension, answer without the
/// header.
pub fn negotiate(offers: &[&[u8]], cfg: &DeflateConfig) -> Option<DeflateParams> {
    if !cfg.enabled {
        return None;
    }
    for value in offers {
        for ext in split_unquoted(value, b',') {
            let parts = split_unquoted(ext, b';');
            if !trim(parts[0]).eq_ignore_ascii_case(EXTENSION_NAME.as_bytes()) {
                continue;
            }
            if let Some(params) = accept_offer(&parts[1..], cfg) {
                return Some(params);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_takeover_cfg() -> DeflateConfig {
        DeflateConfig {
            enabled: true,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }

    fn header_for(offers: &[&str], cfg: &DeflateConfig) -> Option<String> {
        let raw: Vec<&[u8]> = offers.iter().map(|o| o.as_bytes()).collect();
        negotiate(&raw, cfg).map(|p| p.response_header())
    }

    #[test]
    fn negotiation_table() {
        let plain = no_takeover_cfg();
        let table: &[(&[&str], Option<&str>)] = &[
            (&["permessage-deflate"], Some("permessage-deflate")),
            (&["Permessage-Deflate"], Some("permessage-deflate")),
            (&["x-webkit-deflate-frame"], None),
            (&[], None),
            (
                &["x-webkit-deflate-frame, permessage-deflate"],
                Some("permessage-deflate"),
            ),
            (&["foo", "permessage-deflate"], Some("permessage-deflate")),
            (
                &["permessage-deflate; client_max_window_bits"],
                Some("permessage-deflate"),
            ),
            (
                &["permessage-deflate; client_max_window_bits=10"],
                Some("permessage-deflate; client_max_window_bits=10"),
            ),
            (
                &["permessage-deflate; server_max_window_bits=10"],
                Some("permessage-deflate; server_max_window_bits=10"),
            ),
            (
                &["permessage-deflate; server_max_window_bits=15"],
                Some("permessage-deflate; server_max_window_bits=15"),
            ),
            (
                &["permessage-deflate; server_max_window_bits=\"12\""],
                Some("permessage-deflate; server_max_window_bits=12"),
            ),
            (
                &["permessage-deflate;server_no_context_takeover;client_no_context_takeover"],
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ),
            (
                &["permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8"],
                Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8"),
            ),
            // A server window of 8 is declined; the next offer is taken.
            (&["permessage-deflate; server_max_window_bits=8"], None),
            (
                &["permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9"],
                Some("permessage-deflate; server_max_window_bits=9"),
            ),
            // Malformed, unknown and duplicate parameters decline the offer.
            (&["permessage-deflate; server_max_window_bits"], None),
            (&["permessage-deflate; server_max_window_bits=16"], None),
            (&["permessage-deflate; server_max_window_bits=7"], None),
            (&["permessage-deflate; server_max_window_bits=08"], None),
            (&["permessage-deflate; server_max_window_bits=1O"], None),
            (&["permessage-deflate; client_max_window_bits=0"], None),
            (&["permessage-deflate; client_max_window_bits=\"\""], None),
            (&["permessage-deflate; server_no_context_takeover=1"], None),
            (&["permessage-deflate; client_no_context_takeover=true"], None),
            (&["permessage-deflate; mystery"], None),
            (&["permessage-deflate; server_no_context_takeover; server_no_context_takeover"], None),
            (&["permessage-deflate; client_max_window_bits; client_max_window_bits=9"], None),
            (&["permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"], None),
            (&["permessage-deflate; =10"], None),
            (
                &["permessage-deflate; mystery, permessage-deflate; client_max_window_bits=12"],
                Some("permessage-deflate; client_max_window_bits=12"),
            ),
        ];
        for (offers, expected) in table {
            assert_eq!(
                header_for(offers, &plain).as_deref(),
                *expected,
                "offers {offers:?}"
            );
        }
    }

    #[test]
    fn negotiation_applies_our_config() {
        let mut cfg = DeflateConfig::default();
        assert_eq!(
            header_for(&["permessage-deflate"], &cfg).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        cfg.enabled = false;
        assert_eq!(header_for(&["permessage-deflate"], &cfg), None);

        let cfg = DeflateConfig {
            server_max_window_bits: 11,
            client_max_window_bits: 10,
            ..no_takeover_cfg()
        };
        // Our server window limit is announced even when not asked for; the
        // client limit only where the client offered the parameter.
        assert_eq!(
            header_for(&["permessage-deflate"], &cfg).as_deref(),
            Some("permessage-deflate; server_max_window_bits=11")
        );
        let p = negotiate(
            &[b"permessage-deflate; server_max_window_bits=13; client_max_window_bits"],
            &cfg,
        )
        .unwrap();
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (11, 10)
        );
        assert_eq!(
            p.response_header(),
            "permessage-deflate; server_max_window_bits=11; client_max_window_bits=10"
        );
        let p = negotiate(&[b"permessage-deflate; client_max_window_bits=9"], &cfg).unwrap();
        assert_eq!(p.client_max_window_bits, 9);
        // A configured server window of 8 behaves as 9.
        let cfg = DeflateConfig {
            server_max_window_bits: 8,
            ..no_takeover_cfg()
        };
        let p = negotiate(&[b"permessage-deflate"], &cfg).unwrap();
        assert_eq!(p.server_max_window_bits, 9);
    }

    #[test]
    fn quoted_separators_do_not_split_offers() {
        let cfg = no_takeover_cfg();
        // The comma and semicolon inside quotes belong to the value, which is
        // then invalid: the whole (single) offer is declined.
        assert_eq!(
            header_for(
                &["permessage-deflate; server_max_window_bits=\"1,0\""],
                &cfg
            ),
            None
        );
        assert_eq!(
            header_for(&["x-foo; bar=\"a,permessage-deflate\""], &cfg),
            None
        );
    }
}
