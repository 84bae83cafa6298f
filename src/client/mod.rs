//! A small blocking WebSocket client (RFC 6455, RFC 7692 permessage-deflate)
//! on `std::net`, over plain TCP (`ws://`) or TLS (`wss://`, rustls): for
//! integration tests, tools and applications that want to talk to a
//! ringcast server, or any WebSocket server, without a runtime.
//!
//! ```no_run
//! use ringcast::client::{Client, Message};
//!
//! let mut ws = Client::connect("ws://127.0.0.1:8080/echo").unwrap();
//! ws.send_text("hello").unwrap();
//! assert_eq!(ws.recv().unwrap(), Message::Text("hello".into()));
//! ws.close(1000, "bye").unwrap();
//! ```
//!
//! Policies, chosen for tests:
//!
//! - **Timeouts.** Connect, read and write time out after 10 s unless
//!   [`ConnectOptions`] says otherwise; a timed-out [`Client::recv`] returns
//!   the `WouldBlock`/`TimedOut` error and loses nothing (bytes of a frame
//!   that has not fully arrived stay buffered, and so do the bytes of a TLS
//!   record), so it can be called again.
//! - **Pings.** Answered with a pong automatically (`auto_pong`, on by
//!   default) and not returned by [`Client::recv`], unless `return_pings` is
//!   set or `auto_pong` is off. Pongs are always returned.
//! - **Close.** A close frame from the server is answered with a close frame
//!   echoing its code, then returned as [`Message::Close`]; later calls to
//!   `recv` fail with `NotConnected`. [`Client::close`] sends a close frame
//!   and waits for the server's.
//! - **Strictness.** Server frames go through the server's own codec in the
//!   client role ([`crate::proto::ws::codec`]), with the same rules: unmasked,
//!   no RSV2/RSV3, RSV1 only on the first frame of a message when
//!   permessage-deflate was negotiated, continuation frames only inside a
//!   fragmented message, text valid UTF-8, close payloads well formed (a
//!   code a peer may send). A violation is an `InvalidData` error (the
//!   client sends nothing in reply); so is a 101 response with a wrong
//!   `Sec-WebSocket-Accept`, a subprotocol or an extension that was not
//!   offered ([`crate::proto::ws::handshake::validate_101`]).
//! - **Raw access.** [`Client::send_frame`] and [`Client::send_raw`] write
//!   whatever they are given (fragments, bad opcodes, data after close), for
//!   tests of the server's error handling.
//! - **Compression.** With permessage-deflate negotiated, text and binary
//!   messages sent with [`Client::send_text`]/[`Client::send_binary`] are
//!   compressed (unless `compress` is off or the server limited the client
//!   to an 8-bit window, which zlib cannot produce); `send_frame` never
//!   compresses. Compressed messages from the server are inflated with the
//!   window and context takeover it announced.
//!
//! # TLS (`wss://`)
//!
//! A `wss://` URL (port 443 unless it names one) runs a TLS handshake
//! (rustls with the *ring* provider, TLS 1.3 or 1.2, ALPN `http/1.1`)
//! before the upgrade request; everything above then holds as for `ws://`.
//! The handshake is bound by the read and write timeouts, as the upgrade is.
//!
//! - **Trust.** The system's root certificates (loaded once per process; a
//!   store that yields none is an error naming it), or instead only the CA
//!   certificates of the PEM file [`ConnectOptions::ca_file`] names. There
//!   is no option to skip verification.
//! - **Name.** The certificate is checked against the URL's host, which is
//!   also sent as SNI when it is a name; [`ConnectOptions::tls_server_name`]
//!   puts another name in its place (a server on `127.0.0.1` with a
//!   certificate for `localhost`, say).
//! - **Errors.** A handshake that fails for a TLS reason (an untrusted
//!   certificate, a wrong name, an alert) is an `InvalidData` error whose
//!   message names the server and rustls's reason; it carries a
//!   [`TlsHandshakeError`].
//! - **Sessions.** The configuration is built on the first `wss://`
//!   connect with a [`ConnectOptions`] and kept by it and its clones, so a
//!   later connect with them can resume the session ([`TlsInfo::resumed`]).
//!   [`ConnectOptions::tls_config`] supplies a whole rustls configuration
//!   instead. [`Client::tls_info`] tells what was negotiated.
//! - **Close.** [`Client::close`] sends TLS `close_notify` once the closing
//!   handshake is over. The end of the stream without `close_notify` from
//!   the server reads as the end of the stream.
//! - **Raw access.** [`Client::send_raw`] bytes go inside TLS records;
//!   [`Client::get_ref`] is the TCP socket under the TLS session.
//!
//! ```no_run
//! use ringcast::client::{Client, ConnectOptions, Message};
//!
//! let opts = ConnectOptions::new()
//!     .ca_file("certs/ca.pem")
//!     .tls_server_name("edge.example");
//! let (mut ws, _) = Client::connect_with("wss://127.0.0.1:8443/echo", &opts).unwrap();
//! ws.send_text("hello").unwrap();
//! assert_eq!(ws.recv().unwrap(), Message::Text("hello".into()));
//! println!("{:?}", ws.tls_info());
//! ws.close(1000, "bye").unwrap();
//! ```

use std::cell::Cell;
use std::fmt;
use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use crate::proto::ws::close::{CloseError, MESSAGE_TOO_BIG};
use crate::proto::ws::codec::{Decoder, DecoderConfig, Encoder, Event, Masking, Role};
use crate::proto::ws::deflate;
pub use crate::proto::ws::frame::OpCode;
use crate::proto::ws::handshake::{self as hs, ClientRequest};
use crate::proto::ws::mask::KeyRng;

pub mod background;
mod backoff;
pub mod reconnect;
pub mod sse;
mod tls;
pub(crate) use tls::Stream;
use tls::{TlsCache, TlsConnector};
pub use tls::{TlsHandshakeError, TlsInfo};

/// The permessage-deflate offer made by [`ConnectOptions::permessage_deflate`].
pub const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// Connect, read and write timeout unless the options say otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message accepted from the server unless the options say otherwise
/// (after reassembly and decompression).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Largest response head (status line and headers) accepted.
pub const MAX_RESPONSE_HEAD: usize = 16 << 10;
/// Largest response body kept from a refused handshake.
pub const MAX_RESPONSE_BODY: usize = 1 << 20;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 << 10;

fn invalid_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg.into())
}

fn invalid_input(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, msg.into())
}

// ---------------------------------------------------------------------------
// URL

/// A parsed `ws://host[:port][/path][?query]` or `wss://…` URL (or, from
/// [`Url::parse_http`], `http://…` or `https://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `wss://` (or `https://`): the connection runs over TLS.
    pub tls: bool,
    /// Host name or address; an IPv6 address without its brackets.
    pub host: String,
    /// 80 (`ws://`, `http://`) or 443 (`wss://`, `https://`) when the URL
    /// names none.
    pub port: u16,
    /// Path and query, as sent in the request line; at least `/`.
    pub resource: String,
}

impl Url {
    /// Parses a `ws://` or `wss://` URL. Any other scheme, a user-info
    /// part, a fragment (RFC 6455 §3) or a bad port is invalid input.
    pub fn parse(url: &str) -> io::Result<Url> {
        if url.contains('#') {
            return Err(invalid_input(format!("{url:?}: fragments are not allowed")));
        }
        Url::parse_schemes(url, "ws", "wss")
    }

    /// Parses an `http://` or `https://` URL (`tls` set for `https://`); a
    /// fragment is dropped. Any other scheme, a user-info part or a bad
    /// port is invalid input.
    pub fn parse_http(url: &str) -> io::Result<Url> {
        let url = url.split_once('#').map_or(url, |(u, _)| u);
        Url::parse_schemes(url, "http", "https")
    }

