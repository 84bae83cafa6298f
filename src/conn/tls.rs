//! A connection accepted on the TLS listener: the handshake, within
//! `tls.handshake_timeout` and counted by result, then HTTP as on the
//! plain listener (SSE and WebSocket upgrade from there unchanged).
//!
//! How many handshakes a worker runs at once is bounded
//! (`tls.max_handshakes_per_worker`, checked at accept): a flood of
//! half-open handshakes is shed instead of starving the established
//! connections. A first byte that is not a TLS handshake record is closed
//! at once; a plain HTTP request gets a 400 saying so.

use std::time::Duration;

use crate::conn::worker::ConnGuard;
use crate::io::stats::WorkerStats;
use crate::io::tls::{self, HandshakeFailure};
use crate::io::transport::Transport;

/// Runs the handshake, then serves HTTP on the connection.
pub async fn serve(io: Transport, guard: ConnGuard) {
    let worker = guard.worker.clone();
    let stats = &worker.stats;
    let timeout = worker.shared.cfg.tls.handshake_timeout.0;
    let result = match io.tls_session() {
        Some((stream, session)) => {
            // (counted up when the worker admitted it)
            let r = tls::handshake(stream, session, &guard.signal, timeout, || {
                worker.draining()
            })
            .await;
            stats.tls_handshaking.sub(1);
            r
        }
        None => return crate::conn::http::serve(io, guard).await,
    };
    match result {
        Ok(n) => {
            if n.tls13 {
                stats.tls_handshakes_13.inc();
            } else {
                stats.tls_handshakes_12.inc();
            }
            if n.resumed {
                stats.tls_resumed.inc();
            }
            crate::conn::http::serve(io, guard).await
        }
        Err(f) => {
            count_failure(stats, f);
            log::debug!("tls handshake from {} failed: {}", guard.peer(), f.label());
            if f == HandshakeFailure::PlainHttp {
                if let Some((stream, _)) = io.tls_session() {
                    use std::os::fd::AsRawFd;
                    let mut out = bytes::BytesMut::new();
                    crate::proto::http::response::error(
                        &mut out,
                        400,
                        "this port speaks TLS (https://); the request came as plain HTTP",
                        false,
                        false,
                    );
                    let _ = crate::io::sock::send(stream.as_raw_fd(), &out);
                    crate::io::sock::linger_close(stream, Duration::from_millis(500)).await;
                }
            }
        }
    }
}

fn count_failure(stats: &WorkerStats, f: HandshakeFailure) {
    let c = match f {
        HandshakeFailure::Timeout => &stats.tls_fail_timeout,
        HandshakeFailure::Eof => &stats.tls_fail_eof,
        HandshakeFailure::NotTls => &stats.tls_fail_not_tls,
        HandshakeFailure::PlainHttp => &stats.tls_fail_plain_http,
        HandshakeFailure::PeerAlert => &stats.tls_fail_peer_alert,
        HandshakeFailure::Incompatible => &stats.tls_fail_incompatible,
        HandshakeFailure::Protocol => &stats.tls_fail_protocol,
        HandshakeFailure::Io => &stats.tls_fail_io,
    };
    c.inc();
}
