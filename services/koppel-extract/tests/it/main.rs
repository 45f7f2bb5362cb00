//! Integration tests of koppel-extract: the Loket and Unit4 extractors against their
//! simulators over real HTTP, publishing to a real NATS (one container per test binary).

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod faults;
mod first_sync;
mod ground_truth;
mod mapping;
mod support;
mod tokens;
mod unit4_faults;
mod unit4_first_sync;
mod unit4_forbidden;
mod unit4_ground_truth;
mod unit4_support;
mod unit4_tokens;
