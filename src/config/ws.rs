//! The `[ws]` section: WebSocket limits and timeouts, permessage-deflate
//! (`[ws.deflate]`), and the built-in endpoints `/echo` (`[ws.echo]`) and
//! `/ws` (`[ws.rooms]`).

use serde::{Deserialize, Serialize};

use super::{check_rooms_per_connection, fail, ByteSize, ConfigError, Period};

/// How room messages reach WebSocket subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// The published data itself, one text frame (binary if not UTF-8).
    Raw,
    /// `{"room":..,"id":..,"event":..,"data":..}`, so clients can resume with `?last_event_id=`.
    Json,
    /// The data (an HTML fragment for htmx) followed by
    /// `<div id="ringcast-cursor" hx-swap-oob="true" hidden data-last-event-id="ID"></div>`:
    /// htmx swaps the marker into the page, which reconnects with
    /// `?last_event_id=` from it. Single-room connections only.
    Htmx,
}

/// `[ws]`: WebSocket limits and deadlines, permessage-deflate, and the two built-in endpoints.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// Largest frame a client may send: close 1009 from the frame header alone.
    pub max_frame_size: ByteSize,
    /// Largest message (all fragments, after decompression): close 1009.
    pub max_message_size: ByteSize,
    /// A ping is sent to every WebSocket this often.
    pub ping_interval: Period,
    /// A connection that does not answer a ping within this long is closed.
    pub pong_timeout: Period,
    /// After our close frame, the client has this long to answer before the connection is cut.
    pub close_timeout: Period,
    /// `[ws.deflate]`: permessage-deflate (RFC 7692).
    pub deflate: WsDeflateConfig,
    /// `[ws.echo]`: the echo endpoint (a WebSocket handler of the binary).
    pub echo: WsEndpoint,
    /// `[ws.rooms]`: the room subscriber endpoint.
    pub rooms: WsRoomsEndpoint,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_frame_size: ByteSize(1 << 20),
            max_message_size: ByteSize(1 << 20),
            ping_interval: Period::from_secs(30),
            pong_timeout: Period::from_secs(10),
            close_timeout: Period::from_secs(5),
            deflate: WsDeflateConfig::default(),
            echo: WsEndpoint::default(),
            rooms: WsRoomsEndpoint::default(),
        }
    }
}

impl WsConfig {
    /// Sizes, timeouts and deflate. The endpoints' own rules are checked by
    /// `validate_endpoints`, after their paths.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_size.0 == 0
            || self.max_message_size.0 == 0
            || self.max_message_size.0 > 1 << 30
        {
            return fail(
                "ws.max_frame_size and ws.max_message_size must be from 1 byte to 1GiB".into(),
            );
        }
        for (key, v) in [
            ("ws.ping_interval", self.ping_interval),
            ("ws.pong_timeout", self.pong_timeout),
            ("ws.close_timeout", self.close_timeout),
        ] {
            if v.0.is_zero() {
                return fail(format!("{key} must be more than 0"));
            }
        }
        self.deflate.validate()
    }

    /// The `/echo` and `/ws` endpoints: their subprotocols, and the room
    /// endpoint's rooms per connection.
    pub(super) fn validate_endpoints(&self) -> Result<(), ConfigError> {
        for (key, list) in [
            ("ws.echo.subprotocols", &self.echo.subprotocols),
            ("ws.rooms.subprotocols", &self.rooms.subprotocols),
        ] {
            if let Some(bad) = list.iter().find(|p| {
                p.is_empty()
                    || !p
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
            }) {
                return fail(format!("{key}: {bad:?} is not a valid token"));
            }
        }
        check_rooms_per_connection(
            "ws.rooms.max_rooms_per_connection",
            self.rooms.max_rooms_per_connection,
        )
    }
}

/// permessage-deflate (RFC 7692) parameters the server accepts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsDeflateConfig {
    /// Always answer `server_no_context_takeover`: one compressed room frame serves every subscriber.
    pub server_no_context_takeover: bool,
    /// Always answer `client_no_context_takeover`: no inflate state is kept between messages.
    pub client_no_context_takeover: bool,
    /// Largest window the server compresses with (9 to 15).
    pub server_max_window_bits: u8,
    /// Largest window a client may compress with (8 to 15).
    pub client_max_window_bits: u8,
}

