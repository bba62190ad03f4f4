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
use http::header::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

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

/// No answer within the attempt's timeout (connecting included).
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
struct TimedOut(Duration);

type BoxError = Box<dyn StdError + Send + Sync>;

/// The connector's resolver: only permitted addresses are returned, so only they are dialled.
#[derive(Clone)]
struct GuardedResolver {
    policy: AddressPolicy,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
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
            Ok(allowed.into_iter())
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

type Connector = hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>;

/// hyper's pooled client over rustls, without a general-purpose client's layers (redirects,
/// proxies, retries, cookies, URL re-parsing): a delivery is one POST, and those layers were a
/// measurable share of an attempt's CPU.
pub struct Transport {
    client: Client<Connector, Full<Bytes>>,
    policy: AddressPolicy,
    timeout: Duration,
}

impl Transport {
    pub fn new(settings: &DeliverySettings) -> anyhow::Result<Self> {
        let policy = AddressPolicy::new(settings.ssrf_allow.clone());
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            policy: policy.clone(),
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(settings)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.receiver_idle_timeout)
            // Every in-flight attempt may target the same host (many subscriptions on one
            // provider): keep as many idle connections as attempts, or each extra one reconnects.
            .pool_max_idle_per_host(settings.max_in_flight)
            .build(connector);
        Ok(Transport {
            client,
            policy,
            timeout: settings.timeout,
        })
    }

    /// POSTs `body` to `target` without following redirects, and reads the start of the
    /// answer; the whole exchange, connecting included, within the delivery timeout.
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
        let uri: http::Uri = target.url().as_str().parse().map_err(|e| Failure {
            kind: ErrorKind::InvalidTarget,
            message: format!("the target URL is not a valid request URI: {e}"),
        })?;
        let mut request = http::Request::post(uri)
            .body(Full::new(Bytes::from(body)))
            .expect("a parsed URI and no other parts");
        *request.headers_mut() = headers;
        let deadline = Instant::now() + self.timeout;
        let response = match timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(failure(&e)),
            Err(_) => {
                return Err(Failure {
                    kind: ErrorKind::Timeout,
                    message: TimedOut(self.timeout).to_string(),
                })
            }
        };
        let (parts, body) = response.into_parts();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: read_capped(body, deadline).await,
        })
    }
}

/// The root certificates of a browser (webpki-roots, as the client had before), and
/// `HOOKLINE_EXTRA_ROOT_CERTS`; ALPN offers HTTP/2 and HTTP/1.1.
fn tls_config(settings: &DeliverySettings) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &settings.extra_root_certs {
        let pem = std::fs::read(path)?;
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert?)?;
            found += 1;
        }
        anyhow::ensure!(found > 0, "{} holds no PEM certificate", path.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn failure(e: &hyper_util::client::legacy::Error) -> Failure {
    Failure {
        kind: classify(e),
        message: describe(e),
    }
}

fn literal_ip(target: &TargetUrl) -> Option<IpAddr> {
    match target.url().host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// At most [`RESPONSE_BODY_CAP`] bytes of the body, as much as arrives by `deadline`.
async fn read_capped(mut body: hyper::body::Incoming, deadline: Instant) -> Option<String> {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < RESPONSE_BODY_CAP {
        match timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    buf.extend_from_slice(data);
                }
            }
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
fn classify(e: &hyper_util::client::legacy::Error) -> ErrorKind {
    let chain: Vec<&(dyn StdError + 'static)> = causes(e).collect();
    let any = |f: &dyn Fn(&(dyn StdError + 'static)) -> bool| chain.iter().any(|err| f(*err));
    let io_kind =
        |err: &(dyn StdError + 'static)| err.downcast_ref::<std::io::Error>().map(|io| io.kind());
    if any(&|err| err.is::<SsrfBlocked>()) {
        ErrorKind::SsrfBlocked
    } else if any(&|err| err.is::<DnsFailed>()) {
        ErrorKind::Dns
    } else if any(&|err| io_kind(err) == Some(std::io::ErrorKind::TimedOut)) {
        // The connect timeout (`HOOKLINE_CONNECT_TIMEOUT`); the attempt's own is `TimedOut`.
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
fn describe(e: &hyper_util::client::legacy::Error) -> String {
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

fn ca_used_as_end_entity(e: &hyper_util::client::legacy::Error) -> bool {
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
