//! Day-2 delivery operations over real HTTP: signing-secret rotation (checked by the Standard
//! Webhooks reference verifier), test events, dead-endpoint deactivation, adaptive concurrency.

mod adaptive;
mod dead_endpoints;
mod openapi;
mod rotation;
mod test_event;
