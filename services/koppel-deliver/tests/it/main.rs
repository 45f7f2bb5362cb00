//! The deliverer against a real NATS (testcontainers) and the recipient simulators over real
//! HTTP: order under faults, dead letters, crash and restart, re-drive, tenant isolation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod budget;
mod crash;
mod dead_letters;
mod isolation;
mod ordering_under_faults;
mod redrive;
mod rolling_upgrade;
mod support;
mod undecodable;