    fn parse_schemes(url: &str, plain: &str, secure: &str) -> io::Result<Url> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid_input(format!("{url:?}: not a {plain}:// URL")))?;
        let tls = if scheme.eq_ignore_ascii_case(secure) {
            true
        } else if scheme.eq_ignore_ascii_case(plain) {
            false
        } else {
            return Err(invalid_input(format!(
                "{url:?}: scheme must be {plain}:// or {secure}://"
            )));
        };
        let default_port = if tls { 443 } else { 80 };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(split);
        let resource = match resource.as_bytes().first() {
            None => "/".to_string(),
            Some(b'?') => format!("/{resource}"),
            Some(_) => resource.to_string(),
        };
        if authority.contains('@') {
            return Err(invalid_input(format!(
                "{url:?}: user info is not supported"
            )));
        }
        let bad_port = || invalid_input(format!("{url:?}: bad port"));
        let parse_port = |p: &str| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad_port()),
            Ok(p) => Ok(p),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid_input(format!("{url:?}: unclosed '['")))?;
            let port = match after {
                "" => default_port,
                p => parse_port(p.strip_prefix(':').ok_or_else(bad_port)?)?,
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                None => (authority, default_port),
                Some((host, p)) => (host, parse_port(p)?),
            }
        };
        if host.is_empty() {
            return Err(invalid_input(format!("{url:?}: no host")));
        }
        Ok(Url {
            tls,
            host: host.to_string(),
            port,
            resource,
        })
    }

    /// The scheme's port: 80 without TLS, 443 with.
    pub fn default_port(&self) -> u16 {
        if self.tls {
            443
        } else {
            80
        }
    }

    /// The `Host` header value: the port is left out when it is the
    /// scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

// ---------------------------------------------------------------------------
// Randomness for keys and masks: proto::ws::KeyRng

/// A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes.
fn ws_key(rng: &mut KeyRng) -> String {
    hs::client_key(rng.bytes16())
}

/// The masking keys of the client's frames (the codec's client role).
struct MaskKeys(Cell<KeyRng>);

impl Masking for MaskKeys {
    const ROLE: Role = Role::Client;

    fn next_key(&self) -> [u8; 4] {
        let mut rng = self.0.get();
        let key = rng.mask();
        self.0.set(rng);
        key
    }
}

// ---------------------------------------------------------------------------
// Options and handshake results

/// How to connect: extra request headers, subprotocols, extensions,
/// timeouts, receive policies and, for `wss://`, TLS trust.
/// `ConnectOptions::default()` offers no subprotocol and no extension, and
/// trusts the system's root certificates.
///
/// Clones share the TLS configuration built on the first `wss://` connect,
/// and so its session cache: connect again with the same options (or a
/// clone) to resume a TLS session.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Extra request headers. One named like a header the client sends
    /// itself (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`,
    /// `Sec-WebSocket-Version`, `Sec-WebSocket-Protocol`,
    /// `Sec-WebSocket-Extensions`) replaces it; several with one name are
    /// all sent.
    pub headers: Vec<(String, String)>,
    /// Headers the client would send itself that are left out (names,
    /// case-insensitive): for tests of incomplete upgrade requests.
    pub omit_headers: Vec<String>,
    /// Offered in `Sec-WebSocket-Protocol`, in this order.
    pub subprotocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` offer, sent as given (see
    /// [`DEFLATE_OFFER`]). The server may accept permessage-deflate only.
    pub extensions: Option<String>,
    /// Compress outgoing text and binary messages when permessage-deflate
    /// is negotiated. Default: true.
    pub compress: bool,
    /// How long the TCP connect may take.
    pub connect_timeout: Duration,
    /// `None`: block for ever.
    pub read_timeout: Option<Duration>,
    /// `None`: block for ever.
    pub write_timeout: Option<Duration>,
    /// Answer pings with pongs. Default: true.
    pub auto_pong: bool,
    /// Return pings from `recv` too. Pings are returned whenever
    /// `auto_pong` is off, whatever this says.
    pub return_pings: bool,
    /// Largest message accepted from the server, after reassembly and
    /// decompression; a larger one is an `InvalidData` error.
    pub max_message_size: usize,
    /// `wss://`: a PEM file whose CA certificates are trusted instead of
    /// the system's roots. Read on the first `wss://` connect.
    pub ca_file: Option<PathBuf>,
    /// `wss://`: the name sent as SNI and checked against the server's
    /// certificate instead of the URL's host. The `Host` header is still
    /// the URL's.
    pub tls_server_name: Option<String>,
    /// `wss://`: a rustls configuration used as it is, instead of one
    /// built from [`ConnectOptions::ca_file`] or the system's roots (its
    /// own ALPN protocols and session cache apply).
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// The configuration built for `wss://`, shared by clones.
    tls_cache: TlsCache,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            headers: Vec::new(),
            omit_headers: Vec::new(),
            subprotocols: Vec::new(),
            extensions: None,
            compress: true,
            connect_timeout: DEFAULT_TIMEOUT,
            read_timeout: Some(DEFAULT_TIMEOUT),
            write_timeout: Some(DEFAULT_TIMEOUT),
            auto_pong: true,
            return_pings: false,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            ca_file: None,
            tls_server_name: None,
            tls_config: None,
            tls_cache: TlsCache::default(),
        }
    }
}

impl ConnectOptions {
    /// The defaults (see each field).
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// Adds a request header (or replaces one the client sends itself).
    pub fn header(mut self, name: &str, value: &str) -> ConnectOptions {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Leaves out a header the client would send itself.
    pub fn without_header(mut self, name: &str) -> ConnectOptions {
        self.omit_headers.push(name.to_string());
        self
    }

    /// Offers a subprotocol (after any offered before).
    pub fn subprotocol(mut self, name: &str) -> ConnectOptions {
        self.subprotocols.push(name.to_string());
        self
    }

    /// Offers permessage-deflate ([`DEFLATE_OFFER`]).
    pub fn permessage_deflate(self) -> ConnectOptions {
        self.extensions(DEFLATE_OFFER)
    }

    /// Sends `offer` as the `Sec-WebSocket-Extensions` header.
    pub fn extensions(mut self, offer: &str) -> ConnectOptions {
        self.extensions = Some(offer.to_string());
        self
    }

    /// Compress outgoing messages when deflate is negotiated (default true).
    pub fn compress(mut self, on: bool) -> ConnectOptions {
        self.compress = on;
        self
    }

    /// Sets the connect, read and write timeouts at once.
    pub fn timeout(mut self, t: Duration) -> ConnectOptions {
        self.connect_timeout = t;
        self.read_timeout = Some(t);
        self.write_timeout = Some(t);
        self
    }

    /// Sets [`ConnectOptions::auto_pong`].
    pub fn auto_pong(mut self, on: bool) -> ConnectOptions {
        self.auto_pong = on;
        self
    }

    /// Sets [`ConnectOptions::return_pings`].
    pub fn return_pings(mut self, on: bool) -> ConnectOptions {
        self.return_pings = on;
        self
    }

    /// Sets [`ConnectOptions::max_message_size`].
    pub fn max_message_size(mut self, n: usize) -> ConnectOptions {
        self.max_message_size = n;
        self
    }

    /// Trusts the CA certificates of the PEM file at `path` instead of the
    /// system's roots (`wss://`).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> ConnectOptions {
        self.ca_file = Some(path.into());
        self
    }

    /// Sends `name` as SNI and checks the certificate against it instead of
    /// the URL's host (`wss://`). A DNS name or an IP address.
    pub fn tls_server_name(mut self, name: &str) -> ConnectOptions {
        self.tls_server_name = Some(name.to_string());
        self
    }

    /// Uses `config` for `wss://` as it is (see
    /// [`ConnectOptions::tls_config`]).
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> ConnectOptions {
        self.tls_config = Some(config);
        self
    }

