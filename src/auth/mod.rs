//! Who may subscribe and publish: the `[auth]` rules, built once from the
//! configuration into an [`Auth`] the workers read (swapped whole on reload),
//! the token sources of a request, and the 401/403 answers. Pure code; the
//! router asks, the connection code never sees a token.
//!
//! Tokens are taken from, in order: `Authorization: Bearer <token>`, the
//! query parameter `auth.query_param` (for browsers' EventSource and
//! WebSocket, which cannot set headers), then the cookie `auth.cookie`.
//! Token values are never logged: the connection code logs only request
//! targets (never headers), and every target is logged through
//! [`Auth::redact`].

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use crate::config::{Config, ConfigError, PublishAuth};
use crate::hub::RoomName;
use crate::proto::http::request::percent_decode;
use crate::proto::http::request::RequestHead;
use crate::proto::http::response;
pub use crate::proto::jwt::{self, Claims, Patterns, TokenError};

/// What publishing needs, with `auto` resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishMode {
    Off,
    Token,
    Jwt,
    TokenOrJwt,
    /// No client may publish (`auth.publish = "closed"`).
    Closed,
}

/// The authorization rules in force.
pub struct Auth {
    subscribe: bool,
    publish: PublishMode,
    /// `hub.publish_token` ("" when unset).
    static_token: Box<str>,
    key: Option<jwt::Key>,
    rooms_claim: Box<str>,
    publish_claim: Box<str>,
    cookie: Box<str>,
    query_param: Box<str>,
    leeway: f64,
}

/// What a request was allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every room (no token needed, or the static publish token).
    All,
    /// The rooms these patterns allow.
    Rooms(Patterns),
}

impl Grant {
    pub fn allows(&self, room: &str) -> bool {
        match self {
            Grant::All => true,
            Grant::Rooms(p) => p.allows(room),
        }
    }
}

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenSource {
    Header,
    Query,
    Cookie,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no usable token.
    Unauthorized(TokenError),
    /// 403: a good token that does not allow this room.
    Forbidden { room: RoomName, publish: bool },
}

impl Refusal {
    /// The status it is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Unauthorized(_) => 401,
            Refusal::Forbidden { .. } => 403,
        }
    }
}

/// What a token query parameter's value reads as in a log line.
pub const REDACTED: &str = "[redacted]";

/// The default `auth.query_param`: redacted even when another name is
/// configured (or none), since clients may still send it.
const DEFAULT_QUERY_PARAM: &str = "token";

/// Query parameters the endpoints already use; the token parameter may not take one.
const RESERVED_PARAMS: &[&str] = &["room", "last_event_id", "since", "event"];

