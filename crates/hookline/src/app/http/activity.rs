//! What one connection is doing, as far as its timeouts and the connection cap care: waiting
//! for a request head (due by a deadline) or in a request (the service is running; the body
//! has its own deadline, see `body`). The service marks requests in and out, the socket wrapper
//! marks the first byte of a head, and the connection's task closes the connection when a
//! deadline passes: hyper may not poll the socket of an idle connection at all, so the
//! deadline cannot live in the socket wrapper alone.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::config::ConnectionSettings;

pub(super) struct Activity {
    phase: Mutex<Phase>,
    /// Wakes the watchdog when a deadline is set earlier than the one it sleeps to.
    changed: Notify,
    header_timeout: Duration,
    pub(super) idle_timeout: Duration,
    /// Cancelled when the connection table closes this connection to admit a newer one.
    pub(super) evict: CancellationToken,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// The next request head must be complete by `deadline`. `head_started`: bytes of it have
    /// arrived (the header timeout runs), else the connection idles (the idle timeout runs).
    Waiting {
        deadline: Instant,
        head_started: bool,
    },
    InRequest,
}

impl Activity {
    /// A connection just accepted: its first request head is due a header timeout from now.
    pub(super) fn new(limits: &ConnectionSettings) -> Arc<Activity> {
        Arc::new(Activity {
            phase: Mutex::new(Phase::Waiting {
                deadline: Instant::now() + limits.header_read_timeout,
                head_started: true,
            }),
            changed: Notify::new(),
            header_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            evict: CancellationToken::new(),
        })
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        // A phase is always whole: a panic elsewhere cannot leave it half-written.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn in_request(&self) -> bool {
        *self.phase() == Phase::InRequest
    }

    /// Marks a request in progress until the guard is dropped (also if its future is dropped).
    pub(super) fn begin_request(self: &Arc<Self>) -> InRequest {
        *self.phase() = Phase::InRequest;
        InRequest(self.clone())
    }

    /// Bytes arrived: if the connection was idle, they start a request head, due a header
    /// timeout from now.
    pub(super) fn bytes_read(&self) {
        let mut phase = self.phase();
        if let Phase::Waiting {
            head_started: false,
            ..
        } = *phase
        {
            *phase = Phase::Waiting {
                deadline: Instant::now() + self.header_timeout,
                head_started: true,
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// Resolves when the connection has waited past its deadline, naming which one.
    pub(super) async fn expired(&self) -> &'static str {
        loop {
            let changed = self.changed.notified();
            let phase = *self.phase();
            match phase {
                Phase::InRequest => changed.await,
                Phase::Waiting {
                    deadline,
                    head_started,
                } => {
                    tokio::select! {
                        () = sleep_until(deadline) => {
                            if *self.phase() == phase {
                                return if head_started {
                                    "no whole request head within the header-read timeout"
                                } else {
                                    "idle past the keep-alive timeout"
                                };
                            }
                        }
                        () = changed => {}
                    }
                }
            }
        }
    }
}

pub(super) struct InRequest(Arc<Activity>);

impl Drop for InRequest {
    fn drop(&mut self) {
        let activity = &self.0;
        *activity.phase() = Phase::Waiting {
            deadline: Instant::now() + activity.idle_timeout,
            head_started: false,
        };
        activity.changed.notify_one();
    }
}
