//! The Unit4 HR & Salarisgemak source: IDS client credentials, the Web API of koppel's
//! provisional contract (docs/sources/unit4.md) with every URL, the scope and every path from
//! the connection's configuration, a full snapshot per run, and the mapping to the canonical
//! model.
//!
//! # Layout
//! - `token`: client-credentials tokens, cached in memory per connection.
//! - `client`: authenticated GETs, paging, employer discovery.
//! - `wire`: the contract's JSON shapes, leniently typed.
//! - `mapping`: Unit4 records to canonical entities.
//! - `source`: the [`crate::source::Source`] implementation and its call budget.

pub mod client;
pub mod mapping;
pub mod source;
pub mod token;
pub mod wire;

use std::sync::Arc;

use koppel_registry::{Connection, ConnectionSettings, SecretKey};
use serde::Deserialize;

pub use client::{Paging, Unit4Client};
pub use source::Unit4Source;
pub use token::{ClientCredentials, Unit4Tokens};

use crate::http_source::RetryPolicy;
use crate::source::SourceError;
pub use crate::source::{DiscoveredEmployer, client_secret_context};

/// `[unit4]` in the extractor config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Unit4Settings {
    /// `aantal` of list requests; the contract's maximum is 500 (larger requests are clamped).
    pub page_size: u32,
    /// Pages per list before paging is refused as runaway.
    pub max_pages: u64,
    pub retry: RetryPolicy,
}

impl Default for Unit4Settings {
    fn default() -> Self {
        Unit4Settings {
            page_size: 500,
            max_pages: 10_000,
            retry: RetryPolicy::default(),
        }
    }
}

/// Builds the client (with its token cache) of a Unit4 connection from its registry record.
/// Build it once per connection and share it: the token cache is per instance.
pub fn connect(
    connection: &Connection,
    key: &SecretKey,
    http: reqwest::Client,
    settings: &Unit4Settings,
) -> Result<Unit4Client, SourceError> {
    let ConnectionSettings::Unit4(unit4) = &connection.settings else {
        return Err(SourceError::Configuration {
            connection_id: connection.id.clone(),
            reason: "not a Unit4 connection".to_owned(),
        });
    };
    let client_secret = key
        .open(&unit4.client_secret, &client_secret_context(&connection.id))
        .map_err(|error| SourceError::Configuration {
            connection_id: connection.id.clone(),
            reason: format!("client secret: {error}"),
        })?;
    let tokens = Unit4Tokens::new(ClientCredentials {
        connection_id: connection.id.clone(),
        token_url: unit4.token_url.clone(),
        scope: unit4.scope.clone(),
        client_id: unit4.client_id.clone(),
        client_secret,
        http: http.clone(),
        retry: settings.retry.clone(),
    });
    Ok(Unit4Client::new(
        http,
        &unit4.api_base_url,
        unit4.paths.clone(),
        Arc::new(tokens),
        settings.retry.clone(),
        Paging {
            page_size: settings.page_size,
            max_pages: settings.max_pages,
        },
    ))
}
