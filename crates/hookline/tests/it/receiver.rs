//! A real HTTPS receiver on 127.0.0.1:0 that records every request and answers as scripted.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

struct Pki {
    ca_pem_path: PathBuf,
    leaf_der: CertificateDer<'static>,
    leaf_key: Vec<u8>,
    _dir: tempfile::TempDir,
}

/// One CA per test process; hookline trusts it through HOOKLINE_EXTRA_ROOT_CERTS.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_pem_path = dir.path().join("ca.pem");
        std::fs::write(&ca_pem_path, ca_cert.pem()).unwrap();
        Pki {
            ca_pem_path,
            leaf_der: leaf_cert.der().clone(),
            leaf_key: leaf_key.serialize_der(),
            _dir: dir,
        }
    })
}

pub fn ca_pem_path() -> PathBuf {
    pki().ca_pem_path.clone()
}

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Held until the test opens it (`Gate::open`), for a reply whose timing a test controls.
    pub gate: Option<Gate>,
}

/// A reply held until the test says so: nothing depends on how long anything takes.
#[derive(Clone, Debug)]
pub struct Gate(std::sync::Arc<tokio::sync::Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Gate(std::sync::Arc::new(tokio::sync::Semaphore::new(0)))
    }
}

impl Gate {
    pub fn open(&self) {
        self.0.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
            headers: Vec::new(),
            body: String::new(),
            gate: None,
        }
    }
    pub fn ok() -> Reply {
        Reply::status(200)
    }
    pub fn held(mut self, gate: &Gate) -> Reply {
        self.gate = Some(gate.clone());
        self
    }
    pub fn delayed(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, b: &str) -> Reply {
        self.body = b.into();
        self
    }
}

#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub query: Option<String>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    scripts: Mutex<HashMap<String, VecDeque<Reply>>>,
    defaults: Mutex<HashMap<String, Reply>>,
    arrived: Notify,
    overlaps: OverlapTracker,
}

/// Opt-in (see [`TestReceiver::track_overlaps`]): requests in flight per `webhook-id`, and the
/// arrivals that came while another request with the same `webhook-id` was still in flight —
/// the same delivery sent twice at once.
#[derive(Default)]
struct OverlapTracker {
    enabled: AtomicBool,
    in_flight: Mutex<HashMap<String, usize>>,
    overlapping: Mutex<Vec<String>>,
    peak: AtomicUsize,
}

/// Held while one tracked request is handled; dropped when the handler finishes or is dropped
/// (connection gone), which ends the request's time in flight.
struct InFlightGuard {
    state: Arc<Inner>,
    id: String,
}

impl InFlightGuard {
    fn arrive(state: &Arc<Inner>, id: String) -> InFlightGuard {
        let t = &state.overlaps;
        let mut in_flight = t.in_flight.lock().unwrap();
        let n = in_flight.entry(id.clone()).or_default();
        if *n > 0 {
            t.overlapping.lock().unwrap().push(id.clone());
        }
        *n += 1;
        t.peak.fetch_max(in_flight.len(), Ordering::Relaxed);
        InFlightGuard {
            state: state.clone(),
            id,
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut in_flight = self.state.overlaps.in_flight.lock().unwrap();
        if let Some(n) = in_flight.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(&self.id);
            }
        }
    }
}

#[derive(Clone)]
pub struct TestReceiver {
    pub port: u16,
    inner: Arc<Inner>,
}

impl TestReceiver {
    pub async fn start() -> TestReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pki = pki();
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.leaf_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.leaf_key.clone())),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let inner = Arc::new(Inner::default());
        let state = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TestReceiver { port, inner }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Replies for the next requests to `path`, in order; then the path's default.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.inner
            .scripts
            .lock()
            .unwrap()
            .insert(path.into(), replies.into());
    }

    pub fn set_default(&self, path: &str, reply: Reply) {
        self.inner
            .defaults
            .lock()
            .unwrap()
            .insert(path.into(), reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Starts tracking requests in flight per `webhook-id` header (see [`Self::overlapping_arrivals`]).
    pub fn track_overlaps(&self) {
        self.inner.overlaps.enabled.store(true, Ordering::SeqCst);
    }

    /// The `webhook-id` of every tracked arrival that came while another request with the same
    /// `webhook-id` was still being handled (one entry per such arrival).
    pub fn overlapping_arrivals(&self) -> Vec<String> {
        self.inner.overlaps.overlapping.lock().unwrap().clone()
    }

    /// The most distinct `webhook-id`s seen in flight at once (shows the tracker saw concurrency).
    pub fn peak_in_flight_ids(&self) -> usize {
        self.inner.overlaps.peak.load(Ordering::Relaxed)
    }

    /// Runs `f` on everything received so far, under the lock (no copy).
    pub fn with_received<R>(&self, f: impl FnOnce(&[Received]) -> R) -> R {
        f(&self.inner.received.lock().unwrap())
    }

    /// Waits until `done` holds for what was received (re-checked on every arrival); returns
    /// false if `timeout` passes first.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.arrived.notified();
            if self.with_received(&mut done) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.with_received(&mut done);
            }
        }
    }

    /// Waits until `path` (or any path, with `None`) has received `n` requests.
    pub async fn wait_for(&self, path: Option<&str>, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.arrived.notified();
            let got: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|r| path.is_none_or(|p| r.path == p))
                .collect();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                if n == usize::MAX {
                    return got;
                }
                panic!(
                    "timed out waiting for {n} requests at {path:?}; got {}",
                    got.len()
                );
            }
        }
    }
}

async fn handle(
    state: Arc<Inner>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let _in_flight = state.overlaps.enabled.load(Ordering::SeqCst).then(|| {
        let id = req
            .headers()
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        InFlightGuard::arrive(&state, id)
    });
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers = req.headers().clone();
    let body = req.into_body().collect().await?.to_bytes();
    let reply = {
        let mut scripts = state.scripts.lock().unwrap();
        scripts
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .or_else(|| state.defaults.lock().unwrap().get(&path).cloned())
            .unwrap_or_else(Reply::ok)
    };
    state.received.lock().unwrap().push(Received {
        path,
        query,
        headers,
        body,
        at: Instant::now(),
    });
    state.arrived.notify_waiters();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if let Some(gate) = &reply.gate {
        drop(gate.0.acquire().await);
    }
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(k, v);
    }
    Ok(resp.body(Full::new(Bytes::from(reply.body))).unwrap())
}
