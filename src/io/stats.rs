//! Per-worker counters. Each worker is the only writer of its own counters
//! (a relaxed load and store, no locked instruction on the hot path); readers
//! on other threads sum them when scraped.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A counter with a single writer thread.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(n), Relaxed);
    }
    /// Sets a gauge.
    #[inline]
    pub fn set(&self, n: u64) {
        self.0.store(n, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// What one worker counts.
#[derive(Default, Debug)]
pub struct WorkerStats {
    /// Connections open right now.
    pub open: Counter,
    pub accepted: Counter,
    pub closed: Counter,
    /// Connections refused with 503 because a `max_connections` limit was reached.
    pub rejected_max_connections: Counter,
    /// Connections refused with 429 by `server.max_connections_per_ip`.
    pub rejected_per_ip: Counter,
    /// SSE/WebSocket handshakes refused with 429 by `server.handshake_rate_per_ip`.
    pub rejected_handshake_rate: Counter,
    /// Rooms not created because `hub.max_rooms` rooms existed.
    pub rejected_max_rooms: Counter,
    /// Stream requests refused for naming more rooms than `*.max_rooms_per_connection`.
    pub rejected_rooms_per_connection: Counter,
    /// `accept` failures for lack of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM).
    pub accept_resource_errors: Counter,
    pub http_requests: Counter,
    /// TLS handshakes completed, by version, and how many of them resumed a session.
    pub tls_handshakes_12: Counter,
    pub tls_handshakes_13: Counter,
    pub tls_resumed: Counter,
    /// TLS handshakes failed, by reason (see `io::tls::HandshakeFailure`).
    pub tls_fail_timeout: Counter,
    pub tls_fail_eof: Counter,
    pub tls_fail_not_tls: Counter,
    pub tls_fail_plain_http: Counter,
    pub tls_fail_peer_alert: Counter,
    pub tls_fail_incompatible: Counter,
    pub tls_fail_protocol: Counter,
    pub tls_fail_io: Counter,
    /// TLS connections closed at once because `tls.max_handshakes_per_worker` handshakes were running.
    pub tls_rejected_handshake_limit: Counter,
    /// TLS handshakes running right now.
    pub tls_handshaking: Counter,
    /// Requests refused by a limit or a parse error, by status.
    pub http_400: Counter,
    pub http_413: Counter,
    pub http_414: Counter,
    pub http_431: Counter,
    pub http_other_errors: Counter,
    /// Connections closed because `header_timeout`, `keepalive_timeout`, `body_timeout` or `send_timeout` ran out.
    pub timeouts: Counter,
    /// Times a connection's pending answers reached `http.max_pending_output`
    /// and its further pipelined requests waited for the client to read.
    pub pending_output_pauses: Counter,
    /// SSE streams open right now.
    pub sse_open: Counter,
    /// WebSocket connections open right now.
    pub ws_open: Counter,
    /// Connections parked right now (quiet: their state alone, no task).
    pub parked: Counter,
    /// WebSocket upgrades refused (400, 403, 426).
    pub ws_handshake_rejects: Counter,
    /// WebSocket connections closed with 1008 for sending too fast.
    pub ws_rate_limited: Counter,
    /// Messages numbered by this worker as a room's home.
    pub messages_published: Counter,
    /// Messages queued to this worker's subscribers.
    pub messages_delivered: Counter,
    /// Subscribers disconnected for falling more than `hub.max_queued_bytes` behind.
    pub slow_consumer_drops: Counter,
    /// Requests refused by hub rules (bad room name, cursor, too many rooms, size).
    pub hub_rejects: Counter,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: Counter,
    /// Subscriptions, room reads and publishes refused with 401 (no usable token).
    pub auth_unauthorized: Counter,
    /// Refused with 403 (the token does not allow the room), and `/ws`
    /// client publishes closed with 1008 for the same reason.
    pub auth_forbidden: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    /// Gauges set by the room sweeper: messages in the histories of this worker's home rooms, and those rooms.
    pub history_messages: Counter,
    pub home_rooms: Counter,
}
