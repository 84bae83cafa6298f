//! Keeping idle streams alive and finding dead ones: the SSE keep-alive
//! comment and the WebSocket ping, one task each per worker, over the
//! worker's subscribers.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::hub::local::HubLocal;
use crate::hub::subscriber::{Closing, Format};
use crate::proto::ws::frame::{encode_frame, OpCode};

/// Every `sse.keepalive`: a comment to every SSE stream idle since the last tick.
pub async fn sse_keepalive(hub: Rc<HubLocal>, every: Duration) {
    let comment = Bytes::from_static(b": keepalive\n\n");
    loop {
        monoio::time::sleep(every).await;
        for s in hub.subscribers() {
            if s.format == Format::Sse && s.idle_since_last_tick() && !s.has_queued() {
                s.push(comment.clone());
            }
        }
    }
}

/// Every `ws.ping_interval`: a ping to every WebSocket that has no ping
/// outstanding; one that does not answer within `ws.pong_timeout` is cut.
pub async fn ws_pings(hub: Rc<HubLocal>, every: Duration, pong_timeout: Duration) {
    let mut ping = BytesMut::new();
    encode_frame(OpCode::Ping, b"ringcast", &mut ping);
    let ping = ping.freeze();
    loop {
        monoio::time::sleep(every).await;
        let now = Instant::now();
        for s in hub.subscribers() {
            if matches!(s.format, Format::Ws { .. })
                && s.closing() == Closing::Open
                && !s.awaiting_pong.get()
                && s.cork(|out| out.extend_from_slice(&ping))
            {
                s.awaiting_pong.set(true);
                s.signal.set_deadline(Some(now + pong_timeout));
            }
        }
    }
}
