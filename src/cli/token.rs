//! `ringcast token`: mints an HS256 JWT with the claims `[auth]` reads, or
//! checks one exactly as the server would (the server's own [`Auth`]).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::{flag_value, Failure};
use crate::auth::{Auth, Grant, Refusal};
use crate::config::{Config, PublishAuth};
use crate::proto::http::request::RequestHead;

pub const USAGE: &str = "\
ringcast token: mint or check a token for [auth]

USAGE:
    ringcast token [SECRET] [--rooms A,B] [--publish C] [--ttl 1h] [--sub SUBJECT]
    ringcast token [SECRET] --check TOKEN [--room R]

Mints an HS256 JWT whose rooms claim lists the rooms it may subscribe to
and whose publish claim lists those it may publish to (exact names, or a
prefix ending in *), with the claim names of [auth] rooms_claim and
publish_claim (default \"rooms\" and \"publish\"), and prints it.

With --check, verifies TOKEN exactly as the server does (algorithm,
signature, exp and nbf with auth.leeway, the claims) and prints what it
allows, or the reason the server would refuse it. Exit 0 when it is valid
(and, with --room, allows subscribing to or publishing to R), else 1.

SECRET (one of):
        --secret <S>        the HS256 secret (at least 32 bytes)
        --secret-env <VAR>  the environment variable holding the secret
    -c, --config <FILE>     the secret ([auth] jwt_secret or jwt_secret_env),
                            claim names and leeway of this config file

OPTIONS:
        --rooms <LIST>      rooms it may subscribe to, comma-separated
                            (repeatable)
        --publish <LIST>    rooms it may publish to, comma-separated
                            (repeatable)
        --ttl <DUR>         lifetime: exp is now + DUR (default 1h)
        --sub <SUBJECT>     the sub claim
        --check <TOKEN>     check TOKEN instead of minting one
        --room <R>          with --check: also say whether R is allowed
    -h, --help              print this help
";

/// What `ringcast token` was asked.
#[derive(Debug, Default)]
pub struct TokenArgs {
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub config: Option<PathBuf>,
    pub rooms: Vec<String>,
    pub publish: Vec<String>,
    pub ttl: Option<Duration>,
    pub sub: Option<String>,
    pub check: Option<String>,
    pub room: Option<String>,
    pub help: bool,
}

fn list(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

pub fn parse<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> Result<TokenArgs, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut a = TokenArgs::default();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("secret") => a.secret = Some(flag_value(&mut p, "--secret")?),
            Long("secret-env") => a.secret_env = Some(flag_value(&mut p, "--secret-env")?),
            Short('c') | Long("config") => a.config = Some(flag_value(&mut p, "--config")?.into()),
            Long("rooms") => a.rooms.extend(list(&flag_value(&mut p, "--rooms")?)),
            Long("publish") => a.publish.extend(list(&flag_value(&mut p, "--publish")?)),
            Long("ttl") => {
                let v = flag_value(&mut p, "--ttl")?;
                a.ttl = Some(super::subscribe::parse_duration("--ttl", &v)?);
            }
            Long("sub") => a.sub = Some(flag_value(&mut p, "--sub")?),
            Long("check") => a.check = Some(flag_value(&mut p, "--check")?),
            Long("room") => a.room = Some(flag_value(&mut p, "--room")?),
            Short('h') | Long("help") => a.help = true,
            _ => return Err(format!("{}\n\n{USAGE}", arg.unexpected())),
        }
    }
    if a.help {
        return Ok(a);
    }
    let sources = [a.secret.is_some(), a.secret_env.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if sources > 1 {
        return Err("--secret and --secret-env: give one".into());
    }
    if sources == 0 && a.config.is_none() {
        return Err(format!(
            "no secret: give --secret, --secret-env or --config\n\n{USAGE}"
        ));
    }
    if a.check.is_some() {
        for (set, flag) in [
            (!a.rooms.is_empty(), "--rooms"),
            (!a.publish.is_empty(), "--publish"),
            (a.ttl.is_some(), "--ttl"),
            (a.sub.is_some(), "--sub"),
        ] {
            if set {
                return Err(format!("{flag} mints a token: it does not go with --check"));
            }
        }
    } else if a.room.is_some() {
        return Err("--room goes with --check".into());
    }
    Ok(a)
}

