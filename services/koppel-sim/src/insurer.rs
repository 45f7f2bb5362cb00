//! The pension insurer salary-link simulator, a recipient modelled on UPA semantics.
//!
//! No insurer publishes a push API for its salary link, so koppel defines the contract itself on
//! the pension funds' UPA rules (employer by loonheffingennummer and linked first, participant by
//! BSN + income relationship number + personnel number, full-time pensionable salary plus a
//! part-time percentage). The contract is written down in
//! `docs/recipients/pension-insurer-salary-link.md`; this module is its executable form.
//!
//! The simulator records everything it receives so tests and the demo can compare it with what
//! koppel published: duplicates (same idempotency key again), per-participant order violations
//! (a stream sequence lower than one already applied), refusals by code, and the state of every
//! participant.
//!
//! # Starting it
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use koppel_sim::insurer::{self, EmployerLink, InsurerConfig, InsurerSimulator};
//! let simulator = InsurerSimulator::new(InsurerConfig::new("insurer-token", 7));
//! simulator
//!     .link_employer("123456789L01", EmployerLink { contract_number: "C-1".into(), scheme_ids: vec![] })
//!     .map_err(std::io::Error::other)?;
//! let running = insurer::spawn(simulator).await?;
//! // ... point koppel's deliverer at running.base_url() ...
//! let summary = running.simulator.summary();
//! running.stop().await?;
//! # Ok(()) }
//! ```

pub mod contract;
mod http;
mod ledger;
pub mod validation;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use contract::{
    Address, Bsn, EmployerLink, EmploymentMutationRequest, EnrolmentRequest, ErrorBody, Gender,
    NameUsage, PersonalData, PersonalDataChangeRequest, Receipt, ReinstatementRequest,
    RejectionCode, RequestKind, StartDateCorrectionRequest, TerminationRequest,
};
pub use ledger::{
    InsurerSummary, ParticipantState, ParticipantStatus, ReceivedRequest, RequestOutcome,
};

use crate::faults::{FaultConfig, FaultInjector};
use crate::server::{self, ServerTask, lock};
use ledger::InsurerLedger;

/// How to start the simulator.
#[derive(Clone)]
pub struct InsurerConfig {
    /// The bearer token every request must present (`Authorization: Bearer <token>`).
    pub bearer_token: String,
    /// Seed of the fault injector, so a failing run with faults can be repeated exactly.
    pub fault_seed: u64,
}

impl InsurerConfig {
    pub fn new(bearer_token: impl Into<String>, fault_seed: u64) -> Self {
        Self {
            bearer_token: bearer_token.into(),
            fault_seed,
        }
    }
}

impl fmt::Debug for InsurerConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("InsurerConfig")
            .field("bearer_token", &"<redacted>")
            .field("fault_seed", &self.fault_seed)
            .finish()
    }
}

/// Refusals of the Rust control API.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InsurerSetupError {
    #[error("payroll tax number is not nine digits, 'L' and two digits: {0}")]
    InvalidPayrollTaxNumber(String),
}

/// The insurer simulator. Cheap to clone (one `Arc`), and every clone sees the same books, so the
/// server and the test that inspects it share one instance.
#[derive(Clone)]
pub struct InsurerSimulator {
    shared: Arc<InsurerShared>,
}

struct InsurerShared {
    bearer_token: String,
    faults: FaultInjector,
    /// One lock for all books: a request touches the idempotency store, the participant and the
    /// journal together, and they must agree. It is never held across an await.
    ledger: Mutex<InsurerLedger>,
}

impl fmt::Debug for InsurerSimulator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("InsurerSimulator")
            .field("bearer_token", &"<redacted>")
            .field("faults", &self.shared.faults)
            .finish_non_exhaustive()
    }
}

impl InsurerSimulator {
    pub fn new(config: InsurerConfig) -> Self {
        Self {
            shared: Arc::new(InsurerShared {
                bearer_token: config.bearer_token,
                faults: FaultInjector::new(config.fault_seed),
                ledger: Mutex::new(InsurerLedger::default()),
            }),
        }
    }

