//! The client: configuration, and one request with the retries of [`RetryPolicy`].

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use std::time::Duration;

use crate::error::{ApiError, Error, Result};
use crate::retry::RetryPolicy;

const USER_AGENT: &str = concat!("hookline-client/", env!("CARGO_PKG_VERSION"));

/// Which credential a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// The partner's API key (partner API).
    Partner,
    /// The operator's admin token (operator API).
    Admin,
}

/// A hookline API client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    api_key: Option<String>,
    admin_token: Option<String>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    admin_token: Option<String>,
    retry: RetryPolicy,
    timeout: Duration,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// The partner's API key, for the partner API.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The operator's admin token, for the operator API.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// How failed requests are retried (default: Linq's SDKs', 2 retries).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The whole-request timeout (default 60 s, as Linq's SDKs).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn build(self) -> Result<Client> {
        let mut base = Url::parse(&self.base_url)
            .map_err(|e| Error::Config(format!("invalid server URL '{}': {e}", self.base_url)))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "server URL '{}' must be http:// or https://",
                self.base_url
            )));
        }
        // Paths are appended segment by segment; a trailing slash would add an empty one.
        let trimmed = base.path().trim_end_matches('/').to_owned();
        base.set_path(&trimmed);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            api_key: self.api_key,
            admin_token: self.admin_token,
            retry: self.retry,
        })
    }
}

impl Client {
    /// A builder for a client of the server at `base_url` (e.g. `http://127.0.0.1:8080`; a
    /// path prefix such as `/api/partner` is kept for every call).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            admin_token: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The URL of `segments` under the base, each segment percent-encoded (ids cannot break out
    /// of their place in the path).
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked at build: the base can be a base")
            .extend(segments);
        url
    }

    /// Sends one request (retrying per the policy) and decodes the 2xx answer's JSON as `T`.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        auth: Auth,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let (status, bytes) = self.send_raw(auth, method, url, body).await?;
        // A 204 (or any empty 2xx) decodes as JSON null: `()` and `Option` accept it.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|source| Error::Decode { status, source })
    }

    /// The request with retries: the body is serialised once, before the first attempt, so
    /// every retry sends the same bytes (and the same event ids).
    pub(crate) async fn send_raw(
        &self,
        auth: Auth,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>)> {
        let mut retry = 0;
        loop {
            let mut req = self.request(auth, method.clone(), url.clone())?;
            if let Some(b) = &body {
                req = req.header(CONTENT_TYPE, "application/json").body(b.clone());
            }
            if method == Method::DELETE {
                req = req.header(ACCEPT, "*/*");
            }
            let failure = match req.send().await {
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    let headers = answer.headers().clone();
                    let bytes = answer.bytes().await.map_err(Error::Transport)?;
                    if (200..300).contains(&status) {
                        return Ok((status, bytes.to_vec()));
                    }
                    if retry >= self.retry.max_retries
                        || !RetryPolicy::should_retry(status, &headers)
                    {
                        let after = headers
                            .get(RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse().ok());
                        return Err(Error::Api(Box::new(ApiError::from_answer(
                            status, &bytes, after,
                        ))));
                    }
                    Some(headers)
                }
                Err(e) => {
                    // Connection failures and timeouts are retried; a request that could not
                    // be built would fail the same way again.
                    if retry >= self.retry.max_retries || e.is_builder() {
                        return Err(Error::Transport(e));
                    }
                    None
                }
            };
            tokio::time::sleep(self.retry.delay(retry, failure.as_ref())).await;
            retry += 1;
        }
    }

    /// A request with the credential `auth` names.
    pub(crate) fn request(
        &self,
        auth: Auth,
        method: Method,
        url: Url,
    ) -> Result<reqwest::RequestBuilder> {
        let credential = self.credential(auth)?;
        Ok(self.http.request(method, url).bearer_auth(credential))
    }

    fn credential(&self, auth: Auth) -> Result<&str> {
        match auth {
            Auth::Partner => self.api_key.as_deref().ok_or_else(|| {
                Error::Config("this call needs an API key (HOOKLINE_API_KEY)".into())
            }),
            Auth::Admin => self.admin_token.as_deref().ok_or_else(|| {
                Error::Config("this call needs the admin token (HOOKLINE_ADMIN_TOKEN)".into())
            }),
        }
    }
}

/// A request body as bytes.
pub(crate) fn json_body<B: serde::Serialize + ?Sized>(body: &B) -> Result<Option<Vec<u8>>> {
    serde_json::to_vec(body)
        .map(Some)
        .map_err(|e| Error::Config(format!("cannot serialise the request: {e}")))
}
