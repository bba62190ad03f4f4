//! The shared control flow (publish plan, claim run, subscription writes, migrations) is
//! written once as `async fn`s over a backend's steps. PostgreSQL's steps await the network;
//! SQLite's are synchronous calls on its writer thread, so their futures are ready at once and
//! [`run_ready`] drives them there without a runtime.

use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Runs a future whose every await is ready at once.
pub(crate) fn run_ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("synchronous steps never wait"),
    }
}
