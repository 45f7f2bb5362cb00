//! Integration tests of koppel-extract: the Loket extractor against the Loket simulator over
//! real HTTP, publishing to a real NATS (one container per test binary).

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod faults;
mod first_sync;
mod ground_truth;
mod mapping;
mod support;
mod tokens;
