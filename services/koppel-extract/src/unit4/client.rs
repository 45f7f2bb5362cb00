//! The Unit4 Web API client: bearer GETs with one token renewal on a 401 and retries (both
//! through [`crate::http_source`]), the `pagina`/`aantal` paging envelope, and every URL and
//! path from the connection's configuration.

use std::sync::Arc;

use koppel_registry::Unit4Paths;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::token::Unit4Tokens;
use super::wire::{EMPLOYER_ID_MEMBER, Envelope, Werkgever};
use crate::http_source::{
    BearerGet, Page, RejectedItem, RetryPolicy, body_error, collect_pages, get_json_with_bearer,
    parse_item,
};
use crate::mapping::scalar_text;
use crate::source::{DiscoveredEmployer, SourceError};

/// What `{employer}` in a configured path stands for.
const EMPLOYER_PLACEHOLDER: &str = "{employer}";

/// A Unit4 API client for one connection. Cheap to clone; clones share the token cache.
#[derive(Debug, Clone)]
pub struct Unit4Client {
    http: reqwest::Client,
    api_base_url: String,
    paths: Unit4Paths,
    tokens: Arc<Unit4Tokens>,
    retry: RetryPolicy,
    page_size: u32,
    max_pages: u64,
}

/// Paging limits of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// `aantal` per request.
    pub page_size: u32,
    /// Pages per list before paging is refused as runaway.
    pub max_pages: u64,
}

impl Unit4Client {
    pub fn new(
        http: reqwest::Client,
        api_base_url: &str,
        paths: Unit4Paths,
        tokens: Arc<Unit4Tokens>,
        retry: RetryPolicy,
        paging: Paging,
    ) -> Self {
        Unit4Client {
            http,
            api_base_url: api_base_url.trim_end_matches('/').to_owned(),
            paths,
            tokens,
            retry,
            page_size: paging.page_size.max(1),
            max_pages: paging.max_pages,
        }
    }

    pub fn connection_id(&self) -> &str {
        self.tokens.connection_id()
    }

    pub fn paths(&self) -> &Unit4Paths {
        &self.paths
    }

    /// A configured path with `{employer}` filled in. The id goes into a URL path, so only
    /// the characters an id can have are accepted: a registration cannot steer the request
    /// to another resource.
    pub fn employer_path(&self, template: &str, employer_id: &str) -> Result<String, SourceError> {
        let safe = !employer_id.is_empty()
            && employer_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && employer_id != "."
            && employer_id != "..";
        if !safe {
            return Err(SourceError::Configuration {
                connection_id: self.connection_id().to_owned(),
                reason: "the employer's source id is not a Unit4 werkgeverId (letters, digits, '-', '_' and '.' only)".to_owned(),
            });
        }
        Ok(template.replace(EMPLOYER_PLACEHOLDER, employer_id))
    }

    /// The path of one employer: the employers path with `/{employer}` appended (the contract
    /// has no separate setting for it).
    pub fn single_employer_template(&self) -> String {
        format!(
            "{}/{EMPLOYER_PLACEHOLDER}",
            self.paths.employers.trim_end_matches('/')
        )
    }

    /// GETs `path` (relative to the API base) and returns its JSON. `endpoint` names it in
    /// errors and metrics: the configured template, never the filled-in ids.
    pub async fn get_json(
        &self,
        path: &str,
        endpoint: &str,
        query: &[(&str, String)],
    ) -> Result<Value, SourceError> {
        let url = format!("{}{path}", self.api_base_url);
        get_json_with_bearer(
            self.tokens.as_ref(),
            BearerGet {
                http: &self.http,
                retry: &self.retry,
                source: "unit4",
                url: &url,
                endpoint,
                query,
            },
        )
        .await
    }

    /// Every item of a paged list, each parsed on its own as `T` as its page arrives (so the
    /// raw JSON of a large employer is never held all at once). An item that does not parse
    /// comes back as its [`RejectedItem`], identified by `id_member`.
    pub async fn get_all_parsed<T: DeserializeOwned>(
        &self,
        path: &str,
        template: &str,
        id_member: &str,
    ) -> Result<Vec<Result<T, RejectedItem>>, SourceError> {
        let endpoint = format!("GET {template}");
        collect_pages(&endpoint, self.max_pages, |page_number| {
            let query = [
                ("pagina", page_number.to_string()),
                ("aantal", self.page_size.to_string()),
            ];
            let endpoint = endpoint.clone();
            async move {
                let body = self.get_json(path, &endpoint, &query).await?;
                let envelope: Envelope = serde_json::from_value(body)
                    .map_err(|error| SourceError::Http(body_error(&endpoint, &error)))?;
                let page = Page::from(envelope);
                Ok(Page {
                    items: page
                        .items
                        .into_iter()
                        .map(|item| parse_item::<T>(item, id_member))
                        .collect(),
                    current_page: page.current_page,
                    total_pages: page.total_pages,
                })
            }
        })
        .await
    }

    /// One employer (`GET {employers}/{employer}`).
    pub async fn employer(&self, employer_id: &str) -> Result<Werkgever, SourceError> {
        let template = self.single_employer_template();
        let path = self.employer_path(&template, employer_id)?;
        let endpoint = format!("GET {template}");
        let body = self.get_json(&path, &endpoint, &[]).await?;
        serde_json::from_value(body)
            .map_err(|error| SourceError::Http(body_error(&endpoint, &error)))
    }

    /// The employers of the connection's user group (`GET {employers}`), for onboarding.
    pub async fn discover_employers(&self) -> Result<Vec<DiscoveredEmployer>, SourceError> {
        let employers = self
            .get_all_parsed::<Werkgever>(
                &self.paths.employers,
                &self.paths.employers,
                EMPLOYER_ID_MEMBER,
            )
            .await?;
        Ok(employers
            .into_iter()
            .filter_map(Result::ok)
            .map(|employer| DiscoveredEmployer {
                source_employer_id: employer.werkgever_id,
                name: scalar_text(employer.naam.as_ref()),
                employer_number: scalar_text(employer.werkgever_nummer.as_ref()),
                chamber_of_commerce_number: scalar_text(employer.kvk_nummer.as_ref()),
                payroll_tax_number: scalar_text(employer.loonheffingennummer.as_ref()),
            })
            .collect())
    }
}
