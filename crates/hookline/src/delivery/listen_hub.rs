//! Deliveries to `hookline listen` streams: an ephemeral subscription's target is
//! `https://listen.hookline.invalid/<subscription id>` (`.invalid` never resolves, RFC 2606), and
//! the attempt hands the signed request to the stream attached for that subscription instead of
//! POSTing it. The listener acknowledges each delivery with the status its receiver gave; that
//! status is the attempt's answer, so the log, retries and decisions are the same as for HTTP.
//!
//! Streams live in this process: an attempt made by a node that does not hold the stream fails
//! as a connection error and is retried like any other.

use hookline_core::{ErrorKind, SubscriptionId, TargetUrl};
use http::header::HeaderMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

use super::transport::{Answer, Failure};

/// The host of every listen target.
pub const LISTEN_HOST: &str = "listen.hookline.invalid";

/// Deliveries a stream may have waiting to be written before new attempts fail fast.
const STREAM_BUFFER: usize = 256;

/// A signed delivery on its way down a stream.
#[derive(Debug)]
pub struct Pushed {
    /// What the listener acknowledges it with.
    pub token: String,
    /// Every header the HTTP request would carry, signatures included.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the listener reported for a delivery.
#[derive(Debug, Clone)]
pub enum Ack {
    /// Its receiver answered with this status (and perhaps the start of a body).
    Answered { status: u16, body: Option<String> },
    /// Its receiver could not be reached.
    Failed { message: String },
}

#[derive(Default)]
struct Session {
    stream: Option<(u64, mpsc::Sender<Pushed>)>,
    waiting: HashMap<String, oneshot::Sender<Ack>>,
}

/// The streams attached in this process, by subscription. Cheap to clone.
#[derive(Clone, Default)]
pub struct ListenHub {
    sessions: Arc<Mutex<HashMap<SubscriptionId, Session>>>,
    /// The newest stream's generation of each session attached or in its grace: only the
    /// grace of the last stream to close ends a session.
    newest: Arc<Mutex<HashMap<SubscriptionId, u64>>>,
    counter: Arc<AtomicU64>,
}

/// Whether `target`'s host is the listen host, however it is spelled (a trailing dot names the
/// same host; the URL parser has lowercased it already).
pub fn is_listen_host(target: &TargetUrl) -> bool {
    let host = target.url().host_str().unwrap_or_default();
    host.trim_end_matches('.') == LISTEN_HOST
}

/// The subscription a listen target stands for, if `target` is one.
pub fn listen_target(target: &TargetUrl) -> Option<&str> {
    let url = target.url();
    (url.host_str() == Some(LISTEN_HOST)).then(|| url.path().trim_start_matches('/'))
}

/// The target URL of an ephemeral subscription.
pub fn listen_url(id: &SubscriptionId) -> String {
    format!("https://{LISTEN_HOST}/{id}")
}

impl ListenHub {
    /// Attaches a stream for `id`, replacing any earlier one (a reconnect). Returns its
    /// generation, for [`ListenHub::detach`], and the deliveries to write.
    pub fn attach(&self, id: &SubscriptionId) -> (u64, mpsc::Receiver<Pushed>) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let generation = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut sessions = self.sessions.lock().expect("not poisoned");
        let session = sessions.entry(id.clone()).or_default();
        if session.stream.is_some() {
            // A reconnect before the old stream was noticed gone: what it carried will not be
            // acknowledged, so those attempts fail now and are retried down the new stream.
            session.waiting.clear();
        }
        session.stream = Some((generation, tx));
        drop(sessions);
        self.newest
            .lock()
            .expect("not poisoned")
            .insert(id.clone(), generation);
        (generation, rx)
    }

    /// Whether a stream newer than `generation` has attached for `id` since: that stream's own
    /// end starts the grace that counts, so an older stream's grace must not end the session.
    pub fn superseded(&self, id: &SubscriptionId, generation: u64) -> bool {
        let newest = self.newest.lock().expect("not poisoned");
        newest.get(id).is_some_and(|g| *g > generation)
    }

    /// The grace after the stream of `generation` passed: the session is over.
    pub fn end(&self, id: &SubscriptionId, generation: u64) {
        let mut newest = self.newest.lock().expect("not poisoned");
        if newest.get(id) == Some(&generation) {
            newest.remove(id);
        }
    }

    /// The stream of `generation` ended. Deliveries it carried and nobody acknowledged fail
    /// now, so they are retried (on the next stream) rather than waiting out their timeout.
    pub fn detach(&self, id: &SubscriptionId, generation: u64) {
        let mut sessions = self.sessions.lock().expect("not poisoned");
        let Some(session) = sessions.get_mut(id) else {
            return;
        };
        if session
            .stream
            .as_ref()
            .is_some_and(|(g, _)| *g == generation)
        {
            session.stream = None;
            session.waiting.clear();
            sessions.remove(id);
        }
    }

    /// Records the listener's answer for `token`; false if nothing waits for it (unknown, timed
    /// out, or acknowledged already).
    pub fn ack(&self, id: &SubscriptionId, token: &str, ack: Ack) -> bool {
        let waiter = {
            let mut sessions = self.sessions.lock().expect("not poisoned");
            sessions.get_mut(id).and_then(|s| s.waiting.remove(token))
        };
        waiter.is_some_and(|w| w.send(ack).is_ok())
    }

    /// Sends one signed delivery down the stream for `id` and waits up to `timeout` for its
    /// acknowledgement.
    pub async fn deliver(
        &self,
        id: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let fail = |kind, message: &str| Failure {
            kind,
            message: message.to_owned(),
        };
        let id = SubscriptionId::from_stored(id);
        let token = self.counter.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, rx) = oneshot::channel();
        let stream = {
            let mut sessions = self.sessions.lock().expect("not poisoned");
            let session = sessions.get_mut(&id);
            match session.and_then(|s| s.stream.clone().map(|st| (s, st))) {
                Some((session, (_, stream))) => {
                    session.waiting.insert(token.clone(), tx);
                    stream
                }
                None => return Err(fail(ErrorKind::Connect, "no listener is attached")),
            }
        };
        let pushed = Pushed {
            token: token.clone(),
            headers: headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body,
        };
        if stream.try_send(pushed).is_err() {
            self.forget(&id, &token);
            return Err(fail(
                ErrorKind::Connect,
                "the listener's stream is full or closed",
            ));
        }
        let answer = tokio::time::timeout(timeout, rx).await;
        self.forget(&id, &token);
        match answer {
            Ok(Ok(Ack::Answered { status, body })) => Ok(Answer {
                status,
                headers: HeaderMap::new(),
                body,
            }),
            Ok(Ok(Ack::Failed { message })) => Err(fail(ErrorKind::Connect, &message)),
            Ok(Err(_)) => Err(fail(
                ErrorKind::Connect,
                "the listener disconnected before acknowledging",
            )),
            Err(_) => Err(fail(
                ErrorKind::Timeout,
                "the listener did not acknowledge in time",
            )),
        }
    }

    fn forget(&self, id: &SubscriptionId, token: &str) {
        let mut sessions = self.sessions.lock().expect("not poisoned");
        if let Some(s) = sessions.get_mut(id) {
            s.waiting.remove(token);
        }
    }
}
