//! JSON Web Tokens signed with HS256 (RFC 7519, RFC 7515, RFC 7518 §3.2):
//! verification only, pure code. The header must say `"alg":"HS256"`
//! (`none`, RS256 and the rest are refused before anything else is looked
//! at), the signature is compared in constant time, `exp` is required and
//! `nbf` honoured, both with a small leeway for clock skew. Every refusal
//! names its reason.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The HMAC-SHA256 key, prepared once (clone it per verification).
pub type Key = Hmac<Sha256>;

/// Fewest secret bytes HS256 accepts (RFC 7518 §3.2: a key of at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;

/// Prepares the key for a secret.
pub fn key(secret: &[u8]) -> Key {
    Hmac::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Why a token was refused (every one is a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// No token in the header, the query or the cookie.
    Missing,
    /// Not three base64url parts of JSON objects; says which part and how.
    Malformed(&'static str),
    /// The header's `alg` is not HS256 (or is missing).
    Algorithm,
    /// The signature does not match the secret.
    BadSignature,
    /// `exp` (plus the leeway) has passed.
    Expired,
    /// `nbf` (less the leeway) has not come yet.
    NotYetValid,
    /// A claim is missing or of the wrong type; says which.
    Claim(&'static str),
    /// Not the static publish token (and no JWT is accepted for this request).
    NotPublishToken,
}

impl TokenError {
    /// The reason, for the 401 body and `error_description` (no quotes or
    /// backslashes, so it fits a quoted header value).
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing token",
            TokenError::Malformed(why) => why,
            TokenError::Algorithm => "wrong algorithm: only HS256 tokens are accepted",
            TokenError::BadSignature => "bad signature",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not valid yet (nbf)",
            TokenError::Claim(why) => why,
            TokenError::NotPublishToken => "not the publish token",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    /// The room patterns a claim lists: an array of strings or one string;
    /// an absent claim lists none.
    pub fn patterns(&self, claim: &str) -> Result<Patterns, TokenError> {
        const BAD: TokenError = TokenError::Claim(
            "malformed token: a rooms claim must be a string or an array of strings",
        );
        match self.0.get(claim) {
            None | Some(Value::Null) => Ok(Patterns::default()),
            Some(Value::String(s)) => Ok(Patterns(vec![s.as_str().into()])),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(Box::from).ok_or(BAD))
                .collect::<Result<Vec<_>, _>>()
                .map(Patterns),
            Some(_) => Err(BAD),
        }
    }
}

/// Room patterns from a claim: exact names, or a prefix ending in `*`
/// (`chat.*` allows `chat.a` and `chat.b`; `*` allows every room). A `*`
/// anywhere else is an ordinary character (room names never contain one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns(pub Vec<Box<str>>);

impl Patterns {
    pub fn allows(&self, room: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => **p == *room,
        })
    }
}

/// Verifies `token` with `key` at time `now` (seconds since the Unix epoch),
/// allowing `leeway` seconds of clock skew on `exp` and `nbf`.
pub fn verify(token: &str, key: &Key, now: f64, leeway: f64) -> Result<Claims, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "malformed token: a JWT has three dot-separated parts",
        ));
    };
    let header = decode_object(h).map_err(|e| {
        TokenError::Malformed(match e {
            Part::Base64 => "malformed token: the header is not base64url",
            Part::Json => "malformed token: the header is not a JSON object",
        })
    })?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "HS256" => {}
        _ => return Err(TokenError::Algorithm),
    }
    if header.contains_key("crit") {
        return Err(TokenError::Malformed(
            "malformed token: critical header extensions (crit) are not supported",
        ));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed("malformed token: the signature is not base64url"))?;
    let mut mac = key.clone();
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    // constant time; a signature of the wrong length fails too
    mac.verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let claims = decode_object(p).map_err(|e| {
        TokenError::Malformed(match e {
            Part::Base64 => "malformed token: the payload is not base64url",
            Part::Json => "malformed token: the payload is not a JSON object",
        })
    })?;
    let exp = match claims.get("exp") {
        None => {
            return Err(TokenError::Claim(
                "invalid token: the exp claim is required",
            ))
        }
        Some(v) => v
            .as_f64()
            .ok_or(TokenError::Claim("invalid token: exp is not a number"))?,
    };
    if now >= exp + leeway {
        return Err(TokenError::Expired);
    }
    if let Some(v) = claims.get("nbf") {
        let nbf = v
            .as_f64()
            .ok_or(TokenError::Claim("invalid token: nbf is not a number"))?;
        if now + leeway < nbf {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(Claims(claims))
}

enum Part {
    Base64,
    Json,
}

fn decode_object(b64: &str) -> Result<Map<String, Value>, Part> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| Part::Base64)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Part::Json),
    }
}

