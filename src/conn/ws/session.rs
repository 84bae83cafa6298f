//! One WebSocket connection after its 101: read into a pooled buffer, decode
//! every frame it holds, act on each (hand messages to the handler, publish
//! client messages, answer pings, run the close handshake), then write
//! everything produced (echoes, pongs, room frames, close) in one vectored
//! write per wake-up.
//!
//! Closing: a close from the client is echoed and the TCP connection closed
//! by us; a close we start (handler, drain with 1001, a limit, a protocol
//! error) waits at most `ws.close_timeout` for the client's answer; a client
//! that does not answer a ping within `ws.pong_timeout` is cut.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::handler::{HandlerSide, Shared, WsConn, WsMessage};
use super::publish;
use super::{WsKind, WsUpgrade};
use crate::config::Envelope;
use crate::conn::worker::{ConnGuard, Worker};
use crate::hub::subscriber::{Closing, Format, Subscriber};
use crate::hub::{ConnId, RoomName};
use crate::io::clock::clock_ms;
use crate::io::panic::CatchPanic;
use crate::io::signal::PARK_AFTER_MS;
use crate::io::transport::{ParkedTransport, Transport};
use crate::proto::ws::close;
use crate::proto::ws::codec::{Decoder, DecoderConfig, Encoder, Event};
use crate::proto::ws::deflate::DeflateParams;

/// Where the close handshake is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseState {
    Open,
    /// We sent a close frame and wait for the client's.
    Sent,
    /// Both sides are done: write what is left and close the TCP connection.
    Done,
}

/// A token bucket for client messages (compact: one per connection).
struct Rate {
    per_ms: f32,
    burst: f32,
    tokens: f32,
    /// [`clock_ms`] of the last take.
    last_ms: u32,
}

impl Rate {
    fn new(per_sec: u32, burst: u32) -> Option<Rate> {
        (per_sec > 0).then(|| Rate {
            per_ms: per_sec as f32 / 1000.0,
            burst: burst.max(1) as f32,
            tokens: burst.max(1) as f32,
            last_ms: clock_ms(),
        })
    }

