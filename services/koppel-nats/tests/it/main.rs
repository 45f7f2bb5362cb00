//! Integration tests of koppel-nats against a real NATS server (one container per binary).
//!
//! ```text
//! events ──Publisher──▶ JetStream ──pull consumer──▶ settle(AckOutcome)
//!                          │
//!                          └── KV buckets (compare-and-set), schemas bucket
//! ```

// Test helpers outside #[test] functions may unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod consume;
mod interop;
mod kv;
mod permissions;
mod publish;
mod read;
mod topology;
