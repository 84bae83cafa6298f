//! The server's configuration: every knob, its default, and its validation.
//!
//! Read from a TOML file (`--config ringcast.toml`, documented in full in
//! `ringcast.example.toml`), then overridden by command-line flags. Unknown
//! keys and bad values are start-up errors that name the key.

mod cluster;
mod tls;
pub mod units;
mod ws;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use cluster::{redact_url, ClusterConfig, EngineKind};
pub use tls::{TlsCertificate, TlsConfig};
pub use units::{ByteSize, Period};
pub use ws::{EndpointAuth, Envelope, WsConfig, WsDeflateConfig, WsEndpoint, WsRoomsEndpoint};

/// The former name of [`WsEndpoint`], from when only the echo endpoint used it.
#[deprecated(note = "renamed WsEndpoint: it serves every WebSocket handler")]
pub type WsEchoEndpoint = WsEndpoint;

/// The whole configuration. Every section has defaults that run well with no file at all.
///
/// `Config::default()` is the binary's: built-in pages, demos, dashboard,
/// `/echo`, `/ws`, `/metrics` and an open `POST /publish` are on. An
/// embedder that wants only what it registers starts from [`Config::bare`].
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listening, workers, io driver, connection limits, drain.
    pub server: ServerConfig,
    /// `[http]`: request limits and timeouts, metrics path.
    pub http: HttpConfig,
    /// `[static]`: the directory served at `/`, or the built-in pages.
    #[serde(rename = "static")]
    pub static_files: StaticConfig,
    /// `[log]`: level, format, access log.
    pub log: LogConfig,
    /// `[hub]`: rooms, history, queues, publishing.
    pub hub: HubConfig,
    /// `[sse]`: the SSE endpoint of the rooms.
    pub sse: SseConfig,
    /// `[ws]`: WebSocket limits, deflate, the echo and rooms endpoints.
    pub ws: WsConfig,
    /// `[auth]`: tokens for subscribing and publishing.
    pub auth: AuthConfig,
    /// `[demo]`: the live demos of the built-in pages.
    pub demo: DemoConfig,
    /// `[dashboard]`: the built-in dashboard and its feed.
    pub dashboard: DashboardConfig,
    /// `[tls]`: the TLS listener (HTTPS, WSS) and its certificates.
    pub tls: TlsConfig,
    /// `[cluster]`: the engine of the rooms (this process, or Redis shared by several nodes).
    pub cluster: ClusterConfig,
}

/// Which io driver the workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IoDriver {
    /// io_uring where the kernel allows it, else the epoll driver (logged once).
    Auto,
    /// io_uring only: start-up fails where it is unavailable.
    IoUring,
    /// The epoll driver, even where io_uring is available.
    Legacy,
}

/// io_uring completion work mode (see `server.io_uring_taskrun`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Taskrun {
    /// Completion work runs on the worker's own `io_uring_enter` (kernel 6.1+).
    Defer,
    /// No interrupt while the worker runs (kernel 5.19+).
    Coop,
    /// The kernel's default.
    Plain,
}

/// `[server]`: the process around the workers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address every worker listens on (SO_REUSEPORT). Port 0 picks a free port.
    #[serde(deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    /// Worker threads; 0 = the number of CPUs this process may run on.
    pub workers: usize,
    /// Pin worker i to the i-th CPU this process may run on.
    pub pin_workers: bool,
    /// Which io driver the workers run.
    pub io_driver: IoDriver,
    /// io_uring submission queue entries per worker.
    pub io_uring_entries: u32,
    /// How the kernel runs io_uring completion work: "defer" (on the worker's
    /// own io_uring_enter, kernel 6.1+), "coop" (no interrupt while the worker
    /// runs, 5.19+) or "plain". Falls back to the next where unsupported.
    pub io_uring_taskrun: Taskrun,
    /// Listen backlog per worker.
    pub backlog: u32,
    /// Let the kernel back the process's heap with transparent huge pages
    /// (a little faster fan-out; about 1.4 KiB more memory per idle connection).
    pub huge_pages: bool,
    /// Open connections in the whole process; 0 = the file-descriptor ceiling less a reserve.
    pub max_connections: usize,
    /// Open connections per worker; 0 = same as `max_connections`.
    pub max_connections_per_worker: usize,
    /// Open connections from one client IP address; 0 = no limit.
    pub max_connections_per_ip: usize,
    /// SSE and WebSocket handshakes per second from one client IP; 0 = no limit.
    pub handshake_rate_per_ip: u32,
    /// Handshakes one client IP may make at once before the rate applies.
    pub handshake_burst_per_ip: u32,
    /// How long a failing `accept` (EMFILE/ENFILE) waits before trying again.
    pub accept_backoff: Period,
    /// Longest a SIGTERM/SIGINT drain may take before the process exits anyway.
    pub shutdown_timeout: Period,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            workers: 0,
            pin_workers: false,
            io_driver: IoDriver::Auto,
            io_uring_entries: 1024,
            io_uring_taskrun: Taskrun::Defer,
            backlog: 4096,
            huge_pages: false,
            max_connections: 0,
            max_connections_per_worker: 0,
            max_connections_per_ip: 0,
            handshake_rate_per_ip: 0,
            handshake_burst_per_ip: 20,
            accept_backoff: Period::from_millis(100),
            shutdown_timeout: Period::from_secs(10),
        }
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.workers > 1024 {
            return fail(format!(
                "server.workers = {} is more than 1024",
                self.workers
            ));
        }
        if !(2..=32768).contains(&self.io_uring_entries) || !self.io_uring_entries.is_power_of_two()
        {
            return fail(format!(
                "server.io_uring_entries = {} must be a power of two from 2 to 32768",
                self.io_uring_entries
            ));
        }
        if self.backlog == 0 {
            return fail("server.backlog must be at least 1".into());
        }
        if self.handshake_rate_per_ip > 0 && self.handshake_burst_per_ip == 0 {
            return fail(
                "server.handshake_burst_per_ip must be at least 1 when server.handshake_rate_per_ip is set"
                    .into(),
            );
        }
        if self.shutdown_timeout.0.is_zero() {
            return fail("server.shutdown_timeout must be more than 0".into());
        }
        Ok(())
    }
}