    /// Takes one token; false when the client is over its rate.
    fn take(&mut self) -> bool {
        let now = clock_ms();
        let refill = now.wrapping_sub(self.last_ms) as f32 * self.per_ms;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last_ms = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

enum Wake {
    Readable,
    Kicked,
}

struct Session {
    io: Transport,
    guard: ConnGuard,
    shared: Rc<Shared>,
    decoder: Decoder,
    inbuf: Option<BytesMut>,
    state: CloseState,
    rate: Option<Rate>,
    /// Boxed: only a room subscriber that may publish has one.
    rooms_role: Option<Box<RoomsRole>>,
    /// The handler's future, polled by this task (no task of its own: a
    /// message reaches it and its answer leaves without a task switch).
    handler: Option<CatchPanic<Pin<Box<dyn Future<Output = ()>>>>>,
    /// The handler's inbox is full: stop reading until it takes messages.
    paused: bool,
    /// When it last wrote, in [`clock_ms`] (a session quiet for
    /// [`PARK_AFTER`](crate::io::signal::PARK_AFTER) parks).
    last_write: u32,
    pending: VecDeque<Bytes>,
}

/// What a room subscriber connection that may publish (`client_publish`) needs.
struct RoomsRole {
    rooms: Vec<RoomName>,
    auto_join: String,
    template: String,
    /// The rooms the client's token lets it publish to (`None` = any).
    publish_rooms: Option<Vec<RoomName>>,
    /// Client messages to publish once the read is processed.
    to_publish: Vec<(RoomName, Bytes)>,
}

/// Runs a connection whose 101 (and any earlier pipelined responses) is in `out`.
pub fn serve(
    stream: Transport,
    guard: ConnGuard,
    up: WsUpgrade,
    out: BytesMut,
    inbuf: BytesMut,
) -> impl Future<Output = ()> {
    // Opening is boxed and the arguments go straight into it: the upgrade
    // and the room joins are not reserved in the future for the
    // connection's whole life.
    let opening = Box::pin(open(stream, guard, up, out, inbuf));
    async move {
        let Some(s) = opening.await else {
            return;
        };
        drive(s).await;
    }
}

/// Runs the session until it ends or parks. A parked session (a room
/// subscriber with nothing to do) ends its task and waits in the worker's
/// table as a [`Parked`] record; its first wake-up spawns this again.
async fn drive(mut s: Session) {
    match s.run().await {
        Ok(Step::Park) => {
            let worker = s.guard.worker.clone();
            let key = s.guard.key();
            let parked = s.into_parked();
            worker.park(
                key,
                Box::new(move || {
                    crate::io::panic::spawn_guarded("websocket session", resume(parked));
                }),
            );
        }
        Ok(Step::Closed) => s.finish(Ok(())),
        Err(e) => s.finish(Err(e)),
    }
}

/// Runs a parked session again.
async fn resume(p: Parked) {
    if let Some(s) = p.into_session() {
        drive(s).await;
    }
}

/// What a parked session keeps: the socket as its bare descriptor, and only
/// the state a new session could not make again (the decoder only while it
/// holds a message or the client's inflate context; the read buffer, the
/// shared state and the runtime's socket record are made again on resume).
///
/// Two records of at most 64 bytes each: allocations of that size class are
/// the ones a connection frees as it parks (the runtime's socket record), so
/// parked connections fill those places instead of taking new pages.
struct Parked {
    io: ParkedTransport,
    guard: ConnGuard,
    rest: Box<ParkedRest>,
}

struct ParkedRest {
    sub: Rc<Subscriber>,
    encoder: Encoder,
    decoder: Option<Box<Decoder>>,
    rate: Option<Rate>,
    rooms_role: Option<Box<RoomsRole>>,
}

impl Parked {
    /// The session again (`None`: the socket could not be handed back to
    /// the runtime, and the connection has ended).
    fn into_session(self) -> Option<Session> {
        let worker = self.guard.worker.clone();
        let rest = *self.rest;
        let deflate = rest.encoder.params();
        let io = match self.io.resume() {
            Ok(io) => io,
            Err(e) => {
                log::warn!("websocket: resuming a parked connection failed: {e}");
                log_end(&self.guard, Err(e));
                leave(&worker, &rest.sub);
                return None;
            }
        };
        let s = Session {
            io,
            shared: Rc::new(Shared {
                sub: rest.sub,
                worker: worker.clone(),
                encoder: RefCell::new(rest.encoder),
                ended: Cell::new(false),
                h: None,
            }),
            guard: self.guard,
            decoder: match rest.decoder {
                Some(d) => *d,
                None => Decoder::new(decoder_config(&worker, deflate)),
            },
            inbuf: None,
            state: CloseState::Open,
            rate: rest.rate,
            rooms_role: rest.rooms_role,
            handler: None,
            paused: false,
            // as quiet as when it parked: with nothing to write it parks again
            last_write: clock_ms().wrapping_sub(PARK_AFTER_MS),
            pending: VecDeque::new(),
        };
        Some(s)
    }
}

/// The access-log line of an ended session (`Ok`: closed by the protocol).
fn log_end(guard: &ConnGuard, end: io::Result<()>) {
    let end_name = match end {
        Ok(()) => "closed",
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            guard.worker.stats.timeouts.inc();
            "timeout"
        }
        Err(_) => "client",
    };
    guard.log_stream_close("ws", end_name);
}

/// An ended session leaves its rooms and the open count.
fn leave(worker: &Worker, sub: &Rc<Subscriber>) {
    worker.hub.remove_subscriber(sub);
    worker.stats.ws_open.sub(1);
}

/// The decoder settings of a connection on this worker.
fn decoder_config(worker: &Worker, deflate: Option<DeflateParams>) -> DecoderConfig {
    let cfg = &worker.shared.cfg;
    DecoderConfig {
        max_frame_size: cfg.ws.max_frame_size.get(),
        max_message_size: cfg.ws.max_message_size.get(),
        deflate,
    }
}

/// How [`Session::run`] returned.
enum Step {
    Closed,
    /// Nothing to do: park (see [`drive`]).
    Park,
}

/// Sends the 101, joins the rooms and builds the session (`None`: the client is gone).
async fn open(
    stream: Transport,
    guard: ConnGuard,
    up: WsUpgrade,
    out: BytesMut,
    inbuf: BytesMut,
) -> Option<Session> {
    let worker = guard.worker.clone();
    let cfg = &worker.shared.cfg;
    let hub = worker.hub.clone();
    // Cold paths are boxed so their state is not reserved in every connection's future.
    if Box::pin(stream.write_all(&out, cfg.http.send_timeout.0))
        .await
        .is_err()
    {
        worker.pool.give(inbuf);
        return None;
    }
    guard.wrote(out.len());
    drop(out);

    let (rooms, resume) = match &up.kind {
        WsKind::Rooms(req, _) => (req.rooms.clone(), req.resume.clone()),
        WsKind::Handler(..) => (Vec::new(), None),
    };
    // One compressed room frame serves every subscriber that agreed to
    // server_no_context_takeover with a full window; others get plain frames.
    let room_deflate = up
        .deflate
        .is_some_and(|p| p.server_no_context_takeover && p.server_max_window_bits == 15);
    let envelope = match up.kind {
        WsKind::Rooms(_, ref mode) => mode.envelope,
        WsKind::Handler(..) => Envelope::Raw,
    };
    // What a connection may have waiting to be written: the subscriber limit,
    // plus room for the answers to what it already accepted (its inbox holds
    // up to hub.max_queued_bytes and one message more before reading pauses).
    let max_queued = cfg.hub.max_queued_bytes.get() + 2 * cfg.ws.max_message_size.get();
    let sub = Rc::new(
        Subscriber::new(
            &rooms,
            resume.as_deref(),
            max_queued,
            guard.signal.clone(),
            hub.next_generation(),
        )
        .with_format(Format::Ws {
            envelope,
            deflate: room_deflate,
        }),
    );
    hub.add_subscriber(&sub);
    worker.stats.ws_open.inc();
    let id = ConnId {
        worker: worker.id,
        key: sub.key(),
        generation: sub.generation,
    };
    let has_handler = matches!(up.kind, WsKind::Handler(..));
    let shared = Rc::new(Shared {
        sub: sub.clone(),
        worker: worker.clone(),
        encoder: RefCell::new(Encoder::new(up.deflate)),
        ended: Cell::new(false),
        h: has_handler.then(|| {
            Box::new(HandlerSide {
                inbox: RefCell::new(VecDeque::new()),
                inbox_bytes: Cell::new(0),
                reading_paused: Cell::new(false),
                handler_waker: Cell::new(None),
                close_request: RefCell::new(None),
                deferred_close: Cell::new(None),
                tag: RefCell::new(String::new()),
                id,
                path: up.path.clone(),
                query: up.query.clone(),
                protocol: up.protocol.clone(),
                grant: match &up.kind {
                    WsKind::Handler(_, grant) => grant.clone(),
                    WsKind::Rooms(..) => crate::auth::Grant::All,
                },
            })
        }),
    });
    for i in 0..rooms.len() {
        let since = resume.as_ref().map(|c| c[i]);
        if Box::pin(hub.join(&sub, i, since)).await.is_err() {
            break;
        }
    }
    let handler = match &up.kind {
        WsKind::Handler(h, _) => Some(CatchPanic::new(
            "websocket handler",
            h(WsConn {
                shared: shared.clone(),
            }),
        )),
        _ => None,
    };
    // Only a client that may publish needs its rooms' publishing rules.
    let rooms_role = match up.kind {
        WsKind::Rooms(_, mode) if mode.client_publish => Some(Box::new(RoomsRole {
            rooms,
            auto_join: cfg.hub.auto_join_room.clone(),
            template: mode.template,
            publish_rooms: up.publish_rooms.clone(),
            to_publish: Vec::new(),
        })),
        _ => None,
    };
    let s = Session {
        io: stream,
        guard,
        shared: shared.clone(),
        decoder: Decoder::new(decoder_config(&worker, up.deflate)),
        inbuf: if inbuf.is_empty() {
            worker.pool.give(inbuf);
            None
        } else {
            Some(inbuf)
        },
        state: CloseState::Open,
        rate: Rate::new(up.rate.0, up.rate.1),
        rooms_role,
        handler,
        paused: false,
        last_write: clock_ms(),
        pending: VecDeque::new(),
    };
    Some(s)
}

impl Session {
    /// After the connection ended: logs it, lets a running handler finish
    /// on its own and leaves the rooms.
    fn finish(mut self, end: io::Result<()>) {
        let worker = self.guard.worker.clone();
        log_end(&self.guard, end);
        if let Some(b) = self.inbuf.take() {
            worker.pool.give(b);
        }
        self.shared.ended.set(true);
        self.shared.wake_handler();
        // A handler still running (its recv() now returns None) finishes on its own.
        if let Some(h) = self.handler.take() {
            monoio::spawn(async move {
                h.await;
            });
        }
        leave(&worker, &self.shared.sub);
    }