    /// The rustls configuration a `wss://` connect with these options uses:
    /// [`ConnectOptions::tls_config`] when set; otherwise one that trusts
    /// the CA file or the system's roots and offers ALPN `http/1.1`, built
    /// on the first call and kept by these options and their clones (built
    /// anew if `ca_file` changes). Errors: the CA file cannot be read or
    /// holds no certificate; the system's store yields no root (the message
    /// names the store).
    pub fn tls_client_config(&self) -> io::Result<Arc<rustls::ClientConfig>> {
        match &self.tls_config {
            Some(config) => Ok(config.clone()),
            None => self.tls_cache.get(self.ca_file.as_deref()),
        }
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The server's answer to the upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// In the order received, names as the server spelled them.
    pub headers: Vec<(String, String)>,
    /// Empty for a 101; for other statuses, the body (at most
    /// [`MAX_RESPONSE_BODY`] bytes kept).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The outcome of an opening handshake, whatever the status: a refused
/// upgrade (a 4xx, say) is a result to inspect, not an error.
#[derive(Debug)]
pub struct Handshake {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// In the order received, names as the server spelled them.
    pub headers: Vec<(String, String)>,
    /// Empty for a 101; for other statuses, the body.
    pub body: Vec<u8>,
    /// The connection, when the status is 101 and the response is valid.
    pub client: Option<Client>,
}

impl Handshake {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The error [`Client::connect`] and [`Client::connect_with`] return (kind
/// `Other`) when the server answers the upgrade with a status other than
/// 101. Reach it with `err.get_ref().and_then(|e| e.downcast_ref())`.
#[derive(Debug, Clone)]
pub struct HandshakeRefused {
    /// What the server answered.
    pub response: Response,
}

impl fmt::Display for HandshakeRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body =
            String::from_utf8_lossy(&self.response.body[..self.response.body.len().min(200)])
                .into_owned();
        write!(
            f,
            "WebSocket handshake refused: HTTP {} {}",
            self.response.status, self.response.reason
        )?;
        if !body.trim().is_empty() {
            write!(f, ": {}", body.trim())?;
        }
        Ok(())
    }
}

impl std::error::Error for HandshakeRefused {}

/// permessage-deflate parameters as the server accepted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server compresses every message on its own.
    pub server_no_context_takeover: bool,
    /// This client compresses every message on its own.
    pub client_no_context_takeover: bool,
    /// 15 when the server named none.
    pub server_max_window_bits: u8,
    /// 15 when the server named none.
    pub client_max_window_bits: u8,
}

impl From<deflate::DeflateParams> for DeflateParams {
    fn from(p: deflate::DeflateParams) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover,
            server_max_window_bits: p.server_max_window_bits,
            client_max_window_bits: p.client_max_window_bits,
        }
    }
}

impl From<DeflateParams> for deflate::DeflateParams {
    fn from(p: DeflateParams) -> deflate::DeflateParams {
        deflate::DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover,
            server_max_window_bits: p.server_max_window_bits,
            client_max_window_bits: p.client_max_window_bits,
            server_max_window_bits_offered: false,
        }
    }
}

/// Parses the server's `Sec-WebSocket-Extensions` value. It must name
/// permessage-deflate once and nothing else; each parameter at most once;
/// window sizes 8..=15 (see [`hs::parse_deflate_response`]).
pub fn parse_deflate_response(value: &str) -> io::Result<DeflateParams> {
    hs::parse_deflate_response(value)
        .map(DeflateParams::from)
        .map_err(|e| invalid_data(e.to_string()))
}

// ---------------------------------------------------------------------------
// Messages and the receive side (pure: bytes in, messages out)

/// A message or control frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A whole text message (reassembled, inflated, valid UTF-8).
    Text(String),
    /// A whole binary message (reassembled, inflated).
    Binary(Vec<u8>),
    /// A ping and its payload.
    Ping(Vec<u8>),
    /// A pong and its payload.
    Pong(Vec<u8>),
    /// The server's close frame: its code (`None` for an empty payload) and
    /// reason.
    Close(Option<u16>, String),
}

impl From<Event> for Message {
    fn from(event: Event) -> Message {
        match event {
            Event::Text(t) => Message::Text(
                String::from_utf8(t.into()).expect("the decoder validates text messages"),
            ),
            Event::Binary(b) => Message::Binary(b.into()),
            Event::Ping(p) => Message::Ping(p.into()),
            Event::Pong(p) => Message::Pong(p.into()),
            Event::Close { code, reason } => Message::Close(code, reason),
        }
    }
}

/// The receive state: the bytes read and not yet decoded, and the codec's
/// decoder in the client role. Parses only; reading the socket is the
/// caller's job.
struct Receiver {
    buf: BytesMut,
    decoder: Decoder,
    max_message: usize,
}

impl Receiver {
    fn new(deflate: Option<&DeflateParams>, max_message: usize) -> Receiver {
        let cfg = DecoderConfig {
            max_frame_size: max_message,
            max_message_size: max_message,
            deflate: deflate.map(|p| (*p).into()),
        };
        Receiver {
            buf: BytesMut::new(),
            decoder: Decoder::with_role(cfg, Role::Client),
            max_message,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// A fragmented message has started and not finished.
    fn in_message(&self) -> bool {
        self.decoder.message_in_progress()
    }

    /// Appends bytes that arrived.
    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Reads from `r` into the buffer once; returns the byte count (0 at end
    /// of stream).
    fn fill_from(&mut self, r: &mut impl Read) -> io::Result<usize> {
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let res = r.read(&mut self.buf[len..]);
        let n = *res.as_ref().unwrap_or(&0);
        self.buf.truncate(len + n);
        res
    }

    /// The next message or control frame from the buffered bytes, or `None`
    /// when more bytes are needed (or after the server's close frame).
    fn next(&mut self) -> io::Result<Option<Message>> {
        match self.decoder.decode(&mut self.buf) {
            Ok(event) => Ok(event.map(Message::from)),
            Err(e) => Err(self.error(e)),
        }
    }

    /// A protocol violation by the server, as the client reports it.
    fn error(&self, e: CloseError) -> io::Error {
        if e.code == MESSAGE_TOO_BIG {
            return invalid_data(format!("server message exceeds {} bytes", self.max_message));
        }
        invalid_data(format!(
            "server frame: {} (close code {})",
            e.reason, e.code
        ))
    }
}

// ---------------------------------------------------------------------------
// The opening handshake on the wire

/// The upgrade request for `url` with `key`, as `opts` shapes it.
fn request<'a>(
    url: &'a Url,
    host: &'a str,
    key: &'a str,
    opts: &'a ConnectOptions,
) -> ClientRequest<'a> {
    ClientRequest {
        resource: &url.resource,
        host,
        key,
        subprotocols: &opts.subprotocols,
        extensions: opts.extensions.as_deref(),
        headers: &opts.headers,
        omit: &opts.omit_headers,
    }
}

/// The request bytes for an upgrade of `url` with `key`.
#[cfg(test)]
fn build_request(url: &Url, key: &str, opts: &ConnectOptions) -> String {
    request(url, &url.host_header(), key, opts).head()
}

/// Reads the response head from `stream` (TCP or TLS); returns it and the
/// bytes read past it.
pub(crate) fn read_response_head(stream: &mut impl Read) -> io::Result<(Response, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "the server closed the connection before answering the upgrade",
            ));
        }
        let scan_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf[scan_from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| scan_from + p + 4)
        {
            let response = parse_response_head(&buf[..end])?;
            return Ok((response, buf[end..].to_vec()));
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(invalid_data(format!(
                "response head longer than {MAX_RESPONSE_HEAD} bytes"
            )));
        }
    }
}

fn parse_response_head(head: &[u8]) -> io::Result<Response> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid_data("truncated response head")),
        Err(e) => return Err(invalid_data(format!("bad response head: {e}"))),
    }
    Ok(Response {
        status: res.code.unwrap_or(0),
        reason: res.reason.unwrap_or("").to_string(),
        headers: res
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).trim().to_string(),
                )
            })
            .collect(),
        body: Vec::new(),
    })
}

