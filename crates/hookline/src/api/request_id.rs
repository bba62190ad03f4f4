//! Request identity: every HTTP request has one trace id, taken from the caller (`traceparent`,
//! or an `x-request-id` that is a trace id) or generated. It is the error envelope's `trace_id`,
//! the trace id of events published without one, a field of every log line of the request, and
//! it comes back in the `x-request-id` response header.
//!
//! [`identify`] runs around every route and fallback. It puts the identity in the request's
//! extensions (handlers take it as an extractor) and in a task-local for the whole handler
//! future, because an [`ApiError`](crate::error::ApiError) becomes a response in
//! `IntoResponse`, which sees no request: rejections raised by extractors (bad JSON, auth) and by
//! the 404/405 fallbacks read the id from there. This module must never fail a request.

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::header::HeaderName;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use hookline_core::TraceId;
use std::convert::Infallible;
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// A caller's own request id is logged and echoed, so it is kept short and printable.
const MAX_REQUEST_ID_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: TraceId;
}

/// Who a request is, as far as logs and answers are concerned.
#[derive(Debug, Clone)]
pub struct RequestIdentity {
    pub trace_id: TraceId,
    /// The caller's `x-request-id` when it is not itself a trace id: logged and echoed as sent.
    pub request_id: Option<String>,
}

impl RequestIdentity {
    /// A valid `traceparent` names the trace; otherwise an `x-request-id` of 32 hex characters
    /// does; otherwise one is generated. An `x-request-id` that is not the trace id is kept as
    /// the caller's request id if it is short, printable ASCII; anything else is ignored.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let header = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let from_traceparent = header(&TRACEPARENT).and_then(TraceId::from_traceparent);
        let sent = header(&REQUEST_ID)
            .map(str::trim)
            .filter(|id| is_printable(id));
        let sent_trace = sent.and_then(|id| TraceId::parse(id).ok());
        match (from_traceparent, sent_trace) {
            (Some(trace_id), _) => {
                let request_id = sent
                    .filter(|id| *id != trace_id.as_str())
                    .map(str::to_owned);
                RequestIdentity {
                    trace_id,
                    request_id,
                }
            }
            (None, Some(trace_id)) => RequestIdentity {
                trace_id,
                request_id: None,
            },
            (None, None) => RequestIdentity {
                trace_id: TraceId::generate(),
                request_id: sent.map(str::to_owned),
            },
        }
    }

    /// The `x-request-id` answer: the caller's own id if it sent one, else the trace id.
    fn echo(&self) -> HeaderValue {
        let value = self.request_id.as_deref().unwrap_or(self.trace_id.as_str());
        HeaderValue::from_str(value).expect("printable ASCII by construction")
    }
}

fn is_printable(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The trace id of the request being handled; a fresh one outside a request (a response built
/// outside the router must still carry a well-formed id).
pub fn current_trace_id() -> TraceId {
    CURRENT
        .try_with(TraceId::clone)
        .unwrap_or_else(|_| TraceId::generate())
}

/// The middleware: identity, a span for the request, and the `x-request-id` answer.
pub async fn identify(mut req: Request, next: Next) -> Response {
    let identity = RequestIdentity::from_headers(req.headers());
    // Route templates, not paths: ids in paths would make every request its own route.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = route.as_str(),
        trace_id = %identity.trace_id,
        request_id = identity.request_id.as_deref(),
        status = tracing::field::Empty,
        latency_us = tracing::field::Empty,
    );
    let echo = identity.echo();
    let trace_id = identity.trace_id.clone();
    req.extensions_mut().insert(identity);
    let started = Instant::now();
    let mut response = CURRENT
        .scope(trace_id, next.run(req))
        .instrument(span.clone())
        .await;
    let latency = started.elapsed();
    span.record("status", response.status().as_u16());
    span.record("latency_us", latency.as_micros() as u64);
    // Debug: at the default `info` an access line per request would cost more than it tells.
    tracing::debug!(parent: &span, "request finished");
    response.headers_mut().insert(REQUEST_ID, echo);
    response
}

/// Handlers take the identity like any extractor; without the middleware (never in the real
/// router) they get a fresh one rather than an error.
impl<S: Send + Sync> FromRequestParts<S> for RequestIdentity {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<RequestIdentity>()
            .cloned()
            .unwrap_or_else(|| RequestIdentity {
                trace_id: TraceId::generate(),
                request_id: None,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(pairs: &[(&'static str, &str)]) -> RequestIdentity {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        RequestIdentity::from_headers(&headers)
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_names_the_trace() {
        let id = identity(&[("traceparent", PARENT)]);
        assert_eq!(id.trace_id.as_str(), TRACE);
        assert_eq!(id.request_id, None);
        assert_eq!(id.echo(), TRACE);
    }

    #[test]
    fn a_hex_request_id_is_the_trace_id_lowercased() {
        let id = identity(&[("x-request-id", &TRACE.to_uppercase())]);
        assert_eq!(id.trace_id.as_str(), TRACE);
        assert_eq!(id.request_id, None);
    }

    #[test]
    fn another_request_id_is_kept_beside_a_generated_trace() {
        let id = identity(&[("x-request-id", "req-42")]);
        assert_eq!(id.request_id.as_deref(), Some("req-42"));
        assert_eq!(id.trace_id.as_str().len(), 32);
        assert_ne!(id.trace_id.as_str(), TRACE);
        assert_eq!(id.echo(), "req-42");
    }

    #[test]
    fn traceparent_wins_and_the_request_id_is_kept() {
        let id = identity(&[("traceparent", PARENT), ("x-request-id", "req-42")]);
        assert_eq!(id.trace_id.as_str(), TRACE);
        assert_eq!(id.request_id.as_deref(), Some("req-42"));
    }

    #[test]
    fn unusable_headers_are_ignored() {
        let long = "r".repeat(MAX_REQUEST_ID_LEN + 1);
        for pairs in [
            vec![(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )],
            vec![("traceparent", "garbage"), ("x-request-id", "has space")],
            vec![("x-request-id", long.as_str())],
            vec![],
        ] {
            let id = identity(&pairs);
            assert_eq!(id.request_id, None, "{pairs:?}");
            assert!(TraceId::parse(id.trace_id.as_str()).is_ok());
        }
        assert_ne!(identity(&[]).trace_id, identity(&[]).trace_id);
    }
}