    fn sub(&self) -> &Rc<Subscriber> {
        &self.shared.sub
    }

    /// The parked record of a session that is [`parkable`](Self::parkable).
    fn into_parked(self) -> Parked {
        let Ok(shared) = Rc::try_unwrap(self.shared) else {
            unreachable!("a parkable session holds the only reference to its shared state")
        };
        shared.sub.release_idle();
        Parked {
            io: self.io.park(),
            guard: self.guard,
            rest: Box::new(ParkedRest {
                sub: shared.sub,
                encoder: shared.encoder.into_inner(),
                decoder: (!self.decoder.is_fresh()).then(|| Box::new(self.decoder)),
                rate: self.rate,
                rooms_role: self.rooms_role,
            }),
        }
    }

    fn has_handler(&self) -> bool {
        self.shared.h.is_some()
    }

    /// Nothing is in flight but the wait itself: no handler (its wakers
    /// would be this task's), no unread bytes, nothing to write, no close
    /// under way. Such a session can park.
    fn parkable(&self) -> bool {
        !self.has_handler()
            && self.handler.is_none()
            && Rc::strong_count(&self.shared) == 1
            && Rc::weak_count(&self.shared) == 0
            && !self.paused
            && self.inbuf.is_none()
            && self.pending.is_empty()
            && self.state == CloseState::Open
            && !self.sub().has_queued()
    }

