//! Single-threaded wake-ups inside one worker: a [`LocalEvent`] that several
//! tasks can wait on, and a [`Signal`] per connection that the worker uses to
//! kick it (drain now; later, "your write queue has data").

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::io::clock::{clock_ms, clock_ms_at};

/// Spawns a worker's service task (a loop that runs for the worker's
/// life) that ends when `stop` is set: its future is dropped inside the
/// runtime, so what it holds (and the wakers it left behind) goes with it
/// instead of outliving the worker. Await the handle after setting `stop`.
pub fn spawn_until(
    stop: &Rc<LocalEvent>,
    fut: impl Future<Output = ()> + 'static,
) -> monoio::task::JoinHandle<()> {
    let stop = stop.clone();
    monoio::spawn(async move {
        monoio::select! {
            _ = fut => {}
            _ = stop.wait() => {}
        }
    })
}

/// A level-triggered event for a few waiters (accept loop, worker main task).
#[derive(Default)]
pub struct LocalEvent {
    set: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl LocalEvent {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the event and wakes every waiter.
    pub fn set(&self) {
        self.set.set(true);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Wakes the waiters without setting the event (they re-check their condition).
    pub fn notify(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Clears the event.
    pub fn reset(&self) {
        self.set.set(false);
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Resolves once the event is set.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.set.get() {
                return Poll::Ready(());
            }
            self.register(cx.waker());
            Poll::Pending
        })
    }

    /// Resolves when `cond` holds, re-checked on every `notify`/`set`.
    pub fn wait_until<'a>(&'a self, cond: impl Fn() -> bool + 'a) -> impl Future<Output = ()> + 'a {
        std::future::poll_fn(move |cx| {
            if cond() {
                return Poll::Ready(());
            }
            self.register(cx.waker());
            Poll::Pending
        })
    }

    fn register(&self, waker: &Waker) {
        let mut ws = self.waiters.borrow_mut();
        if !ws.iter().any(|w| w.will_wake(waker)) {
            ws.push(waker.clone());
        }
    }
}

/// How long a stream (a WebSocket room subscriber, an SSE stream) must have
/// written nothing before it parks (see [`crate::conn::worker::Worker::park`]).
pub const PARK_AFTER: std::time::Duration = std::time::Duration::from_millis(PARK_AFTER_MS as u64);

/// [`PARK_AFTER`] on the [`clock_ms`](crate::io::clock::clock_ms) clock.
pub const PARK_AFTER_MS: u32 = 1000;

/// One connection's wake-up: a flag plus the waker of the connection task,
/// the connection's read readiness (set by the worker's epoll task, see
/// [`crate::io::ready`]), and the connection's deadline, which the worker's
/// sweeper enforces (so no connection keeps a timer of its own).
#[derive(Default)]
pub struct Signal {
    kicked: Cell<bool>,
    /// The socket has input (or end of stream) not read yet.
    readable: Cell<bool>,
    /// The peer closed its side (or the socket failed): readable until a read says so.
    ended: Cell<bool>,
    /// Kept between waits: a task that waits again needs no new clone.
    waker: Cell<Option<Waker>>,
    /// The task waits (a kick schedules it); false while it runs.
    waiting: Cell<bool>,
    /// In [`clock_ms`](crate::io::clock::clock_ms) (compact: one per connection), never early.
    deadline: Cell<Option<NonZeroU32>>,
    expired: Cell<bool>,
}

impl Signal {
    /// Sets (or clears) the instant after which the connection is kicked
    /// with "expired". The instant is rounded up on the
    /// [`clock_ms`](crate::io::clock::clock_ms) clock: the sweeper,
    /// which reads that clock rounded down, never finds a deadline due early.
    pub fn set_deadline(&self, at: Option<Instant>) {
        self.set_deadline_ms(at.map(clock_ms_at));
    }

    /// [`Signal::set_deadline`] with the deadline already on the
    /// [`clock_ms`](crate::io::clock::clock_ms) clock (0 is taken as 1).
    fn set_deadline_ms(&self, at_ms: Option<u32>) {
        self.deadline
            .set(at_ms.map(|ms| NonZeroU32::new(ms).unwrap_or(NonZeroU32::MIN)));
        self.expired.set(false);
    }

    /// For a stream about to wait with nothing of its own in flight: true
    /// once nothing is pending here and it has written nothing for
    /// [`PARK_AFTER`] since `last_write_ms` (on the
    /// [`clock_ms`](crate::io::clock::clock_ms) clock; it may park). Otherwise, with
    /// nothing pending, the deadline is set to when it would be due, so the
    /// sweeper wakes it then; every write moves that on, so a busy stream is
    /// never woken for it.
    pub fn due_to_park(&self, last_write_ms: u32) -> bool {
        if self.is_readable() || self.is_kicked() {
            return false;
        }
        let due = last_write_ms.wrapping_add(PARK_AFTER_MS);
        // wrapping: both lie within 24 days of now
        if clock_ms().wrapping_sub(due) as i32 >= 0 {
            return true;
        }
        self.set_deadline_ms(Some(due));
        false
    }