/// Reads the body of a refused upgrade: by Content-Length, chunked, or to
/// the end of the stream when the server says `Connection: close`. Keeps at
/// most [`MAX_RESPONSE_BODY`] bytes. `stream` is TCP or TLS.
fn read_body(stream: &mut impl Read, res: &Response, mut have: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut read_more = |have: &mut Vec<u8>| -> io::Result<bool> {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk)?;
        have.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    };
    let header = |name: &str| res.header(name).map(|v| v.to_ascii_lowercase());
    if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| invalid_data(format!("bad Content-Length {len:?}")))?;
        let want = len.min(MAX_RESPONSE_BODY);
        while have.len() < want {
            if !read_more(&mut have)? {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "response body cut short",
                ));
            }
        }
        have.truncate(want);
        return Ok(have);
    }
    if header("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            // A size line.
            let line_end = loop {
                if let Some(p) = have[pos..].windows(2).position(|w| w == b"\r\n") {
                    break pos + p;
                }
                if have.len() - pos > 1024 || !read_more(&mut have)? {
                    return Err(invalid_data("bad chunked response body"));
                }
            };
            let line = std::str::from_utf8(&have[pos..line_end]).unwrap_or("");
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| invalid_data(format!("bad chunk size {size_hex:?}")))?;
            pos = line_end + 2;
            if size == 0 {
                return Ok(body);
            }
            while have.len() < pos + size + 2 {
                if !read_more(&mut have)? {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "chunked body cut short",
                    ));
                }
            }
            let keep = size.min(MAX_RESPONSE_BODY - body.len());
            body.extend_from_slice(&have[pos..pos + keep]);
            pos += size + 2;
            if body.len() >= MAX_RESPONSE_BODY {
                return Ok(body);
            }
        }
    }
    if header("connection").is_some_and(|c| c.contains("close")) {
        while have.len() < MAX_RESPONSE_BODY && read_more(&mut have)? {}
        have.truncate(MAX_RESPONSE_BODY);
        return Ok(have);
    }
    Ok(Vec::new())
}

// ---------------------------------------------------------------------------
// The client

/// A WebSocket connection, client side. Blocking; one thread at a time.
pub struct Client {
    stream: Stream,
    rx: Receiver,
    tx: Encoder<MaskKeys>,
    deflate_params: Option<DeflateParams>,
    compress: bool,
    subprotocol: Option<String>,
    auto_pong: bool,
    return_pings: bool,
    close_sent: bool,
    close_received: Option<(Option<u16>, String)>,
    wbuf: BytesMut,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.stream.tcp().peer_addr().ok())
            .field("tls", &self.tls_info())
            .field("subprotocol", &self.subprotocol)
            .field("deflate", &self.deflate_params)
            .field("close_sent", &self.close_sent)
            .field("close_received", &self.close_received)
            .finish()
    }
}

/// Performs the opening handshake; see [`Client::handshake`].
pub fn handshake(url: &str, opts: &ConnectOptions) -> io::Result<Handshake> {
    Client::handshake(url, opts)
}

impl Client {
    /// Connects with the default options; fails unless the server answers
    /// with a valid 101.
    pub fn connect(url: &str) -> io::Result<Client> {
        Client::connect_with(url, &ConnectOptions::default()).map(|(c, _)| c)
    }

    /// Connects with `opts`; returns the connection and the 101 response.
    /// Another status is an error (kind `Other`) carrying a
    /// [`HandshakeRefused`] with the status, headers and body.
    pub fn connect_with(url: &str, opts: &ConnectOptions) -> io::Result<(Client, Response)> {
        let hs = Client::handshake(url, opts)?;
        let response = Response {
            status: hs.status,
            reason: hs.reason,
            headers: hs.headers,
            body: hs.body,
        };
        match hs.client {
            Some(client) => Ok((client, response)),
            None => Err(io::Error::other(HandshakeRefused { response })),
        }
    }

    /// Sends the upgrade request and reads the answer, whatever its status:
    /// `Ok` with `client: Some` for a valid 101, `Ok` with `client: None`
    /// and the body for any other status. Errors: the URL, the connection,
    /// a malformed response, or a 101 that fails the checks (accept key,
    /// `Upgrade`/`Connection` headers, a subprotocol or extension that was
    /// not offered). For `wss://` also: the TLS configuration (see
    /// [`ConnectOptions::tls_client_config`]), a server name that is not
    /// one, and the TLS handshake (see [`TlsHandshakeError`]).
    pub fn handshake(url: &str, opts: &ConnectOptions) -> io::Result<Handshake> {
        let url = Url::parse(url)?;
        let mut stream = open_stream(&url, opts)?;

        let mut rng = KeyRng::from_entropy();
        let key = match find_header(&opts.headers, "Sec-WebSocket-Key") {
            Some(k) => k.trim().to_string(),
            None => ws_key(&mut rng),
        };
        let host = url.host_header();
        let request = request(&url, &host, &key, opts);
        stream.send(request.head().as_bytes())?;

        let (mut response, leftover) = read_response_head(&mut stream)?;
        if response.status != 101 {
            response.body = read_body(&mut stream, &response, leftover)?;
            return Ok(Handshake {
                status: response.status,
                reason: response.reason,
                headers: response.headers,
                body: response.body,
                client: None,
            });
        }
        let accepted = hs::validate_101(&request, response.status, |name| response.header(name))
            .map_err(|e| invalid_data(format!("bad 101 response: {e}")))?;

        let deflate_params = accepted.deflate.map(DeflateParams::from);
        let mut rx = Receiver::new(deflate_params.as_ref(), opts.max_message_size);
        rx.feed(&leftover);
        let client = Client {
            stream,
            rx,
            tx: Encoder::with_keys(accepted.deflate, MaskKeys(Cell::new(rng))),
            deflate_params,
            compress: opts.compress,
            subprotocol: accepted.subprotocol,
            auto_pong: opts.auto_pong,
            return_pings: opts.return_pings || !opts.auto_pong,
            close_sent: false,
            close_received: None,
            wbuf: BytesMut::new(),
        };
        Ok(Handshake {
            status: response.status,
            reason: response.reason,
            headers: response.headers,
            body: Vec::new(),
            client: Some(client),
        })
    }