    /// A handler's inbox pauses reading past this many bytes.
    fn inbox_limit(&self) -> usize {
        self.guard.worker.shared.cfg.hub.max_queued_bytes.get()
    }

    /// A close waiting for the handler to take its messages.
    fn deferred_close(&self) -> Option<(u16, &'static str)> {
        self.shared.h.as_ref().and_then(|h| h.deferred_close.get())
    }

    /// Polls the handler once with this task's context. A handler that
    /// panicked closes its connection with 1011; one that returned is done.
    fn poll_handler(&mut self, cx: &mut std::task::Context<'_>) {
        let Some(h) = self.handler.as_mut() else {
            return;
        };
        if let Poll::Ready(completed) = Pin::new(h).poll(cx) {
            self.handler = None;
            if !completed {
                *self.shared.handler_side().close_request.borrow_mut() =
                    Some((close::INTERNAL_ERROR, "internal error".into()));
                self.shared.sub.signal.kick();
            }
        }
    }

    /// Queues a close frame, then refuses anything more.
    fn start_close(&mut self, code: u16, reason: &str) {
        if self.state != CloseState::Open {
            return;
        }
        let enc = self.shared.encoder.borrow();
        self.shared
            .sub
            .cork(|out| enc.close(Some(code), reason, out));
        drop(enc);
        self.sub().seal();
        self.state = CloseState::Sent;
        let timeout = self.guard.worker.shared.cfg.ws.close_timeout.0;
        self.guard
            .signal
            .set_deadline(Some(Instant::now() + timeout));
        // the handler sees no more messages
        self.shared.ended.set(true);
        self.shared.wake_handler();
    }

