//! Loket OAuth2 tokens: the rotating refresh token in the tokens KV bucket, and access tokens
//! cached per connection.
//!
//! # Rotation, safely
//!
//! Loket's refresh tokens are single use: a refresh returns a new refresh token and kills the
//! old one (`sources.md` 1.2). So:
//! 1. One refresh at a time per connection in this process (an async mutex; concurrent
//!    callers wait and then share the fresh access token).
//! 2. The new refresh token is sealed and written with compare-and-set on the KV revision the
//!    old one was read at, and only after that write succeeds is the new access token used.
//! 3. A refresh refused with `invalid_grant` usually means another replica refreshed first:
//!    the refresher re-reads the stored token (waiting up to `race_grace_seconds` for the
//!    winner's write to land) and refreshes with the winner's token instead of failing.
//!
//! # The one way to lose a token, and how it shows
//!
//! If the process dies after Loket answered the refresh but before the new token is stored,
//! the old token is already dead and the new one was never written. koppel cannot recover
//! that by itself, and it does not pretend to: the next refresh gets `invalid_grant`, no
//! newer token appears in KV within the grace period, and the sync fails with
//! [`TokenError::ReauthorisationRequired`] ("re-authorise this connection") instead of a
//! silent retry loop. An operator runs the authorisation again (`koppel connection add
//! loket`). The window is one KV write long.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use koppel_nats::kv::{self, KvError};
use koppel_registry::{SealedSecret, SecretKey};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::access_token::{AccessTokenCache, IssuedToken};
use crate::http_source::{
    BearerTokens, ErrorClass, HttpSourceError, RetryPolicy, read_json, send_with_retry,
};
use crate::source::SourceError;

/// The sealing context of a connection's refresh token: a sealed token copied to another
/// connection's key does not open there.
pub fn refresh_token_context(connection_id: &str) -> String {
    format!("tokens/{connection_id}/refresh_token")
}

/// What the tokens bucket holds per connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRefreshToken {
    pub sealed: SealedSecret,
    pub stored_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("connection {connection_id} must be re-authorised: {reason}")]
    ReauthorisationRequired {
        connection_id: String,
        reason: String,
    },
    #[error("connection {connection_id}: the tokens bucket failed: {source}")]
    Store {
        connection_id: String,
        source: KvError,
    },
    #[error(
        "connection {connection_id}: the stored refresh token cannot be opened with this secret key"
    )]
    Seal { connection_id: String },
    #[error("connection {connection_id}: the OAuth server refused the client: {reason}")]
    ClientRejected {
        connection_id: String,
        reason: String,
    },
    #[error("connection {connection_id}: token request failed: {source}")]
    Http {
        connection_id: String,
        source: HttpSourceError,
    },
    #[error("connection {connection_id}: the token response lacks {field}")]
    IncompleteResponse {
        connection_id: String,
        field: &'static str,
    },
}

impl TokenError {
    pub fn class(&self) -> ErrorClass {
        match self {
            TokenError::Store { .. } => ErrorClass::Retryable,
            TokenError::Http { source, .. } => source.class(),
            TokenError::ReauthorisationRequired { .. }
            | TokenError::Seal { .. }
            | TokenError::ClientRejected { .. }
            | TokenError::IncompleteResponse { .. } => ErrorClass::Permanent,
        }
    }
}

impl From<TokenError> for SourceError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::ReauthorisationRequired {
                connection_id,
                reason,
            } => SourceError::ReauthorisationRequired {
                connection_id,
                reason,
            },
            TokenError::Store {
                connection_id,
                source,
            } => SourceError::CredentialStore {
                connection_id,
                source,
            },
            TokenError::Seal { connection_id } => SourceError::Configuration {
                connection_id,
                reason: "the stored refresh token cannot be opened with this secret key".to_owned(),
            },
            TokenError::ClientRejected {
                connection_id,
                reason,
            } => SourceError::Configuration {
                connection_id,
                reason,
            },
            TokenError::IncompleteResponse {
                connection_id,
                field,
            } => SourceError::Configuration {
                connection_id,
                reason: format!("the token response lacks {field}"),
            },
            TokenError::Http { source, .. } => SourceError::Http(source),
        }
    }
}