/// The `[auth]` rules the token is minted for or checked against: the
/// config file's (or the defaults), with the secret of the flags, and both
/// subscribing and publishing asking for a JWT.
fn rules(a: &TokenArgs) -> Result<(Config, Auth), Failure> {
    let mut cfg = match &a.config {
        Some(path) => Config::load(path).map_err(|e| Failure::Usage(e.to_string()))?,
        None => Config::default(),
    };
    if let Some(s) = &a.secret {
        cfg.auth.jwt_secret = s.clone();
        cfg.auth.jwt_secret_env.clear();
    }
    if let Some(v) = &a.secret_env {
        cfg.auth.jwt_secret.clear();
        cfg.auth.jwt_secret_env = v.clone();
    }
    if cfg.auth.jwt_secret.is_empty() && cfg.auth.jwt_secret_env.is_empty() {
        return Err(Failure::Usage(
            "the config file sets neither auth.jwt_secret nor auth.jwt_secret_env: give --secret or --secret-env".into(),
        ));
    }
    cfg.auth.subscribe = true;
    cfg.auth.publish = PublishAuth::Jwt;
    cfg.hub.publish_token.clear();
    let auth = Auth::from_config(&cfg).map_err(|e| {
        let msg = e.to_string();
        let msg = match &a.secret {
            Some(_) => msg.replace("auth.jwt_secret", "--secret"),
            None => msg,
        };
        Failure::Usage(msg)
    })?;
    Ok((cfg, auth))
}

/// The secret the rules were built with (flags or config).
fn secret(cfg: &Config) -> String {
    if cfg.auth.jwt_secret_env.is_empty() {
        cfg.auth.jwt_secret.clone()
    } else {
        std::env::var(&cfg.auth.jwt_secret_env).unwrap_or_default()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn run(a: &TokenArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let (cfg, auth) = rules(a)?;
    let w = |out: &mut dyn Write, s: &str| {
        writeln!(out, "{s}").map_err(|e| Failure::Run(format!("writing standard output: {e}")))
    };
    let Some(token) = &a.check else {
        let now = now();
        let ttl = a.ttl.unwrap_or(Duration::from_secs(3600)).as_secs().max(1);
        let mut claims = Map::new();
        if let Some(s) = &a.sub {
            claims.insert("sub".into(), Value::String(s.clone()));
        }
        if !a.rooms.is_empty() {
            claims.insert(cfg.auth.rooms_claim.clone(), json!(a.rooms));
        }
        if !a.publish.is_empty() {
            claims.insert(cfg.auth.publish_claim.clone(), json!(a.publish));
        }
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + ttl));
        let t = crate::proto::jwt::sign(
            &json!({"alg": "HS256", "typ": "JWT"}),
            &Value::Object(claims),
            secret(&cfg).as_bytes(),
        );
        return w(out, &t);
    };
    let report = check(&auth, token, a.room.as_deref());
    for line in &report.lines {
        w(out, line)?;
    }
    if report.ok {
        Ok(())
    } else {
        Err(Failure::Quiet)
    }
}

/// What `--check` found.
struct Report {
    ok: bool,
    lines: Vec<String>,
}

fn grant_text(g: &Grant) -> String {
    match g {
        Grant::All => "every room".into(),
        Grant::Rooms(p) if p.0.is_empty() => "no room".into(),
        Grant::Rooms(p) => p.0.join(", "),
    }
}

fn refusal_text(r: &Refusal) -> String {
    match r {
        Refusal::Unauthorized(e) => format!("401 Unauthorized: {}", e.reason()),
        Refusal::Forbidden { room, publish } => format!(
            "403 Forbidden: the token does not allow {} room {room}",
            if *publish {
                "publishing to"
            } else {
                "subscribing to"
            }
        ),
    }
}

