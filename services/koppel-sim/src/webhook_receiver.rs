//! A Standard Webhooks receiver that verifies signatures and records what it received.
//!
//! It checks what a careful receiver checks (`webhook-id`, `webhook-timestamp` within five
//! minutes of its own clock in either direction, a `v1` HMAC-SHA256 `webhook-signature` by a
//! `whsec_` secret), deduplicates on `webhook-id`, and judges per-employee order from koppel's
//! `koppel-stream-sequence` header and the employee id at `data.employee_id`. It can answer a
//! share of requests with 429/503 (the shared fault injector) and refuse chosen message types
//! with `webhook-delivery: abort-message`, an instruction the sender must honour.
//!
//! # Order key: `data.employee_id`
//! The Standard Webhooks envelope says nothing about entities, so the receiver needs a convention
//! to know which messages belong to one employee. It reads `data.employee_id` (a string; a number
//! is taken as its decimal text), qualified by `data.employer_key` when present, because koppel's
//! employee ids are only unique within one source employer. koppel's webhook payload must
//! therefore carry both at the top level of `data`; messages without `employee_id` (employer and
//! sync events) are accepted without an order judgement, as are messages without the
//! `koppel-stream-sequence` header (counted in `without_stream_sequence`).
//!
//! # HTTP
//! `POST /webhooks`. Answers: 200 `{"result":"accepted"}` or `{"result":"duplicate"}`;
//! 400 `{"error":<reason>,"message":..}` for missing headers, a bad or stale timestamp, a bad
//! body or stream sequence; 401 for a signature that does not verify; the configured status plus
//! `webhook-delivery: abort-message` for aborted types; 429 with `Retry-After` and 503 when a
//! fault was drawn.
//!
//! # Starting it
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use koppel_sim::webhook_receiver::{self, WebhookReceiver, WebhookReceiverConfig};
//! let config = WebhookReceiverConfig::new(vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()], 7);
//! let receiver = WebhookReceiver::new(config).map_err(std::io::Error::other)?;
//! let running = webhook_receiver::spawn(receiver).await?;
//! // ... point koppel's webhook recipient at running.webhook_url() ...
//! let summary = running.receiver.summary();
//! running.stop().await?;
//! # Ok(()) }
//! ```

mod http;
mod ledger;
pub mod signature;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use ledger::{EmployeeKey, ReceivedWebhook, WebhookOutcome, WebhookSummary};
pub use signature::{WebhookSecretError, WebhookSigningKey};

use crate::faults::{FaultConfig, FaultInjector};
use crate::server::{self, ServerTask, lock};
use ledger::WebhookLedger;

/// The one path the receiver listens on.
pub const WEBHOOK_PATH: &str = "/webhooks";
pub const WEBHOOK_ID_HEADER: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE_HEADER: &str = "webhook-signature";
/// koppel's JetStream stream sequence of the event, for the per-employee order check. Optional:
/// without it a message is accepted but its order is not judged.
pub const STREAM_SEQUENCE_HEADER: &str = "koppel-stream-sequence";
/// The response header by which a receiver steers delivery (Svix delivery control).
pub const DELIVERY_CONTROL_HEADER: &str = "webhook-delivery";
/// The spec's tolerance: five minutes either way.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 5 * 60;

/// How to start the receiver.
#[derive(Clone)]
pub struct WebhookReceiverConfig {
    /// `whsec_...` secrets; a message verifies when any `v1` signature matches any of them, so a
    /// secret rotation can be simulated by configuring the old and the new one.
    pub signing_secrets: Vec<String>,
    pub tolerance_seconds: i64,
    /// Seed of the fault injector, so a failing run with faults can be repeated exactly.
    pub fault_seed: u64,
}

impl WebhookReceiverConfig {
    pub fn new(signing_secrets: Vec<String>, fault_seed: u64) -> Self {
        Self {
            signing_secrets,
            tolerance_seconds: DEFAULT_TOLERANCE_SECONDS,
            fault_seed,
        }
    }
}

impl fmt::Debug for WebhookReceiverConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WebhookReceiverConfig")
            .field(
                "signing_secrets",
                &format_args!("<{} redacted>", self.signing_secrets.len()),
            )
            .field("tolerance_seconds", &self.tolerance_seconds)
            .field("fault_seed", &self.fault_seed)
            .finish()
    }
}

/// The receiver. Cheap to clone (one `Arc`); every clone sees the same books.
#[derive(Clone, Debug)]
pub struct WebhookReceiver {
    shared: Arc<ReceiverShared>,
}

