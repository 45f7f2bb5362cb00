//! The Loket.nl source: OAuth2 with rotating refresh tokens, the v2 REST API, change
//! detection through `lastmodifiedversionnumbers`, and the mapping to the canonical model.
//!
//! docs/sources/loket.md describes the behaviour for operators; this module's submodules carry
//! the reasoning next to the code.
//!
//! # Layout
//! - `token`: refresh-token rotation with compare-and-set, the code exchange for onboarding.
//! - `client`: authenticated GETs, one refresh on 401, paging, employer discovery.
//! - `wire`: Loket's JSON shapes, leniently typed.
//! - `mapping`: Loket records to canonical entities, the manager heuristic.
//! - `source`: the [`crate::source::Source`] implementation: which calls a full and a delta
//!   sync make (the call budget), and how they are assembled.

pub mod client;
pub mod mapping;
pub mod source;
pub mod token;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use koppel_registry::{Connection, ConnectionSettings, SecretKey};
use serde::Deserialize;

pub use client::{DiscoveredEmployer, LoketClient};
pub use mapping::MappingSettings;
pub use source::LoketSource;
pub use token::{
    OAuthClient, StoredRefreshToken, TokenError, TokenManager, exchange_authorization_code,
    refresh_token_context, store_refresh_token,
};

use crate::http_source::RetryPolicy;
use crate::source::SourceError;

/// `[loket]` in the extractor config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoketSettings {
    /// `pageSize` of list requests. Loket's maximum is undocumented; HelloID uses 250.
    pub page_size: u32,
    /// Pages per list before paging is refused as runaway.
    pub max_pages: u64,
    /// Per-entity requests (wages, BSNs) in flight at once per employer.
    pub max_concurrent_requests: usize,
    /// Read BSNs (`/citizenservicenumber`, one call per employee that needs content). Off
    /// for a connection whose user lacks the right; a 403 also turns it off for the run.
    pub read_citizen_service_numbers: bool,
    /// How long a refresher that got `invalid_grant` waits for a competing replica's new
    /// token to appear before declaring the connection in need of re-authorisation.
    pub token_race_grace_seconds: u64,
    pub retry: RetryPolicy,
    pub mapping: MappingSettings,
}

impl Default for LoketSettings {
    fn default() -> Self {
        LoketSettings {
            page_size: 250,
            max_pages: 10_000,
            max_concurrent_requests: 8,
            read_citizen_service_numbers: true,
            token_race_grace_seconds: 15,
            retry: RetryPolicy::default(),
            mapping: MappingSettings::default(),
        }
    }
}

/// The sealing context of a Loket connection's client secret (the same for every source).
pub use crate::source::client_secret_context;

/// Builds the OAuth client of a Loket connection from its registry record.
pub fn oauth_client(
    connection: &Connection,
    key: &SecretKey,
    http: reqwest::Client,
    settings: &LoketSettings,
) -> Result<OAuthClient, SourceError> {
    let ConnectionSettings::Loket(loket) = &connection.settings else {
        return Err(SourceError::Configuration {
            connection_id: connection.id.clone(),
            reason: "not a Loket connection".to_owned(),
        });
    };
    let client_secret = key
        .open(&loket.client_secret, &client_secret_context(&connection.id))
        .map_err(|error| SourceError::Configuration {
            connection_id: connection.id.clone(),
            reason: format!("client secret: {error}"),
        })?;
    Ok(OAuthClient {
        connection_id: connection.id.clone(),
        oauth_base_url: loket.oauth_base_url.clone(),
        client_id: loket.client_id.clone(),
        client_secret,
        redirect_uri: loket.redirect_uri.clone(),
        http,
        retry: settings.retry.clone(),
    })
}

/// Builds the client (with its token manager) of a Loket connection. Build it once per
/// connection and share it: the token manager's single-flight refresh is per instance.
pub fn connect(
    connection: &Connection,
    key: &SecretKey,
    http: reqwest::Client,
    tokens: async_nats::jetstream::kv::Store,
    settings: &LoketSettings,
) -> Result<LoketClient, SourceError> {
    let ConnectionSettings::Loket(loket) = &connection.settings else {
        return Err(SourceError::Configuration {
            connection_id: connection.id.clone(),
            reason: "not a Loket connection".to_owned(),
        });
    };
    let oauth = oauth_client(connection, key, http.clone(), settings)?;
    let manager = TokenManager::new(
        oauth,
        tokens,
        key.clone(),
        Duration::from_secs(settings.token_race_grace_seconds),
    );
    Ok(LoketClient::new(
        http,
        &loket.api_base_url,
        Arc::new(manager),
        settings.retry.clone(),
        settings.page_size,
        settings.max_pages,
    ))
}
