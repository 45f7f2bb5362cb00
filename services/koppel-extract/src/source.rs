//! The seam between a source system and the extraction engine.
//!
//! A [`Source`] turns "fetch employer X, fully or since this watermark" into a
//! [`SourceFetch`]: canonical entities plus what the source listed. The engine
//! ([`crate::engine`]) does the rest for every source alike: diff against the snapshot, the
//! safety threshold, bad-record reporting, publishing, snapshot and watermark updates. Loket
//! (change feed plus periodic full sync) and Unit4 (full snapshot diff only) differ only in
//! their `Source` implementation.

use std::collections::HashSet;
use std::future::Future;

use chrono::NaiveDate;
use koppel_events::{Employee, Employer, Employment, RecordError, SourceSystem, SyncKind};
use koppel_registry::EmployerRegistration;

use crate::http_source::{ErrorClass, HttpSourceError};
use crate::snapshot::Snapshot;

/// What the engine asks a source for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchMode {
    /// Everything the source holds for the employer; anything missing is removed.
    Full,
    /// What changed since `watermark` (a source-defined position, from the last run).
    Delta { watermark: String },
}

/// One fetch request.
#[derive(Debug)]
pub struct FetchRequest<'a> {
    pub employer: &'a EmployerRegistration,
    pub mode: FetchMode,
    /// The day whose organisational placement, hours and salary count as current.
    pub reference_date: NaiveDate,
    /// What koppel already knows, so a source can skip work for entities that cannot have
    /// changed (Loket: employments that ended and left the source's "actual" lists).
    pub snapshot: &'a Snapshot,
}

/// What a source returned for one employer.
#[derive(Debug, Clone, Default)]
pub struct SourceFetch {
    /// `Full` or `Delta`, as actually performed (a source without a change feed always
    /// answers `Full`).
    pub kind: Option<SyncKind>,
    /// `None` when the source reports nothing changed since the watermark: the engine then
    /// publishes nothing and writes nothing.
    pub employer: Option<Employer>,
    /// Entities with their full current state, to be diffed. In a delta, only the changed
    /// ones (and new ones); entities listed in `present_*` but absent here are unchanged.
    pub employees: Vec<Employee>,
    pub employments: Vec<Employment>,
    /// Every employee id the source lists now, including unchanged and malformed ones.
    /// Snapshot entries absent from it are removals. `None`: removals cannot be judged.
    pub present_employee_ids: Option<HashSet<String>>,
    pub present_employment_ids: Option<HashSet<String>>,
    /// Records that could not be mapped. They count as present (a bad record is not a
    /// removal) and are reported in `SyncCompleted`.
    pub record_errors: Vec<RecordError>,
    /// The position to store once everything is published, for the next delta.
    pub next_watermark: Option<String>,
}

impl SourceFetch {
    /// The answer to a delta when nothing changed.
    pub fn unchanged() -> Self {
        SourceFetch {
            kind: Some(SyncKind::Delta),
            ..SourceFetch::default()
        }
    }

    pub fn is_unchanged(&self) -> bool {
        self.employer.is_none()
    }
}

/// Why a fetch failed as a whole (single bad records are `record_errors`, not this).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Http(#[from] HttpSourceError),
    /// The stored credentials are gone or refused for good; an operator must re-authorise.
    #[error("connection {connection_id} must be re-authorised: {reason}")]
    ReauthorisationRequired {
        connection_id: String,
        reason: String,
    },
    /// The credential store (KV) failed; its class decides whether the next run retries.
    #[error("connection {connection_id}: credential store unavailable: {source}")]
    CredentialStore {
        connection_id: String,
        #[source]
        source: koppel_nats::KvError,
    },
    /// Configuration that cannot work: a secret that does not open, a bad URL.
    #[error("connection {connection_id} is misconfigured: {reason}")]
    Configuration {
        connection_id: String,
        reason: String,
    },
    /// The source refused the connection's client credentials; an operator must correct them.
    #[error("connection {connection_id}: {reason}")]
    CredentialsRejected {
        connection_id: String,
        reason: String,
    },
    /// The employer is not (or no longer) visible through this connection.
    #[error(
        "employer {source_employer_id} is not visible to connection {connection_id}: the source refuses access (link the employer to the connection's user or group, or remove its registration)"
    )]
    EmployerNotVisible {
        connection_id: String,
        source_employer_id: String,
    },
    /// The employer record itself cannot be mapped; without it no event can be built.
    #[error("employer {source_employer_id}: {reason}")]
    InvalidEmployer {
        source_employer_id: String,
        reason: String,
    },
}

impl SourceError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Http(error) => error.class(),
            SourceError::CredentialStore { source, .. } => source.class(),
            SourceError::ReauthorisationRequired { .. }
            | SourceError::CredentialsRejected { .. }
            | SourceError::Configuration { .. }
            | SourceError::EmployerNotVisible { .. }
            | SourceError::InvalidEmployer { .. } => ErrorClass::Permanent,
        }
    }
    /// The HTTP status behind the error, when it was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            SourceError::Http(error) => error.status(),
            SourceError::ReauthorisationRequired { .. }
            | SourceError::CredentialStore { .. }
            | SourceError::CredentialsRejected { .. }
            | SourceError::Configuration { .. }
            | SourceError::EmployerNotVisible { .. }
            | SourceError::InvalidEmployer { .. } => None,
        }
    }
}

/// An employer a connection can see, for onboarding (`koppel employer discover`). The same
/// shape for every source; what a source does not deliver is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredEmployer {
    pub source_employer_id: String,
    pub name: Option<String>,
    pub employer_number: Option<String>,
    pub chamber_of_commerce_number: Option<String>,
    pub payroll_tax_number: Option<String>,
}

/// The sealing context of a connection's client secret in the registry, for every source: a
/// sealed secret copied to another connection's record does not open there.
pub fn client_secret_context(connection_id: &str) -> String {
    format!("connection/{connection_id}/client_secret")
}

/// A record error: which entity, and why (a reason that names fields and rules, no values).
pub fn record_error(entity_type: &str, entity_id: &str, reason: impl ToString) -> RecordError {
    RecordError {
        entity_type: entity_type.to_owned(),
        entity_id: entity_id.to_owned(),
        reason: reason.to_string(),
    }
}

/// A source system the engine can extract from.
pub trait Source: Send + Sync {
    /// Which system this is; goes into every event header and id.
    fn system(&self) -> SourceSystem;

    /// The connection this source reads through.
    fn connection_id(&self) -> &str;

    /// Whether the source has a change feed. Without one, every run is a full diff.
    fn supports_delta(&self) -> bool;

    fn fetch(
        &self,
        request: FetchRequest<'_>,
    ) -> impl Future<Output = Result<SourceFetch, SourceError>> + Send;
}