#[derive(Debug)]
struct ReceiverShared {
    signing_keys: Vec<WebhookSigningKey>,
    tolerance_seconds: i64,
    faults: FaultInjector,
    /// One lock for the dedupe set, the order marks and the journal, which must agree. Never
    /// held across an await.
    ledger: Mutex<WebhookLedger>,
}

impl WebhookReceiver {
    /// Decodes the secrets up front, so a typo in a secret fails at start, not on every request.
    pub fn new(config: WebhookReceiverConfig) -> Result<Self, WebhookSecretError> {
        let signing_keys = config
            .signing_secrets
            .iter()
            .map(|secret| WebhookSigningKey::from_secret(secret))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            shared: Arc::new(ReceiverShared {
                signing_keys,
                tolerance_seconds: config.tolerance_seconds,
                faults: FaultInjector::new(config.fault_seed),
                ledger: Mutex::new(WebhookLedger::default()),
            }),
        })
    }

    pub fn faults(&self) -> &FaultInjector {
        &self.shared.faults
    }

    pub fn configure_faults(&self, config: FaultConfig) {
        self.shared.faults.configure(config);
    }

    /// From now on, answer messages of these types with `status` and
    /// `webhook-delivery: abort-message`. Use a status the sender would otherwise retry (503)
    /// to check that it honours the header rather than merely giving up on a 4xx.
    pub fn abort_message_types<I, S>(&self, message_types: I, status: StatusCode)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.with_ledger(|ledger| {
            for message_type in message_types {
                ledger.set_abort_rule(message_type.into(), status);
            }
        });
    }

    /// Stops aborting new messages. Ids aborted before keep being answered with the abort, so a
    /// sender that retries them is still caught.
    pub fn clear_abort_rules(&self) {
        self.with_ledger(WebhookLedger::clear_abort_rules);
    }

    pub fn summary(&self) -> WebhookSummary {
        let faults = self.shared.faults.counts();
        self.with_ledger(|ledger| ledger.summary(faults))
    }

    /// Every verified message in arrival order, duplicates and aborts included.
    pub fn received_messages(&self) -> Vec<ReceivedWebhook> {
        self.with_ledger(|ledger| ledger.journal().to_vec())
    }

    /// The accepted messages only, once per `webhook-id`, in acceptance order: the list to
    /// compare with what koppel published.
    pub fn accepted_messages(&self) -> Vec<ReceivedWebhook> {
        self.with_ledger(|ledger| {
            ledger
                .journal()
                .iter()
                .filter(|line| line.outcome == WebhookOutcome::Accepted)
                .cloned()
                .collect()
        })
    }

    /// The axum router, for callers that want to mount it themselves.
    pub fn router(&self) -> Router {
        http::router(self.clone())
    }

    fn signing_keys(&self) -> &[WebhookSigningKey] {
        &self.shared.signing_keys
    }

    fn tolerance_seconds(&self) -> i64 {
        self.shared.tolerance_seconds
    }

    fn with_ledger<T>(&self, work: impl FnOnce(&mut WebhookLedger) -> T) -> T {
        let mut ledger = lock(&self.shared.ledger);
        work(&mut ledger)
    }
}

/// Serves the receiver on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    receiver: WebhookReceiver,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    server::serve_router(listener, receiver.router(), shutdown).await
}

/// A receiver serving on a local port, started by [`spawn`].
#[derive(Debug)]
pub struct RunningWebhookReceiver {
    pub address: SocketAddr,
    /// A clone of the served receiver, for configuring aborts and reading the books.
    pub receiver: WebhookReceiver,
    shutdown: CancellationToken,
    server: ServerTask,
}

impl RunningWebhookReceiver {
    /// `http://127.0.0.1:<port>/webhooks`.
    pub fn webhook_url(&self) -> String {
        format!("http://{}{}", self.address, WEBHOOK_PATH)
    }

    /// Stops accepting connections, waits for in-flight requests, and returns the server's result.
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        server::join(self.server).await
    }
}

/// Binds `127.0.0.1:0` and serves the receiver in a background task.
pub async fn spawn(receiver: WebhookReceiver) -> std::io::Result<RunningWebhookReceiver> {
    let shutdown = CancellationToken::new();
    let (address, server) =
        server::spawn_on_local_port(receiver.router(), shutdown.clone()).await?;
    tracing::info!(%address, "Webhook receiver simulator listening.");
    Ok(RunningWebhookReceiver {
        address,
        receiver,
        shutdown,
        server,
    })
}
