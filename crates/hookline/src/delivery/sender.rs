//! One signed HTTP POST to a receiver, guarded against SSRF.
//!
//! The guard runs on the addresses actually connected to: hostnames go through
//! [`GuardedResolver`], whose answer is what the connector dials (no DNS-rebinding window),
//! and IP-literal hosts, which skip the resolver, are checked before sending.

use bytes::Bytes;
use hookline_core::envelope::Envelope;
use hookline_core::sealing::{self, Keyring};
use hookline_core::ssrf::AddressPolicy;
use hookline_core::time::now_micros;
use hookline_core::{SigningSecret, TargetUrl};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::outcome::{classify_status, parse_retry_after, ErrorKind, Verdict};
use crate::config::Settings;
use crate::store::DueDelivery;

/// How much of a receiver's answer the attempt log keeps; nothing past it is read.
pub const RESPONSE_BODY_CAP: usize = 4096;
pub use hookline_core::DEFAULT_ROUTING_ID_HEADER;
pub const USER_AGENT_VALUE: &str = concat!("hookline/", env!("CARGO_PKG_VERSION"));

#[derive(Debug)]
struct SsrfBlocked(String);
impl std::fmt::Display for SsrfBlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl StdError for SsrfBlocked {}

#[derive(Debug)]
struct DnsFailed(String);
impl std::fmt::Display for DnsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl StdError for DnsFailed {}

