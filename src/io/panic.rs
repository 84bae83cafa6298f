//! Panics stay inside the connection that caused them: every connection task
//! and every application handler runs inside [`CatchPanic`], so a panic ends
//! that task (its connection is closed as its state is dropped), is logged,
//! and the worker with all its other connections keeps running.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// A future that turns a panic of `inner` into `Ready(false)`.
    pub struct CatchPanic<F> {
        #[pin]
        inner: F,
        what: &'static str,
    }
}

impl<F> CatchPanic<F> {
    /// `what` names the task in the log ("connection", "websocket handler").
    pub fn new(what: &'static str, inner: F) -> CatchPanic<F> {
        CatchPanic { inner, what }
    }
}

/// The text of a panic payload.
pub fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

impl<F: Future<Output = ()>> Future for CatchPanic<F> {
    /// True if `inner` completed, false if it panicked.
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let this = self.project();
        let inner = this.inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(())) => Poll::Ready(true),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                log::error!(
                    "a {} panicked and was stopped; the worker goes on: {}",
                    this.what,
                    message(&*payload)
                );
                Poll::Ready(false)
            }
        }
    }
}

/// Spawns a task on the current worker inside [`CatchPanic`] (the future is
/// stored once, in the wrapper: no second copy in an async block).
pub fn spawn_guarded<F: Future<Output = ()> + 'static>(what: &'static str, fut: F) {
    drop(monoio::spawn(CatchPanic::new(what, fut)));
}
