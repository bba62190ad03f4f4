//! The loopback receiver: a bare hyper HTTP/1.1 server that answers every delivery `200` with an
//! empty body and records, per unique `(path, event_id)`, the arrival time and the latency from
//! the publisher's `data.sent_at_us`.

use crate::now_us;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

#[derive(Deserialize)]
struct Envelope {
    event_id: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    sent_at_us: u64,
}

#[derive(Default)]
struct Inner {
    seen: HashSet<(String, String)>,
    latencies_us: Vec<u64>,
    last_us: u64,
}

#[derive(Default)]
pub struct State {
    inner: Mutex<Inner>,
    unique: AtomicU64,
    duplicates: AtomicU64,
    unparsable: AtomicU64,
}

/// What the receiver saw, taken at the end of a run.
pub struct Snapshot {
    pub unique: u64,
    pub duplicates: u64,
    pub unparsable: u64,
    /// Arrival time (unix µs) of the last unique delivery.
    pub last_us: u64,
    /// Arrival − `sent_at_us` of every unique timed delivery, sorted ascending.
    pub latencies_us: Vec<u64>,
}

impl State {
    fn record(&self, path: &str, body: &[u8], arrived_us: u64) {
        let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
            self.unparsable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut inner = self.inner.lock().expect("receiver lock");
        if !inner.seen.insert((path.to_owned(), env.event_id)) {
            drop(inner);
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // `sent_at_us` 0: not a timed event (the recovery scenario's seeded ones).
        if env.data.sent_at_us > 0 {
            inner
                .latencies_us
                .push(arrived_us.saturating_sub(env.data.sent_at_us));
        }
        inner.last_us = inner.last_us.max(arrived_us);
        drop(inner);
        self.unique.fetch_add(1, Ordering::Release);
    }

    /// The latencies of the unique deliveries after the first `from` (in arrival order), and
    /// how many there are in all: `since(n)` again with that count gives the next ones.
    pub fn since(&self, from: usize) -> (usize, Vec<u64>) {
        let inner = self.inner.lock().expect("receiver lock");
        let all = &inner.latencies_us;
        (all.len(), all[from.min(all.len())..].to_vec())
    }

    pub fn unique(&self) -> u64 {
        self.unique.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock().expect("receiver lock");
        let mut latencies_us = inner.latencies_us.clone();
        latencies_us.sort_unstable();
        Snapshot {
            unique: self.unique(),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            unparsable: self.unparsable.load(Ordering::Relaxed),
            last_us: inner.last_us,
            latencies_us,
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Empty<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_owned();
    let body = req.into_body().collect().await?.to_bytes();
    state.record(&path, &body, now_us());
    Ok(Response::new(Empty::new()))
}

/// Binds 127.0.0.1:0 and serves until the process exits.
pub async fn start() -> anyhow::Result<(SocketAddr, Arc<State>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State::default());
    let shared = state.clone();
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors or similar: back off briefly.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let state = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(req, state.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, state))
}