struct GuardedResolver {
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| DnsFailed(format!("could not resolve {host}: {e}")))?
                .collect();
            if addrs.is_empty() {
                return Err(DnsFailed(format!("{host} has no addresses")).into());
            }
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if allowed.is_empty() {
                let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                return Err(SsrfBlocked(format!(
                    "{host} resolves only to refused addresses ({}); allow them with HOOKLINE_SSRF_ALLOW",
                    list.join(", ")
                ))
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The result of one attempt, before the retry schedule is applied.
#[derive(Debug)]
pub struct AttemptResult {
    pub started_at: i64,
    pub duration: Duration,
    pub status_code: Option<u16>,
    pub error_kind: Option<ErrorKind>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
    pub verdict: Verdict,
    /// Delivery affinity: the routing token in a 2xx answer's `routing_key_header`.
    pub routing_token: Option<String>,
}

/// Delivery affinity for one delivery (CONTRACT.md §3.6): the chat it is for and the token
/// last learned for that chat, if any.
#[derive(Debug, Clone)]
pub struct Affinity {
    pub chat_id: String,
    pub token: Option<String>,
}

/// Longest routing token kept; a longer one is ignored rather than echoed.
const ROUTING_TOKEN_CAP: usize = 1024;

/// The chat a delivery is for, when its subscription asked for delivery affinity
/// (`routing_key_header` set) and the event concerns a chat.
pub fn affinity_chat(d: &DueDelivery) -> Option<String> {
    d.routing_key_header.as_ref()?;
    chat_id(&d.data)
}

pub struct Sender {
    client: reqwest::Client,
    policy: AddressPolicy,
    sealing: Option<Keyring>,
    /// Parsed target and key per subscription: parsing both on every attempt is measurable.
    prepared: std::sync::Mutex<HashMap<String, Arc<Prepared>>>,
}

/// Subscriptions cached before the cache is dropped and rebuilt; bounds memory.
const PREPARED_CAP: usize = 10_000;

struct Prepared {
    raw_url: String,
    raw_secret: String,
    target: TargetUrl,
    secret: SigningSecret,
}

impl Sender {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let policy = AddressPolicy::new(settings.delivery.ssrf_allow.clone());
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the target itself, around the guarded resolver.
            .no_proxy()
            .timeout(settings.delivery.timeout)
            .connect_timeout(settings.delivery.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // Every in-flight attempt may target the same host (many subscriptions on one
            // provider): keep as many idle connections as attempts, or each extra one reconnects.
            .pool_max_idle_per_host(settings.delivery.max_in_flight)
            .tcp_nodelay(true)
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }));
        if let Some(path) = &settings.delivery.extra_root_certs {
            let pem = std::fs::read(path)?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Sender {
            client: builder.build()?,
            policy,
            sealing: settings.secrets.keys.clone(),
            prepared: Default::default(),
        })
    }

    fn prepare(&self, d: &DueDelivery) -> Result<Arc<Prepared>, (ErrorKind, String)> {
        let mut cache = self.prepared.lock().expect("not poisoned");
        if let Some(p) = cache.get(d.subscription_id.as_str()) {
            if p.raw_url == d.target_url && p.raw_secret == d.signing_secret {
                return Ok(p.clone());
            }
        }
        let target = TargetUrl::parse(&d.target_url, true)
            .map_err(|e| (ErrorKind::InvalidTarget, e.to_string()))?;
        let plain = self
            .unseal(d)
            .map_err(|message| (ErrorKind::SecretUnavailable, message))?;
        let secret =
            SigningSecret::parse(&plain).map_err(|e| (ErrorKind::InvalidTarget, e.to_string()))?;
        let p = Arc::new(Prepared {
            raw_url: d.target_url.clone(),
            raw_secret: d.signing_secret.clone(),
            target,
            secret,
        });
        if cache.len() >= PREPARED_CAP {
            cache.clear();
        }
        cache.insert(d.subscription_id.to_string(), p.clone());
        Ok(p)
    }

    /// The signing secret as issued: opened when it is stored sealed (see `hookline_core::sealing`).
    fn unseal(&self, d: &DueDelivery) -> Result<String, String> {
        if !sealing::is_sealed(&d.signing_secret) {
            return Ok(d.signing_secret.clone());
        }
        let keys = self.sealing.as_ref().ok_or_else(|| {
            "the signing secret is sealed and HOOKLINE_SECRET_KEY is not set".to_owned()
        })?;
        keys.open(&d.signing_secret, d.subscription_id.as_str())
            .map(|(plain, _)| plain)
            .map_err(|e| e.to_string())
    }

    pub async fn send(&self, d: &DueDelivery, affinity: Option<&Affinity>) -> AttemptResult {
        let started_at = now_micros();
        let clock = Instant::now();
        let failed = |kind: ErrorKind, message: String| AttemptResult {
            started_at,
            duration: clock.elapsed(),
            status_code: None,
            error_kind: Some(kind),
            error_message: Some(message),
            response_body: None,
            verdict: if kind.is_retryable() {
                Verdict::Retry { after: None }
            } else {
                Verdict::Permanent
            },
            routing_token: None,
        };

        let prepared = match self.prepare(d) {
            Ok(p) => p,
            Err((kind, message)) => return failed(kind, message),
        };
        let (target, secret) = (&prepared.target, &prepared.secret);
        if let Some(ip) = literal_ip(target) {
            if !self.policy.permits(ip) {
                return failed(
                    ErrorKind::SsrfBlocked,
                    format!("{ip} is a refused address; allow it with HOOKLINE_SSRF_ALLOW"),
                );
            }
        }
        let body = Envelope {
            webhook_version: target.webhook_version().as_str(),
            event_type: d.event_type.as_str(),
            event_id: d.event_id.as_str(),
            created_at: d.created_at.as_str(),
            trace_id: d.trace_id.as_str(),
            partner_id: d.partner_id.as_str(),
            data: &d.data,
        }
        .render();
        let timestamp = chrono::Utc::now().timestamp();
        let mut headers = signed_headers(d, secret, timestamp, &body);
        if let Some(a) = affinity {
            affinity_headers(&mut headers, d, a);
        }

        let response = self
            .client
            .post(target.url().clone())
            .headers(headers)
            .body(Bytes::from(body))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let (kind, message) = classify_error(&e.without_url());
                return failed(kind, message);
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let verdict = classify_status(status, retry_after);
        let routing_token = (verdict == Verdict::Delivered)
            .then(|| returned_token(d, response.headers()))
            .flatten();
        let response_body = read_capped(response).await;
        let error_kind = match status {
            200..=299 => None,
            300..=399 => Some(ErrorKind::Redirect),
            _ => Some(ErrorKind::HttpStatus),
        };
        AttemptResult {
            started_at,
            duration: clock.elapsed(),
            status_code: Some(status),
            error_kind,
            error_message: error_kind.map(|_| format!("receiver answered {status}")),
            response_body,
            verdict,
            routing_token,
        }
    }
}

