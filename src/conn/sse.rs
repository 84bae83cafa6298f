//! One SSE subscriber connection, after its request was accepted: write the
//! response head and `retry:`, join the rooms (replaying what a resuming
//! client missed), then write whatever the hub queues, one vectored write per
//! wake-up, until the client leaves, falls too far behind, or the server
//! drains (a last `retry:` hint, then close).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};

use crate::conn::worker::ConnGuard;
use crate::hub::subscriber::{Closing, Subscriber};
use crate::hub::{ConnId, Message, Subscription};
use crate::io::clock::clock_ms;
use crate::io::transport::{ParkedTransport, Transport};
use crate::proto::sse::encode;

/// A new stream, as the embedding application's on-connect hook sees it.
#[derive(Debug, Clone)]
pub struct SseConnect<'a> {
    /// The connection, for [`crate::Hub::join`] / [`crate::Hub::leave`].
    pub id: ConnId,
    /// What the client asked for: its rooms and resume positions.
    pub request: &'a Subscription,
}

/// What the embedding application may send first on every new stream.
pub type OnConnect = dyn Fn(&SseConnect<'_>) -> Vec<Message> + Send + Sync;

/// The response head of every stream.
pub const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: ringcast\r\n\
Content-Type: text/event-stream; charset=utf-8\r\n\
Cache-Control: no-cache\r\n\
Connection: keep-alive\r\n\
X-Accel-Buffering: no\r\n\r\n";

enum Wake {
    Readable,
    Kicked,
}

/// Runs the stream until it ends. `out` may hold earlier pipelined responses.
pub fn serve(
    stream: Transport,
    guard: ConnGuard,
    req: Subscription,
    out: BytesMut,
) -> impl Future<Output = ()> {
    // Opening is boxed and the arguments go straight into it: the request
    // and the room joins are not reserved in the future for the stream's
    // whole life.
    let opening = Box::pin(open(stream, guard, req, out));
    async move {
        let Some((stream, guard, sub)) = opening.await else {
            return;
        };
        drive(stream, guard, sub).await;
    }
}

/// Runs the stream until it ends or parks (quiet for
/// [`PARK_AFTER`](crate::io::signal::PARK_AFTER): the task ends and the
/// worker keeps the stream's state; its first wake-up spawns this again).
async fn drive(stream: Transport, guard: ConnGuard, sub: Rc<Subscriber>) {
    let send_timeout = guard.worker.shared.cfg.http.send_timeout.0;
    match pump(&stream, &sub, &guard, send_timeout).await {
        End::Park => {
            let worker = guard.worker.clone();
            let key = guard.key();
            let parked = stream.park();
            worker.park(
                key,
                Box::new(move || {
                    crate::io::panic::spawn_guarded("sse stream", resume(parked, guard, sub));
                }),
            );
        }
        end => finish(Some(stream), guard, sub, end).await,
    }
}

/// Runs a parked stream again.
async fn resume(parked: ParkedTransport, guard: ConnGuard, sub: Rc<Subscriber>) {
    match parked.resume() {
        Ok(stream) => drive(stream, guard, sub).await,
        Err(e) => {
            log::warn!("sse: resuming a parked stream failed: {e}");
            finish(None, guard, sub, End::Gone).await;
        }
    }
}

/// Sends the head, joins the rooms (`None`: the client is gone).
async fn open(
    stream: Transport,
    guard: ConnGuard,
    req: Subscription,
    mut out: BytesMut,
) -> Option<(Transport, ConnGuard, Rc<Subscriber>)> {
    let worker = guard.worker.clone();
    let cfg = &worker.shared.cfg;
    let hub = worker.hub.clone();
    let stats = worker.stats.clone();
    let send_timeout = cfg.http.send_timeout.0;

    let sub = Rc::new(Subscriber::new(
        &req.rooms,
        req.resume.as_deref(),
        cfg.hub.max_queued_bytes.get(),
        guard.signal.clone(),
        hub.next_generation(),
    ));
    hub.add_subscriber(&sub);
    stats.sse_open.inc();

    out.extend_from_slice(HEAD);
    encode::retry(&mut out, cfg.sse.retry_ms);
    if let Some(hook) = &worker.shared.sse_on_connect {
        let info = SseConnect {
            id: ConnId {
                worker: worker.id,
                key: sub.key(),
                generation: sub.generation,
            },
            request: &req,
        };
        for m in hook(&info) {
            // a message that would break the stream (an event name with a
            // line break) is left out, never written
            match m.check() {
                Ok(()) => encode::event(&mut out, None, m.event.as_deref(), &m.data),
                Err(e) => {
                    stats.hub_rejects.inc();
                    log::warn!("on_sse_connect message left out: {e}");
                }
            }
        }
    }
    if Box::pin(stream.write_all(&out, send_timeout))
        .await
        .is_err()
    {
        hub.remove_subscriber(&sub);
        stats.sse_open.sub(1);
        return None;
    }
    guard.wrote(out.len());
    drop(out);
    for i in 0..req.rooms.len() {
        let since = req.resume.as_ref().map(|c| c[i]);
        if Box::pin(hub.join(&sub, i, since)).await.is_err() {
            break;
        }
    }
    Some((stream, guard, sub))
}

/// After the stream ended: its goodbye, leaving the rooms, the log line.
/// Ends a stream (`stream` is `None` when its socket is already closed).
async fn finish(stream: Option<Transport>, guard: ConnGuard, sub: Rc<Subscriber>, end: End) {
    let worker = &guard.worker;
    let stats = &worker.stats;
    match end {
        End::SlowConsumer => stats.slow_consumer_drops.inc(),
        End::Draining => {
            let mut last = BytesMut::new();
            encode::retry(&mut last, worker.shared.cfg.sse.retry_ms);
            if let Some(stream) = &stream {
                let _ = stream.send(&last);
            }
        }
        End::Timeout => stats.timeouts.inc(),
        End::Gone | End::Refused | End::Park => {}
    }
    worker.hub.remove_subscriber(&sub);
    stats.sse_open.sub(1);
    guard.log_stream_close("sse", end.name());
    if let Some(stream) = stream {
        if matches!(end, End::Draining | End::SlowConsumer | End::Refused) {
            Box::pin(stream.linger_close(std::time::Duration::from_millis(500))).await;
        }
    }
}

/// Why a stream ended (or paused).
enum End {
    /// Quiet: park (see [`drive`]).
    Park,
    /// The client closed or the socket failed.
    Gone,
    SlowConsumer,
    Refused,
    Draining,
    Timeout,
}

impl End {
    fn name(&self) -> &'static str {
        match self {
            End::Gone | End::Park => "client",
            End::SlowConsumer => "slow_consumer",
            End::Refused => "refused",
            End::Draining => "drain",
            End::Timeout => "timeout",
        }
    }
}