impl Auth {
    /// Builds the rules from `[auth]` and `hub.publish_token`, reading the
    /// secret from the environment when `auth.jwt_secret_env` says so.
    /// Errors name the key.
    pub fn from_config(cfg: &Config) -> Result<Auth, ConfigError> {
        fn fail<T>(msg: String) -> Result<T, ConfigError> {
            Err(ConfigError(msg))
        }
        let a = &cfg.auth;
        let static_token = cfg.hub.publish_token.as_str();
        if !a.jwt_secret.is_empty() && !a.jwt_secret_env.is_empty() {
            return fail("auth.jwt_secret and auth.jwt_secret_env are both set: use one".into());
        }
        let secret: Option<(String, String)> = if !a.jwt_secret_env.is_empty() {
            let name = &a.jwt_secret_env;
            let valid_name = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !valid_name {
                return fail(format!(
                    "auth.jwt_secret_env = {name:?} is not an environment variable name (A-Z a-z 0-9 _)"
                ));
            }
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => Some((v, format!("environment variable {name}"))),
                Ok(_) | Err(std::env::VarError::NotPresent) => {
                    return fail(format!(
                    "auth.jwt_secret_env = {name:?}: environment variable {name} is unset or empty"
                ))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return fail(format!(
                        "auth.jwt_secret_env = {name:?}: environment variable {name} is not UTF-8"
                    ))
                }
            }
        } else if !a.jwt_secret.is_empty() {
            Some((a.jwt_secret.clone(), "auth.jwt_secret".into()))
        } else {
            None
        };
        if let Some((s, origin)) = &secret {
            if s.len() < jwt::MIN_SECRET_LEN {
                return fail(format!(
                    "{origin} holds a secret of {} bytes; HS256 needs at least {} bytes (RFC 7518 section 3.2)",
                    s.len(),
                    jwt::MIN_SECRET_LEN
                ));
            }
        }
        let publish = match a.publish {
            PublishAuth::Auto if static_token.is_empty() => PublishMode::Off,
            PublishAuth::Auto | PublishAuth::Token => PublishMode::Token,
            PublishAuth::Off => PublishMode::Off,
            PublishAuth::Jwt => PublishMode::Jwt,
            PublishAuth::TokenOrJwt => PublishMode::TokenOrJwt,
            PublishAuth::Closed => PublishMode::Closed,
        };
        let named = |p: PublishAuth| match p {
            PublishAuth::Auto => "auto",
            PublishAuth::Off => "off",
            PublishAuth::Token => "token",
            PublishAuth::Jwt => "jwt",
            PublishAuth::TokenOrJwt => "token_or_jwt",
            PublishAuth::Closed => "closed",
        };
        match publish {
            PublishMode::Token | PublishMode::TokenOrJwt if static_token.is_empty() => {
                return fail(format!(
                    "auth.publish = {:?} needs hub.publish_token to be set",
                    named(a.publish)
                ));
            }
            PublishMode::Off | PublishMode::Closed if !static_token.is_empty() => {
                return fail(format!(
                    "auth.publish = {:?} but hub.publish_token is set: remove one of them (or set auth.publish = \"token\")",
                    named(a.publish)
                ));
            }
            _ => {}
        }
        if secret.is_none() {
            let why = if a.subscribe {
                Some("auth.subscribe = true".to_string())
            } else if matches!(publish, PublishMode::Jwt | PublishMode::TokenOrJwt) {
                Some(format!("auth.publish = {:?}", named(a.publish)))
            } else {
                None
            };
            if let Some(why) = why {
                return fail(format!(
                    "{why} needs a JWT secret: set auth.jwt_secret or auth.jwt_secret_env"
                ));
            }
        }
        for (key, v) in [
            ("auth.rooms_claim", &a.rooms_claim),
            ("auth.publish_claim", &a.publish_claim),
        ] {
            if v.is_empty() {
                return fail(format!("{key} must name a claim"));
            }
        }
        let cookie_ok = a
            .cookie
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !cookie_ok {
            return fail(format!(
                "auth.cookie = {:?} is not a valid cookie name",
                a.cookie
            ));
        }
        let q = &a.query_param;
        if !q
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            || RESERVED_PARAMS.contains(&q.as_str())
        {
            return fail(format!(
                "auth.query_param = {q:?} must be \"\" or a name of A-Z a-z 0-9 _ - . not used by the endpoints (room, last_event_id, since, event)"
            ));
        }
        if a.leeway.0.as_secs() > 300 {
            return fail(format!(
                "auth.leeway = {}s is more than 5 minutes",
                a.leeway.0.as_secs()
            ));
        }
        Ok(Auth {
            subscribe: a.subscribe,
            publish,
            static_token: static_token.into(),
            key: secret.map(|(s, _)| jwt::key(s.as_bytes())),
            rooms_claim: a.rooms_claim.as_str().into(),
            publish_claim: a.publish_claim.as_str().into(),
            cookie: a.cookie.as_str().into(),
            query_param: a.query_param.as_str().into(),
            leeway: a.leeway.0.as_secs_f64(),
        })
    }

    /// `target` as it may be logged: the value of every `auth.query_param`
    /// (and `token`) query parameter replaced with [`REDACTED`].
    pub fn redact<'a>(&self, target: &'a str) -> Cow<'a, str> {
        redact_query(target, &[&self.query_param, DEFAULT_QUERY_PARAM])
    }

    /// Whether subscribing needs a token.
    pub fn subscribe_required(&self) -> bool {
        self.subscribe
    }

    /// What publishing needs.
    pub fn publish_mode(&self) -> PublishMode {
        self.publish
    }

    /// The request's token: `Authorization: Bearer`, then the query
    /// parameter, then the cookie. Empty values count as absent.
    pub fn token<'h>(&self, head: &RequestHead<'h>) -> Option<Cow<'h, str>> {
        self.token_and_source(head).map(|(t, _)| t)
    }

    /// Whether the request's token (if any) is the cookie's: a browser
    /// sends cookies with any site's WebSocket, so such a handshake must
    /// prove its origin.
    pub fn token_from_cookie(&self, head: &RequestHead<'_>) -> bool {
        matches!(self.token_and_source(head), Some((_, TokenSource::Cookie)))
    }

    fn token_and_source<'h>(&self, head: &RequestHead<'h>) -> Option<(Cow<'h, str>, TokenSource)> {
        let headers: &'h [httparse::Header<'h>] = head.headers;
        if let Some(h) = headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("authorization"))
        {
            if let Some(t) = std::str::from_utf8(h.value).ok().and_then(bearer) {
                return Some((Cow::Borrowed(t), TokenSource::Header));
            }
        }
        if !self.query_param.is_empty() {
            if let Some(raw) = head.query_params(&self.query_param).next() {
                if let Ok(t) = percent_decode(raw) {
                    if !t.is_empty() {
                        return Some((Cow::Owned(t), TokenSource::Query));
                    }
                }
            }
        }
        if !self.cookie.is_empty() {
            for h in headers {
                if !h.name.eq_ignore_ascii_case("cookie") {
                    continue;
                }
                let Ok(v) = std::str::from_utf8(h.value) else {
                    continue;
                };
                for pair in v.split(';') {
                    if let Some((name, value)) = pair.trim().split_once('=') {
                        let value = value.trim();
                        let value = value
                            .strip_prefix('"')
                            .and_then(|x| x.strip_suffix('"'))
                            .unwrap_or(value);
                        if name.trim() == &*self.cookie && !value.is_empty() {
                            return Some((Cow::Borrowed(value), TokenSource::Cookie));
                        }
                    }
                }
            }
        }
        None
    }

    /// Verifies a JWT now.
    fn claims(&self, token: &str) -> Result<Claims, TokenError> {
        let Some(key) = &self.key else {
            return Err(TokenError::Malformed(
                "this server accepts no JWT (no auth.jwt_secret)",
            ));
        };
        jwt::verify(token, key, now(), self.leeway)
    }

    /// Checks a subscriber's token (SSE, `/ws`, `/rooms` reads): the rooms it may join.
    pub fn subscriber(&self, head: &RequestHead<'_>) -> Result<Grant, Refusal> {
        if !self.subscribe {
            return Ok(Grant::All);
        }
        let token = self
            .token(head)
            .ok_or(Refusal::Unauthorized(TokenError::Missing))?;
        let claims = self.claims(&token).map_err(Refusal::Unauthorized)?;
        claims
            .patterns(&self.rooms_claim)
            .map(Grant::Rooms)
            .map_err(Refusal::Unauthorized)
    }

    /// Checks a publisher's token (`POST /publish`, a `/ws` client): the
    /// rooms it may publish to.
    pub fn publisher(&self, head: &RequestHead<'_>) -> Result<Grant, Refusal> {
        let unauthorized = Refusal::Unauthorized;
        if self.publish == PublishMode::Off {
            return Ok(Grant::All);
        }
        let token = self.token(head).ok_or(unauthorized(TokenError::Missing))?;
        let is_static = !self.static_token.is_empty()
            && constant_time_eq(token.as_bytes(), self.static_token.as_bytes());
        match self.publish {
            PublishMode::Off => Ok(Grant::All),
            // the router answers 403 before asking; a grant of no room otherwise
            PublishMode::Closed => Ok(Grant::Rooms(Patterns::default())),
            PublishMode::Token if is_static => Ok(Grant::All),
            PublishMode::Token => Err(unauthorized(TokenError::NotPublishToken)),
            PublishMode::TokenOrJwt if is_static => Ok(Grant::All),
            PublishMode::Jwt | PublishMode::TokenOrJwt => {
                let claims = self.claims(&token).map_err(unauthorized)?;
                claims
                    .patterns(&self.publish_claim)
                    .map(Grant::Rooms)
                    .map_err(unauthorized)
            }
        }
    }

    /// Writes the 401 or 403 for a refusal; returns its status.
    pub fn write_refusal(
        &self,
        refusal: &Refusal,
        out: &mut BytesMut,
        keep_alive: bool,
        head_only: bool,
    ) -> u16 {
        match refusal {
            Refusal::Unauthorized(e) => {
                response::start(out, 401);
                let challenge = if *e == TokenError::Missing {
                    // RFC 6750 section 3.1: no error code when no token was sent
                    "Bearer realm=\"ringcast\"".to_string()
                } else {
                    format!(
                        "Bearer realm=\"ringcast\", error=\"invalid_token\", error_description=\"{}\"",
                        e.reason()
                    )
                };
                response::header(out, "WWW-Authenticate", challenge.as_bytes());
                response::header(out, "Content-Type", b"text/plain; charset=utf-8");
                let mut body = format!("401 Unauthorized: {}", e.reason());
                if *e == TokenError::Missing {
                    body.push_str(": send Authorization: Bearer <token>");
                    if !self.query_param.is_empty() {
                        body.push_str(&format!(", ?{}=<token>", self.query_param));
                    }
                    if !self.cookie.is_empty() {
                        body.push_str(&format!(" or the {} cookie", self.cookie));
                    }
                }
                body.push('\n');
                response::finish(out, body.as_bytes(), keep_alive, head_only);
            }
            Refusal::Forbidden { room, publish } => {
                // room names are A-Z a-z 0-9 _ - . : @, safe in a quoted header value
                let what = if *publish {
                    "publishing to"
                } else {
                    "subscribing to"
                };
                let why = format!("the token does not allow {what} room {room}");
                response::start(out, 403);
                let challenge = format!(
                    "Bearer realm=\"ringcast\", error=\"insufficient_scope\", error_description=\"{why}\""
                );
                response::header(out, "WWW-Authenticate", challenge.as_bytes());
                response::header(out, "Content-Type", b"text/plain; charset=utf-8");
                let body = format!("403 Forbidden: {why}\n");
                response::finish(out, body.as_bytes(), keep_alive, head_only);
            }
        }
        refusal.status()
    }
}

