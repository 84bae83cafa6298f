//! Certificates for the TLS listener: PEM chains and keys (RSA, ECDSA,
//! Ed25519) loaded from files, one default and any number chosen by the
//! name the client asks for (SNI, matched against each certificate's DNS
//! names, `*.` wildcards included), swapped atomically on reload (new
//! handshakes see the new set, open connections keep the session they
//! have), and the rustls configuration the workers share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// One certificate file and its key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A loaded certificate, as `/metrics` and the logs describe it.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The certificate file.
    pub file: String,
    /// The leaf's DNS names (and IP addresses), for SNI.
    pub names: Vec<String>,
    /// The leaf's notAfter, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// A loaded set: the default and the ones chosen by name.
struct CertSet {
    default: Arc<CertifiedKey>,
    by_name: Vec<(String, Arc<CertifiedKey>)>,
    info: Vec<CertInfo>,
}

/// The certificates in use; [`CertStore::reload`] swaps them.
pub struct CertStore {
    current: ArcSwap<CertSet>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("info", &self.current.load().info)
            .finish()
    }
}

impl CertStore {
    /// Loads the default certificate and the ones chosen by SNI. The error
    /// names the file and what is wrong with it.
    pub fn load(default: &CertFiles, others: &[CertFiles]) -> Result<CertStore, String> {
        Ok(CertStore {
            current: ArcSwap::from_pointee(load_set(default, others)?),
        })
    }

    /// Loads the files again and, if every one loads, uses them for new
    /// handshakes; otherwise the running set stays and the error names the file.
    pub fn reload(&self, default: &CertFiles, others: &[CertFiles]) -> Result<(), String> {
        let set = load_set(default, others)?;
        self.current.store(Arc::new(set));
        Ok(())
    }

    /// The certificates in use.
    pub fn info(&self) -> Vec<CertInfo> {
        self.current.load().info.clone()
    }
}

/// Chooses the certificate for a handshake.
#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.0.current.load();
        if let Some(name) = hello.server_name() {
            let name = name.to_ascii_lowercase();
            if let Some((_, ck)) = set.by_name.iter().find(|(n, _)| *n == name) {
                return Some(ck.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                let wild = format!("*.{parent}");
                if let Some((_, ck)) = set.by_name.iter().find(|(n, _)| *n == wild) {
                    return Some(ck.clone());
                }
            }
        }
        Some(set.default.clone())
    }
}

/// The rustls configuration every worker's TLS listener uses: TLS 1.2 and
/// 1.3 with the ring provider's suites (all AEAD with forward secrecy),
/// session tickets with rotating keys (when `tickets`), no 0-RTT, ALPN
/// `http/1.1`, and the certificate chosen by [`CertStore`].
pub fn server_config(
    store: Arc<CertStore>,
    tickets: bool,
    tls13_only: bool,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut cfg =
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(store)));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // the keys go to ringcast's record layer after the handshake (io::tls::records)
    cfg.enable_secret_extraction = true;
    cfg.max_early_data_size = 0;
    if tickets {
        cfg.ticketer = provider::Ticketer::new().map_err(|e| e.to_string())?;
    } else {
        cfg.send_tls13_tickets = 0;
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    }
    Ok(Arc::new(cfg))
}

fn load_set(default: &CertFiles, others: &[CertFiles]) -> Result<CertSet, String> {
    let (ck, info) = load_pair(default)?;
    let mut set = CertSet {
        default: ck,
        by_name: Vec::new(),
        info: vec![info],
    };
    for files in others {
        let (ck, info) = load_pair(files)?;
        if info.names.is_empty() {
            return Err(format!(
                "{}: the certificate names no DNS name to choose it by (subjectAltName)",
                files.cert.display()
            ));
        }
        for n in &info.names {
            set.by_name.push((n.to_ascii_lowercase(), ck.clone()));
        }
        set.info.push(info);
    }
    Ok(set)
}

/// One certificate chain and its key, checked to belong together.
fn load_pair(files: &CertFiles) -> Result<(Arc<CertifiedKey>, CertInfo), String> {
    let cert_name = files.cert.display().to_string();
    let key_name = files.key.display().to_string();
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    let signing = provider::sign::any_supported_type(&key).map_err(|e| {
        format!("{key_name}: not a usable private key (RSA, ECDSA P-256/P-384 or Ed25519): {e}")
    })?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| {
        format!("{key_name}: the key does not belong to the certificate in {cert_name}: {e}")
    })?;
    let leaf = &ck.cert[0];
    let facts = der::leaf_facts(leaf)
        .ok_or_else(|| format!("{cert_name}: the certificate is not valid X.509 DER"))?;
    Ok((
        Arc::new(ck),
        CertInfo {
            file: cert_name,
            names: facts.dns_names,
            not_after: facts.not_after,
        },
    ))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{name}: not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "{name}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\" blocks)"
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!("{name}: no private key in it (expected PEM PKCS#8, SEC1 or PKCS#1): {e}")
    })
}