/// `[http]`: limits and deadlines of plain HTTP requests.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A request head must be complete this long after its first byte (and a new
    /// connection must send one within it), or the connection is closed.
    pub header_timeout: Period,
    /// An idle keep-alive connection is closed after this long without a request.
    pub keepalive_timeout: Period,
    /// A request body must arrive in full within this long after its head.
    pub body_timeout: Period,
    /// A response that the client does not read within this long closes the connection.
    pub send_timeout: Period,
    /// Longest request line (method, target, version): 414 beyond it.
    pub max_request_line: ByteSize,
    /// Longest request head (request line and headers): 431 beyond it.
    pub max_header_bytes: ByteSize,
    /// Most headers in one request: 431 beyond it.
    pub max_headers: usize,
    /// Largest request body (Content-Length): 413 beyond it.
    pub max_body_size: ByteSize,
    /// Size of each pooled read buffer.
    pub read_buffer_size: ByteSize,
    /// Most requests served on one keep-alive connection (0 = no limit).
    pub max_requests_per_connection: u64,
    /// Answers waiting to be written on one connection: past it, further
    /// pipelined requests wait until the client has read what is pending.
    pub max_pending_output: ByteSize,
    /// Path of the Prometheus metrics ("" = off).
    pub metrics_path: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_timeout: Period::from_secs(10),
            keepalive_timeout: Period::from_secs(75),
            body_timeout: Period::from_secs(30),
            send_timeout: Period::from_secs(30),
            max_request_line: ByteSize(8 << 10),
            max_header_bytes: ByteSize(16 << 10),
            max_headers: 64,
            max_body_size: ByteSize(1 << 20),
            read_buffer_size: ByteSize(64 << 10),
            max_requests_per_connection: 0,
            max_pending_output: ByteSize(64 << 10),
            metrics_path: "/metrics".to_string(),
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("http.header_timeout", self.header_timeout),
            ("http.keepalive_timeout", self.keepalive_timeout),
            ("http.body_timeout", self.body_timeout),
            ("http.send_timeout", self.send_timeout),
        ] {
            if v.0.is_zero() {
                return fail(format!("{key} must be more than 0"));
            }
        }
        if self.max_request_line.0 < 16 {
            return fail(format!(
                "http.max_request_line = {} is below the minimum of 16 bytes",
                self.max_request_line.0
            ));
        }
        if self.max_header_bytes.0 < self.max_request_line.0 {
            return fail(format!(
                "http.max_header_bytes = {} must be at least http.max_request_line = {}",
                self.max_header_bytes.0, self.max_request_line.0
            ));
        }
        if self.max_header_bytes.0 > 1 << 20 {
            return fail(format!(
                "http.max_header_bytes = {} is more than 1MiB",
                self.max_header_bytes.0
            ));
        }
        if self.max_headers == 0 || self.max_headers > 1024 {
            return fail(format!(
                "http.max_headers = {} must be from 1 to 1024",
                self.max_headers
            ));
        }
        if self.read_buffer_size.0 < 1024 || self.read_buffer_size.0 > 16 << 20 {
            return fail(format!(
                "http.read_buffer_size = {} must be from 1KiB to 16MiB",
                self.read_buffer_size.0
            ));
        }
        if self.max_pending_output.0 < 1024 || self.max_pending_output.0 > 64 << 20 {
            return fail(format!(
                "http.max_pending_output = {} must be from 1KiB to 64MiB",
                self.max_pending_output.0
            ));
        }
        if self.max_body_size.0 > 1 << 30 {
            return fail(format!(
                "http.max_body_size = {} is more than 1GiB",
                self.max_body_size.0
            ));
        }
        Ok(())
    }
}