impl Default for WsDeflateConfig {
    fn default() -> Self {
        WsDeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

impl WsDeflateConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(9..=15).contains(&self.server_max_window_bits) {
            return fail(format!(
                "ws.deflate.server_max_window_bits = {} must be from 9 to 15",
                self.server_max_window_bits
            ));
        }
        if !(8..=15).contains(&self.client_max_window_bits) {
            return fail(format!(
                "ws.deflate.client_max_window_bits = {} must be from 8 to 15",
                self.client_max_window_bits
            ));
        }
        Ok(())
    }
}

/// A WebSocket handler endpoint's options: those of the built-in `/echo`
/// (`ws.echo`), and those an embedder passes to [`crate::Server::ws_handler`]
/// for its own handlers (where `path` is ignored). `Default` is the echo
/// endpoint's: deflate on, no rate limit, `[auth]` applied.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsEndpoint {
    /// "" turns the endpoint off (the echo endpoint only).
    pub path: String,
    /// Subprotocols offered, in preference order; the client's first match is chosen.
    pub subprotocols: Vec<String>,
    /// Allowed `Origin`s (`scheme://host[:port]`); empty = any. A mismatch: 403.
    pub allowed_origins: Vec<String>,
    /// Negotiate permessage-deflate.
    pub deflate: bool,
    /// Messages a client may send per second (0 = no limit); beyond it: close 1008.
    pub max_messages_per_sec: u32,
    /// Messages a client may send at once above the rate.
    pub burst: u32,
    /// Who may connect: "server" follows `[auth]` (with `auth.subscribe` a
    /// token is needed, and the handler joins only rooms it lists); "off"
    /// lets anyone in (the endpoint decides for itself).
    pub auth: EndpointAuth,
}

/// Whether a handler endpoint applies the server's `[auth]` rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointAuth {
    /// `[auth]` as for `/ws` and SSE.
    #[default]
    Server,
    /// No token checked.
    Off,
}

impl Default for WsEndpoint {
    fn default() -> Self {
        WsEndpoint {
            path: "/echo".to_string(),
            subprotocols: Vec::new(),
            allowed_origins: Vec::new(),
            deflate: true,
            max_messages_per_sec: 0,
            burst: 0,
            auth: EndpointAuth::Server,
        }
    }
}

/// The room subscriber endpoint: `GET /ws?room=a&room=b`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsRoomsEndpoint {
    /// "" turns the endpoint off.
    pub path: String,
    /// Subprotocols offered, in order of preference (the first the client also offers is chosen).
    pub subprotocols: Vec<String>,
    /// Allowed `Origin`s (`scheme://host[:port]`); empty = any. A mismatch: 403.
    pub allowed_origins: Vec<String>,
    /// Negotiate permessage-deflate.
    pub deflate: bool,
    /// "raw" (the data) or "json" (with room, id and event, for resuming).
    pub envelope: Envelope,
    /// A text message from the client is published: to the room its JSON
    /// `room` field names, or to the connection's only room.
    pub client_publish: bool,
    /// With client_publish: an HTML template whose `{{field}}` placeholders are
    /// filled, HTML-escaped, from the client's JSON message (htmx `ws-send`). "" = publish as sent.
    pub template: String,
    /// Rooms one connection may ask for (the auto-join room not counted). Beyond it: 400.
    pub max_rooms_per_connection: usize,
    /// Messages a client may send per second (0 = no limit); beyond it: close 1008.
    pub max_messages_per_sec: u32,
    /// Messages a client may send at once above the rate.
    pub burst: u32,
}

impl Default for WsRoomsEndpoint {
    fn default() -> Self {
        WsRoomsEndpoint {
            path: "/ws".to_string(),
            subprotocols: Vec::new(),
            allowed_origins: Vec::new(),
            deflate: true,
            envelope: Envelope::Raw,
            client_publish: false,
            template: String::new(),
            max_rooms_per_connection: 16,
            max_messages_per_sec: 50,
            burst: 100,
        }
    }
}