/// The token a receiver returned in the subscription's `routing_key_header`, if usable.
fn returned_token(d: &DueDelivery, headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(d.routing_key_header.as_ref()?.as_str())?
        .to_str()
        .ok()?;
    (!value.is_empty() && value.len() <= ROUTING_TOKEN_CAP).then(|| value.to_owned())
}

/// The chat id in `routing_id_header` (`Linq-Chat-Id` unless the subscription names another),
/// and the learned token, if any, in `routing_key_header`. Before a token is learned the
/// routing key header is left out.
fn affinity_headers(h: &mut HeaderMap, d: &DueDelivery, a: &Affinity) {
    let id_header = d
        .routing_id_header
        .as_ref()
        .map_or(DEFAULT_ROUTING_ID_HEADER, |h| h.as_str());
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(id_header.as_bytes()),
        HeaderValue::from_str(&a.chat_id),
    ) {
        h.insert(name, value);
    }
    if let (Some(key_header), Some(token)) = (d.routing_key_header.as_ref(), &a.token) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key_header.as_str().as_bytes()),
            HeaderValue::from_str(token),
        ) {
            h.insert(name, value);
        }
    }
}

fn literal_ip(target: &TargetUrl) -> Option<IpAddr> {
    match target.url().host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Both header sets of CONTRACT.md §3.1, from one clock reading.
pub fn signed_headers(
    d: &DueDelivery,
    secret: &SigningSecret,
    timestamp: i64,
    body: &[u8],
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(10);
    let ts = HeaderValue::from(timestamp);
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    h.insert("webhook-id", value(d.event_id.as_str()));
    h.insert("webhook-timestamp", ts.clone());
    h.insert(
        "webhook-signature",
        value(&secret.sign_standard(d.event_id.as_str(), timestamp, body)),
    );
    h.insert("x-webhook-event", value(d.event_type.as_str()));
    h.insert(
        "x-webhook-subscription-id",
        value(d.subscription_id.as_str()),
    );
    h.insert("x-webhook-timestamp", ts);
    h.insert(
        "x-webhook-signature",
        value(&secret.sign_legacy(timestamp, body)),
    );
    h
}

fn chat_id(data: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        chat_id: Option<String>,
        chat: Option<Chat>,
    }
    #[derive(serde::Deserialize)]
    struct Chat {
        id: Option<String>,
    }
    let p: Probe = serde_json::from_str(data).ok()?;
    p.chat_id.or(p.chat.and_then(|c| c.id))
}

async fn read_capped(mut response: reqwest::Response) -> Option<String> {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < RESPONSE_BODY_CAP {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    buf.truncate(RESPONSE_BODY_CAP);
    (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned())
}

fn classify_error(e: &reqwest::Error) -> (ErrorKind, String) {
    let mut chain: Vec<String> = Vec::new();
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    let mut kind = None;
    while let Some(err) = source {
        if err.is::<SsrfBlocked>() {
            kind = Some(ErrorKind::SsrfBlocked);
        } else if err.is::<DnsFailed>() && kind.is_none() {
            kind = Some(ErrorKind::Dns);
        }
        chain.push(err.to_string());
        source = err.source();
    }
    let message = chain.join(": ");
    let lower = message.to_ascii_lowercase();
    let kind = kind.unwrap_or(if e.is_timeout() {
        ErrorKind::Timeout
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        ErrorKind::Tls
    } else if e.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Other
    });
    (kind, message)
}
