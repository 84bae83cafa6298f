//! A ringcast with a TLS listener whose certificate is self-signed (for
//! localhost and 127.0.0.1): clients trust it by naming `cert.pem` as
//! their CA file.
#![allow(dead_code)]

use crate::common::{TempDir, TestServer};

/// Writes a self-signed certificate and its key into `dir` (cert.pem,
/// key.pem).
pub fn write(dir: &TempDir) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.0.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.0.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
}

/// The certificate [`write`] wrote into `dir`.
pub fn cert(dir: &TempDir) -> String {
    dir.0.join("cert.pem").display().to_string()
}

/// Starts a server with `config` (whole sections) and a TLS listener on a
/// free port with a new self-signed certificate in `dir`; returns it and
/// the TLS listener's address.
pub fn start(config: &str, dir: &TempDir) -> (TestServer, String) {
    write(dir);
    let key = dir.0.join("key.pem").display().to_string();
    let mut srv = TestServer::start(&format!(
        "{config}\n[tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {key:?}\n",
        cert(dir)
    ));
    let line = srv.wait_log("tls: listening on ");
    let addr = line
        .split("tls: listening on ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim()
        .to_string();
    (srv, addr)
}
