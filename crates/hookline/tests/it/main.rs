//! Integration tests: the real server over real HTTP on 127.0.0.1.
//!
//! The harness: `common` (a server on a fresh store, `per_backend!`, `restart`), `receiver` (real
//! HTTPS receivers), `process` (the real binary as a child process), `pg` (the PostgreSQL the
//! tests use, started by the suite unless `HOOKLINE_TEST_PG_URL` is set), `python` (the SDK's
//! virtualenv). The rest are the tests, by theme.

mod api;
mod cluster;
mod common;
mod connection_flood;
mod crash;
mod delivery;
mod disk_full;
mod log_sink;
mod monitoring;
mod node;
mod operations;
mod pg;
mod portal;
mod process;
mod python;
mod receiver;
mod request_identity;
mod sdk;
mod secrets;
mod sigstop;
mod store;
mod tools;