/// `[static]`: what is served at `/`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticConfig {
    /// Directory served at `/`; unset = the built-in pages embedded in the binary.
    pub dir: Option<PathBuf>,
    /// Serve the built-in pages (landing page, demo pages, vendored htmx)
    /// when `dir` is unset; false = nothing is served at `/` (404).
    pub builtin_pages: bool,
    /// `Cache-Control` of static files.
    pub cache_control: String,
    /// File served for a directory.
    pub index: String,
    /// Largest file served (bigger ones answer 403); bounds what one request can make a worker read.
    pub max_file_size: ByteSize,
}

impl Default for StaticConfig {
    fn default() -> Self {
        StaticConfig {
            dir: None,
            builtin_pages: true,
            cache_control: "public, max-age=60".to_string(),
            index: "index.html".to_string(),
            max_file_size: ByteSize(64 << 20),
        }
    }
}

impl StaticConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(dir) = &self.dir {
            if !dir.is_dir() {
                return fail(format!(
                    "static.dir = {:?} is not a directory that can be read",
                    dir.display().to_string()
                ));
            }
        }
        let cc = &self.cache_control;
        if cc.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return fail("static.cache_control must not contain control characters".into());
        }
        let idx = &self.index;
        if idx.is_empty() || idx.contains('/') || idx == ".." {
            return fail(format!("static.index = {idx:?} must be a plain file name"));
        }
        Ok(())
    }
}

/// `[hub]`: rooms, their history and the subscribers' queues.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Messages kept per room for resume and polling.
    pub history_size: usize,
    /// A message leaves the history after this long.
    pub history_ttl: Period,
    /// Rooms that may exist at once (counted per home worker, summed). Beyond it: 503.
    pub max_rooms: usize,
    /// Longest room name in bytes; names use A-Z a-z 0-9 and `_ - . : @`.
    pub max_room_name: usize,
    /// Room every subscriber joins besides the ones it asks for ("" = none).
    pub auto_join_room: String,
    /// Largest published message (the `POST /publish` body). Beyond it: 413.
    pub max_message_size: ByteSize,
    /// Bytes waiting to be written to one subscriber; a subscriber that falls
    /// further behind is disconnected (it can resume from history).
    pub max_queued_bytes: ByteSize,
    /// Messages waiting in one worker's cross-core inbox; publishers wait when it is full.
    pub bus_capacity: usize,
    /// When set, `POST /publish` needs `Authorization: Bearer <publish_token>` (else 401).
    pub publish_token: String,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            history_size: 1000,
            history_ttl: Period::from_secs(300),
            max_rooms: 1_000_000,
            max_room_name: 128,
            auto_join_room: "__all".to_string(),
            max_message_size: ByteSize(64 << 10),
            max_queued_bytes: ByteSize(1 << 20),
            bus_capacity: 65536,
            publish_token: String::new(),
        }
    }
}

impl HubConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.history_size > 1_000_000 {
            return fail(format!(
                "hub.history_size = {} is more than 1000000",
                self.history_size
            ));
        }
        if self.max_rooms == 0 {
            return fail("hub.max_rooms must be at least 1".into());
        }
        if !(1..=1024).contains(&self.max_room_name) {
            return fail(format!(
                "hub.max_room_name = {} must be from 1 to 1024",
                self.max_room_name
            ));
        }
        if self.max_message_size.0 == 0 || self.max_message_size.0 > 64 << 20 {
            return fail(format!(
                "hub.max_message_size = {} must be from 1 byte to 64MiB",
                self.max_message_size.0
            ));
        }
        if self.max_queued_bytes.0 < self.max_message_size.0 {
            return fail(format!(
                "hub.max_queued_bytes = {} must be at least hub.max_message_size = {}",
                self.max_queued_bytes.0, self.max_message_size.0
            ));
        }
        if !(16..=1 << 24).contains(&self.bus_capacity) {
            return fail(format!(
                "hub.bus_capacity = {} must be from 16 to 16777216",
                self.bus_capacity
            ));
        }
        if self.publish_token.bytes().any(|b| !b.is_ascii_graphic()) {
            return fail("hub.publish_token must be printable ASCII without spaces".into());
        }
        Ok(())
    }
}

/// `[sse]`: the SSE endpoint of the rooms.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SseConfig {
    /// The exact path of the SSE endpoint (`GET /sse?room=a&room=b`).
    pub path: String,
    /// `retry:` sent at stream start and on drain: the client's reconnection delay in ms.
    pub retry_ms: u64,
    /// A comment is sent when a stream has been idle this long (keeps proxies from timing out).
    pub keepalive: Period,
    /// Rooms one stream may ask for (the auto-join room not counted). Beyond it: 400.
    pub max_rooms_per_connection: usize,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            path: "/sse".to_string(),
            retry_ms: 3000,
            keepalive: Period::from_secs(15),
            max_rooms_per_connection: 16,
        }
    }
}

impl SseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.path.starts_with('/') || self.path.contains('?') {
            return fail(format!(
                "sse.path = {:?} must be a path starting with /",
                self.path
            ));
        }
        if self.keepalive.0.is_zero() {
            return fail("sse.keepalive must be more than 0".into());
        }
        check_rooms_per_connection(
            "sse.max_rooms_per_connection",
            self.max_rooms_per_connection,
        )
    }
}

