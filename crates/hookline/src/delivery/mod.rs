//! The delivery engine: claim due deliveries, sign and send them, record what happened.
//!
//! Flow, one file per step: the claim loop (`claim_loop.rs`) leases a batch of due deliveries
//! (committed at once), or the publisher hands fresh ones over → each runs in its own task
//! holding a [`slots::Permit`] → the attempt runner (`attempt.rs`) signs it (`signer.rs`),
//! sends it with no transaction open (`transport.rs`) and lets `decision.rs` choose deliver,
//! retry or fail → the outcome recorder (`outcome_recorder.rs`) commits batches fenced by
//! attempt number and announces `410 Gone` deactivations through the [`Announcer`]
//! (`announcements.rs`). The [`Dispatcher`] is the handle that owns the slots and runs and
//! stops all of it. Beside it, the [`RecoveryRunner`] (`recovery.rs`) re-queues the failed
//! deliveries of recoveries at a bounded pace. Only the dispatcher, the runner, the slots and
//! the announcer are used from outside.

mod affinity;
mod announcements;
mod attempt;
mod claim_loop;
mod decision;
mod dispatcher;
mod outcome_recorder;
mod recovery;
mod signer;
pub mod slots;
mod transport;

pub use announcements::Announcer;
pub use dispatcher::Dispatcher;
pub use recovery::RecoveryRunner;
