//! The harness's own end-to-end test: the demo pipeline against a real NATS container, with
//! faults at the sources and the recipients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod demo;