    /// The subprotocol the server chose, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The permessage-deflate parameters, when negotiated.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.deflate_params.as_ref()
    }

    /// What the TLS handshake negotiated; `None` for `ws://`.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.stream.tls().and_then(TlsInfo::of)
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.tcp().local_addr()
    }

    /// The server's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.tcp().peer_addr()
    }

    /// The socket (under the TLS session for `wss://`), for options this
    /// client does not wrap. Reading or writing it directly bypasses TLS.
    pub fn get_ref(&self) -> &TcpStream {
        self.stream.tcp()
    }

    /// `None`: block for ever.
    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.stream.tcp().set_read_timeout(t)
    }

    /// `None`: block for ever.
    pub fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.stream.tcp().set_write_timeout(t)
    }

    /// The server's close frame, once received.
    pub fn close_received(&self) -> Option<&(Option<u16>, String)> {
        self.close_received.as_ref()
    }

    /// Sends a text message (compressed when deflate is on).
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send_message(OpCode::Text, text.as_bytes())
    }

    /// Sends a binary message (compressed when deflate is on).
    pub fn send_binary(&mut self, data: &[u8]) -> io::Result<()> {
        self.send_message(OpCode::Binary, data)
    }

    fn send_message(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        if self.close_sent {
            return Err(io::Error::new(
                ErrorKind::NotConnected,
                "a close frame was sent: no more messages",
            ));
        }
        self.wbuf.clear();
        if self.compress {
            self.tx.data(opcode, payload, &mut self.wbuf);
        } else {
            self.tx.frame(true, false, opcode, payload, &mut self.wbuf);
        }
        self.write_wbuf()
    }

    /// Sends one masked frame as given, uncompressed, with no checks: for
    /// fragmentation and error-handling tests.
    pub fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        self.write_frame(fin, false, opcode, payload)
    }

    /// Writes `bytes` to the socket as they are (in TLS records for
    /// `wss://`).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.send(bytes)
    }

    /// Sends a ping; `payload` must be at most 125 bytes.
    pub fn ping(&mut self, payload: &[u8]) -> io::Result<()> {
        Self::check_control(payload)?;
        self.wbuf.clear();
        self.tx.ping(payload, &mut self.wbuf);
        self.write_wbuf()
    }

    /// Sends an unsolicited pong; `payload` must be at most 125 bytes.
    pub fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        Self::check_control(payload)?;
        self.wbuf.clear();
        self.tx.pong(payload, &mut self.wbuf);
        self.write_wbuf()
    }

    fn check_control(payload: &[u8]) -> io::Result<()> {
        if payload.len() > 125 {
            return Err(invalid_input("control frame payload over 125 bytes"));
        }
        Ok(())
    }

    fn write_frame(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: OpCode,
        payload: &[u8],
    ) -> io::Result<()> {
        self.wbuf.clear();
        self.tx.frame(fin, rsv1, opcode, payload, &mut self.wbuf);
        self.write_wbuf()
    }

    /// Writes the frames encoded into `wbuf`.
    fn write_wbuf(&mut self) -> io::Result<()> {
        let res = self.stream.send(&self.wbuf);
        if self.wbuf.capacity() > 1 << 20 {
            self.wbuf = BytesMut::new();
        }
        res
    }

    /// Sends a close frame (once); the reason is cut to fit 123 bytes.
    fn send_close(&mut self, code: Option<u16>, reason: &str) -> io::Result<()> {
        if self.close_sent {
            return Ok(());
        }
        self.close_sent = true;
        self.wbuf.clear();
        self.tx.close(code, reason, &mut self.wbuf);
        self.write_wbuf()
    }

    /// The next frame-level message from the socket, with pings answered
    /// (if `auto_pong`) and the server's close recorded and answered.
    fn read_message(&mut self) -> io::Result<Message> {
        loop {
            if let Some(msg) = self.rx.next()? {
                match &msg {
                    Message::Ping(p) if self.auto_pong && !self.close_sent => {
                        self.wbuf.clear();
                        self.tx.pong(p, &mut self.wbuf);
                        self.write_wbuf()?;
                    }
                    Message::Close(code, reason) => {
                        self.close_received = Some((*code, reason.clone()));
                        // Echo the code, unless it is one that must not be sent.
                        // A failed write is not reported: the server may
                        // have closed the connection right after its frame.
                        let echo = code.filter(|c| !matches!(c, 1005 | 1006 | 1015));
                        let _ = self.send_close(echo, "");
                    }
                    _ => {}
                }
                return Ok(msg);
            }
            let n = self.rx.fill_from(&mut self.stream)?;
            if n == 0 {
                let msg = if self.rx.pending().is_empty() && !self.rx.in_message() {
                    "the server closed the connection without a close frame"
                } else {
                    "the server closed the connection in the middle of a frame or message"
                };
                return Err(io::Error::new(ErrorKind::UnexpectedEof, msg));
            }
        }
    }

    /// The next message. Pings are answered and skipped unless
    /// `return_pings` (see the module docs); pongs are returned. After the
    /// server's close frame (returned once, as [`Message::Close`]) every
    /// call fails with `NotConnected`. A read timeout is a `WouldBlock` or
    /// `TimedOut` error after which `recv` may be called again.
    pub fn recv(&mut self) -> io::Result<Message> {
        loop {
            if self.close_received.is_some() {
                return Err(io::Error::new(
                    ErrorKind::NotConnected,
                    "the server has closed the WebSocket",
                ));
            }
            match self.read_message()? {
                Message::Ping(_) if !self.return_pings => continue,
                msg => return Ok(msg),
            }
        }
    }

    /// The closing handshake: sends a close frame with `code` and `reason`
    /// (unless one was sent already), then reads until the server's close
    /// frame, discarding messages and answering nothing but that. Returns
    /// the server's code and reason, or `None` when the server closed the
    /// TCP connection without a close frame. For `wss://`, then sends TLS
    /// `close_notify` (not after an error: `close` may be called again).
    pub fn close(&mut self, code: u16, reason: &str) -> io::Result<Option<(Option<u16>, String)>> {
        // A failed write (the server has gone) shows in the reads below.
        let _ = self.send_close(Some(code), reason);
        let closed = loop {
            if let Some(c) = &self.close_received {
                break Some(c.clone());
            }
            match self.read_message() {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => break None,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break None,
                Err(e) => return Err(e),
            }
        };
        // Best effort: the server may have closed the connection already.
        let _ = self.stream.close_notify();
        Ok(closed)
    }

    /// Reads and discards until the server closes the TCP connection (after
    /// the closing handshake, the server closes first).
    pub fn wait_eof(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Shuts down both directions of the TCP connection, with no closing
    /// handshake.
    pub fn shutdown(&self) -> io::Result<()> {
        self.stream.tcp().shutdown(Shutdown::Both)
    }
}

/// The byte stream to `url`'s server: a TCP connection with `opts`'s
/// timeouts and `TCP_NODELAY`, and when `url.tls` is set the TLS handshake
/// over it (trust and server name from `opts`). A bad CA file or server
/// name fails before the TCP connect.
pub(crate) fn open_stream(url: &Url, opts: &ConnectOptions) -> io::Result<Stream> {
    let tls = match url.tls {
        true => Some(TlsConnector::new(url, opts)?),
        false => None,
    };
    let tcp = connect_tcp(url, opts.connect_timeout)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(opts.read_timeout)?;
    tcp.set_write_timeout(opts.write_timeout)?;
    match tls {
        Some(tls) => tls.handshake(tcp),
        None => Ok(Stream::Plain(tcp)),
    }
}

