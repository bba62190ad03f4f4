//! Integration tests: the real server over real HTTP on 127.0.0.1.

mod api;
mod cluster;
mod common;
mod crash;
mod delivery;
mod process;
mod python;
mod receiver;
mod sdk;
mod secrets;
mod store;
