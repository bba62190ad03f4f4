//! What a call can fail with: the server's error envelope, or no usable answer at all.

use serde_json::Value;
use std::fmt;

/// The documented error envelope of a non-2xx answer:
/// `{"success":false,"error":{"status","code","message","doc_url"},"trace_id"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// Linq's numeric error code (e.g. 1005); `None` if the answer was not an envelope.
    pub code: Option<u64>,
    /// The server's message, or the raw body if it was not an envelope.
    pub message: String,
    /// The request's trace id: quote it when reporting a problem (it is in the server's logs).
    pub trace_id: Option<String>,
    /// Link to the code's documentation.
    pub doc_url: Option<String>,
    /// Seconds to wait, when the server said (`Retry-After`).
    pub retry_after: Option<u64>,
    /// The whole body as received (JSON), for anything not above.
    pub body: Value,
}

impl ApiError {
    /// Reads the envelope from a non-2xx answer's body; a body that is not one still yields an
    /// error carrying the status and the text.
    pub(crate) fn from_answer(status: u16, body: &[u8], retry_after: Option<u64>) -> ApiError {
        let value: Value = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        let inner = value.get("error");
        let field = |name: &str| inner.and_then(|e| e.get(name));
        ApiError {
            status,
            code: field("code").and_then(Value::as_u64),
            message: field("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| match &value {
                    Value::String(s) if !s.is_empty() => s.clone(),
                    Value::Null | Value::String(_) => format!("HTTP {status}"),
                    other => other.to_string(),
                }),
            trace_id: value
                .get("trace_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            doc_url: field("doc_url").and_then(Value::as_str).map(str::to_owned),
            retry_after: field("retry_after").and_then(Value::as_u64).or(retry_after),
            body: value,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(code) = self.code {
            write!(f, "/{code}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(t) = &self.trace_id {
            write!(f, " (trace id {t})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error (after any retries).
    Api(Box<ApiError>),
    /// No answer: connection refused or reset, timeout, TLS, DNS (after any retries).
    Transport(reqwest::Error),
    /// A 2xx answer whose body is not what the API documents.
    Decode {
        /// The HTTP status of the answer.
        status: u16,
        /// Why it did not decode.
        source: serde_json::Error,
    },
    /// The client is missing what this call needs (an API key, an admin token, a valid URL).
    Config(String),
}

impl Error {
    /// The envelope, when the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api(e) => e.fmt(f),
            Error::Transport(e) => write!(f, "no answer from the server: {e}"),
            Error::Decode { status, source } => {
                write!(f, "unexpected answer ({status}): {source}")
            }
            Error::Config(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Api(e) => Some(e.as_ref()),
            Error::Transport(e) => Some(e),
            Error::Decode { source, .. } => Some(source),
            Error::Config(_) => None,
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_read() {
        let body = br#"{"success":false,"error":{"status":409,"code":1005,"message":"taken","doc_url":"https://d"},"trace_id":"abc"}"#;
        let e = ApiError::from_answer(409, body, None);
        assert_eq!(e.code, Some(1005));
        assert_eq!(e.message, "taken");
        assert_eq!(e.trace_id.as_deref(), Some("abc"));
        assert_eq!(e.to_string(), "409/1005: taken (trace id abc)");
    }

    #[test]
    fn non_envelope_bodies_keep_the_text() {
        let e = ApiError::from_answer(502, b"bad gateway", Some(3));
        assert_eq!(e.code, None);
        assert_eq!(e.message, "bad gateway");
        assert_eq!(e.retry_after, Some(3));
        assert_eq!(ApiError::from_answer(500, b"", None).message, "HTTP 500");
    }
}
