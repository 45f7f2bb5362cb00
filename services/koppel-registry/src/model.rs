//! The records a payroll processor onboards. Serialized as JSON into the registry bucket;
//! secrets inside them are always [`SealedSecret`]s.
//!
//! These are persisted records, a boundary between koppel versions like the Avro events: none
//! of them refuses unknown fields, so a record a newer koppel wrote with a new optional field
//! still reads here during a rolling upgrade. A new field is optional (`#[serde(default)]`);
//! a change older workers must not interpret raises the record version (see
//! [`crate::store::RECORD_VERSION`] and schemas/README.md, "Registry records").

use std::collections::BTreeMap;

use koppel_events::SourceSystem;
use serde::{Deserialize, Serialize};

use crate::sealed::SealedSecret;

/// A source account: one Loket authorization or one Unit4 web-API user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// koppel's id of the connection; a subject-token-safe string (`loket-acme`).
    pub id: String,
    pub settings: ConnectionSettings,
    /// Seconds between change polls (a delta sync where the source has a change feed, a full
    /// diff otherwise).
    #[serde(default = "default_poll_interval_seconds")]
    pub poll_interval_seconds: u64,
    /// Seconds between full syncs on sources with a change feed, to correct drift.
    #[serde(default = "default_full_sync_interval_seconds")]
    pub full_sync_interval_seconds: u64,
}

fn default_poll_interval_seconds() -> u64 {
    60
}

fn default_full_sync_interval_seconds() -> u64 {
    24 * 60 * 60
}

impl Connection {
    pub fn source(&self) -> SourceSystem {
        match self.settings {
            ConnectionSettings::Loket(_) => SourceSystem::Loket,
            ConnectionSettings::Unit4(_) => SourceSystem::Unit4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum ConnectionSettings {
    Loket(LoketConnectionSettings),
    Unit4(Unit4ConnectionSettings),
}

/// Loket.nl: OAuth2 authorization code, then a refresh token that rotates on every use. The
/// refresh token itself lives in the tokens bucket (sealed, compare-and-set), not here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoketConnectionSettings {
    /// The OAuth server, e.g. `https://oauth.loket.nl`.
    pub oauth_base_url: String,
    /// The REST API including `/v2`, e.g. `https://api.loket.nl/v2`.
    pub api_base_url: String,
    pub client_id: String,
    pub client_secret: SealedSecret,
    pub redirect_uri: String,
}

impl LoketConnectionSettings {
    pub const PRODUCTION_OAUTH_BASE_URL: &'static str = "https://oauth.loket.nl";
    pub const PRODUCTION_API_BASE_URL: &'static str = "https://api.loket.nl/v2";
}

/// Unit4 HR & Salarisgemak through Unit4 Identity Services client credentials. The Web API's
/// paths are not public, so every path is configuration (see docs/sources/unit4.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit4ConnectionSettings {
    /// The IDS token endpoint, `.../identity/connect/token`.
    pub token_url: String,
    pub scope: String,
    pub api_base_url: String,
    pub client_id: String,
    pub client_secret: SealedSecret,
    #[serde(default)]
    pub paths: Unit4Paths,
}

/// Resource paths of the Unit4 Web API, relative to `api_base_url`. `{employer}` is replaced
/// by the source employer id. Defaults follow koppel's provisional contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Unit4Paths {
    pub employers: String,
    pub employees: String,
    pub employments: String,
}

impl Default for Unit4Paths {
    fn default() -> Self {
        Unit4Paths {
            employers: "/werkgevers".to_owned(),
            employees: "/werkgevers/{employer}/werknemers".to_owned(),
            employments: "/werkgevers/{employer}/dienstverbanden".to_owned(),
        }
    }
}

/// An employer koppel extracts, and the recipients its events go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmployerRegistration {
    /// koppel's stable key of the employer: a subject token, unique across connections.
    pub employer_key: String,
    pub connection_id: String,
    /// The employer's id in the source system.
    pub source_employer_id: String,
    pub name: String,
    #[serde(default)]
    pub payroll_tax_number: Option<String>,
    /// Names of the recipients subscribed to this employer's events.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// A run that would end or remove more than this share of the employer's employees is held
    /// back and reported instead of published.
    #[serde(default = "default_removal_threshold_percent")]
    pub removal_threshold_percent: u8,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_removal_threshold_percent() -> u8 {
    20
}

fn default_true() -> bool {
    true
}

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// A subject-token-safe name (`insurer-asr`, `hooks-acme`).
    pub name: String,
    pub settings: RecipientSettings,
    /// Parallel in-flight requests to this recipient (across employees; one per employee).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_max_in_flight() -> usize {
    16
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecipientSettings {
    /// A pension insurer's salary link (docs/recipients/pension-insurer-salary-link.md).
    PensionInsurer {
        base_url: String,
        api_token: SealedSecret,
        /// Per employer key: how the insurer knows the employer.
        #[serde(default)]
        employer_links: BTreeMap<String, InsurerEmployerLink>,
    },
    /// A Standard Webhooks endpoint.
    Webhook { url: String, secret: SealedSecret },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsurerEmployerLink {
    pub payroll_tax_number: String,
    #[serde(default)]
    pub contract_number: Option<String>,
    #[serde(default)]
    pub scheme_id: Option<String>,
}
