//! The Unit4 simulator's HTTP surface: the IDS token endpoint and the resource API.
//!
//! Errors follow OAuth2 (RFC 6749 5.2) on the token endpoint: 401 `invalid_client` for bad
//! credentials, 400 `unsupported_grant_type` or `invalid_scope`. The resource API answers 401
//! without a valid bearer token, 403 for an employer outside the client's user group and 404
//! for an unknown id, with `{"foutcode", "melding"}` bodies.

use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{API_PREFIX, IssuedToken, TOKEN_PATH, Unit4Simulator, WebApiClient, lock, render};
use crate::world::Employer;

pub(super) fn router(simulator: Unit4Simulator) -> Router {
    Router::new()
        .route(TOKEN_PATH, post(token))
        .route(&format!("{API_PREFIX}/werkgevers"), get(employers))
        .route(
            &format!("{API_PREFIX}/werkgevers/{{werkgeverId}}"),
            get(employer),
        )
        .route(
            &format!("{API_PREFIX}/werkgevers/{{werkgeverId}}/werknemers"),
            get(employees),
        )
        .route(
            &format!("{API_PREFIX}/werkgevers/{{werkgeverId}}/dienstverbanden"),
            get(employments),
        )
        .route_layer(middleware::from_fn_with_state(
            simulator.clone(),
            count_and_inject_faults,
        ))
        .with_state(simulator)
}

async fn count_and_inject_faults(
    State(simulator): State<Unit4Simulator>,
    request: Request,
    next: Next,
) -> Response {
    let family = request
        .uri()
        .path()
        .split('/')
        .map(|segment| {
            if Uuid::parse_str(segment).is_ok() {
                "{id}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    *lock(&simulator.inner.calls).entry(family).or_insert(0) += 1;
    if let Some(fault) = simulator.inner.faults.before_request().await {
        return fault.into_response();
    }
    next.run(request).await
}

// ---- IDS token endpoint ----------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// `POST /identity/connect/token`, form-encoded. Credentials in the body or as HTTP Basic.
async fn token(
    State(simulator): State<Unit4Simulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: TokenForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (client_id, client_secret) = match basic_credentials(&headers) {
        Some(credentials) => (Some(credentials.0), Some(credentials.1)),
        None => (form.client_id.clone(), form.client_secret.clone()),
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let known = client_id
        .as_ref()
        .and_then(|id| lock(&simulator.inner.clients).get(id).cloned())
        .filter(|client| Some(&client.client_secret) == client_secret.as_ref());
    let Some(client) = known else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let scope = simulator.inner.config.scope.clone();
    if form
        .scope
        .as_deref()
        .is_some_and(|requested| !requested.split(' ').any(|s| s == scope))
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    let access_token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let lifetime = simulator.inner.config.access_token_lifetime;
    lock(&simulator.inner.tokens).insert(
        access_token.clone(),
        IssuedToken {
            client_id: client.client_id,
            expires_at: Instant::now() + lifetime,
        },
    );
    Json(json!({
        "access_token": access_token,
        "expires_in": lifetime.as_secs(),
        "token_type": "Bearer",
        "scope": scope,
    }))
    .into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

// ---- resource API ---------------------------------------------------------------------------

#[derive(Debug)]
enum ApiError {
    Unauthorized,
    Forbidden,
    NotFound,
    BadRequest(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "AUTH-001",
                "Geen geldig toegangstoken.".to_owned(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "AUTH-003",
                "De web-api-gebruiker heeft geen toegang tot deze werkgever.".to_owned(),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "RES-404",
                "Werkgever niet gevonden.".to_owned(),
            ),
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, "REQ-400", message),
        };
        (
            status,
            Json(json!({ "foutcode": code, "melding": message })),
        )
            .into_response()
    }
}

fn authenticate(simulator: &Unit4Simulator, headers: &HeaderMap) -> Result<WebApiClient, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let client_id = {
        let tokens = lock(&simulator.inner.tokens);
        let issued = tokens.get(token.trim()).ok_or(ApiError::Unauthorized)?;
        if issued.expires_at <= Instant::now() {
            return Err(ApiError::Unauthorized);
        }
        issued.client_id.clone()
    };
    lock(&simulator.inner.clients)
        .get(&client_id)
        .cloned()
        .ok_or(ApiError::Unauthorized)
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    pagina: Option<String>,
    aantal: Option<String>,
}

/// One page of `items` in the contract's envelope: `{"data": [...], "paginering": {...}}`.
fn page(
    simulator: &Unit4Simulator,
    query: &PageQuery,
    items: Vec<Value>,
) -> Result<Response, ApiError> {
    let config = &simulator.inner.config;
    let parse = |name: &str, value: &Option<String>, default: u32| -> Result<u32, ApiError> {
        match value {
            None => Ok(default),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|number| *number > 0)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("{name} moet een positief geheel getal zijn"))
                }),
        }
    };
    let page_number = parse("pagina", &query.pagina, 1)?;
    let page_size =
        parse("aantal", &query.aantal, config.default_page_size)?.min(config.max_page_size);
    let total = items.len();
    let total_pages = total.div_ceil(page_size as usize);
    let start = (page_number as usize - 1).saturating_mul(page_size as usize);
    let data: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(page_size as usize)
        .collect();
    Ok(Json(json!({
        "data": data,
        "paginering": {
            "pagina": page_number,
            "aantal": page_size,
            "totaalAantal": total,
            "totaalPaginas": total_pages,
        }
    }))
    .into_response())
}

/// The employer, if it exists and the client's group holds it.
fn visible_employer<'a>(
    client: &WebApiClient,
    world: &'a crate::world::World,
    id: &str,
) -> Result<&'a Employer, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::NotFound)?;
    let employer = world.employer(id).ok_or(ApiError::NotFound)?;
    if !client.employers.contains(&id) {
        return Err(ApiError::Forbidden);
    }
    Ok(employer)
}

async fn employers(
    State(simulator): State<Unit4Simulator>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let client = authenticate(&simulator, &headers)?;
    let items = simulator.with_world(|world| {
        world
            .employers()
            .iter()
            .filter(|employer| client.employers.contains(&employer.id))
            .map(render::employer)
            .collect()
    });
    page(&simulator, &query, items)
}

async fn employer(
    State(simulator): State<Unit4Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let client = authenticate(&simulator, &headers)?;
    simulator.with_world(|world| {
        Ok(Json(render::employer(visible_employer(&client, world, &id)?)).into_response())
    })
}

async fn employees(
    State(simulator): State<Unit4Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let client = authenticate(&simulator, &headers)?;
    let items = simulator.with_world(|world| {
        let employer = visible_employer(&client, world, &id)?;
        if employer.serves_empty_employee_list {
            return Ok(Vec::new());
        }
        Ok(employer.employees.iter().map(render::employee).collect())
    })?;
    page(&simulator, &query, items)
}

async fn employments(
    State(simulator): State<Unit4Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let client = authenticate(&simulator, &headers)?;
    let items = simulator.with_world(|world| {
        let employer = visible_employer(&client, world, &id)?;
        if employer.serves_empty_employee_list {
            return Ok(Vec::new());
        }
        Ok(employer
            .employments
            .iter()
            .map(|employment| render::employment(employer, employment))
            .collect())
    })?;
    page(&simulator, &query, items)
}
