//! The HTTP face of the insurer simulator: axum routes that check faults, authentication and
//! headers, then hand the request to the ledger and translate its answer into a status and body.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::InsurerSimulator;
use super::contract::{
    CONTROL_SUMMARY_PATH, EMPLOYMENT_MUTATIONS_PATH, ENROLMENTS_PATH, EmployerLink, ErrorBody,
    IDEMPOTENCY_KEY_HEADER, PERSONAL_DATA_CHANGES_PATH, REINSTATEMENTS_PATH, RejectionCode,
    RequestKind, START_DATE_CORRECTIONS_PATH, STREAM_SEQUENCE_HEADER, TERMINATIONS_PATH,
};
use super::ledger::{Answer, IncomingRequest};
use super::validation::is_valid_payroll_tax_number;

pub(crate) fn router(simulator: InsurerSimulator) -> Router {
    Router::new()
        .route(ENROLMENTS_PATH, post(enrolment))
        .route(EMPLOYMENT_MUTATIONS_PATH, post(employment_mutation))
        .route(TERMINATIONS_PATH, post(termination))
        .route(PERSONAL_DATA_CHANGES_PATH, post(personal_data_change))
        .route(START_DATE_CORRECTIONS_PATH, post(start_date_correction))
        .route(REINSTATEMENTS_PATH, post(reinstatement))
        .route(
            "/salary-link/v1/control/linked-employers/{payroll_tax_number}",
            put(link_employer),
        )
        .route(CONTROL_SUMMARY_PATH, get(summary))
        .route(
            "/salary-link/v1/control/participants/{payroll_tax_number}/{bsn}",
            get(participant),
        )
        .with_state(simulator)
}

async fn enrolment(
    State(simulator): State<InsurerSimulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_salary_link_request(&simulator, RequestKind::Enrolment, &headers, &body).await
}

async fn employment_mutation(
    State(simulator): State<InsurerSimulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_salary_link_request(&simulator, RequestKind::EmploymentMutation, &headers, &body).await
}

async fn termination(
    State(simulator): State<InsurerSimulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_salary_link_request(&simulator, RequestKind::Termination, &headers, &body).await
}

async fn personal_data_change(
    State(simulator): State<InsurerSimulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_salary_link_request(&simulator, RequestKind::PersonalDataChange, &headers, &body).await
}

async fn start_date_correction(
    State(simulator): State<InsurerSimulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_salary_link_request(
        &simulator,
        RequestKind::StartDateCorrection,
        &headers,
        &body,
    )
    .await
}

async fn reinstatement(
    State(simulator): State<InsurerSimulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_salary_link_request(&simulator, RequestKind::Reinstatement, &headers, &body).await
}

/// The common path of the salary-link requests, in the order a real gateway works:
/// faults (the gateway itself is unwell), authentication, headers, JSON, then the books.
async fn handle_salary_link_request(
    simulator: &InsurerSimulator,
    kind: RequestKind,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if let Some(fault) = simulator.faults().before_request().await {
        return fault.into_response();
    }
    if let Some(response) = refuse_unauthorized(simulator, headers) {
        return response;
    }
    let idempotency_key = match header_text(headers, IDEMPOTENCY_KEY_HEADER)
        .and_then(|text| Uuid::parse_str(text).ok())
    {
        Some(key) => key,
        None => {
            return early_rejection(
                simulator,
                RejectionCode::InvalidIdempotencyKey,
                "the Idempotency-Key header must hold koppel's event id, a UUID",
            );
        }
    };
    let stream_sequence = match header_text(headers, STREAM_SEQUENCE_HEADER)
        .and_then(|text| text.parse::<u64>().ok())
    {
        Some(sequence) => sequence,
        None => {
            return early_rejection(
                simulator,
                RejectionCode::InvalidStreamSequence,
                "the Koppel-Stream-Sequence header must hold an unsigned integer",
            );
        }
    };
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(json) => json,
        Err(_) => {
            return early_rejection(
                simulator,
                RejectionCode::MalformedJson,
                "the body is not valid JSON",
            );
        }
    };
    let incoming = IncomingRequest {
        kind,
        idempotency_key,
        stream_sequence,
        fingerprint: fingerprint(kind, &json),
        body: json,
    };
    let answer =
        simulator.with_ledger(|ledger| ledger.process(incoming, Utc::now(), Uuid::new_v4()));
    match answer {
        Answer::Accepted(receipt) => (StatusCode::ACCEPTED, axum::Json(receipt)).into_response(),
        Answer::Duplicate(receipt) => (StatusCode::CONFLICT, axum::Json(receipt)).into_response(),
        Answer::Rejected { code, message } => error_response(code, message),
    }
}

