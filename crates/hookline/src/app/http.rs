//! The HTTP server: accepts connections and serves each with hyper's HTTP/1.1 and the router,
//! on a budget no client can overdraw (`HOOKLINE_HEADER_READ_TIMEOUT`, `_IDLE_TIMEOUT`,
//! `_BODY_TIMEOUT`, `_MAX_CONNECTIONS`):
//! - a connection that sends no complete request head in time, or idles past the keep-alive
//!   timeout, or stops reading our answer, is closed ([`io`]); a body that does not arrive in
//!   time ends in a 408 envelope ([`body`]);
//! - past the connection cap, the oldest connection with no request in progress is closed to
//!   make room ([`table`]), so idle or slow connections cannot lock out a new client;
//! - what hyper answers by itself (400, 414, 431 for requests it cannot parse) carries the error
//!   envelope like every other error ([`io`]).
//!
//! It must never wait on one connection in the accept loop: each connection is its own task.

mod activity;
mod body;
mod io;
mod table;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::config::ConnectionSettings;
use activity::Activity;
use table::{Slot, Table};

/// The largest request head (request line and headers) hyper buffers; past it, 431. Also the
/// most a connection's read buffer grows to, which bounds what an idle connection costs.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The size of `req`'s head rebuilt from what hyper parsed (request line, header lines, blank
/// line): a lower bound of what came on the wire (whitespace around values, an absolute-form
/// target's authority are not counted).
fn head_bytes<B>(req: &hyper::Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + fields + 2
}

/// The 431 for a head past the limit, in the envelope with its trace id as `x-request-id`
/// (outside any request: no middleware ran); the connection is closed after it, as after
/// hyper's own.
fn head_too_large() -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    let trace_id = hookline_core::TraceId::generate().into_string();
    let (status, envelope) = crate::error::ApiError::MalformedRequest {
        status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        message: HEAD_TOO_LARGE,
    }
    .envelope(trace_id.clone());
    let mut response = (status, axum::Json(envelope)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Ok(id) = HeaderValue::from_str(&trace_id) {
        headers.insert(crate::api::request_id::REQUEST_ID, id);
    }
    response
}

/// What a 431 says, ours or hyper's.
pub(crate) const HEAD_TOO_LARGE: &str =
    "Request headers are too large (at most 64 KiB and 100 headers)";

/// How long the accept loop pauses after an accept error that is not the client's (out of file
/// descriptors, say), so it does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `cancel`; then stops accepting, lets each connection finish
/// the request it is in, and returns once all are closed or `grace` has passed.
pub(super) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionSettings,
    cancel: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    warn_if_too_few_file_descriptors(limits.max_connections);
    let table = Table::new(limits.max_connections);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                match ended {
                    Err(error) if error.is_panic() => {
                        tracing::error!(%error, "a connection task panicked");
                    }
                    _ => {}
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let activity = Activity::new(&limits);
                    // Over the cap with every connection in a request: closed at once (dropped).
                    if let Some(slot) = table.admit(&activity) {
                        let conn = Connection { app: app.clone(), body_timeout: limits.body_timeout, peer, activity, _slot: slot };
                        connections.spawn(conn.serve(stream, cancel.clone()));
                    }
                }
                Err(error) => accept_failed(error).await,
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "open HTTP connections did not finish within the grace period; closing them"
        );
        connections.abort_all();
    }
    Ok(())
}

/// Errors of one connection (reset before accept, say) are not the server's; anything else
/// (EMFILE, ENOBUFS) is logged and waited out briefly.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) {
        return;
    }
    tracing::error!(%error, "accept error");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// One accepted connection and what serving it needs.
struct Connection {
    app: axum::Router,
    body_timeout: Duration,
    peer: SocketAddr,
    activity: Arc<Activity>,
    /// Frees the connection's place in the table when the connection ends.
    _slot: Slot,
}

impl Connection {
    /// Serves requests until the client closes, a timeout closes it, the table evicts it, or
    /// shutdown: then the request in progress (if any) is finished first.
    async fn serve(self, stream: TcpStream, shutdown: CancellationToken) {
        let activity = self.activity.clone();
        let io = TokioIo::new(io::GuardedIo::new(stream, activity.clone()));
        let (app, peer, body_timeout) = (self.app, self.peer, self.body_timeout);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let in_request = activity.begin_request();
            let mut req = req.map(|incoming| body::DeadlineBody::new(incoming, body_timeout));
            // For extractors that want the client's address (`ConnectInfo<SocketAddr>`).
            req.extensions_mut().insert(ConnectInfo(peer));
            // hyper refuses a head past its buffer only when the buffer fills before the head
            // ends; a head that arrives whole in one large read parses, so the limit is ours.
            let call = (head_bytes(&req) <= MAX_HEAD_BYTES).then(|| app.clone().call(req));
            async move {
                let response = match call {
                    Some(call) => call.await,
                    None => Ok(head_too_large()),
                };
                response.map(|r| r.map(|b| body::ResponseBody::new(b, in_request)))
            }
        });
        let mut builder = http1::Builder::new();
        // The header and idle timeouts are `Activity`'s: hyper's one timer covers both at once.
        builder
            .max_buf_size(MAX_HEAD_BYTES)
            .header_read_timeout(None::<Duration>);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let (activity, evicted) = (&self.activity, self.activity.evict.clone());
        let mut draining = false;
        let ended = loop {
            tokio::select! {
                ended = conn.as_mut() => break ended,
                () = evicted.cancelled() => {
                    tracing::debug!(%peer, "connection closed to make room for a new one");
                    return;
                }
                why = activity.expired() => {
                    tracing::debug!(%peer, why, "connection closed");
                    return;
                }
                () = shutdown.cancelled(), if !draining => {
                    // Finishes the request in progress, if any, then closes.
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
        };
        if let Err(error) = ended {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// Raises this process's soft limit of open files to its hard limit, so the connection cap
/// rather than the descriptor limit decides how many clients are served. Returns the new limit.
#[cfg(unix)]
pub fn raise_open_file_limit() -> anyhow::Result<Option<u64>> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if current != maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: maximum,
                maximum,
            },
        )
        .map_err(|e| {
            anyhow::anyhow!("raising the open-file limit from {current:?} to {maximum:?}: {e}")
        })?;
    }
    Ok(maximum)
}

#[cfg(not(unix))]
pub fn raise_open_file_limit() -> anyhow::Result<Option<u64>> {
    Ok(None)
}

/// Descriptors beside client connections: the store, receivers being delivered to, logs.
const OTHER_FILE_DESCRIPTORS: u64 = 1024;

fn warn_if_too_few_file_descriptors(max_connections: usize) {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let wanted = max_connections as u64 + OTHER_FILE_DESCRIPTORS;
        if let Some(limit) = limit.filter(|&limit| limit < wanted) {
            tracing::warn!(
                open_file_limit = limit,
                max_connections,
                "the open-file limit is below HOOKLINE_MAX_CONNECTIONS plus {OTHER_FILE_DESCRIPTORS}; \
                 raise it (ulimit -n) or lower HOOKLINE_MAX_CONNECTIONS"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = max_connections;
}