/// The live demos of the built-in pages (only when `static.dir` is not set).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Runs the demo publisher (tickers, progress jobs) and the demo chat endpoint.
    pub enabled: bool,
    /// How often the tickers demo publishes prices, clock and load.
    pub interval: Period,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            enabled: true,
            interval: Period::from_secs(1),
        }
    }
}

impl DemoConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.0 < std::time::Duration::from_millis(50) {
            return fail("demo.interval must be at least 50ms".into());
        }
        Ok(())
    }
}

/// The live dashboard page of the server's own figures.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serves the page and runs its feed.
    pub enabled: bool,
    /// The page's path.
    pub path: String,
    /// How often the figures are sampled and published (while someone watches).
    pub interval: Period,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            path: "/dashboard".to_string(),
            interval: Period::from_secs(1),
        }
    }
}

impl DashboardConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.path.starts_with('/') || self.path.contains('?') {
            return fail(format!(
                "dashboard.path = {:?} must be a path starting with /",
                self.path
            ));
        }
        if self.interval.0 < std::time::Duration::from_millis(100) {
            return fail("dashboard.interval must be at least 100ms".into());
        }
        Ok(())
    }
}

/// What `POST /publish` (and a `/ws` client's publish) needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishAuth {
    /// "token" when `hub.publish_token` is set, else "off".
    Auto,
    /// Anyone may publish.
    Off,
    /// The static bearer token `hub.publish_token`.
    Token,
    /// A JWT whose publish claim lists the room.
    Jwt,
    /// Either of the two.
    TokenOrJwt,
    /// No client may publish (`POST /publish` answers 403, `/ws` clients
    /// cannot publish); only the server does, through [`crate::Hub`].
    Closed,
}

/// Signed-token (JWT HS256) authorization of subscribers and publishers.
/// Changes live on SIGHUP (see `ServerHandle::reload_auth`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The HS256 secret (at least 32 bytes). Or use `jwt_secret_env`.
    pub jwt_secret: String,
    /// Name of an environment variable holding the secret (unset or empty: start-up error).
    pub jwt_secret_env: String,
    /// Require a JWT listing the rooms for SSE, `/ws` and `/rooms` reads (else 401/403).
    pub subscribe: bool,
    /// "auto", "off", "token", "jwt", "token_or_jwt" or "closed".
    pub publish: PublishAuth,
    /// Claim listing the rooms a token may subscribe to (names, `prefix*`, `*`).
    pub rooms_claim: String,
    /// Claim listing the rooms a token may publish to.
    pub publish_claim: String,
    /// Cookie carrying the token ("" = cookies are not read).
    pub cookie: String,
    /// Query parameter carrying the token ("" = the query is not read).
    pub query_param: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Period,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            jwt_secret_env: String::new(),
            subscribe: false,
            publish: PublishAuth::Auto,
            rooms_claim: "rooms".to_string(),
            publish_claim: "publish".to_string(),
            cookie: "ringcast_token".to_string(),
            query_param: "token".to_string(),
            leeway: Period::from_secs(30),
        }
    }
}

/// How the server log is written (`log.format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One line per record: RFC 3339 UTC time, level, target, message.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: the server log and the access log.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// error, warn, info, debug or trace.
    pub level: String,
    /// "text" or "json".
    pub format: LogFormat,
    /// Access log: "off", "stderr", "stdout" or a file path (appended to).
    pub access: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: LogFormat::Text,
            access: "off".to_string(),
        }
    }
}

impl LogConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.level.parse::<log::LevelFilter>().is_err() {
            return fail(format!(
                "log.level = {:?} must be one of {}",
                self.level, LOG_LEVELS
            ));
        }
        Ok(())
    }
}

/// A configuration error: what is wrong, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConfigError {}

impl Config {
    /// A configuration with every built-in feature off, for an embedder who
    /// registers its own: no landing page or other built-in pages
    /// (`static.builtin_pages = false`), no demos and their publisher
    /// (`demo.enabled = false`), no dashboard (`dashboard.enabled = false`),
    /// no `/echo` (`ws.echo.path = ""`), no `/ws` room endpoint
    /// (`ws.rooms.path = ""`), no `/metrics` (`http.metrics_path = ""`), and
    /// no client publishing (`auth.publish = "closed"`: `POST /publish`
    /// answers 403, the server publishes through [`crate::Hub`]).
    ///
    /// What stays on: the SSE endpoint (`sse.path`, `/sse`) for the rooms,
    /// the room queries (`GET /rooms/{room}`), `/healthz`, and the
    /// WebSocket handlers and SSE hook the embedder registers. Every other
    /// key has its [`Config::default`] value (listening on 127.0.0.1:8080).
    pub fn bare() -> Config {
        let mut c = Config::default();
        c.static_files.builtin_pages = false;
        c.demo.enabled = false;
        c.dashboard.enabled = false;
        c.ws.echo.path = String::new();
        c.ws.rooms.path = String::new();
        c.http.metrics_path = String::new();
        c.auth.publish = PublishAuth::Closed;
        c
    }

