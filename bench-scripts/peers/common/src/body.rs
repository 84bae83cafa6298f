//! The one response body type of the peers: a whole buffer, or an SSE
//! stream. An enum rather than a boxed trait object, so a plain response
//! costs no extra allocation.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::sse::SseBody;

/// A response body.
pub enum Body {
    /// A complete body (possibly empty), sent with `Content-Length`.
    Full(Option<Bytes>),
    /// An endless SSE stream, sent chunked.
    Sse(SseBody),
}

impl Body {
    /// No body.
    pub fn empty() -> Body {
        Body::Full(None)
    }

    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        Body::Full(if bytes.is_empty() { None } else { Some(bytes) })
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Body::Sse(stream) => Pin::new(stream).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(data) => data.is_none(),
            Body::Sse(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Body::Sse(_) => SizeHint::default(),
        }
    }
}
