//! The delivery engine: claim due deliveries, sign and send them, record what happened.
//!
//! Flow: [`Dispatcher`] claims a batch with a lease (committed at once) → each delivery is sent
//! by [`sender`] with no transaction open → the outcome goes to the outcome writer, which
//! commits batches fenced by attempt number.

mod dispatcher;
pub mod outcome;
pub mod sender;

pub use dispatcher::Dispatcher;
pub use outcome::ErrorKind;