/// Control endpoints skip fault injection: they are the test harness's window into the
/// simulator, and a flaky window would make the tests lie about the system under test.
async fn link_employer(
    State(simulator): State<InsurerSimulator>,
    Path(payroll_tax_number): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = refuse_unauthorized(&simulator, &headers) {
        return response;
    }
    if !is_valid_payroll_tax_number(&payroll_tax_number) {
        return error_response(
            RejectionCode::InvalidPayrollTaxNumber,
            "payroll_tax_number must be nine digits, 'L' and two digits, e.g. 123456789L01",
        );
    }
    let link: EmployerLink = match serde_json::from_slice(body.as_ref()) {
        Ok(link) => link,
        Err(error) => {
            return error_response(
                RejectionCode::InvalidBody,
                format!("body does not match the employer link contract: {error}"),
            );
        }
    };
    simulator.with_ledger(|ledger| ledger.link_employer(payroll_tax_number, link));
    StatusCode::NO_CONTENT.into_response()
}

async fn summary(State(simulator): State<InsurerSimulator>, headers: HeaderMap) -> Response {
    if let Some(response) = refuse_unauthorized(&simulator, &headers) {
        return response;
    }
    axum::Json(simulator.summary()).into_response()
}

async fn participant(
    State(simulator): State<InsurerSimulator>,
    Path((payroll_tax_number, bsn)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = refuse_unauthorized(&simulator, &headers) {
        return response;
    }
    match simulator.participant(&payroll_tax_number, &bsn) {
        Some(state) => axum::Json(state).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(ErrorBody {
                result: "NOK".to_owned(),
                code: RejectionCode::UnknownParticipant.as_str().to_owned(),
                message: "no enrolment is known for this bsn at this employer".to_owned(),
            }),
        )
            .into_response(),
    }
}

/// `Some(401 response)` when the request lacks the configured bearer token, `None` when it may pass.
fn refuse_unauthorized(simulator: &InsurerSimulator, headers: &HeaderMap) -> Option<Response> {
    let presented = header_text(headers, header::AUTHORIZATION.as_str())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented.is_some_and(|token| simulator.token_matches(token)) {
        return None;
    }
    let mut response = early_rejection(
        simulator,
        RejectionCode::Unauthorized,
        "a valid bearer token is required",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

fn header_text<'headers>(headers: &'headers HeaderMap, name: &str) -> Option<&'headers str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
}

fn early_rejection(simulator: &InsurerSimulator, code: RejectionCode, message: &str) -> Response {
    simulator.with_ledger(|ledger| ledger.count_early_rejection(code));
    error_response(code, message)
}

fn error_response(code: RejectionCode, message: impl Into<String>) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    let body = ErrorBody {
        result: "NOK".to_owned(),
        code: code.as_str().to_owned(),
        message: message.into(),
    };
    (status, axum::Json(body)).into_response()
}

/// A digest of the request kind and the body re-serialized from its parsed form, so whitespace
/// differences (and, with serde_json's default sorted map, key order) between two sends of the
/// same event do not look like a reused key.
fn fingerprint(kind: RequestKind, json: &serde_json::Value) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(json.to_string().as_bytes());
    hasher.finalize().into()
}