/// Checks `token` with the server's rules, as a request carrying it in
/// `Authorization: Bearer` would be checked.
fn check(auth: &Auth, token: &str, room: Option<&str>) -> Report {
    let value = format!("Bearer {token}");
    let headers = [httparse::Header {
        name: "Authorization",
        value: value.as_bytes(),
    }];
    let head = RequestHead {
        method: "GET",
        target: "/",
        path: "/",
        query: "",
        minor_version: 1,
        headers: &headers,
        head_len: 0,
        content_length: 0,
        keep_alive: false,
        expect_continue: false,
        peer: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let sub = auth.subscriber(&head);
    let publ = auth.publisher(&head);
    let (sub, publ) = match (sub, publ) {
        (Err(r), _) | (_, Err(r)) => {
            return Report {
                ok: false,
                lines: vec![format!("refused: {}", refusal_text(&r))],
            }
        }
        (Ok(s), Ok(p)) => (s, p),
    };
    let mut lines = vec![
        "valid".to_string(),
        format!("subscribe: {}", grant_text(&sub)),
        format!("publish: {}", grant_text(&publ)),
    ];
    // the signature is verified: read exp and sub for display
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .unwrap_or_default();
    if let Some(exp) = payload.get("exp").and_then(Value::as_f64) {
        let at = UNIX_EPOCH + Duration::from_secs(exp.max(0.0) as u64);
        let left = at
            .duration_since(SystemTime::now())
            .map(|d| Duration::from_secs(d.as_secs()))
            .unwrap_or_default();
        lines.push(format!(
            "expires: {} (in {})",
            humantime::format_rfc3339_seconds(at),
            humantime::format_duration(left)
        ));
    }
    if let Some(s) = payload.get("sub").and_then(Value::as_str) {
        lines.push(format!("subject: {s}"));
    }
    let mut ok = true;
    if let Some(room) = room {
        let mut any = false;
        for (grant, publish, what) in [(&sub, false, "subscribe"), (&publ, true, "publish")] {
            if grant.allows(room) {
                any = true;
                lines.push(format!("room {room}: {what} allowed"));
            } else {
                let r = Refusal::Forbidden {
                    room: room.into(),
                    publish,
                };
                lines.push(format!("room {room}: {what} refused: {}", refusal_text(&r)));
            }
        }
        ok = any;
    }
    Report { ok, lines }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn args(v: &[&str]) -> Result<TokenArgs, String> {
        parse(v.iter().map(std::ffi::OsString::from))
    }

    fn mint(v: &[&str]) -> String {
        let mut out = Vec::new();
        run(&args(v).unwrap(), &mut out).unwrap();
        String::from_utf8(out).unwrap().trim().to_string()
    }

    #[test]
    fn mint_then_check() {
        let t = mint(&[
            "--secret",
            SECRET,
            "--rooms",
            "a,b",
            "--publish",
            "c",
            "--sub",
            "me",
        ]);
        let a = args(&["--secret", SECRET]).unwrap();
        let (_, auth) = rules(&a).unwrap();
        let r = check(&auth, &t, Some("a"));
        assert!(r.ok, "{:?}", r.lines);
        assert_eq!(r.lines[1], "subscribe: a, b");
        assert_eq!(r.lines[2], "publish: c");
        assert!(r.lines.iter().any(|l| l == "subject: me"));
        assert!(r.lines.iter().any(|l| l == "room a: subscribe allowed"));
        let r = check(&auth, &t, Some("z"));
        assert!(!r.ok);
        let other = args(&["--secret", &SECRET.replace('0', "1")]).unwrap();
        let (_, auth2) = rules(&other).unwrap();
        let r = check(&auth2, &t, None);
        assert!(!r.ok);
        assert_eq!(r.lines, ["refused: 401 Unauthorized: bad signature"]);
    }

    #[test]
    fn argument_errors() {
        assert!(args(&["--rooms", "a"]).unwrap_err().contains("no secret"));
        assert!(args(&["--secret", SECRET, "--ttl", "x"])
            .unwrap_err()
            .contains("--ttl"));
        assert!(args(&["--secret", SECRET, "--check", "t", "--rooms", "a"])
            .unwrap_err()
            .contains("--rooms"));
        let short = args(&["--secret", "short"]).unwrap();
        match rules(&short) {
            Err(Failure::Usage(m)) => assert!(m.contains("--secret"), "{m}"),
            _ => panic!("a short secret was accepted"),
        }
    }
}