    /// Parses TOML text; `origin` names the file in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| parse_error(text, origin, &e.path().to_string(), e.inner()))?;
        cfg.validate()
            .map_err(|e| ConfigError(format!("{origin}: {}", e.0)))?;
        Ok(cfg)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// Checks the rules serde cannot express, section by section in a fixed
    /// order (the first broken rule is the one reported); each message names
    /// its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.http.validate()?;
        self.static_files.validate()?;
        self.hub.validate()?;
        self.check_htmx_envelope()?;
        self.demo.validate()?;
        self.dashboard.validate()?;
        self.sse.validate()?;
        self.ws.validate()?;
        self.check_endpoint_paths()?;
        self.ws.validate_endpoints()?;
        self.tls.validate(self.server.listen)?;
        self.cluster.validate()?;
        self.log.validate()
    }

    /// `ws.rooms.envelope = "htmx"` against the hub: each message carries one
    /// room's id, so a connection may have only one room.
    fn check_htmx_envelope(&self) -> Result<(), ConfigError> {
        if self.ws.rooms.envelope == Envelope::Htmx
            && (!self.hub.auto_join_room.is_empty() || self.ws.rooms.max_rooms_per_connection != 1)
        {
            return fail(
                "ws.rooms.envelope = \"htmx\" carries one room's id: it needs hub.auto_join_room = \"\" and ws.rooms.max_rooms_per_connection = 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// The optional endpoints' paths (`/echo`, `/ws`, `/metrics`): each one
    /// empty or a path, and none taken by the SSE endpoint or `/healthz`.
    fn check_endpoint_paths(&self) -> Result<(), ConfigError> {
        let paths = [
            ("ws.echo.path", &self.ws.echo.path),
            ("ws.rooms.path", &self.ws.rooms.path),
            ("http.metrics_path", &self.http.metrics_path),
        ];
        for (key, path) in paths {
            if !path.is_empty() && (!path.starts_with('/') || path.contains('?')) {
                return fail(format!(
                    "{key} = {path:?} must be empty or a path starting with /"
                ));
            }
            if !path.is_empty() && (*path == self.sse.path || path == "/healthz") {
                return fail(format!(
                    "{key} = {path:?} is already used by another endpoint"
                ));
            }
        }
        Ok(())
    }
}

/// The rule of both `*.max_rooms_per_connection` keys: 1 to 256.
fn check_rooms_per_connection(key: &str, n: usize) -> Result<(), ConfigError> {
    if n == 0 || n > 256 {
        return fail(format!("{key} = {n} must be from 1 to 256"));
    }
    Ok(())
}

/// A validation failure: `msg` as the error.
fn fail<T>(msg: String) -> Result<T, ConfigError> {
    Err(ConfigError(msg))
}

/// The level names `log.level` accepts (any case), for error messages.
pub const LOG_LEVELS: &str = "off, error, warn, info, debug, trace";

/// Keys whose values [`diff`] does not show.
const SECRET_KEYS: &[&str] = &["hub.publish_token", "auth.jwt_secret", "cluster.redis"];

/// Keys whose values differ between two configurations, as
/// `(key, old value, new value)`, keys in dotted form (`http.max_headers`).
pub fn diff(old: &Config, new: &Config) -> Vec<(String, String, String)> {
    fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    if let (Ok(va), Ok(vb)) = (toml::Value::try_from(old), toml::Value::try_from(new)) {
        flatten("", &va, &mut a);
        flatten("", &vb, &mut b);
    }
    let old_map: std::collections::HashMap<_, _> = a.into_iter().collect();
    let mut changes: Vec<(String, String, String)> = b
        .into_iter()
        .filter_map(|(k, v)| match old_map.get(&k) {
            Some(o) if *o == v => None,
            Some(o) => Some((k, o.clone(), v)),
            None => Some((k, "(unset)".to_string(), v)),
        })
        .collect();
    // secrets are never logged: a change is named, its values are not
    for (k, old, new) in &mut changes {
        if SECRET_KEYS.contains(&k.as_str()) {
            for v in [old, new] {
                if v != "\"\"" && v != "(unset)" {
                    *v = "(secret)".to_string();
                }
            }
        }
    }
    changes.sort();
    changes
}

/// Parses a listening address (`server.listen`, `--listen`): an IP address
/// and a port. The error starts with the text, quoted.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| not_an_address(&format!("{text:?}")))
}

fn not_an_address(shown: &str) -> String {
    format!(
        "{shown} is not an address: write an IP address and port, e.g. \"127.0.0.1:8080\" or \"[::]:8080\""
    )
}

fn listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::String(text) => parse_listen(&text),
        other => Err(not_an_address(&other.to_string())),
    }
    .map_err(serde::de::Error::custom)
}

