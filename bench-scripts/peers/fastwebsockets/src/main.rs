//! ringcast benchmark peer: tokio + hyper 1 + fastwebsockets.
//!
//! hyper serves HTTP/1.1 (health check, SSE, publish: see `peer-common`);
//! `/echo` and `/ws` are upgraded with `fastwebsockets::upgrade`, as in
//! fastwebsockets' own examples (library defaults: vectored writes for
//! large frames, automatic pong and close replies; handlers run
//! `tokio::task::unconstrained`).
//!
//! `/echo` is fastwebsockets' echo server: a `FragmentCollector`, one write
//! per frame. `/ws` splits the socket: a reader (pings, close) and a writer
//! that drains the room's queue into a small buffer and flushes once per
//! batch.

use std::sync::Arc;

use fastwebsockets::{upgrade, FragmentCollector, Frame, OpCode, Payload, WebSocketError};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use peer_common::http::{room_param, status};
use peer_common::rooms::{note_lag, Shared};
use peer_common::{http, server, Args, Body, Rooms};
use tokio::io::BufWriter;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::mpsc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Write buffer of a `/ws` subscriber: batches the frames of one wake-up.
const SUBSCRIBER_WRITE_BUFFER: usize = 4096;

fn main() {
    let args = Args::from_env("fastwebsockets-peer");
    server::run(args, route)
}

async fn route(mut req: Request<Incoming>, rooms: Arc<Rooms>) -> Response<Body> {
    match req.uri().path() {
        "/echo" => match accept(&mut req) {
            Ok((res, fut)) => {
                tokio::spawn(tokio::task::unconstrained(async move {
                    let _ = echo(fut).await;
                }));
                res
            }
            Err(res) => res,
        },
        "/ws" => {
            let Some(room) = room_param(req.uri().query()) else {
                return status(StatusCode::BAD_REQUEST, "missing ?room=NAME\n");
            };
            match accept(&mut req) {
                Ok((res, fut)) => {
                    // Subscribed before the 101 goes out: nothing published
                    // after the handshake is missed.
                    let rx = rooms.subscribe(&room);
                    tokio::spawn(tokio::task::unconstrained(async move {
                        let _ = subscriber(fut, rx).await;
                    }));
                    res
                }
                Err(res) => res,
            }
        }
        _ => http::handle(req, &rooms).await,
    }
}

/// The `101 Switching Protocols` answer and the future of the upgraded
/// connection, or the error answer.
#[allow(clippy::result_large_err)] // both sides carry a response
fn accept(
    req: &mut Request<Incoming>,
) -> Result<(Response<Body>, upgrade::UpgradeFut), Response<Body>> {
    if !upgrade::is_upgrade_request(req) {
        return Err(status(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket upgrade required\n",
        ));
    }
    match upgrade::upgrade(req) {
        Ok((res, fut)) => Ok((res.map(|_| Body::empty()), fut)),
        Err(_) => Err(status(StatusCode::BAD_REQUEST, "bad WebSocket handshake\n")),
    }
}

/// `/echo`: every text or binary message goes back as it came.
async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

/// `/ws?room=NAME`: each message of the room as one text frame.
async fn subscriber(
    fut: upgrade::UpgradeFut,
    mut rx: broadcast::Receiver<Shared>,
) -> Result<(), WebSocketError> {
    let ws = fut.await?;
    let (mut rd, mut wr) = ws.split(|io| {
        let (r, w) = tokio::io::split(io);
        (r, BufWriter::with_capacity(SUBSCRIBER_WRITE_BUFFER, w))
    });
    // Replies the reader owes (pong, close) go to the writer, which owns the
    // write half.
    let (owed_tx, mut owed_rx) = mpsc::channel::<Frame<'static>>(4);

    let reader = async {
        loop {
            let mut owe = |frame: Frame<'_>| {
                let owned = Frame::new(
                    true,
                    frame.opcode,
                    None,
                    Payload::Owned(frame.payload.to_vec()),
                );
                let tx = owed_tx.clone();
                async move { tx.send(owned).await }
            };
            match rd.read_frame(&mut owe).await {
                Ok(frame) if frame.opcode == OpCode::Close => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    };

    let writer = async {
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(event) => {
                        wr.write_frame(Frame::text(Payload::Borrowed(&event.text))).await?;
                        // Everything already queued leaves in one flush.
                        loop {
                            match rx.try_recv() {
                                Ok(event) => wr.write_frame(Frame::text(Payload::Borrowed(&event.text))).await?,
                                Err(TryRecvError::Lagged(missed)) => note_lag(missed),
                                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                            }
                        }
                        wr.flush().await?;
                    }
                    Err(RecvError::Lagged(missed)) => note_lag(missed),
                    Err(RecvError::Closed) => return Ok::<(), WebSocketError>(()),
                },
                Some(frame) = owed_rx.recv() => {
                    wr.write_frame(frame).await?;
                    wr.flush().await?;
                }
            }
        }
    };

    tokio::select! {
        _ = reader => {}
        r = writer => r?,
    }
    // The client closed: send the close reply the reader queued, if any.
    if let Ok(frame) = owed_rx.try_recv() {
        wr.write_frame(frame).await?;
        wr.flush().await?;
    }
    Ok(())
}