/// The OAuth client of one connection.
#[derive(Clone)]
pub struct OAuthClient {
    pub connection_id: String,
    /// `https://oauth.loket.nl`; `/token` is appended.
    pub oauth_base_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: String,
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("connection_id", &self.connection_id)
            .field("oauth_base_url", &self.oauth_base_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A token response, secrets wrapped.
struct TokenResponse {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    expires_in: Duration,
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: Option<String>,
}

/// How a token request failed.
enum GrantFailure {
    /// `invalid_grant`: the refresh token (or code) is used up or unknown.
    InvalidGrant,
    Other(TokenError),
}

impl OAuthClient {
    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenResponse, GrantFailure> {
        let url = format!("{}/token", self.oauth_base_url.trim_end_matches('/'));
        let result = send_with_retry(&self.retry, "loket", "POST /token", || {
            self.http.post(&url).form(form)
        })
        .await;
        let response = match result {
            Ok(response) => response,
            Err(HttpSourceError::Status {
                status,
                body_excerpt,
                ..
            }) if (400..500).contains(&status) => {
                let error = serde_json::from_str::<OAuthErrorBody>(&body_excerpt)
                    .ok()
                    .and_then(|body| body.error)
                    .unwrap_or_default();
                return Err(if error == "invalid_grant" {
                    GrantFailure::InvalidGrant
                } else {
                    GrantFailure::Other(TokenError::ClientRejected {
                        connection_id: self.connection_id.clone(),
                        reason: format!("HTTP {status} {error}"),
                    })
                });
            }
            Err(source) => {
                return Err(GrantFailure::Other(TokenError::Http {
                    connection_id: self.connection_id.clone(),
                    source,
                }));
            }
        };
        let raw: RawTokenResponse = read_json(response, "POST /token").await.map_err(|source| {
            GrantFailure::Other(TokenError::Http {
                connection_id: self.connection_id.clone(),
                source,
            })
        })?;
        let access_token = raw.access_token.ok_or_else(|| {
            GrantFailure::Other(TokenError::IncompleteResponse {
                connection_id: self.connection_id.clone(),
                field: "access_token",
            })
        })?;
        Ok(TokenResponse {
            access_token: SecretString::from(access_token),
            refresh_token: raw.refresh_token.map(SecretString::from),
            // Loket says 3599 s; without a value assume that.
            expires_in: Duration::from_secs(raw.expires_in.unwrap_or(3599)),
        })
    }
}

/// Seals and stores a refresh token for a connection, replacing whatever is stored (used by
/// onboarding after an authorisation, and by tests and the demo).
pub async fn store_refresh_token(
    tokens: &async_nats::jetstream::kv::Store,
    key: &SecretKey,
    connection_id: &str,
    refresh_token: &SecretString,
) -> Result<(), TokenError> {
    let sealed = key
        .seal(refresh_token, &refresh_token_context(connection_id))
        .map_err(|_| TokenError::Seal {
            connection_id: connection_id.to_owned(),
        })?;
    let value = StoredRefreshToken {
        sealed,
        stored_at: Utc::now(),
    };
    let store_error = |source| TokenError::Store {
        connection_id: connection_id.to_owned(),
        source,
    };
    let current = kv::get_json::<serde_json::Value>(tokens, connection_id)
        .await
        .map_err(store_error)?;
    kv::put_json_if(tokens, connection_id, &value, current.map(|v| v.revision))
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Exchanges an authorization code (from Loket's `/authorize` redirect) for the first refresh
/// token and stores it sealed. The access token of the exchange is discarded: the extractor
/// gets its own with the stored refresh token.
pub async fn exchange_authorization_code(
    oauth: &OAuthClient,
    tokens: &async_nats::jetstream::kv::Store,
    key: &SecretKey,
    code: &SecretString,
) -> Result<(), TokenError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.expose_secret()),
        ("redirect_uri", oauth.redirect_uri.as_str()),
        ("client_id", oauth.client_id.as_str()),
        ("client_secret", oauth.client_secret.expose_secret()),
    ];
    let response = match oauth.token_request(&form).await {
        Ok(response) => response,
        Err(GrantFailure::InvalidGrant) => {
            return Err(TokenError::ReauthorisationRequired {
                connection_id: oauth.connection_id.clone(),
                reason:
                    "the authorization code was refused (expired or already used); authorise again"
                        .to_owned(),
            });
        }
        Err(GrantFailure::Other(error)) => return Err(error),
    };
    let refresh_token = response
        .refresh_token
        .ok_or_else(|| TokenError::IncompleteResponse {
            connection_id: oauth.connection_id.clone(),
            field: "refresh_token",
        })?;
    store_refresh_token(tokens, key, &oauth.connection_id, &refresh_token).await
}

/// Access tokens of one connection, refreshed single-flight with the rotation rules above.
pub struct TokenManager {
    oauth: OAuthClient,
    tokens: async_nats::jetstream::kv::Store,
    key: SecretKey,
    race_grace: Duration,
    current: AccessTokenCache,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("connection_id", &self.oauth.connection_id)
            .finish_non_exhaustive()
    }
}

impl BearerTokens for TokenManager {
    type Error = SourceError;

    async fn access_token(&self) -> Result<SecretString, SourceError> {
        Ok(TokenManager::access_token(self).await?)
    }

    async fn renew_after_rejection(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, SourceError> {
        Ok(TokenManager::renew_after_rejection(self, rejected).await?)
    }
}

impl TokenManager {
    pub fn new(
        oauth: OAuthClient,
        tokens: async_nats::jetstream::kv::Store,
        key: SecretKey,
        race_grace: Duration,
    ) -> Self {
        TokenManager {
            oauth,
            tokens,
            key,
            race_grace,
            current: AccessTokenCache::default(),
        }
    }

    pub fn connection_id(&self) -> &str {
        &self.oauth.connection_id
    }

    /// A usable access token: the cached one, or a fresh one.
    pub async fn access_token(&self) -> Result<SecretString, TokenError> {
        self.current.get(|| self.refresh()).await
    }