/// Writes what the hub queues until the stream ends.
async fn pump(
    stream: &Transport,
    sub: &Rc<Subscriber>,
    guard: &ConnGuard,
    send_timeout: std::time::Duration,
) -> End {
    let worker = &guard.worker;
    let mut pending: VecDeque<Bytes> = VecDeque::new();
    let mut last_write = clock_ms();
    loop {
        // Write everything queued so far (one vectored write per wake-up).
        match sub.closing() {
            Closing::Open | Closing::Sealed => {}
            Closing::SlowConsumer => return End::SlowConsumer,
            Closing::Refused => return End::Refused,
        }
        sub.take_queue(&mut pending);
        while !pending.is_empty() {
            match stream.send_queue(&mut pending) {
                Ok(n) => {
                    sub.written(n);
                    guard.wrote(n);
                    last_write = clock_ms();
                    if sub.replaying() {
                        // room in the queue again: the next of the history
                        worker.hub.pace_replay(sub);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let wait = stream.wait_writable_or(send_timeout, &sub.signal, || sub.dropped());
                    let writable = match Box::pin(wait).await {
                        Ok(w) => w,
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => return End::Timeout,
                        Err(_) => return End::Gone,
                    };
                    if !writable || sub.closing() != Closing::Open {
                        break;
                    }
                    // Writable again: take a turn with the other subscribers
                    // (in chunks), gathering what else arrives meanwhile.
                    worker.hub.wait_turn(sub).await;
                    sub.take_queue(&mut pending);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return End::Timeout,
                Err(_) => return End::Gone,
            }
        }
        if worker.closing_streams() && !sub.has_queued() {
            return End::Draining;
        }
        if sub.has_queued() {
            continue;
        }
        if sub.signal.due_to_park(last_write) {
            sub.release_idle();
            return End::Park;
        }
        let wake = std::future::poll_fn(|cx| {
            if Pin::new(&mut sub.signal.readable()).poll(cx).is_ready() {
                return Poll::Ready(Wake::Readable);
            }
            if Pin::new(&mut sub.signal.kicked()).poll(cx).is_ready() {
                return Poll::Ready(Wake::Kicked);
            }
            Poll::Pending
        })
        .await;
        if let Wake::Readable = wake {
            // A stream client has nothing to say: end of stream means it left.
            let mut scratch = BytesMut::new();
            match stream.recv_into(&mut scratch, 512) {
                Ok(0) => return End::Gone,
                Ok(n) => guard.read_done(n, 512, stream.input_ended()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => sub.signal.drained(),
                // TCP_USER_TIMEOUT (http.send_timeout) ran out.
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return End::Timeout,
                Err(_) => return End::Gone,
            }
        }
    }
}