/// Signs claims as an HS256 JWT (for tests and tools; the server only verifies).
pub fn sign(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = key(secret);
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{p}.{s}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: f64 = 1_700_000_000.0;

    fn hs256(claims: Value) -> String {
        sign(&json!({"alg": "HS256", "typ": "JWT"}), &claims, SECRET)
    }

    fn check(token: &str) -> Result<Claims, TokenError> {
        verify(token, &key(SECRET), NOW, 30.0)
    }

    #[test]
    fn good_token_gives_its_claims() {
        let t = hs256(json!({"exp": NOW + 60.0, "rooms": ["a", "chat.*"], "publish": "x"}));
        let c = check(&t).unwrap();
        let rooms = c.patterns("rooms").unwrap();
        assert!(rooms.allows("a") && rooms.allows("chat.1") && !rooms.allows("b"));
        assert_eq!(c.patterns("publish").unwrap().0, vec![Box::from("x")]);
        assert!(c.patterns("absent").unwrap().0.is_empty());
    }

    #[test]
    fn rfc7515_example_verifies() {
        // RFC 7515 Appendix A.1 (its exp, 1300819380, is long past: no leeway saves it).
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let k = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let c = verify(token, &key(&k), 1_300_819_379.0, 0.0).unwrap();
        assert_eq!(c.0["iss"], "joe");
        assert_eq!(
            verify(token, &key(&k), NOW, 30.0).unwrap_err(),
            TokenError::Expired
        );
        assert_eq!(
            verify(token, &key(SECRET), 1_300_819_379.0, 0.0).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn expiry_and_not_before_honour_the_leeway() {
        assert_eq!(
            check(&hs256(json!({"exp": NOW - 31.0}))).unwrap_err(),
            TokenError::Expired
        );
        assert!(check(&hs256(json!({"exp": NOW - 29.0}))).is_ok());
        assert!(check(&hs256(json!({"exp": NOW + 1.5}))).is_ok());
        assert_eq!(
            check(&hs256(json!({"exp": NOW + 100.0, "nbf": NOW + 31.0}))).unwrap_err(),
            TokenError::NotYetValid
        );
        assert!(check(&hs256(json!({"exp": NOW + 100.0, "nbf": NOW + 29.0}))).is_ok());
        assert!(matches!(
            check(&hs256(json!({"rooms": ["a"]}))).unwrap_err(),
            TokenError::Claim(w) if w.contains("exp")
        ));
        assert!(matches!(
            check(&hs256(json!({"exp": "tomorrow"}))).unwrap_err(),
            TokenError::Claim(w) if w.contains("exp")
        ));
        assert!(matches!(
            check(&hs256(json!({"exp": NOW + 9.0, "nbf": "now"}))).unwrap_err(),
            TokenError::Claim(w) if w.contains("nbf")
        ));
    }

    #[test]
    fn only_hs256_is_accepted() {
        let claims = json!({"exp": NOW + 60.0});
        for header in [
            json!({"alg": "none"}),
            json!({"alg": "RS256"}),
            json!({"alg": "HS512"}),
            json!({"alg": "hs256"}),
            json!({"typ": "JWT"}),
            json!({"alg": ["HS256"]}),
        ] {
            let t = sign(&header, &claims, SECRET);
            assert_eq!(check(&t).unwrap_err(), TokenError::Algorithm, "{header}");
        }
        // alg none with an empty signature: refused for its algorithm.
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(
            check(&format!("{h}.{p}.")).unwrap_err(),
            TokenError::Algorithm
        );
        let t = sign(&json!({"alg": "HS256", "crit": ["x"]}), &claims, SECRET);
        assert!(matches!(check(&t).unwrap_err(), TokenError::Malformed(w) if w.contains("crit")));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let t = hs256(json!({"exp": NOW + 60.0, "rooms": ["a"]}));
        let other = sign(
            &json!({"alg": "HS256"}),
            &json!({"exp": NOW + 60.0, "rooms": ["*"]}),
            SECRET,
        );
        let (h, rest) = t.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged_payload = other.split('.').nth(1).unwrap();
        assert_eq!(
            check(&format!("{h}.{forged_payload}.{sig}")).unwrap_err(),
            TokenError::BadSignature
        );
        let wrong_key = sign(
            &json!({"alg": "HS256"}),
            &json!({"exp": NOW + 60.0}),
            b"another secret of at least 32 bytes!",
        );
        assert_eq!(check(&wrong_key).unwrap_err(), TokenError::BadSignature);
        // a signature of the wrong length
        let short = URL_SAFE_NO_PAD.encode([0u8; 16]);
        assert_eq!(
            check(&format!("{h}.{}.{short}", rest.split_once('.').unwrap().0)).unwrap_err(),
            TokenError::BadSignature
        );
        assert_eq!(
            check(&format!("{h}.{}.", rest.split_once('.').unwrap().0)).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn malformed_tokens_name_the_part() {
        let good = hs256(json!({"exp": NOW + 60.0}));
        let reason = |t: &str| check(t).unwrap_err().reason();
        assert_eq!(check("").unwrap_err(), TokenError::Missing);
        assert!(reason("abc").contains("three"));
        assert!(reason("a.b").contains("three"));
        assert!(reason(&format!("{good}.x")).contains("three"));
        assert!(reason("!!.e30.sig").contains("header is not base64url"));
        // "e30" is {} base64url, "bm90IGpzb24" is "not json"
        assert!(reason("bm90IGpzb24.e30.x").contains("header is not a JSON object"));
        assert!(reason("WzFd.e30.x").contains("header is not a JSON object")); // [1]
        let (h, rest) = good.split_once('.').unwrap();
        let (p, _) = rest.split_once('.').unwrap();
        assert!(reason(&format!("{h}.{p}.a+b/")).contains("signature is not base64url"));
        // a payload that is not JSON, correctly signed: refused after the signature check
        let t = {
            let bad = URL_SAFE_NO_PAD.encode("not json");
            let mut mac = key(SECRET);
            mac.update(format!("{h}.{bad}").as_bytes());
            let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
            format!("{h}.{bad}.{s}")
        };
        assert!(reason(&t).contains("payload is not a JSON object"));
        for r in [reason("abc"), reason("!!.e30.sig"), reason(&t)] {
            assert!(!r.contains('"') && !r.contains('\\'), "{r}");
        }
    }

    #[test]
    fn claims_of_the_wrong_shape_are_refused() {
        let c = check(&hs256(
            json!({"exp": NOW + 60.0, "rooms": [1], "publish": {"a": 1}}),
        ))
        .unwrap();
        assert!(c.patterns("rooms").is_err());
        assert!(c.patterns("publish").is_err());
    }

    #[test]
    fn patterns_match_exact_names_and_trailing_stars() {
        let p = Patterns(vec!["chat.*".into(), "news".into(), "a*b".into()]);
        assert!(p.allows("chat.1") && p.allows("chat.") && p.allows("news"));
        assert!(!p.allows("chat") && !p.allows("newsy") && !p.allows("news2"));
        assert!(p.allows("a*b") && !p.allows("axb"));
        assert!(Patterns(vec!["*".into()]).allows("anything"));
        assert!(!Patterns::default().allows("a"));
    }
}