    /// Called after the API answered 401 to `rejected`: refreshes, unless another caller
    /// already replaced that token, in which case the replacement is returned. So a burst of
    /// 401s from parallel requests costs one refresh.
    pub async fn renew_after_rejection(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, TokenError> {
        self.current
            .renew_after_rejection(rejected, || self.refresh())
            .await
    }

    fn store_error(&self, source: KvError) -> TokenError {
        TokenError::Store {
            connection_id: self.oauth.connection_id.clone(),
            source,
        }
    }

    async fn read_stored(&self) -> Result<Option<kv::Versioned<StoredRefreshToken>>, TokenError> {
        kv::get_json::<StoredRefreshToken>(&self.tokens, &self.oauth.connection_id)
            .await
            .map_err(|error| self.store_error(error))
    }

    /// One refresh, following the rotation rules in the module docs. Called with the
    /// connection's mutex held.
    async fn refresh(&self) -> Result<IssuedToken, TokenError> {
        let connection_id = self.oauth.connection_id.clone();
        let context = refresh_token_context(&connection_id);
        let deadline = Instant::now() + self.race_grace;
        loop {
            let Some(stored) = self.read_stored().await? else {
                return Err(TokenError::ReauthorisationRequired {
                    connection_id,
                    reason: "no refresh token is stored; authorise the connection first".to_owned(),
                });
            };
            let refresh_token =
                self.key
                    .open(&stored.value.sealed, &context)
                    .map_err(|_| TokenError::Seal {
                        connection_id: connection_id.clone(),
                    })?;
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
                ("client_id", self.oauth.client_id.as_str()),
                ("client_secret", self.oauth.client_secret.expose_secret()),
            ];
            let requested_at = Instant::now();
            match self.oauth.token_request(&form).await {
                Ok(response) => {
                    let Some(new_refresh) = response.refresh_token else {
                        // S4 treats this as fatal too: keeping the old token would reuse a
                        // token Loket may already have invalidated.
                        return Err(TokenError::IncompleteResponse {
                            connection_id,
                            field: "refresh_token",
                        });
                    };
                    self.persist(&new_refresh, stored.revision).await?;
                    metrics::counter!("koppel_loket_token_refreshes_total").increment(1);
                    return Ok(IssuedToken {
                        access_token: response.access_token,
                        expires_in: response.expires_in,
                        requested_at,
                    });
                }
                Err(GrantFailure::InvalidGrant) => {
                    // Most likely another replica used the token first. Wait for its write.
                    metrics::counter!("koppel_loket_token_races_total").increment(1);
                    if !self.wait_for_newer(stored.revision, deadline).await? {
                        return Err(TokenError::ReauthorisationRequired {
                            connection_id,
                            reason: "the stored refresh token was refused (invalid_grant) and no newer one was stored; it was revoked, or a refresh was interrupted before its new token was saved".to_owned(),
                        });
                    }
                    tracing::info!(connection = %connection_id, "Another worker rotated the refresh token first; using the token it stored.");
                }
                Err(GrantFailure::Other(error)) => return Err(error),
            }
        }
    }

    /// Waits until the stored token's revision differs from `revision` (true) or the deadline
    /// passes (false).
    async fn wait_for_newer(&self, revision: u64, deadline: Instant) -> Result<bool, TokenError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(500))
            .without_max_times()
            .build();
        loop {
            if let Some(stored) = self.read_stored().await?
                && stored.revision != revision
            {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let delay = delays.next().unwrap_or(left);
            tokio::time::sleep(delay.min(left)).await;
        }
    }

    /// Stores the new refresh token with compare-and-set on the revision the used one was read
    /// at. KV failures are retried briefly: the new token exists only in memory until then.
    async fn persist(
        &self,
        refresh_token: &SecretString,
        read_revision: u64,
    ) -> Result<(), TokenError> {
        let connection_id = &self.oauth.connection_id;
        let sealed = self
            .key
            .seal(refresh_token, &refresh_token_context(connection_id))
            .map_err(|_| TokenError::Seal {
                connection_id: connection_id.clone(),
            })?;
        let value = StoredRefreshToken {
            sealed,
            stored_at: Utc::now(),
        };
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_times(5)
            .build();
        loop {
            match kv::put_json_if(&self.tokens, connection_id, &value, Some(read_revision)).await {
                Ok(_) => return Ok(()),
                Err(KvError::Conflict { .. }) => {
                    // Someone stored a token after we read ours, yet ours was accepted: an
                    // operator re-authorised meanwhile. Theirs is the newer grant; keep it
                    // and use our access token for this run only.
                    tracing::warn!(connection = %connection_id, "The stored refresh token changed during a refresh; keeping the stored one.");
                    return Ok(());
                }
                Err(error) => {
                    if let Some(delay) = delays.next() {
                        tracing::warn!(connection = %connection_id, %error, "Storing the rotated refresh token failed; retrying.");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(TokenError::ReauthorisationRequired {
                        connection_id: connection_id.clone(),
                        reason: format!(
                            "the rotated refresh token could not be stored ({error}); the previous one is already used up"
                        ),
                    });
                }
            }
        }
    }
}
