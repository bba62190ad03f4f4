//! The socket as hyper sees it, with the connection's timeouts and the envelope for hyper's own
//! error answers.
//!
//! Timeouts: the first byte of a request head is reported to the connection's `Activity`,
//! which runs the header-read and idle deadlines. A write that makes no progress for the idle
//! timeout (a client that stopped reading) fails here.
//!
//! Envelope: a request whose head hyper cannot parse (garbage request line, bad
//! `Content-Length`, head over the size limit) is answered by hyper itself, before any service
//! runs, with an empty body and `connection` closed after. That answer is replaced here, on its
//! way to the socket, by the same status with the JSON envelope. It is recognised exactly: a
//! write that is one whole response head (`HTTP/1.1 400|414|431`, ending in the blank line) that
//! declares `content-length: 0` and has no `x-request-id`. Every answer the router makes has an
//! `x-request-id` (and a 4xx has an envelope), so none matches, and JSON never holds a raw
//! CR LF, so no body bytes can.

use axum::http::StatusCode;
use bytes::{Buf, Bytes};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant, Sleep};

use super::activity::Activity;
use crate::error::ApiError;

pub(super) struct GuardedIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// When a stalled write fails; `None` while writes make progress.
    write_deadline: Option<Instant>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// Our envelope answer, still to be written in place of hyper's bare one.
    replacement: Option<Bytes>,
}

impl GuardedIo {
    pub(super) fn new(stream: TcpStream, activity: Arc<Activity>) -> Self {
        GuardedIo {
            stream,
            activity,
            write_deadline: None,
            write_timer: None,
            replacement: None,
        }
    }

    /// Fails a write that has been pending since `write_deadline`.
    fn watch_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.write_deadline = None;
            return result;
        }
        let deadline = *self
            .write_deadline
            .get_or_insert_with(|| Instant::now() + self.activity.idle_timeout);
        match poll_timer(&mut self.write_timer, deadline, cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out("the client stopped reading"))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(bytes) = self.replacement.as_mut() {
            let written = Pin::new(&mut self.stream).poll_write(cx, bytes);
            let n = ready!(self.watch_write(cx, written))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let bytes = self.replacement.as_mut().expect("checked above");
            bytes.advance(n);
            if bytes.is_empty() {
                self.replacement = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` in place of hyper's bare error answer, if it is one, and starts writing ours.
    fn replaced(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> io::Result<bool> {
        let Some(answer) = envelope_for_bare_error(buf) else {
            return Ok(false);
        };
        self.replacement = Some(answer);
        // Pending is fine: hyper flushes next, and `poll_flush` finishes the replacement.
        if let Poll::Ready(Err(e)) = self.poll_replacement(cx) {
            return Err(e);
        }
        Ok(true)
    }
}

/// Polls `timer` (created on first use) set to `deadline`.
fn poll_timer(
    timer: &mut Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let timer = timer.get_or_insert_with(|| Box::pin(sleep_until(deadline)));
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx)
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        read
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if this.replaced(cx, buf)? {
            return Poll::Ready(Ok(buf.len()));
        }
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch_write(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        // hyper's bare answer has no body: it is the only non-empty slice.
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next()) {
            if this.replaced(cx, only)? {
                return Poll::Ready(Ok(only.len()));
            }
        }
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// Our answer for `written` if it is hyper's bare answer to a request it could not parse.
fn envelope_for_bare_error(written: &[u8]) -> Option<Bytes> {
    let rest = written.strip_prefix(b"HTTP/1.1 ")?;
    let (status, message) = match rest.get(..4)? {
        b"400 " => (
            StatusCode::BAD_REQUEST,
            "Malformed HTTP request: the request line or a header (such as Content-Length) could not be parsed",
        ),
        b"414 " => (StatusCode::URI_TOO_LONG, "Request URI is too long"),
        b"431 " => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, super::HEAD_TOO_LARGE),
        _ => return None,
    };
    let has = |line: &[u8]| written.windows(line.len()).any(|w| w == line);
    let is_bare = written.ends_with(b"\r\n\r\n")
        && has(b"\r\ncontent-length: 0\r\n")
        && !has(b"\r\nx-request-id: ");
    is_bare.then(|| envelope_answer(status, message))
}

/// A whole HTTP/1.1 response: `status` with the envelope, closing the connection.
fn envelope_answer(status: StatusCode, message: &'static str) -> Bytes {
    let trace_id = hookline_core::TraceId::generate().into_string();
    tracing::debug!(%trace_id, status = status.as_u16(), "request the HTTP layer could not parse");
    let (status, envelope) =
        ApiError::MalformedRequest { status, message }.envelope(trace_id.clone());
    let body = serde_json::to_vec(&envelope).expect("the envelope serializes");
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n\
         x-request-id: {trace_id}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len(),
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(&body);
    Bytes::from(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_error_heads_are_replaced() {
        let bare =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = envelope_for_bare_error(bare).expect("hyper's bare 431");
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["status"], 431);
        assert!(head.contains(&format!("content-length: {}", text.len() - head.len() - 4)));

        for ours in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 97\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-request-id: a\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"{\"message\":\"HTTP/1.1 400 \"}",
        ] {
            assert!(envelope_for_bare_error(ours).is_none(), "{ours:?}");
        }
    }
}
