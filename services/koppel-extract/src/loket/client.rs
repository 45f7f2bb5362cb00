//! The Loket REST client: bearer authentication with exactly one token refresh on a 401 and
//! retries (both through [`crate::http_source`]), and Loket's paging envelope.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::token::TokenManager;
use super::wire::{Envelope, LoketEmployer, Single};
use crate::http_source::{
    BearerGet, Page, RetryPolicy, body_error, collect_pages, get_json_with_bearer, parse_item,
};
pub use crate::source::DiscoveredEmployer;
use crate::source::SourceError;

/// A Loket API client for one connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LoketClient {
    http: reqwest::Client,
    api_base_url: String,
    tokens: Arc<TokenManager>,
    retry: RetryPolicy,
    page_size: u32,
    max_pages: u64,
}

impl LoketClient {
    pub fn new(
        http: reqwest::Client,
        api_base_url: &str,
        tokens: Arc<TokenManager>,
        retry: RetryPolicy,
        page_size: u32,
        max_pages: u64,
    ) -> Self {
        LoketClient {
            http,
            api_base_url: api_base_url.trim_end_matches('/').to_owned(),
            tokens,
            retry,
            page_size: page_size.max(1),
            max_pages,
        }
    }

    pub fn connection_id(&self) -> &str {
        self.tokens.connection_id()
    }

    /// GETs `path` (relative to the API base, e.g. `/providers/employers`) and returns the
    /// response's JSON. A 401 renews the access token once and repeats the request once; a
    /// second 401 is an error.
    pub async fn get_json(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, SourceError> {
        let url = format!("{}{path}", self.api_base_url);
        let endpoint = format!("GET {}", path_family(path));
        get_json_with_bearer(
            self.tokens.as_ref(),
            BearerGet {
                http: &self.http,
                retry: &self.retry,
                source: "loket",
                url: &url,
                endpoint: &endpoint,
                query,
            },
        )
        .await
    }

    /// GETs a single resource and returns its `content`.
    pub async fn get_content(&self, path: &str) -> Result<Value, SourceError> {
        let body = self.get_json(path, &[]).await?;
        let single: Single = serde_json::from_value(body).map_err(|error| {
            SourceError::Http(body_error(&format!("GET {}", path_family(path)), &error))
        })?;
        Ok(single.content)
    }

    /// GETs every page of a collection and returns the raw items, for per-item parsing.
    pub async fn get_all(
        &self,
        path: &str,
        extra_query: &[(&str, String)],
    ) -> Result<Vec<Value>, SourceError> {
        let endpoint = format!("GET {}", path_family(path));
        collect_pages(&endpoint, self.max_pages, |page_number| {
            let mut query: Vec<(&str, String)> = extra_query.to_vec();
            query.push(("pageNumber", page_number.to_string()));
            query.push(("pageSize", self.page_size.to_string()));
            let endpoint = endpoint.clone();
            async move {
                let body = self.get_json(path, &query).await?;
                let envelope: Envelope = serde_json::from_value(body)
                    .map_err(|error| SourceError::Http(body_error(&endpoint, &error)))?;
                Ok(Page::from(envelope))
            }
        })
        .await
    }

    /// Every item of a collection parsed as `T`, or `Err` with the items that did not parse
    /// (their `id`, when they have one) alongside the good ones.
    pub async fn get_all_parsed<T: DeserializeOwned>(
        &self,
        path: &str,
        extra_query: &[(&str, String)],
    ) -> Result<(Vec<T>, Vec<(Option<String>, String)>), SourceError> {
        let items = self.get_all(path, extra_query).await?;
        let mut parsed = Vec::with_capacity(items.len());
        let mut failed = Vec::new();
        for item in items {
            // serde's own message quotes the offending value (a BSN, say); parse_item's
            // reason names only the rule.
            match parse_item::<T>(item, "id") {
                Ok(value) => parsed.push(value),
                Err(rejected) => failed.push((rejected.id, rejected.reason)),
            }
        }
        Ok((parsed, failed))
    }

    /// The employers the authorising user can see (`GET /providers/employers`).
    pub async fn discover_employers(&self) -> Result<Vec<DiscoveredEmployer>, SourceError> {
        let (employers, _) = self
            .get_all_parsed::<LoketEmployer>("/providers/employers", &[])
            .await?;
        Ok(employers
            .into_iter()
            .map(|employer| DiscoveredEmployer {
                source_employer_id: employer.id,
                name: employer.company_name,
                employer_number: super::wire::scalar_text(employer.employer_number.as_ref()),
                chamber_of_commerce_number: employer.chamber_of_commerce_number,
                payroll_tax_number: employer.payroll_tax_number,
            })
            .collect())
    }
}

/// The path with UUID segments replaced by `{id}`: error messages and metrics name the
/// endpoint, not the entity (and stay low in cardinality).
fn path_family(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if uuid::Uuid::parse_str(segment).is_ok() {
                "{id}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