    /// Whether a kick is waiting to be seen.
    pub fn is_kicked(&self) -> bool {
        self.kicked.get()
    }

    /// For a task that is running: kicks from now on only set the flag (the
    /// task sees it before it waits again) instead of scheduling it again.
    pub fn running(&self) {
        self.waiting.set(false);
    }

    /// Wakes the task if it waits.
    fn wake(&self) {
        if self.waiting.replace(false) {
            if let Some(w) = self.waker.take() {
                w.wake_by_ref();
                self.waker.set(Some(w));
            }
        }
    }

    /// The connection is parked (its task ended, see `Worker::park`):
    /// `waker` resumes it on the next wake-up.
    pub fn resume_with(&self, waker: Waker) {
        self.waker.set(Some(waker));
        self.waiting.set(true);
    }

    /// The task waits: keeps its waker (cloned only if it changed) for the
    /// next wake-up.
    fn register_waker(&self, cx: &Context<'_>) {
        match self.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => self.waker.set(Some(w)),
            _ => self.waker.set(Some(cx.waker().clone())),
        }
        self.waiting.set(true);
    }

    /// Has the next kick wake the task waiting with `cx`, leaving a kick
    /// that is already pending to be seen (for a wait on something else
    /// that a kick should interrupt).
    pub fn wake_on_kick(&self, cx: &Context<'_>) {
        self.register_waker(cx);
    }

    /// Forgets a kick the task gave itself while running.
    pub fn unkick(&self) {
        self.kicked.set(false);
    }

    /// Called by the sweeper: kicks the connection if its deadline has passed.
    pub fn expire_if_due(&self, now_ms: u32) {
        if let Some(d) = self.deadline.get() {
            // wrapping: deadlines lie within 24 days of now
            if now_ms.wrapping_sub(d.get()) as i32 >= 0 {
                self.deadline.set(None);
                self.expired.set(true);
                self.kick();
            }
        }
    }

    /// True once after the deadline passed.
    pub fn take_expired(&self) -> bool {
        self.expired.replace(false)
    }

    /// Marks the signal and wakes the connection task if it waits.
    pub fn kick(&self) {
        self.kicked.set(true);
        self.wake();
    }

    /// Resolves when kicked, clearing the flag.
    pub fn kicked(&self) -> Kicked<'_> {
        Kicked(self)
    }

    /// Called by the worker's epoll task: the socket has new input, or its
    /// peer closed its side (`ended`).
    pub fn mark_readable(&self, ended: bool) {
        self.readable.set(true);
        if ended {
            self.ended.set(true);
        }
        self.wake();
    }

    /// Whether the socket may have input not read yet.
    pub fn is_readable(&self) -> bool {
        self.readable.get()
    }

    /// The socket is drained (a short read or `EAGAIN`): wait for new input.
    /// (After the peer closed its side, the next read returns 0: stay readable.)
    pub fn drained(&self) {
        if !self.ended.get() {
            self.readable.set(false);
        }
    }

    /// Resolves while the socket may have input; the reader calls
    /// [`Signal::drained`] once it has read everything.
    pub fn readable(&self) -> Readable<'_> {
        Readable(self)
    }
}

/// Future of [`Signal::readable`].
pub struct Readable<'a>(&'a Signal);

impl Future for Readable<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let s = self.0;
        if s.readable.get() {
            return Poll::Ready(());
        }
        s.register_waker(cx);
        Poll::Pending
    }
}

/// Future of [`Signal::kicked`].
pub struct Kicked<'a>(&'a Signal);

impl Future for Kicked<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let s = self.0;
        if s.kicked.replace(false) {
            return Poll::Ready(());
        }
        s.register_waker(cx);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::clock::clock_ms_at;
    use std::time::Duration;

    /// The compact deadline is never early and at most a millisecond late
    /// (the sweeper's clock counts whole milliseconds).
    #[test]
    fn a_deadline_expires_at_its_millisecond_not_before() {
        let s = Signal::default();
        let at = Instant::now() + Duration::from_millis(50);
        s.set_deadline(Some(at));
        let due = clock_ms_at(at);
        s.expire_if_due(due - 1);
        assert!(!s.take_expired(), "a millisecond early");
        s.expire_if_due(due);
        assert!(s.take_expired());
        assert!(s.is_kicked());
        s.expire_if_due(due + 1);
        assert!(!s.take_expired(), "expires once");
        // far in the past: due at once; cleared: never
        s.set_deadline(Some(Instant::now() - Duration::from_secs(5)));
        s.expire_if_due(clock_ms_at(Instant::now()));
        assert!(s.take_expired());
        s.set_deadline(Some(at));
        s.set_deadline(None);
        s.expire_if_due(due + 10);
        assert!(!s.take_expired());
    }
}
