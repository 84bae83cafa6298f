//! Server-Sent Events: encoding one event, and the response body of a
//! subscriber (a hyper streaming body over the room's broadcast receiver).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::StreamBody;
use hyper::body::Frame;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::Stream;

use crate::rooms::{note_lag, Shared};

/// `id: N\ndata: LINE\n...\n`: one `data:` field per line of `body`, lines
/// split at CRLF, CR or LF as the SSE spec reads them back.
pub fn encode(id: u64, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 32);
    out.put_slice(b"id: ");
    out.put_slice(id.to_string().as_bytes());
    out.put_u8(b'\n');
    let mut rest = body;
    loop {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        out.put_slice(b"data: ");
        match end {
            None => {
                out.put_slice(rest);
                out.put_u8(b'\n');
                break;
            }
            Some(i) => {
                out.put_slice(&rest[..i]);
                out.put_u8(b'\n');
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// The events of one room as body frames; a lagged receiver counts what it
/// missed and goes on with the oldest message still buffered.
pub struct Events {
    inner: BroadcastStream<Shared>,
}

impl Stream for Events {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(event)) => return Poll::Ready(Some(Ok(Frame::data(event.sse.clone())))),
                Some(Err(BroadcastStreamRecvError::Lagged(missed))) => note_lag(missed),
                None => return Poll::Ready(None),
            }
        }
    }
}

/// The streaming body of an SSE subscriber.
pub type SseBody = StreamBody<Events>;

/// A body that yields each event the receiver gets, until the room closes
/// (never, rooms live as long as the process) or the client goes away.
pub fn body(rx: broadcast::Receiver<Shared>) -> SseBody {
    StreamBody::new(Events {
        inner: BroadcastStream::new(rx),
    })
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn one_data_field_per_line() {
        assert_eq!(&encode(7, b"hello")[..], b"id: 7\ndata: hello\n\n");
        assert_eq!(&encode(1, b"")[..], b"id: 1\ndata: \n\n");
        assert_eq!(
            &encode(2, b"a\nb\r\nc\rd")[..],
            b"id: 2\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(&encode(3, b"a\n")[..], b"id: 3\ndata: a\ndata: \n\n");
    }
}
