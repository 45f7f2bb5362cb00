//! Loket's OAuth2 server: `/authorize` (authorization code) and `/token` (code exchange and
//! rotating refresh tokens), plus bearer-token checks for the API.
//!
//! Behaviour per `sources.md` 1.2:
//! - a refresh token is single use: using it rotates it, and using it again gets
//!   `400 {"error":"invalid_grant"}` (no grace window);
//! - access tokens live `expires_in: 3599` seconds;
//! - the token request body is parsed as a form whatever its `Content-Type` (HelloID sends
//!   `text/plain`), and client credentials may come in the body or as HTTP Basic;
//! - `/authorize` has no login page: the simulator picks the Loket user from the standard
//!   `login_hint` parameter (or the only registered user) and redirects at once.
//!
//! Tokens are random opaque strings (two UUIDv4s, 244 random bits) and are never logged.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use tokio::time::Instant;
use uuid::Uuid;

use super::{AuthorizingUser, LoketSimulator, LoketSimulatorError};

/// How long an authorization code can be exchanged. Loket's value is undocumented; ten minutes
/// is the usual OAuth2 choice.
pub const AUTHORIZATION_CODE_LIFETIME: Duration = Duration::from_secs(600);

/// Every grant the simulator issued that is still usable.
#[derive(Debug, Default)]
pub(super) struct TokenStore {
    users: HashMap<String, AuthorizingUser>,
    /// Code -> user and redirect URI it was issued for.
    codes: HashMap<String, PendingCode>,
    /// Access token -> grant.
    access_tokens: HashMap<String, AccessGrant>,
    /// Refresh token -> user name; removed on use, which makes it single use.
    refresh_tokens: HashMap<String, String>,
}

#[derive(Debug)]
struct PendingCode {
    user_name: String,
    redirect_uri: String,
    expires_at: Instant,
}

#[derive(Debug)]
struct AccessGrant {
    user_name: String,
    expires_at: Instant,
}

/// The tokens of one successful token request.
#[derive(Debug)]
struct IssuedTokens {
    access_token: String,
    refresh_token: String,
}

impl TokenStore {
    pub(super) fn register_user(&mut self, user: AuthorizingUser) {
        self.users.insert(user.user_name.clone(), user);
    }

    pub(super) fn issue_refresh_token(
        &mut self,
        user_name: &str,
    ) -> Result<String, LoketSimulatorError> {
        if !self.users.contains_key(user_name) {
            return Err(LoketSimulatorError::UnknownUser(user_name.to_owned()));
        }
        let refresh_token = opaque_token();
        self.refresh_tokens
            .insert(refresh_token.clone(), user_name.to_owned());
        Ok(refresh_token)
    }

    pub(super) fn expire_access_tokens(&mut self) {
        let now = Instant::now();
        for grant in self.access_tokens.values_mut() {
            grant.expires_at = grant.expires_at.min(now);
        }
    }

    /// The user an unexpired access token acts for.
    pub(super) fn user_for_access_token(&self, access_token: &str) -> Option<AuthorizingUser> {
        let grant = self.access_tokens.get(access_token)?;
        if grant.expires_at <= Instant::now() {
            return None;
        }
        self.users.get(&grant.user_name).cloned()
    }

    fn issue_tokens(&mut self, user_name: &str, lifetime: Duration) -> IssuedTokens {
        let now = Instant::now();
        // Expired grants are dropped here so a long benchmark does not grow the map forever.
        self.access_tokens.retain(|_, grant| grant.expires_at > now);
        let access_token = opaque_token();
        let refresh_token = opaque_token();
        self.access_tokens.insert(
            access_token.clone(),
            AccessGrant {
                user_name: user_name.to_owned(),
                expires_at: now + lifetime,
            },
        );
        self.refresh_tokens
            .insert(refresh_token.clone(), user_name.to_owned());
        IssuedTokens {
            access_token,
            refresh_token,
        }
    }
}

/// An opaque, unguessable token. UUIDv4 draws from the operating system's generator, unlike
/// the world's seeded one, so tokens differ on every run as real ones do.
fn opaque_token() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Query of `GET /authorize`.
#[derive(Debug, Deserialize)]
pub(super) struct AuthorizeQuery {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    state: Option<String>,
    /// Simulator stand-in for the Loket login page: the user name that "logs in".
    login_hint: Option<String>,
}

