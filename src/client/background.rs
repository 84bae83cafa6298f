//! The async form of the reconnecting clients: [`Background`] runs a
//! blocking client ([`SseClient`](super::sse::SseClient) or
//! [`RoomSubscriber`](super::reconnect::RoomSubscriber)) on a thread of its
//! own and hands its items over a bounded channel whose
//! [`Background::recv`] is a plain `Future`: it runs on any executor
//! (ringcast's own monoio workers, tokio, a hand-written `block_on`)
//! because it needs nothing from one but a `Waker`.
//!
//! ```no_run
//! use ringcast::client::sse::{Item, SseClient, SseOptions};
//!
//! # async fn relay() -> std::io::Result<()> {
//! let events = SseClient::new("https://upstream.example/sse?room=prices", SseOptions::new())?
//!     .into_background()?;
//! while let Some(item) = events.recv().await? {
//!     if let Item::Event(e) = item {
//!         println!("{}: {}", e.event, e.data);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Why a thread and not sockets on the caller's executor: the library
//! stays free of any one runtime in its public API (no tokio, no monoio
//! types), the code that parses, reconnects and resumes is the blocking
//! client's, tested once, and a subscription is long-lived, so a thread
//! per subscription costs little next to what it carries. The channel
//! holds at most [`CHANNEL_CAPACITY`] items: a slow consumer makes the
//! thread stop reading, and the server's flow control does the rest.
//! Dropping the [`Background`] (or [`Background::close`]) shuts the
//! connection down and ends the thread.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// Items a [`Background`] reads ahead of its consumer, at most.
pub const CHANNEL_CAPACITY: usize = 64;

/// A handle that stops a blocking client from another thread: it shuts
/// the current connection down (a blocked read returns) and interrupts a
/// wait between attempts. Clones share the state.
#[derive(Clone, Default, Debug)]
pub struct Closer(Arc<(Mutex<CloserState>, Condvar)>);

#[derive(Default, Debug)]
struct CloserState {
    closed: bool,
    socket: Option<TcpStream>,
}

impl Closer {
    /// Stops the client: its next (or current) `recv` ends.
    pub fn close(&self) {
        let mut st = self.0 .0.lock().unwrap_or_else(PoisonError::into_inner);
        st.closed = true;
        if let Some(s) = st.socket.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.0 .1.notify_all();
    }

    /// Whether [`Closer::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.0
             .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed
    }

    /// The socket of a new connection, to shut down on close (a clone of
    /// it). Fails when closed already.
    pub(crate) fn watch(&self, socket: &TcpStream) -> io::Result<()> {
        let mut st = self.0 .0.lock().unwrap_or_else(PoisonError::into_inner);
        if st.closed {
            let _ = socket.shutdown(Shutdown::Both);
            return Err(closed());
        }
        st.socket = socket.try_clone().ok();
        Ok(())
    }

    /// The connection [`Closer::watch`] was given has gone: let go of its
    /// socket.
    pub(crate) fn unwatch(&self) {
        self.0
             .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .socket = None;
    }

    /// Sleeps for `d` unless closed meanwhile; an error when closed.
    pub(crate) fn sleep(&self, d: Duration) -> io::Result<()> {
        let st = self.0 .0.lock().unwrap_or_else(PoisonError::into_inner);
        let (st, _) = self
            .0
             .1
            .wait_timeout_while(st, d, |st| !st.closed)
            .unwrap_or_else(PoisonError::into_inner);
        match st.closed {
            true => Err(closed()),
            false => Ok(()),
        }
    }
}

/// The error of a client stopped by its [`Closer`].
pub(crate) fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the client was closed")
}

/// A blocking client running on its own thread; see the module docs.
#[derive(Debug)]
pub struct Background<T> {
    rx: flume::Receiver<io::Result<Option<T>>>,
    closer: Closer,
}

impl<T: Send + 'static> Background<T> {
    /// Runs `next` on a new thread until it returns `Ok(None)` or an
    /// error, or until the handle is dropped; `closer` is the client's.
    pub(crate) fn spawn(
        name: &str,
        closer: Closer,
        mut next: impl FnMut() -> io::Result<Option<T>> + Send + 'static,
    ) -> io::Result<Background<T>> {
        let (tx, rx) = flume::bounded(CHANNEL_CAPACITY);
        let stop = closer.clone();
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || loop {
                let item = next();
                let last = !matches!(item, Ok(Some(_)));
                if stop.is_closed() || tx.send(item).is_err() || last {
                    return;
                }
            })?;
        Ok(Background { rx, closer })
    }

    /// The next item: `Ok(None)` once the client has ended (and after its
    /// error was returned). Cancel-safe: dropping the future loses
    /// nothing.
    pub async fn recv(&self) -> io::Result<Option<T>> {
        match self.rx.recv_async().await {
            Ok(item) => item,
            Err(flume::RecvError::Disconnected) => Ok(None),
        }
    }

    /// The next item, blocking the calling thread.
    pub fn recv_blocking(&self) -> io::Result<Option<T>> {
        match self.rx.recv() {
            Ok(item) => item,
            Err(flume::RecvError::Disconnected) => Ok(None),
        }
    }

    /// The next item, waiting at most `d` for it: `None` when none came
    /// in time.
    pub fn recv_timeout(&self, d: Duration) -> Option<io::Result<Option<T>>> {
        match self.rx.recv_timeout(d) {
            Ok(item) => Some(item),
            Err(flume::RecvTimeoutError::Timeout) => None,
            Err(flume::RecvTimeoutError::Disconnected) => Some(Ok(None)),
        }
    }

    /// Stops the client (as dropping the handle does); items already
    /// received stay readable.
    pub fn close(&self) {
        self.closer.close();
    }
}

impl<T> Drop for Background<T> {
    fn drop(&mut self) {
        self.closer.close();
    }
}
