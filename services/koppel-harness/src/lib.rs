//! The end-to-end harness: everything that runs koppel as a whole against the simulators, in
//! one place, for the demo, the end-to-end tests, the benchmarks and the chaos suite. The
//! `koppel` binary depends on it (`koppel demo` is a thin caller of [`demo::run_demo`]); it
//! never depends on the binary.
//!
//! # Modules
//! - `onboarding`: a simulator suite onboarded as a payroll processor would, through the
//!   registry's onboarding steps (`koppel_registry::onboarding`), and the record builders.
//! - `pipeline`: the whole pipeline in one process: topology, simulators, extractor, deliverer.
//! - `demo`: the demo run on top of it, with faults, scored day by day.
//! - `scoring`: each simulated day's ground truth against what was published (typed
//!   discrepancies; a missing event is a loss).
//! - `delivery_check`: what each recipient received or dead-lettered against the stream.
//! - `drain`: recipient backlogs, and waiting until they are empty.
//! - `polling`: [`eventually`], the one way to wait on a condition.
//! - `binary`: [`koppel_binary`], the one way to find the `koppel` program.
//! - `local_nats`: a throwaway nats-server for the demo.

pub mod binary;
pub mod delivery_check;
pub mod demo;
pub mod drain;
pub mod local_nats;
pub mod onboarding;
pub mod pipeline;
pub mod polling;
pub mod scoring;

pub use binary::koppel_binary;
pub use delivery_check::{DeliveryCheck, RecipientCheck, check_delivery};
pub use drain::{backlog, wait_until_drained};
pub use onboarding::{
    INSURER, LOKET_CONNECTION, Onboarded, RECIPIENTS, UNIT4_CONNECTION, WEBHOOK, onboard,
};
pub use pipeline::{Pipeline, PipelineSettings};
pub use polling::{TimedOut, eventually, eventually_every};