/// `GET /authorize`: checks the client, "logs in" the user named by `login_hint` and
/// redirects to `{redirect_uri}?state={state}&code={code}` (the order S1 shows).
pub(super) async fn authorize(
    State(simulator): State<LoketSimulator>,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    let config = simulator.config();
    if query.client_id.as_deref() != Some(config.client_id.as_str()) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client");
    }
    // Never redirect to an unregistered URI: report the error here instead.
    if query.redirect_uri.as_deref() != Some(config.redirect_uri.as_str()) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    if query.response_type.as_deref() != Some("code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_response_type");
    }
    let code = {
        let mut tokens = simulator.tokens();
        let user_name = match query.login_hint {
            Some(name) if tokens.users.contains_key(&name) => name,
            Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "access_denied"),
            None if tokens.users.len() == 1 => match tokens.users.keys().next() {
                Some(name) => name.clone(),
                None => return oauth_error(StatusCode::BAD_REQUEST, "access_denied"),
            },
            None => return oauth_error(StatusCode::BAD_REQUEST, "access_denied"),
        };
        let code = opaque_token();
        tokens.codes.insert(
            code.clone(),
            PendingCode {
                user_name,
                redirect_uri: config.redirect_uri.clone(),
                expires_at: Instant::now() + AUTHORIZATION_CODE_LIFETIME,
            },
        );
        code
    };
    let mut pairs = Vec::with_capacity(2);
    if let Some(state) = query.state.as_deref() {
        pairs.push(("state", state));
    }
    pairs.push(("code", code.as_str()));
    let Ok(encoded) = serde_urlencoded::to_string(&pairs) else {
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    let separator = if config.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!("{}{separator}{encoded}", config.redirect_uri);
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    }
}

/// `POST /token` for the `authorization_code` and `refresh_token` grants.
pub(super) async fn token(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Parsed as a form whatever the Content-Type says (pitfall P2 in sources.md).
    let Ok(form) = serde_urlencoded::from_bytes::<HashMap<String, String>>(&body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let config = simulator.config();
    let (basic_id, basic_secret) = basic_credentials(&headers).unwrap_or_default();
    let client_id = form.get("client_id").cloned().or(basic_id);
    let client_secret = form.get("client_secret").cloned().or(basic_secret);
    if client_id.as_deref() != Some(config.client_id.as_str()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if let Some(expected) = &config.client_secret
        && client_secret.as_deref() != Some(expected.as_str())
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }

    let lifetime = config.access_token_lifetime;
    let issued = {
        let mut tokens = simulator.tokens();
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                // Removed before it is checked: a code is single use even when the exchange fails.
                let Some(pending) = form.get("code").and_then(|code| tokens.codes.remove(code))
                else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
                };
                if pending.expires_at <= Instant::now()
                    || form
                        .get("redirect_uri")
                        .is_some_and(|uri| *uri != pending.redirect_uri)
                {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
                }
                tokens.issue_tokens(&pending.user_name, lifetime)
            }
            Some("refresh_token") => {
                let Some(user_name) = form
                    .get("refresh_token")
                    .and_then(|token| tokens.refresh_tokens.remove(token))
                else {
                    tracing::debug!("refresh token grant refused: unknown or already used token");
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
                };
                if !tokens.users.contains_key(&user_name) {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
                }
                tokens.issue_tokens(&user_name, lifetime)
            }
            Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        }
    };
    let body = serde_json::json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "refresh_token": issued.refresh_token,
    });
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(body),
    )
        .into_response()
}

/// Client id and secret from an `Authorization: Basic` header (IdentityModel's default style),
/// each form-url-decoded as RFC 6749 section 2.3.1 asks.
fn basic_credentials(headers: &HeaderMap) -> Option<(Option<String>, Option<String>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let pairs: HashMap<String, String> =
        serde_urlencoded::from_str(&format!("id={id}&secret={secret}")).ok()?;
    Some((pairs.get("id").cloned(), pairs.get("secret").cloned()))
}

fn oauth_error(status: StatusCode, error: &'static str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": error }))).into_response()
}