    async fn run(&mut self) -> io::Result<Step> {
        loop {
            if !self.paused {
                if let Some(mut buf) = self.inbuf.take() {
                    // Kicks until the handler has run come from this task itself
                    // (its answers being corked): they need no second pass.
                    let kicked_before = self.guard.signal.is_kicked();
                    self.guard.signal.running();
                    self.process(&mut buf);
                    if self.handler.is_some() {
                        std::future::poll_fn(|cx| {
                            self.poll_handler(cx);
                            // a recv() waiting in another task (on a clone of
                            // the connection) is woken; this task needs no wake
                            let hs = self.shared.handler_side();
                            if let Some(w) = hs.handler_waker.take() {
                                if w.will_wake(cx.waker()) {
                                    hs.handler_waker.set(Some(w));
                                } else {
                                    w.wake();
                                }
                            }
                            Poll::Ready(())
                        })
                        .await;
                    }
                    if !kicked_before {
                        self.guard.signal.unkick();
                    }
                    if self
                        .rooms_role
                        .as_ref()
                        .is_some_and(|r| !r.to_publish.is_empty())
                    {
                        Box::pin(self.publish_collected()).await;
                    }
                    if buf.is_empty() {
                        self.guard.worker.pool.give(buf);
                    } else {
                        self.inbuf = Some(buf);
                    }
                }
            } else if self.shared.handler_side().inbox_bytes.get() < self.inbox_limit() / 2 {
                self.paused = false;
                self.shared.handler_side().reading_paused.set(false);
                continue;
            }
            if let Some(end) = self.close_if_asked() {
                return end.map(|()| Step::Closed);
            }
            self.flush().await?;
            if self.state == CloseState::Done {
                Box::pin(self.io.linger_close(Duration::from_millis(500))).await;
                return Ok(Step::Closed);
            }
            // Bytes left in `inbuf` are an incomplete frame: wait for the rest.
            if self.sub().has_queued() {
                continue;
            }
            // The handler (polled by this task) may have emptied its inbox.
            if self.paused && self.shared.handler_side().inbox_bytes.get() < self.inbox_limit() / 2
            {
                self.paused = false;
                self.shared.handler_side().reading_paused.set(false);
                continue;
            }
            let signal = self.guard.signal.clone();
            // A session quiet for PARK_AFTER parks; a busier one keeps its
            // task (parking and resuming at every write would cost more than
            // it saves). While a pong is awaited its deadline stays.
            if self.parkable()
                && !self.sub().awaiting_pong.get()
                && signal.due_to_park(self.last_write)
            {
                return Ok(Step::Park);
            }
            let paused = self.paused;
            let wake = std::future::poll_fn(|cx| {
                // whatever woke this task may have been for the handler
                self.poll_handler(cx);
                if !paused && Pin::new(&mut signal.readable()).poll(cx).is_ready() {
                    return Poll::Ready(Wake::Readable);
                }
                if Pin::new(&mut signal.kicked()).poll(cx).is_ready() {
                    return Poll::Ready(Wake::Kicked);
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Kicked => {
                    // A deadline with neither a ping nor our close
                    // outstanding is the one set for parking (above).
                    let timeout = self.state != CloseState::Open || self.sub().awaiting_pong.get();
                    if signal.take_expired() && timeout {
                        // no pong in time, or no answer to our close
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "websocket timeout"));
                    }
                }
                Wake::Readable => {
                    if let Some(end) = self.read_some() {
                        return end.map(|()| Step::Closed);
                    }
                }
            }
        }
    }

    /// Reads what the socket has into `inbuf` (`Some`: the connection ended).
    fn read_some(&mut self) -> Option<io::Result<()>> {
        let mut buf = self
            .inbuf
            .take()
            .unwrap_or_else(|| self.guard.worker.pool.take());
        let want = self.guard.worker.pool.size();
        match self.io.recv_into(&mut buf, want) {
            Ok(0) => {
                self.guard.worker.pool.give(buf);
                return Some(Ok(())); // the client went away (1006)
            }
            Ok(n) => {
                self.guard.read_done(n, want, self.io.input_ended());
                self.guard.worker.stats.bytes_in.add(n as u64);
                self.inbuf = Some(buf);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.guard.signal.drained();
                if buf.is_empty() {
                    self.guard.worker.pool.give(buf);
                } else {
                    self.inbuf = Some(buf);
                }
            }
            Err(e) => {
                self.guard.worker.pool.give(buf);
                return Some(Err(e));
            }
        }
        None
    }

