//! The delivery engine: claim due deliveries, sign and send them, record what happened.
//!
//! Flow: the [`Dispatcher`] claims a batch with a lease (committed at once), or the publisher
//! hands fresh deliveries over → each runs in its own task holding a [`slots::Permit`] →
//! [`attempt`] signs it ([`signer`]), sends it with no transaction open ([`transport`]) and lets
//! [`decision`] choose deliver, retry or fail → the outcome writer commits batches fenced by
//! attempt number.

mod affinity;
mod attempt;
pub mod decision;
mod dispatcher;
pub mod signer;
pub mod slots;
pub mod transport;

pub use dispatcher::Dispatcher;
