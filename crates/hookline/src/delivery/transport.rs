//! HTTP transport: one POST to a receiver, guarded against SSRF, with the timeouts and the
//! idle-connection pool of the whole process, and why it failed when it did.
//!
//! The guard runs on the addresses actually connected to: hostnames go through
//! [`GuardedResolver`], whose answer is what the connector dials (no DNS-rebinding window),
//! and IP-literal hosts, which skip the resolver, are checked before sending. Failures are
//! classified from the typed errors in the cause chain, never from message text.

use bytes::Bytes;
use hookline_core::ssrf::AddressPolicy;
use hookline_core::{ErrorKind, TargetUrl};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::DeliverySettings;

/// How much of a receiver's answer the attempt log keeps; nothing past it is read.
pub const RESPONSE_BODY_CAP: usize = 4096;

/// The resolver refused every address a host resolves to.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SsrfBlocked(String);

/// The host did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DnsFailed(String);

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

/// A receiver's answer: its status, its headers, and the start of its body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// At most [`RESPONSE_BODY_CAP`] bytes, lossily decoded; `None` when empty.
    pub body: Option<String>,
}

/// No answer came.
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    /// The cause chain, for the attempt log.
    pub message: String,
}

pub struct Transport {
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl Transport {
    pub fn new(settings: &DeliverySettings) -> anyhow::Result<Self> {
        let policy = AddressPolicy::new(settings.ssrf_allow.clone());
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the target itself, around the guarded resolver.
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(settings.receiver_idle_timeout)
            // Every in-flight attempt may target the same host (many subscriptions on one
            // provider): keep as many idle connections as attempts, or each extra one reconnects.
            .pool_max_idle_per_host(settings.max_in_flight)
            .tcp_nodelay(true)
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }));
        if let Some(path) = &settings.extra_root_certs {
            let pem = std::fs::read(path)?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Transport {
            client: builder.build()?,
            policy,
        })
    }

    /// POSTs `body` to `target` without following redirects, and reads the start of the answer.
    pub async fn post(
        &self,
        target: &TargetUrl,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answer, Failure> {
        if let Some(ip) = literal_ip(target) {
            if !self.policy.permits(ip) {
                return Err(Failure {
                    kind: ErrorKind::SsrfBlocked,
                    message: format!(
                        "{ip} is a refused address; allow it with HOOKLINE_SSRF_ALLOW"
                    ),
                });
            }
        }
        let sent = self
            .client
            .post(target.url().clone())
            .headers(headers)
            .body(Bytes::from(body))
            .send()
            .await;
        let mut response = sent.map_err(|e| {
            let e = e.without_url();
            Failure {
                kind: classify(&e),
                message: describe(&e),
            }
        })?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        Ok(Answer {
            status,
            headers,
            body: read_capped(response).await,
        })
    }
}

fn literal_ip(target: &TargetUrl) -> Option<IpAddr> {
    match target.url().host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
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

/// Every error in the cause chain. An `io::Error` wrapping another error reports that error's
/// *source* as its own, skipping the wrapped error itself (how rustls errors travel): the walk
/// steps into the wrapped error instead, so it can be downcast.
fn causes<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&err: &&'a (dyn StdError + 'static)| {
        match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        }
    })
}

/// Why a request got no answer, from the typed errors in its cause chain. The guard's own
/// verdicts come first (they explain any connect error that follows), then timeouts, then TLS,
/// then plain connection trouble.
fn classify(e: &reqwest::Error) -> ErrorKind {
    let chain: Vec<&(dyn StdError + 'static)> = causes(e).collect();
    let any = |f: &dyn Fn(&(dyn StdError + 'static)) -> bool| chain.iter().any(|err| f(*err));
    let io_kind =
        |err: &(dyn StdError + 'static)| err.downcast_ref::<std::io::Error>().map(|io| io.kind());
    if any(&|err| err.is::<SsrfBlocked>()) {
        ErrorKind::SsrfBlocked
    } else if any(&|err| err.is::<DnsFailed>()) {
        ErrorKind::Dns
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if any(&|err| err.is::<rustls::Error>())
        // The only bytes read while connecting are the TLS handshake's: the peer closing then
        // is a failed handshake (tokio-rustls reports it as a bare `UnexpectedEof`).
        || (e.is_connect() && any(&|err| io_kind(err) == Some(std::io::ErrorKind::UnexpectedEof)))
    {
        ErrorKind::Tls
    } else if e.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Other
    }
}

/// The cause chain as one line, for the attempt log, with what to do where the cause is a
/// common set-up mistake.
fn describe(e: &reqwest::Error) -> String {
    let mut chain: Vec<String> = Vec::new();
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = source {
        chain.push(err.to_string());
        source = err.source();
    }
    let mut line = chain.join(": ");
    if ca_used_as_end_entity(e) {
        line.push_str(CA_AS_SERVER_CERT_HINT);
    }
    line
}

/// `openssl req -x509` makes a CA certificate (basicConstraints CA:TRUE) by default; rustls, like
/// browsers, refuses one as a server's own certificate. The check stays strict; the log says how
/// to make a certificate that works (README, "Delivery contract").
const CA_AS_SERVER_CERT_HINT: &str = " (the receiver presents a CA certificate, basicConstraints \
     CA:TRUE, as its own: use a leaf certificate, e.g. `openssl req -x509 ... -addext \
     basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:<host>`, or one signed by \
     your CA, and trust it with HOOKLINE_EXTRA_ROOT_CERTS)";

fn ca_used_as_end_entity(e: &reqwest::Error) -> bool {
    causes(e).any(|err| match err.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            )
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests;