    /// Starts the close handshake where one was asked for (the handler, a
    /// deferred rate-limit close, the drain); ends at once a subscriber the
    /// hub dropped (`Some`).
    fn close_if_asked(&mut self) -> Option<io::Result<()>> {
        if let Some((code, reason)) = self.deferred_close() {
            let hs = self.shared.handler_side();
            if hs.inbox.borrow().is_empty() {
                hs.deferred_close.set(None);
                self.start_close(code, reason);
            }
        }
        let request = (self.shared.h.as_ref()).and_then(|h| h.close_request.borrow_mut().take());
        if let Some((code, reason)) = request {
            self.start_close(code, &reason);
        }
        if self.guard.worker.closing_streams() {
            self.start_close(close::GOING_AWAY, "server going away");
        }
        match self.sub().closing() {
            Closing::SlowConsumer => {
                self.guard.worker.stats.slow_consumer_drops.inc();
                let mut out = BytesMut::new();
                self.shared.encoder.borrow().close(
                    Some(close::POLICY_VIOLATION),
                    "too slow",
                    &mut out,
                );
                let _ = self.io.send(&out);
                return Some(Ok(()));
            }
            Closing::Refused => {
                let mut out = BytesMut::new();
                self.shared.encoder.borrow().close(
                    Some(close::TRY_AGAIN_LATER),
                    "room limit reached",
                    &mut out,
                );
                let _ = self.io.send(&out);
                return Some(Ok(()));
            }
            Closing::Open | Closing::Sealed => {}
        }
        None
    }

    /// Publishes what clients sent (client_publish), in order.
    async fn publish_collected(&mut self) {
        let hub = self.guard.worker.hub.clone();
        let Some(role) = self.rooms_role.as_mut() else {
            return;
        };
        for (room, data) in std::mem::take(&mut role.to_publish) {
            if let Err(e) = hub.publish(room, crate::hub::Message::new(data)).await {
                log::debug!("client publish refused: {e}");
                match e {
                    crate::hub::HubError::BadMessage(_)
                    | crate::hub::HubError::BadRoom(_)
                    | crate::hub::HubError::Forbidden(_) => {
                        self.shared.worker.stats.hub_rejects.inc();
                        self.start_close(
                            close::POLICY_VIOLATION,
                            "publish refused: the message breaks the room's rules",
                        );
                    }
                    _ => {
                        self.start_close(close::TRY_AGAIN_LATER, "publish refused, try again later")
                    }
                }
                break;
            }
        }
    }

    /// Writes everything queued, waiting for the socket as needed.
    async fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            match self.shared.sub.send_cork(|b| self.io.send(b)) {
                Some(Ok(n)) => self.wrote(n),
                Some(Err(e)) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
        self.shared.sub.take_queue(&mut self.pending);
        while !self.write_pending()? {
            // (boxed: the wait's state is not reserved in the connection's future)
            let timeout = self.guard.worker.shared.cfg.http.send_timeout.0;
            let sub = &self.shared.sub;
            let wait = self
                .io
                .wait_writable_or(timeout, &sub.signal, || sub.dropped());
            if !Box::pin(wait).await? {
                return Ok(()); // dropped by the hub: the run loop ends it
            }
            self.shared.sub.take_queue(&mut self.pending);
        }
        Ok(())
    }

    /// `n` bytes left for the socket: counted, and the stream is not quiet.
    fn wrote(&mut self, n: usize) {
        self.shared.sub.written(n);
        self.guard.wrote(n);
        self.last_write = clock_ms();
        if self.shared.sub.replaying() {
            // room in the queue again: the next of the history
            self.guard.worker.hub.pace_replay(&self.shared.sub);
        }
    }

