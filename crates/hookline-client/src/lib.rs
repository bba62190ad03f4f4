//! A typed async client for hookline's APIs: the partner API (webhook subscriptions, event
//! types, the delivery log, redelivery, recovery, test events, secret rotation) and the operator
//! API (partners, API keys, publishing, the delivery log across partners).
//!
//! Errors carry the server's envelope ([`ApiError`]: status, code, message, trace id). Failed
//! requests are retried as Linq's SDKs retry them ([`RetryPolicy`]): connection failures, 408,
//! 409 (unless `x-should-retry: false`), 429 and 5xx, honouring `Retry-After` and
//! `x-should-retry`, 2 retries by default. Publishes are idempotent: an event without an id gets
//! one before the first attempt, so retries repeat it rather than duplicate it.
//!
//! ```no_run
//! # async fn run() -> hookline_client::Result<()> {
//! use hookline_client::{Client, CreateSubscription};
//!
//! let client = Client::builder("http://127.0.0.1:8080").api_key("hl_live_…").build()?;
//! let created = client
//!     .create_subscription(&CreateSubscription {
//!         target_url: "https://example.com/hooks/linq".into(),
//!         subscribed_events: vec!["message.received".into()],
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("save this now: {}", created.signing_secret);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod client;
mod error;
mod listen;
mod operator;
mod partner;
mod retry;
mod types;

pub use client::{Client, ClientBuilder};
pub use error::{ApiError, Error, Result};
pub use listen::{
    ListenAck, ListenDelivery, ListenEvent, ListenOptions, ListenSession, ListenStream,
};
pub use operator::MAX_BATCH;
pub use retry::RetryPolicy;
pub use types::*;