/// Writes a self-signed certificate for `names` (DNS names or IP
/// addresses) into `dir` as `cert.pem` and `key.pem` (ECDSA P-256, the key
/// readable by the owner only), for local development. Returns the two paths.
pub fn write_self_signed(dir: &Path, names: &[String]) -> Result<CertFiles, String> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    let files = CertFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, ck.cert.pem())
        .map_err(|e| format!("{}: cannot write: {e}", files.cert.display()))?;
    write_private(&files.key, ck.key_pair.serialize_pem().as_bytes())?;
    Ok(files)
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// Just enough DER to read a certificate's notAfter and subjectAltName.
pub(crate) mod der {
    /// What the TLS listener needs to know of a leaf certificate.
    pub struct LeafFacts {
        pub not_after: i64,
        pub dns_names: Vec<String>,
    }

    /// One TLV: (tag, contents, rest after it).
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&len0, mut b) = b.split_first()?;
        let len = if len0 < 0x80 {
            len0 as usize
        } else {
            let n = (len0 & 0x7f) as usize;
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let mut len = 0usize;
            for &x in &b[..n] {
                len = (len << 8) | x as usize;
            }
            b = &b[n..];
            len
        };
        if b.len() < len {
            return None;
        }
        Some((tag, &b[..len], &b[len..]))
    }

    /// The notAfter and DNS names of a DER certificate (`None`: not a certificate).
    pub fn leaf_facts(cert: &[u8]) -> Option<LeafFacts> {
        let (0x30, cert, _) = tlv(cert)? else {
            return None;
        };
        let (0x30, tbs, _) = tlv(cert)? else {
            return None;
        };
        let mut rest = tbs;
        // [0] version (optional), serial, signature, issuer, validity, subject, spki, ...
        let (tag, _, r) = tlv(rest)?;
        rest = r;
        if tag == 0xa0 {
            let (_, _, r) = tlv(rest)?; // serial
            rest = r;
        }
        let (_, _, r) = tlv(rest)?; // signature algorithm
        let (_, _, r) = tlv(r)?; // issuer
        let (0x30, validity, r) = tlv(r)? else {
            return None;
        };
        let after_validity = r;
        let (_, _, v) = tlv(validity)?; // notBefore
        let (tag, na, _) = tlv(v)?;
        let not_after = parse_time(tag, na)?;
        let (_, _, r) = tlv(after_validity)?; // subject
        let (_, _, mut r) = tlv(r)?; // subjectPublicKeyInfo
        let mut dns_names = Vec::new();
        while let Some((tag, body, next)) = tlv(r) {
            if tag == 0xa3 {
                let (0x30, mut exts, _) = tlv(body)? else {
                    return None;
                };
                while let Some((0x30, ext, more)) = tlv(exts) {
                    exts = more;
                    let (0x06, oid, mut e) = tlv(ext)? else {
                        continue;
                    };
                    if oid != [0x55, 0x1d, 0x11] {
                        continue;
                    }
                    if let Some((0x01, _, after)) = tlv(e) {
                        e = after; // critical flag
                    }
                    let (0x04, value, _) = tlv(e)? else {
                        continue;
                    };
                    let (0x30, mut names, _) = tlv(value)? else {
                        continue;
                    };
                    while let Some((tag, name, more)) = tlv(names) {
                        names = more;
                        match tag {
                            0x82 => {
                                if let Ok(s) = std::str::from_utf8(name) {
                                    dns_names.push(s.to_string());
                                }
                            }
                            0x87 if name.len() == 4 => {
                                let ip =
                                    std::net::Ipv4Addr::new(name[0], name[1], name[2], name[3]);
                                dns_names.push(ip.to_string());
                            }
                            0x87 if name.len() == 16 => {
                                let mut a = [0u8; 16];
                                a.copy_from_slice(name);
                                dns_names.push(std::net::Ipv6Addr::from(a).to_string());
                            }
                            _ => {}
                        }
                    }
                }
            }
            r = next;
        }
        Some(LeafFacts {
            not_after,
            dns_names,
        })
    }

    /// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix seconds.
    fn parse_time(tag: u8, t: &[u8]) -> Option<i64> {
        let s = std::str::from_utf8(t).ok()?.strip_suffix('Z')?;
        let (year, rest) = match tag {
            0x17 if s.len() == 12 => {
                let yy: i64 = s[..2].parse().ok()?;
                (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
            }
            0x18 if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
            _ => return None,
        };
        let num = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
        let (mo, d, h, mi, sec) = (num(0)?, num(2)?, num(4)?, num(6)?, num(8)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        Some(days_from_civil(year, mo, d) * 86400 + h * 3600 + mi * 60 + sec)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe - 719468
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn times_convert_to_unix_seconds() {
            assert_eq!(parse_time(0x17, b"700101000000Z"), Some(0));
            assert_eq!(parse_time(0x17, b"491231235959Z"), Some(2524607999));
            assert_eq!(parse_time(0x18, b"20380119031408Z"), Some(2147483648));
            assert_eq!(parse_time(0x18, b"20380119031408"), None);
            assert_eq!(parse_time(0x17, b"701301000000Z"), None);
        }

        #[test]
        fn truncated_der_is_refused_not_panicking() {
            let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
            let der = cert.cert.der().to_vec();
            for cut in 0..der.len() {
                let _ = leaf_facts(&der[..cut]);
            }
            assert!(leaf_facts(&der[..der.len() / 2]).is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ringcast-certs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn self_signed_loads_with_its_names_and_expiry() {
        let dir = temp_dir("self");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let files = write_self_signed(&dir, &names).unwrap();
        let store = CertStore::load(&files, &[]).unwrap();
        let info = store.info();
        assert_eq!(info[0].names, names);
        // rcgen's default validity runs to 4096-01-01
        assert_eq!(info[0].not_after, 67_090_118_400);
        let mode = std::fs::metadata(&files.key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = temp_dir("bad");
        let a = write_self_signed(&dir.join("a"), &["a.example".into()]).unwrap();
        let b = write_self_signed(&dir.join("b"), &["b.example".into()]).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let cases = [
            (
                CertFiles {
                    cert: garbage.clone(),
                    key: a.key.clone(),
                },
                "garbage.pem: no certificate in it",
            ),
            (
                CertFiles {
                    cert: a.cert.clone(),
                    key: garbage.clone(),
                },
                "garbage.pem: no private key in it",
            ),
            (
                CertFiles {
                    cert: a.cert.clone(),
                    key: b.key.clone(),
                },
                "does not belong to the certificate",
            ),
            (
                CertFiles {
                    cert: dir.join("missing.pem"),
                    key: a.key.clone(),
                },
                "missing.pem: cannot read",
            ),
        ];
        for (files, want) in cases {
            let e = CertStore::load(&files, &[]).unwrap_err();
            assert!(e.contains(want), "{e:?} should say {want:?}");
        }
        // a failed reload keeps the running set
        let store = CertStore::load(&a, &[]).unwrap();
        let bad = CertFiles {
            cert: garbage,
            key: a.key.clone(),
        };
        assert!(store.reload(&bad, &[]).is_err());
        assert_eq!(store.info()[0].names, ["a.example"]);
        store.reload(&b, &[]).unwrap();
        assert_eq!(store.info()[0].names, ["b.example"]);
    }
}

/// The TLS listener's shared state: the certificates and the rustls
/// configuration built on them.
#[derive(Debug)]
pub struct TlsContext {
    /// The certificates in use (reloadable).
    pub store: Arc<CertStore>,
    /// What every handshake runs with.
    pub config: Arc<rustls::ServerConfig>,
}

impl TlsContext {
    /// Loads the certificates `[tls]` names and builds the configuration;
    /// the error names the key and the file.
    pub fn from_config(cfg: &crate::config::TlsConfig) -> Result<TlsContext, String> {
        let (default, others) = files_of(cfg);
        let store = Arc::new(CertStore::load(&default, &others).map_err(|e| format!("tls: {e}"))?);
        let config = server_config(store.clone(), cfg.session_tickets, cfg.min_version == "1.3")
            .map_err(|e| format!("tls: {e}"))?;
        Ok(TlsContext { store, config })
    }

    /// Loads the certificates `[tls]` names again (SIGHUP): new handshakes
    /// use them; on an error the running ones stay.
    pub fn reload(&self, cfg: &crate::config::TlsConfig) -> Result<(), String> {
        let (default, others) = files_of(cfg);
        self.store
            .reload(&default, &others)
            .map_err(|e| format!("tls: {e}"))
    }
}

fn files_of(cfg: &crate::config::TlsConfig) -> (CertFiles, Vec<CertFiles>) {
    let default = CertFiles {
        cert: cfg.cert.clone().into(),
        key: cfg.key.clone().into(),
    };
    let others = cfg
        .certificates
        .iter()
        .map(|c| CertFiles {
            cert: c.cert.clone().into(),
            key: c.key.clone().into(),
        })
        .collect();
    (default, others)
}
