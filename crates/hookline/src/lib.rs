//! hookline: a webhook subscription and delivery server compatible with Linq's v3 API.
#![forbid(unsafe_code)]

pub mod account_events;
pub mod api;
pub mod app;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod error;
pub mod extract;
pub mod logging;
pub mod payload_check;
pub mod portal;
pub mod publish;
pub mod retention;
pub mod secrets;
pub mod store;
pub mod telemetry;

pub use app::serve;
pub use config::Settings;
