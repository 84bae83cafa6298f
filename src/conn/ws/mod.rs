//! WebSocket on the workers: the upgrade (negotiating subprotocol, Origin
//! and permessage-deflate), the session driver that runs a connection with
//! the pure protocol code of [`crate::proto::ws`], and the handler API.

pub mod handler;
pub mod publish;
pub mod session;

use std::sync::Arc;

use bytes::BytesMut;

use crate::config::{Config, WsEndpoint};
use crate::hub::Subscription;
use crate::proto::http::request::RequestHead;
use crate::proto::http::response;
use crate::proto::ws::deflate::{self, DeflateConfig, DeflateParams};
use crate::proto::ws::handshake;
use handler::Handler;

/// A handler registered for a path, with its endpoint settings.
#[derive(Clone)]
pub struct WsRoute {
    pub path: String,
    pub endpoint: WsEndpoint,
    pub handler: Arc<Handler>,
}

/// How a room subscriber connection behaves: `[ws.rooms]`'s settings, or
/// fixed ones of a built-in endpoint (the demo chat).
pub struct RoomsMode {
    pub envelope: crate::config::Envelope,
    /// A client's text message is published.
    pub client_publish: bool,
    /// With `client_publish`: the HTML template (see [`publish`]); "" = as sent.
    pub template: String,
}

impl RoomsMode {
    /// The settings of the `[ws.rooms]` endpoint.
    pub fn from_config(cfg: &Config) -> RoomsMode {
        RoomsMode {
            envelope: cfg.ws.rooms.envelope,
            client_publish: cfg.ws.rooms.client_publish,
            template: cfg.ws.rooms.template.clone(),
        }
    }
}

/// What a connection becomes after the 101.
pub enum WsKind {
    /// A room subscriber (`ws.rooms`, or the demo chat).
    Rooms(Subscription, RoomsMode),
    /// A registered handler (the echo endpoint is one), with the rooms the
    /// client's token allows it to join.
    Handler(Arc<Handler>, crate::auth::Grant),
}

/// An accepted upgrade.
pub struct WsUpgrade {
    pub kind: WsKind,
    pub deflate: Option<DeflateParams>,
    pub protocol: Option<String>,
    pub path: String,
    pub query: String,
    /// Messages per second and burst (0 = no limit).
    pub rate: (u32, u32),
    /// Rooms endpoint with client publishing: the rooms the client's token
    /// lets it publish to (`None` = any of its rooms).
    pub publish_rooms: Option<Vec<crate::hub::RoomName>>,
}

/// The endpoint-level rules an upgrade is checked against.
#[derive(Clone, Copy)]
pub struct EndpointRules<'a> {
    pub subprotocols: &'a [String],
    pub allowed_origins: &'a [String],
    pub deflate: bool,
    /// The handshake is authenticated by a cookie, which a browser sends
    /// with any site's WebSocket: with no `allowed_origins`, its `Origin`
    /// must match its `Host` (cross-site WebSocket hijacking).
    pub same_origin: bool,
}

/// What checking an upgrade request gave.
pub enum Negotiated {
    /// Accepted: the 101 is in the output buffer.
    Accepted {
        deflate: Option<DeflateParams>,
        protocol: Option<String>,
    },
    /// Refused: the error response (with `Connection: close`) of this status is in the output buffer.
    Refused(u16),
}

/// Checks an upgrade request against the endpoint's rules and writes the
/// 101 or the refusal (400, also for an HTTP/1.0 request; 426 with
/// `Sec-WebSocket-Version: 13`; 403 for Origin).
pub fn negotiate(
    cfg: &Config,
    head: &RequestHead<'_>,
    rules: &EndpointRules<'_>,
    out: &mut BytesMut,
) -> Negotiated {
    let checked = handshake::require_http11(head.minor_version)
        .and_then(|()| handshake::validate_upgrade(head.method, head.headers));
    let up = match checked {
        Ok(u) => u,
        Err(e) => {
            e.write_response(out);
            return Negotiated::Refused(e.status());
        }
    };
    if !handshake::origin_allowed(up.origin, rules.allowed_origins) {
        response::error(
            out,
            403,
            "Origin is not in this endpoint's allowed_origins",
            false,
            false,
        );
        return Negotiated::Refused(403);
    }
    if rules.same_origin && rules.allowed_origins.is_empty() {
        let host = head.header("host").unwrap_or_default();
        if !up
            .origin
            .is_some_and(|o| handshake::origin_matches_host(o, host))
        {
            response::error(
                out,
                403,
                "the token came from a cookie, so Origin must match Host (or be in this endpoint's allowed_origins)",
                false,
                false,
            );
            return Negotiated::Refused(403);
        }
    }
    let protocol =
        handshake::select_subprotocol(&up.protocols, rules.subprotocols).map(str::to_string);
    let deflate = if rules.deflate && !up.extensions.is_empty() {
        let d = &cfg.ws.deflate;
        let dc = DeflateConfig {
            enabled: true,
            server_no_context_takeover: d.server_no_context_takeover,
            client_no_context_takeover: d.client_no_context_takeover,
            server_max_window_bits: d.server_max_window_bits,
            client_max_window_bits: d.client_max_window_bits,
        };
        deflate::negotiate(&up.extensions, &dc)
    } else {
        None
    };
    let ext = deflate.map(|p| p.response_header());
    handshake::write_101_response(&up.accept_key(), protocol.as_deref(), ext.as_deref(), out);
    Negotiated::Accepted { deflate, protocol }
}