    /// Writes what is pending until done (true) or the socket is full (false).
    fn write_pending(&mut self) -> io::Result<bool> {
        while !self.pending.is_empty() {
            match self.io.send_queue(&mut self.pending) {
                Ok(n) => self.wrote(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Decodes and acts on every complete frame in `buf` (synchronous: client
    /// publishes are collected and sent afterwards, so this adds nothing to
    /// the connection's future).
    fn process(&mut self, buf: &mut BytesMut) {
        while self.state != CloseState::Done && !self.paused {
            let ev = match self.decoder.decode(buf) {
                Ok(Some(ev)) => ev,
                Ok(None) => return,
                Err(e) => {
                    // Fail the connection: our close frame, then close without waiting.
                    buf.clear();
                    self.start_close(e.code, e.reason);
                    self.state = CloseState::Done;
                    return;
                }
            };
            match ev {
                Event::Text(b) => self.on_message(WsMessage::Text(b)),
                Event::Binary(b) => self.on_message(WsMessage::Binary(b)),
                Event::Ping(p) => {
                    if self.state == CloseState::Open {
                        let enc = self.shared.encoder.borrow();
                        self.shared.sub.cork(|out| enc.pong(&p, out));
                    }
                }
                Event::Pong(_) => {
                    let sub = self.sub();
                    sub.awaiting_pong.set(false);
                    if self.state == CloseState::Open {
                        self.guard.signal.set_deadline(None);
                    }
                }
                Event::Close { code, reason } => {
                    if self.state == CloseState::Open {
                        // Echo the client's code (an empty close gets an empty close).
                        let enc = self.shared.encoder.borrow();
                        self.shared.sub.cork(|out| enc.close(code, &reason, out));
                        drop(enc);
                        self.sub().seal();
                        self.shared.ended.set(true);
                        self.shared.wake_handler();
                    }
                    self.state = CloseState::Done;
                    buf.clear();
                    return;
                }
            }
        }
    }

    fn on_message(&mut self, msg: WsMessage) {
        if self.state != CloseState::Open || self.deferred_close().is_some() {
            return; // after our close, data is read and dropped
        }
        if let Some(rate) = self.rate.as_mut() {
            if !rate.take() {
                self.guard.worker.stats.ws_rate_limited.inc();
                let why = (close::POLICY_VIOLATION, "message rate limit exceeded");
                if let Some(hs) = &self.shared.h {
                    hs.deferred_close.set(Some(why));
                } else {
                    self.start_close(why.0, why.1);
                }
                return;
            }
        }
        if self.has_handler() {
            let len = msg.bytes().len();
            let hs = self.shared.handler_side();
            hs.inbox.borrow_mut().push_back(msg);
            let total = hs.inbox_bytes.get() + len;
            hs.inbox_bytes.set(total);
            if total > self.inbox_limit() {
                self.paused = true;
                hs.reading_paused.set(true);
            }
            // the handler runs right after this read is processed (run())
            return;
        }
        let Some(role) = &self.rooms_role else {
            return; // a room subscriber's messages are ignored unless publishing is on
        };
        let WsMessage::Text(text) = msg else {
            self.start_close(
                close::UNSUPPORTED_DATA,
                "only text messages can be published",
            );
            return;
        };
        let text = std::str::from_utf8(&text).unwrap_or_default();
        match publish::prepare(text, &role.rooms, &role.auto_join, &role.template) {
            Ok(p)
                if role
                    .publish_rooms
                    .as_ref()
                    .is_some_and(|ok| !ok.contains(&p.0)) =>
            {
                self.shared.worker.stats.auth_forbidden.inc();
                self.start_close(
                    close::POLICY_VIOLATION,
                    "the token does not allow publishing to this room",
                );
            }
            Ok(p) => {
                if let Some(role) = self.rooms_role.as_mut() {
                    role.to_publish.push(p);
                }
            }
            Err(why) => {
                self.shared.worker.stats.hub_rejects.inc();
                self.start_close(close::POLICY_VIOLATION, why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Per-connection state stays small: these structs exist once per idle
    /// WebSocket (see the RSS-per-connection benchmark).
    #[test]
    fn per_connection_state_stays_small() {
        use std::mem::size_of;
        // (the session holds its transport: before the transport seam the
        // socket, 80 bytes, sat beside it in the connection's future; the
        // transport adds a pointer to a TLS session)
        assert!(
            size_of::<super::Session>() <= 368,
            "Session {}",
            size_of::<super::Session>()
        );
        assert!(
            size_of::<crate::io::transport::Transport>() <= 88,
            "Transport {}",
            size_of::<crate::io::transport::Transport>()
        );
        assert!(size_of::<crate::io::transport::ParkedTransport>() <= 8);
        // a parked TLS connection's session (boxed): buffers empty, keys raw
        assert!(
            size_of::<crate::io::tls::TlsSession>() <= 320,
            "TlsSession {}",
            size_of::<crate::io::tls::TlsSession>()
        );
        assert!(size_of::<crate::proto::ws::codec::Decoder>() <= 96);
        assert!(
            size_of::<super::Shared>() <= 64,
            "Shared {}",
            size_of::<super::Shared>()
        );
        // allocations of at most 64 bytes (see Parked)
        assert!(
            size_of::<super::Parked>() <= 64,
            "{}",
            size_of::<super::Parked>()
        );
        assert!(size_of::<super::ParkedRest>() <= 64);
        // with its reference counts, 96 bytes
        assert!(size_of::<crate::hub::subscriber::Subscriber>() <= 80);
        // with its reference counts, 48 bytes
        assert!(size_of::<crate::io::signal::Signal>() <= 32);
    }
}
