//! koppel's delivery engine: one durable JetStream pull consumer per recipient, per-employee
//! ordered lanes, retries with backoff, dead letters, and the recipient clients.
//!
//! # Layout
//! - `config`: the deliverer's configuration (`[nats]`, `[topology]`, `[http]`, `[retry]`,
//!   `[consumer]`, namespace, secret key source).
//! - `outcome`: the closed sets of outcomes: what one attempt returned, and how a message was
//!   finally settled.
//! - `retry`: the retry loop around one message: exponential backoff with jitter, Retry-After,
//!   the retry budget, in-progress acks while waiting, and shutdown.
//! - `recipient`: the recipient clients (pension insurer salary link, Standard Webhooks) behind
//!   one closed enum.
//! - `lane`: lane keys (employer, employee) read from a message's subject and headers.
//! - `dead_letter`: writing dead letters and finding parked lanes in `KOPPEL_DLQ`.
//! - `dlq`: the library behind `koppel dlq list|show|retry|purge`.
//! - `consumer`: one recipient's consumer: the dispatcher that feeds lanes and settles messages.
//! - `run`: [`run`], which connects, ensures the topology, watches the registry and runs one
//!   consumer per recipient.
//!
//! The guarantees this crate keeps (architecture §6 and §7) and why it keeps them the way it
//! does are written down in `docs/delivery.md`.

pub mod config;
mod consumer;
pub mod dead_letter;
pub mod dlq;
pub mod lane;
pub mod outcome;
pub mod recipient;
pub mod retry;
mod run;

pub use config::{ConsumerSettings, DelivererConfig, RetrySettings, SecretKeySource};
pub use outcome::{AttemptOutcome, DeadLetterClass, PermanentClass, Settlement};
pub use recipient::{DeliveryRequest, RecipientClient, RecipientSetupError};
pub use run::{DeliverError, run};