/// The first room a subscriber's grant does not allow (the auto-join room
/// is server configuration and always allowed).
pub fn check_rooms(grant: &Grant, rooms: &[RoomName], auto_join: &str) -> Result<(), Refusal> {
    match rooms
        .iter()
        .find(|r| &***r != auto_join && !grant.allows(r))
    {
        None => Ok(()),
        Some(room) => Err(Refusal::Forbidden {
            room: room.clone(),
            publish: false,
        }),
    }
}

/// `target` with the value of every query parameter named one of `names`
/// replaced with [`REDACTED`]. A name matches after percent-decoding and in
/// any case (`%74oken=`, `TOKEN=`), so nothing a client could mean as a
/// token escapes; pairs are split at `&` and `;`. Borrows when nothing
/// changes.
pub fn redact_query<'a>(target: &'a str, names: &[&str]) -> Cow<'a, str> {
    let Some(q) = target.find('?') else {
        return Cow::Borrowed(target);
    };
    let (path, query) = target.split_at(q + 1);
    let mut out = String::with_capacity(target.len() + REDACTED.len());
    out.push_str(path);
    let mut changed = false;
    let mut rest = query;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let pair = &rest[..end];
        match pair.split_once('=') {
            Some((name, value))
                if !value.is_empty()
                    && names
                        .iter()
                        .any(|n| !n.is_empty() && decoded_name_is(name, n)) =>
            {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
                changed = true;
            }
            _ => out.push_str(pair),
        }
        // the separator (ASCII), then the next pair
        match rest.as_bytes().get(end) {
            Some(&sep) => {
                out.push(char::from(sep));
                rest = &rest[end + 1..];
            }
            None => break,
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(target)
    }
}