    /// Registers an employer at the insurer, as its account manager would after the employer
    /// signed the contract. Until then every request for it is refused with `0014.2`.
    /// Linking again replaces the contract number and schemes.
    pub fn link_employer(
        &self,
        payroll_tax_number: impl Into<String>,
        link: EmployerLink,
    ) -> Result<(), InsurerSetupError> {
        let payroll_tax_number = payroll_tax_number.into();
        if !validation::is_valid_payroll_tax_number(&payroll_tax_number) {
            return Err(InsurerSetupError::InvalidPayrollTaxNumber(
                payroll_tax_number,
            ));
        }
        self.with_ledger(|ledger| ledger.link_employer(payroll_tax_number, link));
        Ok(())
    }

    /// Removes an employer's link; returns whether it was linked.
    pub fn unlink_employer(&self, payroll_tax_number: &str) -> bool {
        self.with_ledger(|ledger| ledger.unlink_employer(payroll_tax_number))
    }

    /// The fault injector: 429 with Retry-After, 503, and slow answers. A "timeout" is a slow
    /// answer whose `slow_delay_millis` exceeds the client's request timeout. The delay comes
    /// before processing, and whether a request whose client gave up is still processed depends
    /// on when the server notices the closed connection: the sender cannot know, exactly as with
    /// a real upstream, and its retry meets either a 202 or a 409 with the first receipt.
    pub fn faults(&self) -> &FaultInjector {
        &self.shared.faults
    }

    pub fn configure_faults(&self, config: FaultConfig) {
        self.shared.faults.configure(config);
    }

    pub fn summary(&self) -> InsurerSummary {
        let faults = self.shared.faults.counts();
        self.with_ledger(|ledger| ledger.summary(faults))
    }

    /// Every request past authentication and header checks, in arrival order.
    pub fn received_requests(&self) -> Vec<ReceivedRequest> {
        self.with_ledger(|ledger| ledger.journal().to_vec())
    }

    /// The applied requests only, in the order they were applied: the list to compare with what
    /// koppel published.
    pub fn applied_requests(&self) -> Vec<ReceivedRequest> {
        self.with_ledger(|ledger| {
            ledger
                .journal()
                .iter()
                .filter(|line| matches!(line.outcome, RequestOutcome::Applied { .. }))
                .cloned()
                .collect()
        })
    }

    /// The current state of one participant.
    pub fn participant(&self, payroll_tax_number: &str, bsn: &str) -> Option<ParticipantState> {
        self.with_ledger(|ledger| ledger.participant(payroll_tax_number, bsn).cloned())
    }

    /// All participants, ordered by (loonheffingennummer, BSN).
    pub fn participants(&self) -> Vec<ParticipantState> {
        self.with_ledger(|ledger| ledger.participants())
    }

    /// The axum router, for callers that want to mount it themselves.
    pub fn router(&self) -> Router {
        http::router(self.clone())
    }

    fn token_matches(&self, presented: &str) -> bool {
        constant_time_equal(presented.as_bytes(), self.shared.bearer_token.as_bytes())
    }

    fn with_ledger<T>(&self, work: impl FnOnce(&mut InsurerLedger) -> T) -> T {
        let mut ledger = lock(&self.shared.ledger);
        work(&mut ledger)
    }
}

/// Serves the simulator on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    simulator: InsurerSimulator,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    server::serve_router(listener, simulator.router(), shutdown).await
}

/// A simulator serving on a local port, started by [`spawn`].
#[derive(Debug)]
pub struct RunningInsurer {
    pub address: SocketAddr,
    /// A clone of the served simulator, for registering employers and reading the books.
    pub simulator: InsurerSimulator,
    shutdown: CancellationToken,
    server: ServerTask,
}

impl RunningInsurer {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops accepting connections, waits for in-flight requests, and returns the server's result.
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        server::join(self.server).await
    }
}

/// Binds `127.0.0.1:0` and serves the simulator in a background task.
pub async fn spawn(simulator: InsurerSimulator) -> std::io::Result<RunningInsurer> {
    let shutdown = CancellationToken::new();
    let (address, server) =
        server::spawn_on_local_port(simulator.router(), shutdown.clone()).await?;
    tracing::info!(%address, "Pension insurer simulator listening.");
    Ok(RunningInsurer {
        address,
        simulator,
        shutdown,
        server,
    })
}

/// Compares without an early exit, so response timing does not reveal how much of a token was
/// right. The length is not secret.
fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}
