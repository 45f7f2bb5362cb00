//! The HTTP face of the webhook receiver: one POST route that injects faults, checks the
//! Standard Webhooks headers, timestamp and signature, reads the `{type, timestamp, data}` body,
//! and hands the verified message to the ledger.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::WebhookReceiver;
use super::ledger::{EmployeeKey, VerifiedMessage, WebhookAnswer};
use super::signature::{TimestampProblem, check_timestamp, signature_header_is_valid};
use super::{
    DELIVERY_CONTROL_HEADER, STREAM_SEQUENCE_HEADER, WEBHOOK_ID_HEADER, WEBHOOK_PATH,
    WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};

pub(crate) fn router(receiver: WebhookReceiver) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(receive))
        .with_state(receiver)
}

/// The Standard Webhooks envelope. Extra top-level fields are tolerated: the spec only
/// recommends this shape, and a receiver that breaks on an added field makes senders afraid of
/// evolving payloads.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    message_type: String,
    timestamp: String,
    data: serde_json::Value,
}

/// Why a request was refused before the ledger. Reasons are the keys of
/// `WebhookSummary::rejected_by_reason`.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    MissingHeader,
    InvalidWebhookId,
    InvalidTimestamp,
    TimestampTooOld,
    TimestampTooNew,
    InvalidSignature,
    InvalidBody,
    InvalidStreamSequence,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::MissingHeader => "missing_header",
            Refusal::InvalidWebhookId => "invalid_webhook_id",
            Refusal::InvalidTimestamp => "invalid_timestamp",
            Refusal::TimestampTooOld => "timestamp_too_old",
            Refusal::TimestampTooNew => "timestamp_too_new",
            Refusal::InvalidSignature => "invalid_signature",
            Refusal::InvalidBody => "invalid_body",
            Refusal::InvalidStreamSequence => "invalid_stream_sequence",
        }
    }

    /// 401 only for a signature that does not verify: that is the one "who are you" failure.
    /// Everything else, a stale timestamp included, is a malformed request (400).
    fn status(self) -> StatusCode {
        match self {
            Refusal::InvalidSignature => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

async fn receive(
    State(receiver): State<WebhookReceiver>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = receiver.faults().before_request().await {
        return fault.into_response();
    }
    let message = match verify(&receiver, &headers, &body) {
        Ok(message) => message,
        Err((refusal, message)) => {
            receiver.with_ledger(|ledger| ledger.count_rejection(refusal.reason()));
            let body = serde_json::json!({"error": refusal.reason(), "message": message});
            return (refusal.status(), axum::Json(body)).into_response();
        }
    };
    match receiver.with_ledger(|ledger| ledger.process(message)) {
        WebhookAnswer::Accepted => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"result": "accepted"})),
        )
            .into_response(),
        WebhookAnswer::Duplicate => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"result": "duplicate"})),
        )
            .into_response(),
        WebhookAnswer::Abort(status) => {
            let body = serde_json::json!({
                "error": "message_aborted",
                "message": "this message type is refused for good; do not retry it",
            });
            let mut response = (status, axum::Json(body)).into_response();
            response.headers_mut().insert(
                DELIVERY_CONTROL_HEADER,
                HeaderValue::from_static("abort-message"),
            );
            response
        }
    }
}

