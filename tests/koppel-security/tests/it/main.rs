//! Security tests against a real NATS (testcontainers) and the simulators over real HTTP:
//! nothing secret in any output, NATS authentication and TLS from config, tenant isolation
//! through delivery, replay and re-drive, and secrets sealed at rest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod credential_errors;
mod demo_output;
mod nats_auth;
mod secrets_at_rest;
mod support;
mod tenant_isolation;