/// What 0 means, for the integer keys where it means something other than zero.
const ZERO_MEANS: &[(&str, &str)] = &[
    ("server.workers", "0 = one per CPU this process may run on"),
    (
        "server.max_connections",
        "0 = the file-descriptor ceiling less a reserve",
    ),
    (
        "server.max_connections_per_worker",
        "0 = same as server.max_connections",
    ),
    ("server.max_connections_per_ip", "0 = no limit"),
    ("server.handshake_rate_per_ip", "0 = no limit"),
    ("http.max_requests_per_connection", "0 = no limit"),
    ("hub.history_size", "0 keeps no history"),
    ("ws.echo.max_messages_per_sec", "0 = no limit"),
    ("ws.rooms.max_messages_per_sec", "0 = no limit"),
];

/// The rule of an unsigned integer key, when `message` is serde's refusal
/// of a value for one (a negative number, a decimal, a string, too large):
/// serde names only the Rust type (`expected usize`).
fn unsigned_rule(key: &str, message: &str) -> Option<String> {
    let ty = message.rsplit("expected ").next()?.trim();
    let max = match ty {
        "u8" => Some(u8::MAX as u64),
        "u16" => Some(u16::MAX as u64),
        "u32" => Some(u32::MAX as u64),
        "u64" | "usize" => None,
        _ => return None,
    };
    let mut rule = match max {
        Some(max) => format!("{key}: a whole number from 0 to {max}"),
        None => format!("{key}: a whole number, 0 or more"),
    };
    if let Some((_, zero)) = ZERO_MEANS.iter().find(|(k, _)| *k == key) {
        rule.push_str(&format!(" ({zero})"));
    }
    Some(rule)
}

/// A TOML error as shown to the operator: toml's message quotes the line at
/// fault (and a wrong value), with serde's reason replaced by one that names
/// the key (`key: rule`, or `key = value ...` when the reason starts with
/// the value as written). When that line names a secret key the message
/// says only where the error is. Secrets are never printed.
fn parse_error(text: &str, origin: &str, key: &str, e: &toml::de::Error) -> ConfigError {
    let key = if key == "." { "" } else { key };
    let Some(span) = e.span() else {
        return ConfigError(format!("{origin}: {e}"));
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end.max(line_start)];
    let secret = SECRET_KEYS.iter().find(|k| **k == key).or_else(|| {
        SECRET_KEYS
            .iter()
            .find(|k| line.contains(k.rsplit('.').next().unwrap()))
    });
    if let Some(secret) = secret {
        let name = secret.rsplit('.').next().unwrap_or(secret);
        return ConfigError(format!(
            "{origin}: TOML parse error at line {}: invalid {name} (the line is not shown: it holds a secret)",
            text[..line_start].matches('\n').count() + 1
        ));
    }
    let full = e.to_string();
    let reason = e.message();
    let Some(located) = full.trim_end().strip_suffix(reason.trim_end()) else {
        return ConfigError(format!("{origin}: {full}"));
    };
    let value = text.get(span.clone()).unwrap_or("").trim();
    let reason = if key.is_empty() {
        reason.to_string()
    } else if let Some(rule) = unsigned_rule(key, reason) {
        rule
    } else if !value.is_empty() && reason.starts_with(value) {
        format!("{key} = {reason}")
    } else {
        format!("{key}: {reason}")
    };
    ConfigError(format!("{origin}: {located}{}", reason.trim_end()))
}

