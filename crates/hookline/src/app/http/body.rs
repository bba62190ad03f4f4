//! A request body with a deadline: the whole body must arrive within the body timeout of the
//! request head, however it trickles. Past it the body fails with `io::ErrorKind::TimedOut`,
//! which the JSON extractor answers as 408 in the envelope. And a response body that keeps its
//! request marked in progress until the last byte is written.

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{sleep_until, Instant, Sleep};

use super::activity::InRequest;

pub(super) struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Created only once the body has to be waited for: most bodies are in the first read.
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
}

impl DeadlineBody {
    pub(super) fn new(inner: Incoming, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            deadline: Instant::now() + timeout,
            timer: None,
            timed_out: false,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.timed_out = true;
                let error = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body did not arrive within the body timeout",
                );
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body holding its request's [`InRequest`] mark: a streamed answer (a `hookline
/// listen` stream, open for hours) is a request in progress, not an idle connection, until its
/// body ends or is dropped. A client that stops reading it is the socket's write deadline's.
pub(super) struct ResponseBody<B> {
    inner: B,
    _in_request: InRequest,
}

impl<B> ResponseBody<B> {
    pub(super) fn new(inner: B, in_request: InRequest) -> Self {
        ResponseBody {
            inner,
            _in_request: in_request,
        }
    }
}

impl<B: Body + Unpin> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
