//! Unit4 Identity Services (IDS) client credentials: `POST token_url` with
//! `grant_type=client_credentials`, `client_id`, `client_secret` and `scope`, form-encoded.
//!
//! There is no refresh token and nothing to store: a connection's access token lives in memory,
//! in the shared [`AccessTokenCache`] (reused until 60 seconds before `expires_in`, fetched
//! single-flight per connection, renewed once per token the API rejects with a 401). Token
//! requests are retried like every other request ([`send_with_retry`]: 429 and 5xx with
//! backoff and `Retry-After`). A refusal is permanent and says what to fix:
//! `invalid_client` is a wrong client id or secret, `invalid_scope` a wrong scope.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use crate::access_token::{AccessTokenCache, IssuedToken};
use crate::http_source::{BearerTokens, HttpSourceError, RetryPolicy, read_json, send_with_retry};
use crate::source::SourceError;

/// What a connection needs to ask IDS for a token.
#[derive(Clone)]
pub struct ClientCredentials {
    pub connection_id: String,
    pub token_url: String,
    pub scope: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("connection_id", &self.connection_id)
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: Option<String>,
}

/// `expires_in` when IDS leaves it out: short, so a token of unknown life is not kept long.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);

impl ClientCredentials {
    /// One token request.
    pub async fn request_token(&self) -> Result<IssuedToken, SourceError> {
        let requested_at = Instant::now();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("scope", self.scope.as_str()),
        ];
        let result = send_with_retry(&self.retry, "unit4", "POST token", || {
            self.http.post(&self.token_url).form(&form)
        })
        .await;
        let response = match result {
            Ok(response) => response,
            Err(HttpSourceError::Status {
                status: status @ (400 | 401),
                body_excerpt,
                ..
            }) => return Err(self.refusal(status, &body_excerpt)),
            Err(error) => return Err(error.into()),
        };
        metrics::counter!("koppel_unit4_token_requests_total").increment(1);
        let answer: TokenAnswer = read_json(response, "POST token").await?;
        let access_token = answer
            .access_token
            .filter(|token| !token.is_empty())
            .ok_or_else(|| SourceError::Configuration {
                connection_id: self.connection_id.clone(),
                reason: "the Unit4 token endpoint answered without an access_token".to_owned(),
            })?;
        Ok(IssuedToken {
            access_token: SecretString::from(access_token),
            expires_in: answer
                .expires_in
                .map_or(ASSUMED_LIFETIME, Duration::from_secs),
            requested_at,
        })
    }

    /// A refused token request (RFC 6749 5.2), in terms an operator can act on.
    fn refusal(&self, status: u16, body: &str) -> SourceError {
        let code = serde_json::from_str::<OAuthErrorBody>(body)
            .ok()
            .and_then(|body| body.error);
        let connection_id = self.connection_id.clone();
        match (status, code.as_deref()) {
            (401, _) | (_, Some("invalid_client" | "unauthorized_client")) => {
                SourceError::CredentialsRejected {
                    connection_id,
                    reason: format!(
                        "the Unit4 client id or secret is wrong: the token endpoint answered HTTP {status} {}; update the connection with the web-API user's credentials",
                        code.as_deref().unwrap_or("without an error code")
                    ),
                }
            }
            (_, Some("invalid_scope")) => SourceError::Configuration {
                connection_id,
                reason: format!(
                    "the Unit4 token endpoint refuses the scope {:?} (invalid_scope)",
                    self.scope
                ),
            },
            _ => SourceError::Configuration {
                connection_id,
                reason: format!(
                    "the Unit4 token endpoint refuses the request: HTTP {status} {}",
                    code.as_deref().unwrap_or("without an error code")
                ),
            },
        }
    }
}

/// The access tokens of one Unit4 connection. Share one per connection.
#[derive(Debug)]
pub struct Unit4Tokens {
    credentials: ClientCredentials,
    cache: AccessTokenCache,
}

impl Unit4Tokens {
    pub fn new(credentials: ClientCredentials) -> Self {
        Unit4Tokens {
            credentials,
            cache: AccessTokenCache::default(),
        }
    }

    pub fn connection_id(&self) -> &str {
        &self.credentials.connection_id
    }
}

impl BearerTokens for Unit4Tokens {
    type Error = SourceError;

    async fn access_token(&self) -> Result<SecretString, SourceError> {
        self.cache.get(|| self.credentials.request_token()).await
    }

    async fn renew_after_rejection(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, SourceError> {
        self.cache
            .renew_after_rejection(rejected, || self.credentials.request_token())
            .await
    }
}