/// `base` with the values of the dotted `keys` (tables included, e.g. `auth`)
/// taken from `other`: what runs after a reload that applies only some keys.
pub fn with_keys_from(base: &Config, other: &Config, keys: &[&str]) -> Config {
    fn take(dst: &mut toml::Value, src: &toml::Value, path: &[&str]) {
        let (Some(d), Some(s)) = (dst.as_table_mut(), src.as_table()) else {
            return;
        };
        let Some(sv) = s.get(path[0]) else { return };
        if path.len() == 1 {
            d.insert(path[0].to_string(), sv.clone());
        } else if let Some(dv) = d.get_mut(path[0]) {
            take(dv, sv, &path[1..]);
        }
    }
    let (Ok(mut b), Ok(o)) = (toml::Value::try_from(base), toml::Value::try_from(other)) else {
        return base.clone();
    };
    for k in keys {
        let path: Vec<&str> = k.split('.').collect();
        take(&mut b, &o, &path);
    }
    b.try_into().unwrap_or_else(|_| base.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_keys_from_takes_only_those_keys() {
        let a = Config::default();
        let b = Config::from_toml(
            "[log]\nlevel = \"debug\"\n[http]\nmax_headers = 10\n[hub]\nmax_rooms = 7\n",
            "t",
        )
        .unwrap();
        let c = with_keys_from(&a, &b, &["log.level", "hub.max_rooms"]);
        assert_eq!(c.log.level, "debug");
        assert_eq!(c.hub.max_rooms, 7);
        assert_eq!(c.http.max_headers, a.http.max_headers);
        let names: Vec<String> = diff(&c, &b).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(names, ["http.max_headers"]);
    }

    #[test]
    fn diff_names_changed_keys() {
        let a = Config::default();
        let b =
            Config::from_toml("[log]\nlevel = \"debug\"\n[http]\nmax_headers = 10\n", "t").unwrap();
        let d = diff(&a, &b);
        assert_eq!(
            d,
            vec![
                (
                    "http.max_headers".to_string(),
                    "64".to_string(),
                    "10".to_string()
                ),
                (
                    "log.level".to_string(),
                    "\"info\"".to_string(),
                    "\"debug\"".to_string()
                ),
            ]
        );
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn parse_errors_never_show_secrets() {
        for text in [
            "[auth]\njwt_secret = \"0123456789abcdef0123456789abcdefSECRET\\q\"\n",
            "[hub]\npublish_token = \"SECRET\n",
            "[hub]\npublish_token = SECRET\n",
            "[auth]\nsubscribe = true\njwt_secret = 12345678SECRET\n",
            "hub.publish_token = [\"SECRET\"]\n",
        ] {
            let e = Config::from_toml(text, "t.toml").unwrap_err().0;
            assert!(!e.contains("SECRET"), "{text:?}: {e}");
            assert!(e.contains("line "), "{e}");
        }
        // other errors keep toml's full message, with the line
        let e = Config::from_toml("[http]\nmax_headers = \"many\"\n", "t.toml")
            .unwrap_err()
            .0;
        assert!(e.contains("max_headers = \"many\""), "{e}");
    }

    #[test]
    fn diff_never_shows_secrets() {
        let a = Config::from_toml("[hub]\npublish_token = \"old-token\"\n", "t").unwrap();
        let b = Config::from_toml(
            "[hub]\npublish_token = \"new-token\"\n[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n",
            "t",
        )
        .unwrap();
        let d = diff(&a, &b);
        let keys: Vec<&str> = d.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(keys, ["auth.jwt_secret", "hub.publish_token"]);
        let text = format!("{d:?}");
        assert!(!text.contains("-token") && !text.contains("0123"), "{text}");
        assert_eq!(d[0].1, "\"\"");
        assert_eq!(d[0].2, "(secret)");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("", "t.toml").unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.http.max_headers, 64);
        assert_eq!(c.server.io_driver, IoDriver::Auto);
    }

    #[test]
    fn units_parse() {
        let c = Config::from_toml(
            "[http]\nheader_timeout = \"250ms\"\nmax_body_size = \"2MiB\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.http.header_timeout.0.as_millis(), 250);
        assert_eq!(c.http.max_body_size.0, 2 << 20);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("[server]\nlisten_addr = \"1.2.3.4:5\"\n", "t.toml").unwrap_err();
        assert!(e.0.contains("listen_addr"), "{e}");
        let e = Config::from_toml("[servr]\n", "t.toml").unwrap_err();
        assert!(e.0.contains("servr"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::from_toml("[http]\nmax_headers = 0\n", "t.toml").unwrap_err();
        assert!(e.0.contains("http.max_headers"), "{e}");
        let e = Config::from_toml("[server]\nio_driver = \"kqueue\"\n", "t.toml").unwrap_err();
        assert!(e.0.contains("kqueue"), "{e}");
        let e =
            Config::from_toml("[http]\nheader_timeout = \"5 fortnights\"\n", "t.toml").unwrap_err();
        assert!(e.0.contains("fortnights"), "{e}");
        let e = Config::from_toml("[server]\nworkers = -1\n", "t.toml").unwrap_err();
        assert!(e.0.contains("workers"), "{e}");
        let e = Config::from_toml("[log]\nlevel = \"loud\"\n", "t.toml").unwrap_err();
        assert!(e.0.contains("log.level"), "{e}");
        for (toml, key) in [
            (
                "[sse]\nmax_rooms_per_connection = 0\n",
                "sse.max_rooms_per_connection = 0",
            ),
            (
                "[ws.rooms]\nmax_rooms_per_connection = 257\n",
                "ws.rooms.max_rooms_per_connection = 257",
            ),
        ] {
            let e = Config::from_toml(toml, "t.toml").unwrap_err();
            assert!(e.0.contains(key) && e.0.contains("from 1 to 256"), "{e}");
        }
    }

    /// The reason line of a refused config (toml's located message ends with it).
    fn reason(text: &str) -> String {
        let e = Config::from_toml(text, "t.toml").unwrap_err().0;
        e.lines().last().unwrap().to_string()
    }

    #[test]
    fn unsigned_integer_keys_name_the_rule() {
        let rule = "hub.history_size: a whole number, 0 or more (0 keeps no history)";
        for text in [
            "[hub]\nhistory_size = -5\n",
            "[hub]\nhistory_size = 1.5\n",
            "[hub]\nhistory_size = \"many\"\n",
            "hub.history_size = -5\n",
            "hub = { history_size = -5 }\n",
        ] {
            assert_eq!(reason(text), rule, "{text:?}");
        }
        let e = Config::from_toml("[hub]\nhistory_size = -5\n", "t.toml")
            .unwrap_err()
            .0;
        assert!(e.starts_with("t.toml: TOML parse error at line 2"), "{e}");
        assert!(e.contains("history_size = -5"), "{e}");
        assert_eq!(
            reason("[server]\nworkers = -1\n"),
            "server.workers: a whole number, 0 or more (0 = one per CPU this process may run on)"
        );
        assert_eq!(
            reason("[http]\nmax_headers = -64\n"),
            "http.max_headers: a whole number, 0 or more"
        );
        assert_eq!(
            reason("[server]\nio_uring_entries = 5000000000\n"),
            "server.io_uring_entries: a whole number from 0 to 4294967295"
        );
        assert_eq!(
            reason("[ws.deflate]\nserver_max_window_bits = 300\n"),
            "ws.deflate.server_max_window_bits: a whole number from 0 to 255"
        );
        assert_eq!(
            reason("[ws.rooms]\nmax_messages_per_sec = -1\n"),
            "ws.rooms.max_messages_per_sec: a whole number from 0 to 4294967295 (0 = no limit)"
        );
    }

    #[test]
    fn listen_must_be_an_ip_address_and_port() {
        let example = "is not an address: write an IP address and port, e.g. \"127.0.0.1:8080\" or \"[::]:8080\"";
        assert_eq!(
            reason("[server]\nlisten = \"localhost\"\n"),
            format!("server.listen = \"localhost\" {example}")
        );
        assert_eq!(
            reason("[server]\nlisten = \"127.0.0.1\"\n"),
            format!("server.listen = \"127.0.0.1\" {example}")
        );
        assert_eq!(
            reason("[server]\nlisten = 8080\n"),
            format!("server.listen = 8080 {example}")
        );
        let c = Config::from_toml("[server]\nlisten = \"[::]:9000\"\n", "t").unwrap();
        assert_eq!(c.server.listen, "[::]:9000".parse().unwrap());
    }

    #[test]
    fn sizes_and_durations_in_the_file() {
        let c = Config::from_toml(
            "[http]\nmax_body_size = \"1MB\"\nread_buffer_size = \"1.5MiB\"\nbody_timeout = \"1.5s\"\n\
             [hub]\nmax_message_size = \"64kB\"\nmax_queued_bytes = \"1MiB\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.http.max_body_size.0, 1_000_000);
        assert_eq!(c.http.read_buffer_size.0, 1_572_864);
        assert_eq!(c.http.body_timeout.0.as_millis(), 1500);
        assert_eq!(c.hub.max_message_size.0, 64_000);
        assert_eq!(c.hub.max_queued_bytes.0, 1 << 20);
        assert_eq!(
            reason("[http]\nmax_body_size = \"1M\"\n"),
            "http.max_body_size = \"1M\" has an ambiguous size unit \"M\": write MB (1000^2 bytes) or MiB (1024^2 bytes)"
        );
        assert_eq!(
            reason("[http]\nmax_body_size = \"1.1KiB\"\n"),
            "http.max_body_size = \"1.1KiB\" is not a whole number of bytes (it is between 1126 and 1127): write e.g. \"1126B\""
        );
        assert_eq!(
            reason("[http]\nmax_body_size = -1\n"),
            "http.max_body_size = -1 is not a size: a size is not negative"
        );
        assert_eq!(
            reason("[http]\nheader_timeout = \"5 fortnights\"\n"),
            "http.header_timeout = \"5 fortnights\" has an unknown duration unit \"fortnights\": use ms (milliseconds), s (seconds), m (minutes) or h (hours)"
        );
        assert_eq!(
            reason("[http]\nheader_timeout = -5\n"),
            "http.header_timeout = -5 is not a duration: a duration is not negative (a bare number is seconds)"
        );
        assert_eq!(
            reason("[server]\nio_driver = \"kqueue\"\n"),
            "server.io_driver: unknown variant `kqueue`, expected one of `auto`, `io_uring`, `legacy`"
        );
        assert_eq!(
            reason("[log]\nlevel = \"loud\"\n"),
            "t.toml: log.level = \"loud\" must be one of off, error, warn, info, debug, trace"
        );
    }

    #[test]
    fn example_config_is_valid_and_complete() {
        let text = include_str!("ringcast.example.toml");
        Config::from_toml(text, "ringcast.example.toml").unwrap();
        // Every key of every section is documented (set, or shown commented out).
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let mut section = String::new();
        let mut documented = std::collections::HashSet::new();
        for line in text.lines() {
            let l = line.trim_start_matches('#').trim();
            if l.starts_with('[') && l.ends_with(']') {
                section = l[1..l.len() - 1].to_string();
            } else if let Some((k, _)) = l.split_once(" = ") {
                documented.insert(format!("{section}.{k}"));
            }
        }
        fn walk(prefix: &str, v: &toml::Value, documented: &std::collections::HashSet<String>) {
            for (key, value) in v.as_table().unwrap() {
                let k = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match value {
                    toml::Value::Table(_) => walk(&k, value, documented),
                    _ => assert!(
                        documented.contains(&k),
                        "{k} is missing from ringcast.example.toml"
                    ),
                }
            }
        }
        walk("", &defaults, &documented);
        assert!(documented.contains("static.dir"));
    }
}
