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
//! - `budget`: how much of a message's retry budget earlier deliveries spent, from JetStream's
//!   delivery count, the message's age and the consumer's restart marks.
//! - `recipient`: the recipient clients (pension insurer salary link, Standard Webhooks) behind
//!   one closed enum.
//! - `lane`: lane keys (employer, employee) read from a message's subject and headers.
//! - `delivery`: the one delivery path, [`delivery::deliver_one`], and the one tenant check,
//!   [`delivery::check_tenant`]; the live deliverer, `dlq retry` and `replay` all go through it.
//! - `dead_letter`: writing dead letters and finding parked lanes in `KOPPEL_DLQ`.
//! - `dlq`: the library behind `koppel dlq list|show|retry|purge`.
//! - `replay`: the library behind `koppel replay`: past events again, through a durable
//!   consumer of its own.
//! - `supervisor`: one recipient's consumer lifecycle: its filters, creating or restarting its
//!   durable consumer, setting it up again after a failure.
//! - `dispatcher`: one recipient's dispatcher: lanes, one item per lane at a time.
//! - `settling`: acks, dead letters and releases for what the delivery path settled.
//! - `run`: [`run`], which connects, ensures the topology, watches the registry and runs one
//!   consumer per recipient.
//!
//! The guarantees this crate keeps (architecture §6 and §7) and why it keeps them the way it
//! does are written down in `docs/delivery.md`.

pub mod budget;
pub mod config;
pub mod dead_letter;
pub mod delivery;
mod dispatcher;
pub mod dlq;
pub mod lane;
pub mod outcome;
pub mod recipient;
pub mod replay;
pub mod retry;
mod run;
mod settling;
mod supervisor;

pub use config::{ConsumerSettings, DelivererConfig, RetrySettings, SecretKeySource};
pub use delivery::{DeliveryTarget, StoredEvent, TenantViolation, check_tenant, deliver_one};
pub use outcome::{AttemptOutcome, DeadLetterClass, PermanentClass, Settlement};
pub use recipient::{DeliveryRequest, RecipientClient, RecipientSetupError};
pub use run::{DeliverError, run};