/// Does a raw query parameter name, percent-decoded (leniently: a bad
/// escape stays as it is), equal `want` in any case?
fn decoded_name_is(raw: &str, want: &str) -> bool {
    let raw = raw.as_bytes();
    let want = want.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let (mut i, mut j) = (0, 0);
    while i < raw.len() {
        let (byte, used) = match (raw[i], raw.get(i + 1).copied(), raw.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) => match (hex(h), hex(l)) {
                (Some(h), Some(l)) => (h * 16 + l, 3),
                _ => (b'%', 1),
            },
            (b'+', _, _) => (b' ', 1),
            (c, _, _) => (c, 1),
        };
        if j >= want.len() || !byte.eq_ignore_ascii_case(&want[j]) {
            return false;
        }
        i += used;
        j += 1;
    }
    j == want.len()
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(v: &str) -> Option<&str> {
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Seconds since the Unix epoch.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Compares without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::request::{self, HeadLimits};
    use serde_json::json;
    use std::sync::Arc;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn auth(extra: &str) -> Auth {
        let cfg =
            Config::from_toml(&format!("[auth]\njwt_secret = \"{SECRET}\"\n{extra}"), "t").unwrap();
        Auth::from_config(&cfg).unwrap()
    }

    fn token(claims: serde_json::Value) -> String {
        jwt::sign(&json!({"alg": "HS256"}), &claims, SECRET.as_bytes())
    }

    fn exp() -> f64 {
        now() + 600.0
    }

    /// Parses a request head and runs `f` on it.
    fn with_head<T>(raw: &str, f: impl FnOnce(&RequestHead<'_>) -> T) -> T {
        let mut storage = request::header_storage();
        let limits = HeadLimits {
            max_request_line: 8192,
            max_header_bytes: 16384,
            max_headers: 64,
        };
        let (line, rest) = raw.split_once("\r\n").unwrap();
        let raw = format!("{line}\r\nHost: t\r\n{rest}");
        match request::parse(raw.as_bytes(), &mut storage, &limits) {
            Ok(request::Parsed::Complete(head)) => f(&head),
            _ => panic!("not a complete, valid head: {raw:?}"),
        }
    }

    #[test]
    fn redaction_of_token_query_parameters() {
        let r = |t: &str| redact_query(t, &["tok", "token"]).into_owned();
        assert_eq!(r("/sse?room=a&token=S"), "/sse?room=a&token=[redacted]");
        assert_eq!(r("/sse?token=S&room=a"), "/sse?token=[redacted]&room=a");
        // every occurrence, the name percent-encoded or in another case, `;` pairs
        assert_eq!(
            r("/x?token=S1&%74oken=S2&TOKEN=S3;tok=S4&%54%4fK=S5&tok%65n=S6"),
            "/x?token=[redacted]&%74oken=[redacted]&TOKEN=[redacted];tok=[redacted]&%54%4fK=[redacted]&tok%65n=[redacted]"
        );
        // other names, names that merely contain the name, empty values and no query stay
        for same in [
            "/sse?room=token&tokens=1&xtoken=2&token&token=",
            "/healthz",
            "/a?",
            "/a?%zz=1&%7=2&tok%=3",
            "/a?&&=x&",
        ] {
            assert!(
                matches!(redact_query(same, &["tok", "token"]), Cow::Borrowed(_)),
                "{same}"
            );
        }
        // an empty configured name redacts nothing by itself
        assert_eq!(redact_query("/a?=S&b=S", &[""]), "/a?=S&b=S");
        // the configured parameter and the default name
        let a = auth("query_param = \"access_token\"\n");
        assert_eq!(
            a.redact("/sse?access_token=S&token=T&room=r"),
            "/sse?access_token=[redacted]&token=[redacted]&room=r"
        );
        let off = auth("query_param = \"\"\n");
        assert_eq!(off.redact("/sse?token=T"), "/sse?token=[redacted]");
    }

    #[test]
    fn token_sources_in_order() {
        let a = auth("");
        let get = |raw: &str| with_head(raw, |h| a.token(h).map(|t| t.into_owned()));
        assert_eq!(
            get("GET /sse?token=q HTTP/1.1\r\nAuthorization: Bearer h\r\nCookie: ringcast_token=c\r\n\r\n"),
            Some("h".into())
        );
        assert_eq!(
            get("GET /sse?room=a&token=q%2Ex HTTP/1.1\r\nCookie: ringcast_token=c\r\n\r\n"),
            Some("q.x".into())
        );
        assert_eq!(
            get("GET /sse HTTP/1.1\r\nAuthorization: Basic Zm9v\r\nCookie: a=b; ringcast_token=\"c\"; d=e\r\n\r\n"),
            Some("c".into())
        );
        assert_eq!(
            get("GET /sse HTTP/1.1\r\nCookie: a=b\r\nCookie: ringcast_token=c2\r\n\r\n"),
            Some("c2".into())
        );
        assert_eq!(
            get("GET /sse?token= HTTP/1.1\r\nAuthorization: Bearer \r\n\r\n"),
            None
        );
        let off = auth("query_param = \"\"\ncookie = \"\"\n");
        let raw = "GET /sse?token=q HTTP/1.1\r\nCookie: ringcast_token=c\r\n\r\n";
        assert!(with_head(raw, |h| off.token(h).is_none()));
    }

    #[test]
    fn subscribers_need_a_token_listing_their_rooms() {
        let a = auth("subscribe = true\n");
        let good = token(json!({"exp": exp(), "rooms": ["a", "chat.*"]}));
        let raw = format!("GET /sse HTTP/1.1\r\nAuthorization: Bearer {good}\r\n\r\n");
        let grant = with_head(&raw, |h| a.subscriber(h)).unwrap();
        let rooms: Vec<RoomName> = vec![Arc::from("a"), Arc::from("chat.x"), Arc::from("__all")];
        assert_eq!(check_rooms(&grant, &rooms, "__all"), Ok(()));
        let rooms: Vec<RoomName> = vec![Arc::from("a"), Arc::from("b")];
        assert_eq!(
            check_rooms(&grant, &rooms, "__all"),
            Err(Refusal::Forbidden {
                room: Arc::from("b"),
                publish: false
            })
        );
        let none = with_head("GET /sse HTTP/1.1\r\n\r\n", |h| a.subscriber(h));
        assert_eq!(none, Err(Refusal::Unauthorized(TokenError::Missing)));
        let expired = token(json!({"exp": now() - 100.0, "rooms": ["a"]}));
        let raw = format!("GET /sse?token={expired} HTTP/1.1\r\n\r\n");
        assert_eq!(
            with_head(&raw, |h| a.subscriber(h)),
            Err(Refusal::Unauthorized(TokenError::Expired))
        );
        // subscribe off: no token needed
        let open = auth("");
        assert_eq!(
            with_head("GET /sse HTTP/1.1\r\n\r\n", |h| open.subscriber(h)),
            Ok(Grant::All)
        );
    }

    #[test]
    fn publish_modes() {
        let jwt_tok = token(json!({"exp": exp(), "publish": ["news"]}));
        let req =
            |t: &str| format!("POST /publish/news HTTP/1.1\r\nAuthorization: Bearer {t}\r\n\r\n");
        let static_only = Auth::from_config(
            &Config::from_toml("[hub]\npublish_token = \"s3cret\"\n", "t").unwrap(),
        )
        .unwrap();
        assert_eq!(static_only.publish_mode(), PublishMode::Token);
        assert_eq!(
            with_head(&req("s3cret"), |h| static_only.publisher(h)),
            Ok(Grant::All)
        );
        assert_eq!(
            with_head(&req(&jwt_tok), |h| static_only.publisher(h)),
            Err(Refusal::Unauthorized(TokenError::NotPublishToken))
        );
        let both = auth("publish = \"token_or_jwt\"\n[hub]\npublish_token = \"s3cret\"\n");
        assert_eq!(
            with_head(&req("s3cret"), |h| both.publisher(h)),
            Ok(Grant::All)
        );
        let g = with_head(&req(&jwt_tok), |h| both.publisher(h)).unwrap();
        assert!(g.allows("news") && !g.allows("sport"));
        assert_eq!(
            with_head(&req("s3cre"), |h| both.publisher(h)),
            Err(Refusal::Unauthorized(TokenError::Malformed(
                "malformed token: a JWT has three dot-separated parts"
            )))
        );
        let jwt_only = auth("publish = \"jwt\"\n");
        assert!(with_head(&req(&jwt_tok), |h| jwt_only.publisher(h)).is_ok());
        assert_eq!(
            with_head("POST /publish/news HTTP/1.1\r\n\r\n", |h| jwt_only
                .publisher(h)),
            Err(Refusal::Unauthorized(TokenError::Missing))
        );
        assert_eq!(
            with_head("POST /publish/news HTTP/1.1\r\n\r\n", |h| auth("")
                .publisher(h)),
            Ok(Grant::All)
        );
    }

    #[test]
    fn refusals_name_their_reason() {
        let a = auth("subscribe = true\n");
        let mut out = BytesMut::new();
        a.write_refusal(
            &Refusal::Unauthorized(TokenError::Expired),
            &mut out,
            true,
            false,
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
        assert!(text.contains("\r\nWWW-Authenticate: Bearer realm=\"ringcast\", error=\"invalid_token\", error_description=\"token expired\"\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\n401 Unauthorized: token expired\n"),
            "{text}"
        );
        let mut out = BytesMut::new();
        a.write_refusal(
            &Refusal::Unauthorized(TokenError::Missing),
            &mut out,
            true,
            false,
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            text.contains("\r\nWWW-Authenticate: Bearer realm=\"ringcast\"\r\n"),
            "{text}"
        );
        assert!(text.contains("missing token: send Authorization: Bearer <token>, ?token=<token> or the ringcast_token cookie"), "{text}");
        let mut out = BytesMut::new();
        let f = Refusal::Forbidden {
            room: Arc::from("b"),
            publish: true,
        };
        a.write_refusal(&f, &mut out, false, false);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
        assert!(text.contains("error=\"insufficient_scope\""), "{text}");
        assert!(text.contains("Connection: close"), "{text}");
        assert!(
            text.ends_with("403 Forbidden: the token does not allow publishing to room b\n"),
            "{text}"
        );
    }
}
