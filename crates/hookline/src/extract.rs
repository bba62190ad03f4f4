//! Request extractors that fail with our envelope, never axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use hookline_core::{ApiKey, ApiKeyHash};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::api::AppState;
use crate::error::ApiError;

/// JSON body with precise errors: the field path for wrong types, 1001 for missing fields,
/// 413 past the body limit. Unknown fields are ignored (SDKs may send extras).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// [`ApiJson`] for an optional body: no body, or JSON `null`, is `T::default()`.
pub struct OptionalApiJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        parse_optional_json(&bytes).map(OptionalApiJson)
    }
}

/// The whole body, or the envelope error for why it could not be read.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    // Bodies are read as sent: a compressed one would only fail as "malformed JSON".
    if let Some(coding) = req.headers().get(header::CONTENT_ENCODING) {
        let coding = coding.to_str().unwrap_or_default().trim();
        if !coding.eq_ignore_ascii_case("identity") {
            return Err(ApiError::InvalidBody(format!(
                "Content-Encoding '{}' is not supported: send the JSON body uncompressed",
                hookline_core::text::quote(coding)
            )));
        }
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("Request body is larger than the allowed limit".into())
        } else if timed_out(&rejection) {
            ApiError::RequestTimeout("Request body was not received in time".into())
        } else {
            ApiError::InvalidBody(format!("Could not read request body: {rejection}"))
        }
    })
}

/// The server ends a body that does not arrive in time with an `io::ErrorKind::TimedOut` error
/// (see `app::http`); it reaches us wrapped in axum's rejection.
fn timed_out(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(rejection);
    while let Some(error) = next {
        if error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = error.source();
    }
    false
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidBody(
            "Request body is empty; expected a JSON object".into(),
        ));
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Err(e) => ApiError::InvalidBody(format!("Malformed JSON: {e}")),
                Ok(_) => ApiError::InvalidBody("Request body must be a JSON object".into()),
            },
        );
    }
    // The common case, a valid body, takes serde_json's own path; serde_path_to_error (which
    // keeps every map key it passes, for the message) runs only to explain a failure.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| describe(&e))?;
    de.end()
        .map_err(|e| ApiError::InvalidBody(format!("Malformed JSON: {e}")))?;
    Ok(value)
}

/// A JSON body that may be left out: none (zero bytes) or `null` is `T::default()`. A blank
/// body is neither, nor JSON, and is refused like any malformed one: the OpenAPI document can
/// only say "no body, or this JSON" (Schemathesis sent a lone tab).
pub fn parse_optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() || bytes.trim_ascii() == b"null" {
        return Ok(T::default());
    }
    parse_json(bytes)
}

/// serde's sentence for a user: our type names are not theirs (`expected struct
/// PublishRequest`), and a quoted string value is cut like any quoted input.
fn tidy(msg: &str) -> String {
    let mut msg = match msg.find("expected struct ") {
        Some(at) => format!("{}expected a JSON object", &msg[..at]),
        None => msg.to_owned(),
    };
    const OPEN: &str = ": string \"";
    if let (Some(open), Some(close)) = (msg.find(OPEN), msg.rfind("\", expected")) {
        let start = open + OPEN.len();
        if close > start {
            msg = format!(
                "{}{}{}",
                &msg[..start],
                hookline_core::text::quote(&msg[start..close]),
                &msg[close..]
            );
        }
    }
    msg
}

fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = e.inner();
    let path = e.path().to_string();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::InvalidBody(format!("Malformed JSON: {inner}"));
    }
    let msg = inner.to_string();
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let full = if path == "." {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return ApiError::MissingField(full);
    }
    // serde_json appends " at line X column Y"; the field path says more.
    let msg = tidy(msg.split(" at line ").next().unwrap_or(&msg));
    let msg = msg.as_str();
    if path == "." {
        ApiError::InvalidBody(format!("Request body must be a JSON object ({msg})"))
    } else {
        ApiError::InvalidBody(format!("Invalid value for field '{path}': {msg}"))
    }
}

fn bearer(parts: &Parts) -> Option<ApiKey> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then(|| ApiKey::from_presented(token))
}

/// The client's address (the TCP peer), when the server recorded it (`ConnectInfo`).
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Runs `check` on the presented credential unless the throttle refuses the client first (429);
/// a failed check counts against the client (see [`crate::api::auth_throttle`]).
async fn authenticate<T, F>(parts: &Parts, state: &AppState, check: F) -> Result<T, ApiError>
where
    F: std::future::Future<Output = Result<Option<T>, ApiError>>,
{
    authenticate_client(client_ip(parts), state, check).await
}

/// [`authenticate`] for a credential that came in a body (the portal's sign-in form), from
/// the client at `client`.
pub async fn authenticate_client<T, F>(
    client: Option<IpAddr>,
    state: &AppState,
    check: F,
) -> Result<T, ApiError>
where
    F: std::future::Future<Output = Result<Option<T>, ApiError>>,
{
    let throttle = &state.auth_throttle;
    throttle
        .admit(client, Instant::now())
        .map_err(|t| ApiError::TooManyAuthFailures {
            retry_after_secs: t.retry_after_secs(),
        })?;
    match check.await? {
        Some(found) => Ok(found),
        None => {
            throttle.failed(client, Instant::now());
            Err(ApiError::Unauthorized)
        }
    }
}

/// The partner an API key belongs to. Unknown, revoked or missing keys are one 401; a key that
/// was presented and is wrong counts as a failed authentication (a missing one guesses nothing).
pub struct PartnerAuth(pub hookline_core::PartnerId);

impl FromRequestParts<AppState> for PartnerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(parts).ok_or(ApiError::Unauthorized)?;
        authenticate(parts, state, async {
            Ok::<_, ApiError>(state.store.partner_for_key(&key.hash()).await?)
        })
        .await
        .map(PartnerAuth)
    }
}

/// The operator, proven by the admin token (compared in constant time).
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let expected: &ApiKeyHash = &state.admin_hash;
        authenticate(parts, state, async {
            Ok::<_, ApiError>(expected.matches(&key).then_some(AdminAuth))
        })
        .await
    }
}

/// Path parameters. A path that does not decode (bad percent-escapes, invalid UTF-8) or holds
/// control characters names nothing that can exist: 404 in our envelope.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let path = parts.uri.path().to_owned();
        let not_found = || {
            ApiError::NotFound(format!(
                "No resource at {}",
                hookline_core::text::quote(&path)
            ))
        };
        let axum::extract::Path(params) =
            axum::extract::Path::<Vec<String>>::from_request_parts(parts, state)
                .await
                .map_err(|_| not_found())?;
        if params
            .iter()
            .any(|p| p.is_empty() || p.len() > 128 || p.chars().any(char::is_control))
        {
            return Err(not_found());
        }
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        Ok(ApiPath(value))
    }
}

/// `#[serde(deserialize_with = "whole_number")]` for an optional integer field: JSON Schema's
/// `integer` (the OpenAPI document's type for it) includes `4147.0`, and clients that build JSON
/// from floats send that; serde's integers would refuse it. Fractions and values out of `T`'s
/// range are refused with the value named.
pub fn whole_number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i128>,
{
    use serde::de::Error;
    use serde::Deserialize;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n
        .as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
        .or_else(|| {
            // Exactly representable whole floats only (2^53): anything larger is not exact.
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
                .map(|f| f as i128)
        })
        .ok_or_else(|| D::Error::custom(format!("invalid value: {n}, expected a whole number")))?;
    T::try_from(whole)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("invalid value: {n}, out of range")))
}
