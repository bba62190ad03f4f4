//! The delivery engine: claim due deliveries, sign and send them, record what happened.
//!
//! Flow, one file per step: the claim loop (`claim_loop.rs`) leases a batch of due deliveries
//! (committed at once), or the publisher hands fresh ones over → each runs in its own task
//! holding a [`slots::Permit`] → the attempt runner (`attempt.rs`) signs it (`signer.rs`),
//! sends it with no transaction open (`transport.rs`) and lets `decision.rs` choose deliver,
//! retry or fail → the outcome recorder (`outcome_recorder.rs`) commits batches fenced by
//! attempt number and announces `410 Gone` deactivations through the [`Announcer`]
//! (`announcements.rs`), and those of dead endpoints (the store finds them, `store/endpoint_health.rs`).
//! Each subscription's in-flight limit adapts to its receiver (`adaptive.rs`, AIMD, within the
//! slots' caps). The [`Dispatcher`] is the handle that owns the slots and runs and stops all of
//! it; the [`TestSender`] sends test events for the API (`test_event.rs`). Beside it, the
//! [`RecoveryRunner`] (`recovery.rs`) re-queues the failed deliveries of recoveries at a
//! bounded pace. Only these, the slots and the announcer are used from outside.

mod adaptive;
mod affinity;
mod announcements;
mod attempt;
mod claim_loop;
pub(crate) mod decision;
mod dispatcher;
pub mod listen_hub;
mod outcome_recorder;
mod recovery;
mod signer;
pub mod slots;
mod test_event;
mod transport;

pub use announcements::Announcer;
pub use attempt::TEST_HEADER;
pub use dispatcher::Dispatcher;
pub use listen_hub::ListenHub;
pub use recovery::RecoveryRunner;
pub use test_event::{TestSender, Tested};
