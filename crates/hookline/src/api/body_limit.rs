//! Body limits that act before the body is read. axum's `DefaultBodyLimit` counts bytes as they
//! arrive, so a client that declares a body over the limit would be told `100 Continue` and made
//! to upload up to the limit before hearing 413. This refuses it from the headers alone.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// 413 in the envelope when `Content-Length` is over `limit`, before a byte of the body is
/// read. hyper sends `100 Continue` only once a handler polls the body, so none goes out here;
/// hyper then closes the connection rather than read the unwanted body.
pub async fn refuse_declared_oversize(
    State(limit): State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => ApiError::PayloadTooLarge(format!(
            "Request body of {length} bytes is larger than the limit of {limit} bytes"
        ))
        .into_response(),
        _ => next.run(req).await,
    }
}