fn connect_tcp(url: &Url, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (url.host.as_str(), url.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            ErrorKind::NotFound,
            format!("{}: no address to connect to", url.host),
        )
    }))
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tls_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ws::deflate::{Deflater, Inflater, DEFLATE_TAIL};
    use crate::proto::ws::handshake::accept_key;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use flate2::{Compress, Compression, FlushCompress};
    use std::io::Write;
    use std::net::TcpListener;
    use std::thread;

    // --- helpers -----------------------------------------------------------

    /// An unmasked (server) frame.
    pub(super) fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![((fin as u8) << 7) | ((rsv1 as u8) << 6) | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(n as u8),
            n @ 126..=0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    fn rx(deflate: Option<DeflateParams>) -> Receiver {
        Receiver::new(deflate.as_ref(), 1 << 20)
    }

    fn all(r: &mut Receiver) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = r.next().unwrap() {
            out.push(m);
        }
        out
    }

    fn err_of(bytes: &[u8], deflate: Option<DeflateParams>) -> String {
        let mut r = rx(deflate);
        r.feed(bytes);
        loop {
            match r.next() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error for {bytes:?}"),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::InvalidData);
                    return e.to_string();
                }
            }
        }
    }

    const NCT: DeflateParams = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    const TAKEOVER: DeflateParams = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };

    /// Raw deflate of `data` with a sync flush and the tail stripped,
    /// independently of the server's code.
    fn raw_deflate(c: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 128);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&DEFLATE_TAIL));
        out.truncate(out.len() - 4);
        out
    }

    // --- URL ---------------------------------------------------------------

    #[test]
    fn url_with_port_path_and_query() {
        let u = Url::parse("ws://127.0.0.1:8080/ws?room=a&x=1").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 8080);
        assert_eq!(u.resource, "/ws?room=a&x=1");
        assert_eq!(u.host_header(), "127.0.0.1:8080");
    }

    #[test]
    fn url_defaults() {
        let u = Url::parse("ws://example.com").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.resource.as_str()),
            ("example.com", 80, "/")
        );
        assert_eq!(u.host_header(), "example.com");
        let u = Url::parse("WS://h?q=1").unwrap();
        assert_eq!(u.resource, "/?q=1");
        let u = Url::parse("ws://h:81/").unwrap();
        assert_eq!((u.port, u.resource.as_str()), (81, "/"));
    }

    #[test]
    fn url_ipv6() {
        let u = Url::parse("ws://[::1]:9000/echo").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.resource.as_str()),
            ("::1", 9000, "/echo")
        );
        assert_eq!(u.host_header(), "[::1]:9000");
        let u = Url::parse("ws://[::1]/").unwrap();
        assert_eq!((u.port, u.host_header().as_str()), (80, "[::1]"));
    }

    #[test]
    fn url_wss() {
        let u = Url::parse("wss://example.com/live?x=1").unwrap();
        assert!(u.tls);
        assert_eq!(
            (u.host.as_str(), u.port, u.resource.as_str()),
            ("example.com", 443, "/live?x=1")
        );
        assert_eq!(u.host_header(), "example.com");
        let u = Url::parse("WSS://[::1]:8443").unwrap();
        assert!(u.tls);
        assert_eq!((u.port, u.resource.as_str()), (8443, "/"));
        assert_eq!(u.host_header(), "[::1]:8443");
        // The default port is the scheme's.
        assert_eq!(Url::parse("wss://h:80/").unwrap().host_header(), "h:80");
        assert_eq!(Url::parse("ws://h:443/").unwrap().host_header(), "h:443");
        assert!(!Url::parse("ws://h/").unwrap().tls);
    }

    #[test]
    fn url_errors() {
        let kind = |s| Url::parse(s).unwrap_err().kind();
        for bad in [
            "http://h/",
            "https://h/",
            "wss://",
            "wss://h/#f",
            "h:80/echo",
            "ws://",
            "ws://:80/",
            "ws://h:0/",
            "ws://h:65536/",
            "ws://h:x/",
            "ws://h/echo#frag",
            "ws://u@h/",
            "ws://[::1/",
            "ws://[::1]x/",
        ] {
            assert_eq!(kind(bad), ErrorKind::InvalidInput, "{bad}");
        }
    }

    // --- keys and the request ------------------------------------------------

    #[test]
    fn keys_are_16_random_bytes_and_differ() {
        let mut a = KeyRng::from_entropy();
        let mut b = KeyRng::from_entropy();
        let (ka, kb) = (ws_key(&mut a), ws_key(&mut b));
        assert_ne!(ka, kb, "two generators seeded apart");
        assert_ne!(ka, ws_key(&mut a), "one generator twice");
        assert_eq!(BASE64.decode(&ka).unwrap().len(), 16);
        assert_ne!(a.mask(), a.mask());
    }

    #[test]
    fn request_headers_defaults_replacements_and_omissions() {
        let url = Url::parse("ws://h:1/p?q").unwrap();
        let opts = ConnectOptions::new()
            .subprotocol("chat")
            .subprotocol("v2")
            .permessage_deflate()
            .header("Sec-WebSocket-Version", "12")
            .header("Origin", "http://o")
            .without_header("Connection");
        let req = build_request(&url, "KEY", &opts);
        assert!(
            req.starts_with("GET /p?q HTTP/1.1\r\nHost: h:1\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nSec-WebSocket-Key: KEY\r\n"));
        assert!(req.contains("\r\nSec-WebSocket-Protocol: chat, v2\r\n"));
        assert!(req.contains(&format!(
            "\r\nSec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n"
        )));
        assert!(req.contains("\r\nSec-WebSocket-Version: 12\r\n"));
        assert!(!req.contains("Version: 13"));
        assert!(!req.contains("Connection:"));
        assert!(req.ends_with("Origin: http://o\r\n\r\n"));
    }

    // --- deflate response parsing --------------------------------------------

    #[test]
    fn deflate_response_parameters() {
        let p = parse_deflate_response("permessage-deflate").unwrap();
        assert_eq!(p, TAKEOVER);
        let p = parse_deflate_response(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=\"9\"",
        )
        .unwrap();
        assert!(p.server_no_context_takeover && p.client_no_context_takeover);
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (10, 9)
        );
        for bad in [
            "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
            "",
        ] {
            let e = parse_deflate_response(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{bad}");
        }
    }

    // --- frame reading ----------------------------------------------------------

    #[test]
    fn lengths_7_16_and_64_bit() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let bytes = frame(true, false, 2, &payload);
            let expected_header = match len {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            assert_eq!(bytes.len(), expected_header + len);
            let mut r = rx(None);
            r.feed(&bytes);
            assert_eq!(all(&mut r), vec![Message::Binary(payload)], "len {len}");
            assert!(r.pending().is_empty());
        }
    }

    #[test]
    fn non_minimal_length_is_accepted() {
        let mut bytes = vec![0x81, 126, 0, 2];
        bytes.extend_from_slice(b"hi");
        let mut r = rx(None);
        r.feed(&bytes);
        assert_eq!(all(&mut r), vec![Message::Text("hi".into())]);
    }

    #[test]
    fn byte_at_a_time() {
        let mut bytes = frame(true, false, 1, "héllo".as_bytes());
        bytes.extend(frame(true, false, 2, &[7u8; 300]));
        bytes.extend(frame(true, false, 0x9, b"p"));
        let mut r = rx(None);
        let mut got = Vec::new();
        for b in &bytes {
            r.feed(std::slice::from_ref(b));
            while let Some(m) = r.next().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(
            got,
            vec![
                Message::Text("héllo".into()),
                Message::Binary(vec![7; 300]),
                Message::Ping(b"p".to_vec())
            ]
        );
    }

    #[test]
    fn reassembles_fragments_with_control_frames_between() {
        // "κόσμε" split inside a code point across the fragments.
        let text = "κόσμε".as_bytes();
        let mut bytes = frame(false, false, 1, &text[..3]);
        bytes.extend(frame(true, false, 0x9, b"ping"));
        bytes.extend(frame(false, false, 0, &text[3..7]));
        bytes.extend(frame(true, false, 0xA, b""));
        bytes.extend(frame(true, false, 0, &text[7..]));
        bytes.extend(frame(false, false, 2, b"ab"));
        bytes.extend(frame(true, false, 0, b"cd"));
        let mut r = rx(None);
        r.feed(&bytes);
        assert_eq!(
            all(&mut r),
            vec![
                Message::Ping(b"ping".to_vec()),
                Message::Pong(Vec::new()),
                Message::Text("κόσμε".into()),
                Message::Binary(b"abcd".to_vec()),
            ]
        );
    }

    #[test]
    fn empty_fragments() {
        let mut bytes = frame(false, false, 1, b"");
        bytes.extend(frame(false, false, 0, b""));
        bytes.extend(frame(true, false, 0, b""));
        let mut r = rx(None);
        r.feed(&bytes);
        assert_eq!(all(&mut r), vec![Message::Text(String::new())]);
    }

    #[test]
    fn server_violations_are_invalid_data_naming_the_rule() {
        // The rules themselves are the codec's (its client-role tests); the
        // client reports each as InvalidData with the reason and close code.
        let e = err_of(&[0x81, 0x81, 1, 2, 3, 4, b'x'], None);
        assert!(
            e.contains("server frame is masked") && e.contains("1002"),
            "{e}"
        );
        let e = err_of(&frame(true, false, 1, &[0xC3, 0x28]), None);
        assert!(e.contains("UTF-8") && e.contains("1007"), "{e}");
        let e = err_of(&frame(true, true, 2, &[0xFF; 8]), Some(NCT));
        assert!(e.contains("compressed"), "{e}");
        let e = err_of(&frame(true, false, 8, &[0x03, 0xED]), None);
        assert!(e.contains("invalid close code"), "{e}");
        // Nothing after the server's close frame is decoded.
        let mut r = rx(None);
        r.feed(
            &[
                frame(true, false, 8, b"\x03\xe9"),
                frame(true, false, 1, b"late"),
            ]
            .concat(),
        );
        assert_eq!(all(&mut r), vec![Message::Close(Some(1001), String::new())]);
    }

    #[test]
    fn message_size_limit() {
        let mut r = Receiver::new(None, 10);
        r.feed(&frame(true, false, 2, &[0; 10]));
        assert_eq!(all(&mut r), vec![Message::Binary(vec![0; 10])]);
        r.feed(&frame(true, false, 2, &[0; 11]));
        assert!(r.next().unwrap_err().to_string().contains("exceeds 10"));
        // Over the limit across fragments: refused from the header alone.
        let mut r = Receiver::new(None, 10);
        r.feed(&frame(false, false, 2, &[0; 6]));
        r.feed(&[0x80, 126, 0, 200]);
        assert!(r.next().unwrap_err().to_string().contains("exceeds 10"));
    }

    // --- permessage-deflate --------------------------------------------------

    #[test]
    fn inflates_messages_compressed_independently() {
        let text = "hello hello hello hello, compressed world ".repeat(20);
        let mut c = Compress::new(Compression::default(), false);
        let body = raw_deflate(&mut c, text.as_bytes());
        assert!(body.len() < text.len());
        let mut r = rx(Some(TAKEOVER));
        r.feed(&frame(true, true, 1, &body));
        // With context takeover, the second message may refer to the first.
        let body2 = raw_deflate(&mut c, text.as_bytes());
        assert!(
            body2.len() < body.len() / 2,
            "second message uses the window"
        );
        r.feed(&frame(true, true, 2, &body2));
        // Uncompressed messages may be mixed in (RSV1 clear).
        r.feed(&frame(true, false, 1, b"plain"));
        assert_eq!(
            all(&mut r),
            vec![
                Message::Text(text.clone()),
                Message::Binary(text.into_bytes()),
                Message::Text("plain".into()),
            ]
        );
    }

    #[test]
    fn inflates_fragmented_compressed_message() {
        let data: Vec<u8> = (0..50_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 97) as u8)
            .collect();
        let mut c = Compress::new(Compression::default(), false);
        let body = raw_deflate(&mut c, &data);
        let (a, rest) = body.split_at(body.len() / 3);
        let (b, cc) = rest.split_at(rest.len() / 2);
        let mut bytes = frame(false, true, 2, a);
        bytes.extend(frame(true, false, 0x9, b""));
        bytes.extend(frame(false, false, 0, b));
        bytes.extend(frame(true, false, 0, cc));
        let mut r = rx(Some(NCT));
        r.feed(&bytes);
        assert_eq!(
            all(&mut r),
            vec![Message::Ping(vec![]), Message::Binary(data)]
        );
    }

    #[test]
    fn inflates_what_the_server_compresses() {
        // ringcast's own compressor, no context takeover, window 15 and 9.
        for bits in [15u8, 9] {
            let mut d = Deflater::new(bits, true);
            let mut r = rx(Some(NCT));
            for i in 0..3 {
                let msg = format!("{{\"seq\":{i},\"data\":\"{}\"}}", "abc".repeat(100));
                let mut out = BytesMut::new();
                assert!(d.encode_frame(OpCode::Text, msg.as_bytes(), false, &mut out));
                r.feed(&out);
                assert_eq!(all(&mut r), vec![Message::Text(msg)]);
            }
        }
    }

    #[test]
    fn inflate_handles_final_block_and_empty_message() {
        // A message ending with a final (BFINAL) block and the 0x00 octet
        // RFC 7692 §7.2.3.4 asks for; the next one starts a new stream.
        let mut c = Compress::new(Compression::default(), false);
        let mut fin = Vec::with_capacity(256);
        c.compress_vec(b"first message!", &mut fin, FlushCompress::Finish)
            .unwrap();
        fin.push(0x00);
        let mut c2 = Compress::new(Compression::default(), false);
        let second = raw_deflate(&mut c2, b"second");
        let mut r = rx(Some(TAKEOVER));
        r.feed(&frame(true, true, 1, &fin));
        r.feed(&frame(true, true, 1, &second));
        // An empty compressed message: a single 0x00 byte (RFC 7692 §7.2.3.6).
        r.feed(&frame(true, true, 2, &[0x00]));
        assert_eq!(
            all(&mut r),
            vec![
                Message::Text("first message!".into()),
                Message::Text("second".into()),
                Message::Binary(Vec::new()),
            ]
        );
    }

    #[test]
    fn no_context_takeover_is_enforced() {
        // A server that claims no context takeover but uses it anyway: the
        // second message refers back to the first and fails to inflate.
        let text = "the same text the same text the same text ".repeat(4);
        let mut c = Compress::new(Compression::default(), false);
        let one = raw_deflate(&mut c, text.as_bytes());
        let two = raw_deflate(&mut c, text.as_bytes());
        let mut r = rx(Some(NCT));
        r.feed(&frame(true, true, 1, &one));
        assert_eq!(all(&mut r), vec![Message::Text(text)]);
        r.feed(&frame(true, true, 1, &two));
        assert!(r.next().is_err());
    }

    // --- against a scripted server on loopback --------------------------------

    /// Accepts one connection, reads the request head, and hands the socket
    /// and the head to `script`.
    fn serve<F>(script: F) -> (String, thread::JoinHandle<()>)
    where
        F: FnOnce(TcpStream, String) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/echo?room=t", listener.local_addr().unwrap());
        let handle = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                assert_eq!(s.read(&mut b).unwrap(), 1);
                head.push(b[0]);
            }
            script(s, String::from_utf8(head).unwrap());
        });
        (url, handle)
    }

    pub(super) fn request_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub(super) fn accept_101(head: &str, extra: &str) -> String {
        let key = request_header(head, "Sec-WebSocket-Key").unwrap();
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(key.as_bytes())
        )
    }

    /// Reads one masked client frame: (fin, rsv1, opcode, unmasked payload).
    pub(super) fn read_client_frame(s: &mut impl Read) -> (bool, bool, u8, Vec<u8>) {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        assert!(h[1] & 0x80 != 0, "client frames are masked");
        let len = match h[1] & 0x7F {
            126 => {
                let mut b = [0u8; 2];
                s.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                s.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut key = [0u8; 4];
        s.read_exact(&mut key).unwrap();
        let mut p = vec![0u8; len];
        s.read_exact(&mut p).unwrap();
        for (i, b) in p.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
        (h[0] & 0x80 != 0, h[0] & 0x40 != 0, h[0] & 0x0F, p)
    }

    #[test]
    fn session_against_a_scripted_server() {
        let (url, server) = serve(|mut s, head| {
            assert!(head.starts_with("GET /echo?room=t HTTP/1.1\r\n"), "{head}");
            assert_eq!(request_header(&head, "Upgrade"), Some("websocket"));
            assert_eq!(request_header(&head, "Sec-WebSocket-Version"), Some("13"));
            assert_eq!(
                request_header(&head, "Sec-WebSocket-Protocol"),
                Some("a, b")
            );
            // The 101 and the first frames in one write.
            let mut out = accept_101(&head, "Sec-WebSocket-Protocol: b\r\n").into_bytes();
            out.extend(frame(true, false, 1, b"welcome"));
            out.extend(frame(true, false, 0x9, b"are you there"));
            s.write_all(&out).unwrap();
            // Echo two messages. The client answers the ping by itself, in
            // the first recv() after sending the first message.
            for i in 0..2 {
                let (fin, rsv1, op, p) = read_client_frame(&mut s);
                assert!(fin && !rsv1);
                s.write_all(&frame(true, false, op, &p)).unwrap();
                if i == 0 {
                    let pong = read_client_frame(&mut s);
                    assert_eq!(pong, (true, false, 0xA, b"are you there".to_vec()));
                }
            }
            let (_, _, op, p) = read_client_frame(&mut s);
            assert_eq!((op, p.as_slice()), (0x9, &b"hb"[..]));
            s.write_all(&frame(true, false, 0xA, b"hb")).unwrap();
            // Fragments from the client arrive as sent.
            assert_eq!(
                read_client_frame(&mut s),
                (false, false, 1, b"frag".to_vec())
            );
            assert_eq!(
                read_client_frame(&mut s),
                (true, false, 0, b"ment".to_vec())
            );
            // Closing handshake started by the client.
            let (_, _, op, p) = read_client_frame(&mut s);
            assert_eq!(op, 8);
            assert_eq!(&p[..2], &1000u16.to_be_bytes());
            assert_eq!(&p[2..], b"done");
            s.write_all(&frame(true, false, 8, &p)).unwrap();
            s.shutdown(Shutdown::Both).unwrap();
        });
        let opts = ConnectOptions::new().subprotocol("a").subprotocol("b");
        let (mut c, res) = Client::connect_with(&url, &opts).unwrap();
        assert_eq!(res.status, 101);
        assert_eq!(c.subprotocol(), Some("b"));
        assert!(c.deflate().is_none());
        assert_eq!(c.recv().unwrap(), Message::Text("welcome".into()));
        c.send_text("one").unwrap();
        // The ping is answered and not returned: the next message is the echo.
        assert_eq!(c.recv().unwrap(), Message::Text("one".into()));
        c.send_binary(&[0, 1, 2]).unwrap();
        assert_eq!(c.recv().unwrap(), Message::Binary(vec![0, 1, 2]));
        c.ping(b"hb").unwrap();
        assert_eq!(c.recv().unwrap(), Message::Pong(b"hb".to_vec()));
        c.send_frame(false, OpCode::Text, b"frag").unwrap();
        c.send_frame(true, OpCode::Continuation, b"ment").unwrap();
        assert_eq!(
            c.close(1000, "done").unwrap(),
            Some((Some(1000), "done".into()))
        );
        c.wait_eof().unwrap();
        assert_eq!(c.recv().unwrap_err().kind(), ErrorKind::NotConnected);
        assert!(c.send_text("late").is_err());
        server.join().unwrap();
    }

    #[test]
    fn server_initiated_close_is_echoed_and_pings_can_be_returned() {
        let (url, server) = serve(|mut s, head| {
            let mut out = accept_101(&head, "").into_bytes();
            out.extend(frame(true, false, 0x9, b"p1"));
            out.extend(frame(true, false, 8, &[0x03, 0xE9, b'x']));
            s.write_all(&out).unwrap();
            assert_eq!(
                read_client_frame(&mut s),
                (true, false, 0xA, b"p1".to_vec())
            );
            assert_eq!(
                read_client_frame(&mut s),
                (true, false, 8, vec![0x03, 0xE9])
            );
        });
        let opts = ConnectOptions::new().return_pings(true);
        let (mut c, _) = Client::connect_with(&url, &opts).unwrap();
        assert_eq!(c.recv().unwrap(), Message::Ping(b"p1".to_vec()));
        assert_eq!(c.recv().unwrap(), Message::Close(Some(1001), "x".into()));
        assert_eq!(c.close_received(), Some(&(Some(1001), "x".to_string())));
        // close() after the server's close returns it without sending again.
        assert_eq!(c.close(1000, "").unwrap(), Some((Some(1001), "x".into())));
        server.join().unwrap();
    }

    #[test]
    fn deflate_session() {
        let (url, server) = serve(|mut s, head| {
            assert_eq!(
                request_header(&head, "Sec-WebSocket-Extensions"),
                Some(DEFLATE_OFFER)
            );
            let ext = "Sec-WebSocket-Extensions: permessage-deflate; \
                       server_no_context_takeover; client_no_context_takeover\r\n";
            s.write_all(accept_101(&head, ext).as_bytes()).unwrap();
            let (fin, rsv1, op, p) = read_client_frame(&mut s);
            assert!(fin && rsv1 && op == 1, "compressed text");
            let mut inf = Inflater::new(15, true);
            let mut text = BytesMut::new();
            inf.inflate(&p, true, &mut text, 1 << 20).unwrap();
            let mut out = BytesMut::new();
            Deflater::new(15, true).encode_frame(OpCode::Text, &text, false, &mut out);
            s.write_all(&out).unwrap();
        });
        let opts = ConnectOptions::new().permessage_deflate();
        let (mut c, res) = Client::connect_with(&url, &opts).unwrap();
        assert!(res.header("sec-websocket-extensions").is_some());
        let params = *c.deflate().unwrap();
        assert!(params.server_no_context_takeover && params.client_no_context_takeover);
        let msg = "compress me ".repeat(50);
        c.send_text(&msg).unwrap();
        assert_eq!(c.recv().unwrap(), Message::Text(msg));
        server.join().unwrap();
    }

    #[test]
    fn refused_upgrade_is_a_result_for_handshake_and_an_error_for_connect() {
        for _ in 0..2 {
            let (url, server) = serve(|mut s, _| {
                s.write_all(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\
                      Content-Length: 18\r\n\r\norigin not allowed",
                )
                .unwrap();
            });
            let hs =
                handshake(&url, &ConnectOptions::new().header("Origin", "http://evil")).unwrap();
            assert_eq!((hs.status, hs.reason.as_str()), (403, "Forbidden"));
            assert_eq!(hs.header("content-type"), Some("text/plain"));
            assert_eq!(hs.body, b"origin not allowed");
            assert!(hs.client.is_none());
            server.join().unwrap();
        }
        let (url, server) = serve(|mut s, _| {
            s.write_all(
                b"HTTP/1.1 426 Upgrade Required\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
            )
            .unwrap();
        });
        let err = Client::connect(&url).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other);
        assert!(err.to_string().contains("426"), "{err}");
        let refused: &HandshakeRefused = err.get_ref().unwrap().downcast_ref().unwrap();
        assert_eq!(refused.response.body, b"hello world");
        server.join().unwrap();
    }

    #[test]
    fn bad_101_responses_are_errors() {
        let bad: [fn(&str) -> String; 4] = [
            |_| {
                "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
                    .into()
            },
            |h| accept_101(h, "Sec-WebSocket-Protocol: not-offered\r\n"),
            |h| accept_101(h, "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            |h| accept_101(h, "").replace("Upgrade: websocket", "Upgrade: h2c"),
        ];
        for (i, respond) in bad.into_iter().enumerate() {
            let (url, server) = serve(move |mut s, head| {
                s.write_all(respond(&head).as_bytes()).unwrap();
            });
            let err = Client::connect(&url).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidData, "case {i}: {err}");
            server.join().unwrap();
        }
    }

    #[test]
    fn recv_timeout_keeps_partial_frames() {
        let (url, server) = serve(|mut s, head| {
            let mut out = accept_101(&head, "").into_bytes();
            let f = frame(true, false, 1, b"split");
            out.extend_from_slice(&f[..4]);
            s.write_all(&out).unwrap();
            // Wait for the client's ping: its recv has timed out by then.
            assert_eq!(read_client_frame(&mut s).2, 0x9);
            s.write_all(&f[4..]).unwrap();
            let _ = read_client_frame(&mut s);
        });
        let opts = ConnectOptions::new();
        let (mut c, _) = Client::connect_with(&url, &opts).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let e = c.recv().unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        );
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.ping(b"").unwrap();
        assert_eq!(c.recv().unwrap(), Message::Text("split".into()));
        c.close(1000, "").ok();
        server.join().unwrap();
    }

    #[test]
    fn eof_without_close_frame() {
        let (url, server) = serve(|mut s, head| {
            s.write_all(accept_101(&head, "").as_bytes()).unwrap();
            s.write_all(&[0x81, 5, b'a']).unwrap();
        });
        let mut c = Client::connect(&url).unwrap();
        let e = c.recv().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("middle"), "{e}");
        server.join().unwrap();
    }
}
