//! The delivery engine end to end: real HTTPS receivers on 127.0.0.1.

mod account_events;
mod affinity;
mod cancellation;
mod fan_out;
mod isolation;
mod payloads;
mod retries;
mod signing;
mod ssrf;