/// Checks in the order the spec's reference library does: headers, timestamp, signature; only
/// then is the body trusted enough to be parsed.
fn verify(
    receiver: &WebhookReceiver,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<VerifiedMessage, (Refusal, String)> {
    let required = |name: &str| {
        header_text(headers, name).ok_or_else(|| {
            (
                Refusal::MissingHeader,
                format!("the {name} header is required"),
            )
        })
    };
    let webhook_id = required(WEBHOOK_ID_HEADER)?;
    let timestamp = required(WEBHOOK_TIMESTAMP_HEADER)?;
    let signature = required(WEBHOOK_SIGNATURE_HEADER)?;
    // The signed content joins id and timestamp with dots, so a dot inside either would make two
    // different messages sign the same bytes.
    if webhook_id.is_empty() || webhook_id.contains('.') {
        return Err((
            Refusal::InvalidWebhookId,
            "webhook-id must be non-empty and without '.'".to_owned(),
        ));
    }
    let now = Utc::now().timestamp();
    let webhook_timestamp =
        check_timestamp(timestamp, now, receiver.tolerance_seconds()).map_err(|problem| {
            match problem {
                TimestampProblem::NotAnInteger => (
                    Refusal::InvalidTimestamp,
                    "webhook-timestamp must be integer Unix seconds".to_owned(),
                ),
                TimestampProblem::TooOld => (
                    Refusal::TimestampTooOld,
                    format!(
                        "webhook-timestamp is more than {} s behind the receiver's clock",
                        receiver.tolerance_seconds()
                    ),
                ),
                TimestampProblem::TooNew => (
                    Refusal::TimestampTooNew,
                    format!(
                        "webhook-timestamp is more than {} s ahead of the receiver's clock",
                        receiver.tolerance_seconds()
                    ),
                ),
            }
        })?;
    if !signature_header_is_valid(
        receiver.signing_keys(),
        webhook_id,
        timestamp,
        body,
        signature,
    ) {
        return Err((
            Refusal::InvalidSignature,
            "no v1 signature matches".to_owned(),
        ));
    }
    let invalid_envelope = || {
        (
            Refusal::InvalidBody,
            "body must be JSON {type, timestamp, data}".to_owned(),
        )
    };
    let body_json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| invalid_envelope())?;
    let envelope = Envelope::deserialize(&body_json).map_err(|_| invalid_envelope())?;
    if !is_valid_message_type(&envelope.message_type) {
        return Err((
            Refusal::InvalidBody,
            "type must be dot-separated segments of [a-zA-Z0-9_]".to_owned(),
        ));
    }
    if chrono::DateTime::parse_from_rfc3339(&envelope.timestamp).is_err() {
        return Err((
            Refusal::InvalidBody,
            "timestamp must be an RFC 3339 date-time".to_owned(),
        ));
    }
    let stream_sequence = match header_text(headers, STREAM_SEQUENCE_HEADER) {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            (
                Refusal::InvalidStreamSequence,
                "koppel-stream-sequence must be an unsigned integer".to_owned(),
            )
        })?),
    };
    let employee = employee_key(&envelope.data);
    Ok(VerifiedMessage {
        webhook_id: webhook_id.to_owned(),
        webhook_timestamp,
        message_type: envelope.message_type,
        stream_sequence,
        employee,
        body_fingerprint: Sha256::digest(body).into(),
        body: body_json,
        received_at: Utc::now(),
    })
}

/// `data.employee_id` (a string, or a number taken as its decimal text), with `data.employer_key`
/// when present. `None` for events that are not about one employee (employer or sync events).
fn employee_key(data: &serde_json::Value) -> Option<EmployeeKey> {
    let employee_id = match data.get("employee_id")? {
        serde_json::Value::String(text) if !text.is_empty() => text.clone(),
        serde_json::Value::Number(number) => number.to_string(),
        _ => return None,
    };
    let employer_key = data
        .get("employer_key")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    Some(EmployeeKey {
        employer_key,
        employee_id,
    })
}

/// The spec's event type shape: full-stop separated, non-empty segments of `[a-zA-Z0-9_]`.
fn is_valid_message_type(message_type: &str) -> bool {
    !message_type.is_empty()
        && message_type.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        })
}

fn header_text<'headers>(headers: &'headers HeaderMap, name: &str) -> Option<&'headers str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_follow_the_spec_shape() {
        assert!(is_valid_message_type("employment.changed"));
        assert!(is_valid_message_type("koppel.Employment_Changed.v1"));
        assert!(!is_valid_message_type(""));
        assert!(!is_valid_message_type("employment..changed"));
        assert!(!is_valid_message_type(".employment"));
        assert!(!is_valid_message_type("employment-changed"));
    }

    #[test]
    fn employee_key_reads_string_or_number_ids() {
        let keyed =
            employee_key(&serde_json::json!({"employee_id": "e-1", "employer_key": "acme"}));
        assert_eq!(
            keyed,
            Some(EmployeeKey {
                employer_key: Some("acme".to_owned()),
                employee_id: "e-1".to_owned()
            })
        );
        let numeric = employee_key(&serde_json::json!({"employee_id": 42}));
        assert_eq!(
            numeric,
            Some(EmployeeKey {
                employer_key: None,
                employee_id: "42".to_owned()
            })
        );
        assert_eq!(
            employee_key(&serde_json::json!({"employer_key": "acme"})),
            None
        );
        assert_eq!(employee_key(&serde_json::json!({"employee_id": ""})), None);
        assert_eq!(employee_key(&serde_json::json!("not an object")), None);
    }
}
