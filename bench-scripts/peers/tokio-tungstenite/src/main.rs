//! ringcast benchmark peer: tokio + hyper 1 + tokio-tungstenite.
//!
//! hyper serves HTTP/1.1 (health check, SSE, publish: see `peer-common`);
//! `/echo` and `/ws` are upgraded by hyper, the socket is taken back out of
//! hyper (`Upgraded::downcast`, so no dynamic-dispatch wrapper stays in the
//! data path) and handed to `tokio_tungstenite::WebSocketStream`.
//!
//! Writes are batched the way tokio-tungstenite's own `StreamExt::forward`
//! batches them: frames are fed into the write buffer while more input is
//! ready, then flushed once.
//!
//! With `--tls-listen` the same endpoints are served over TLS (tokio-rustls,
//! see `peer_common::tls`): an upgraded TLS connection downcasts to the
//! tokio-rustls stream, and the same session code runs over it (generic over
//! the stream; the plain path is the TCP instance of it).

use std::sync::Arc;

use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use peer_common::http::{room_param, status};
use peer_common::rooms::{note_lag, Shared};
use peer_common::tls::TlsStream;
use peer_common::{http, server, Args, Body, Rooms};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::from_env("tokio-tungstenite-peer");
    server::run(args, route)
}

async fn route(mut req: Request<Incoming>, rooms: Arc<Rooms>) -> Response<Body> {
    match req.uri().path() {
        "/echo" => upgrade(&mut req, Session::Echo),
        "/ws" => {
            let Some(room) = room_param(req.uri().query()) else {
                return status(StatusCode::BAD_REQUEST, "missing ?room=NAME\n");
            };
            if let Some(res) = handshake_error(&req) {
                return res;
            }
            // Subscribed before the 101 goes out: nothing published after
            // the handshake is missed.
            let rx = rooms.subscribe(&room);
            upgrade(&mut req, Session::Subscriber(rx))
        }
        _ => http::handle(req, &rooms).await,
    }
}

/// The checks of RFC 6455 section 4.2.1 that matter to a server: the error
/// answer if the request is not a valid WebSocket handshake.
fn handshake_error(req: &Request<Incoming>) -> Option<Response<Body>> {
    let h = req.headers();
    let has_token = |name, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    if req.method() != Method::GET
        || !has_token(UPGRADE, "websocket")
        || !has_token(CONNECTION, "upgrade")
    {
        return Some(status(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket upgrade required\n",
        ));
    }
    if h.get(SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13")
        || h.get(SEC_WEBSOCKET_KEY).is_none()
    {
        return Some(status(StatusCode::BAD_REQUEST, "bad WebSocket handshake\n"));
    }
    None
}

/// What an upgraded connection does.
enum Session {
    /// `/echo`.
    Echo,
    /// `/ws?room=NAME`, subscribed before the 101.
    Subscriber(broadcast::Receiver<Shared>),
}

impl Session {
    /// Runs the session over an upgraded connection: its stream (TCP or
    /// TLS) and the bytes hyper had read past the request.
    async fn serve<S>(self, io: S, read_buf: &[u8])
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let ws =
            WebSocketStream::from_partially_read(io, read_buf.to_vec(), Role::Server, None).await;
        let _ = self.run(ws).await;
    }

    async fn run<S>(
        self,
        ws: WebSocketStream<S>,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match self {
            Session::Echo => echo(ws).await,
            Session::Subscriber(rx) => subscriber(ws, rx).await,
        }
    }
}

/// Answers `101 Switching Protocols` and runs `session` on the upgraded
/// connection in its own task.
fn upgrade(req: &mut Request<Incoming>, session: Session) -> Response<Body> {
    if let Some(res) = handshake_error(req) {
        return res;
    }
    let accept = derive_accept_key(req.headers()[SEC_WEBSOCKET_KEY].as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // The connection's I/O is a `TokioIo<TcpStream>` from the plain
        // listener, or a `TokioIo<TlsStream>` from the TLS listener (see
        // peer_common::server).
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => session.serve(parts.io.into_inner(), &parts.read_buf).await,
            Err(upgraded) => {
                if let Ok(parts) = upgraded.downcast::<TokioIo<TlsStream>>() {
                    session.serve(parts.io.into_inner(), &parts.read_buf).await
                }
            }
        }
    });
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    res
}

/// `/echo`: every text or binary message goes back as it came. Pings are
/// answered and the close handshake completed by tungstenite itself (on the
/// flush that follows).
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    while let Some(msg) = ws.next().await {
        feed_echo(&mut ws, msg?).await?;
        // Whatever else has already arrived is echoed before one flush.
        while let Some(Some(msg)) = ws.next().now_or_never() {
            feed_echo(&mut ws, msg?).await?;
        }
        ws.flush().await?;
    }
    Ok(())
}

async fn feed_echo<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    msg: Message,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    if msg.is_text() || msg.is_binary() {
        ws.feed(msg).await?;
    }
    Ok(())
}

fn text(event: &Shared) -> Message {
    // SAFETY: `Event::text` is checked to be UTF-8 when published.
    Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(event.text.clone()) })
}

/// `/ws?room=NAME`: each message of the room as one text frame. Incoming
/// frames are read only to answer pings and notice the close.
async fn subscriber<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    mut rx: broadcast::Receiver<Shared>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(event) => {
                    ws.feed(text(&event)).await?;
                    // Everything already queued leaves in one flush.
                    loop {
                        match rx.try_recv() {
                            Ok(event) => ws.feed(text(&event)).await?,
                            Err(TryRecvError::Lagged(missed)) => note_lag(missed),
                            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                        }
                    }
                    ws.flush().await?;
                }
                Err(RecvError::Lagged(missed)) => note_lag(missed),
                Err(RecvError::Closed) => return Ok(()),
            },
            msg = ws.next() => match msg {
                None | Some(Err(_)) => return Ok(()),
                // Sends the close reply tungstenite has queued.
                Some(Ok(Message::Close(_))) => return ws.flush().await,
                // Sends the pong to a ping.
                Some(Ok(_)) => ws.flush().await?,
            },
        }
    }
}
