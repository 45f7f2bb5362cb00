//! Standard Webhooks (recipients.md §4): a JSON body `{type, timestamp, data}` signed with
//! `v1` HMAC-SHA256 over `id.timestamp.body`, the event id as `webhook-id`.
//!
//! The signing is written here rather than borrowed from the receiver simulator, so the
//! simulator's verification is an independent check of it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use koppel_events::{Event, EventType};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use sha2::Sha256;

use super::{DeliveryRequest, is_retryable_status, refusal_reason, transport_failure};
use crate::outcome::{AttemptOutcome, PermanentClass};

pub const WEBHOOK_ID_HEADER: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE_HEADER: &str = "webhook-signature";
pub const STREAM_SEQUENCE_HEADER: &str = "koppel-stream-sequence";
/// The receiver's delivery control header (Svix): `abort-message` means "stop sending this".
pub const DELIVERY_CONTROL_HEADER: &str = "webhook-delivery";
const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("a webhook secret is whsec_ followed by base64")]
    NotBase64,
    #[error("a webhook secret decodes to at least one byte")]
    Empty,
}

/// The HMAC key of an endpoint: the bytes after `whsec_`, base64-decoded. Never printed.
#[derive(Clone)]
pub struct WebhookSecret {
    key: SecretSlice<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// Accepts `whsec_<base64>` or bare base64, as the reference implementation does.
    pub fn parse(secret: &str) -> Result<Self, WebhookSecretError> {
        let encoded = secret.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| WebhookSecretError::NotBase64)?;
        if key.is_empty() {
            return Err(WebhookSecretError::Empty);
        }
        Ok(WebhookSecret {
            key: SecretSlice::from(key),
        })
    }

    /// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes keys of any length, so this cannot fail; the fallback keeps it total.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose_secret()) else {
            return String::new();
        };
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `type` of a webhook message: full-stop hierarchical, entity then change.
pub fn message_type(event_type: EventType) -> &'static str {
    match event_type {
        EventType::Unknown => "koppel.unknown",
        EventType::EmployerUpserted => "employer.upserted",
        EventType::EmployeeCreated => "employee.created",
        EventType::EmployeeUpdated => "employee.updated",
        EventType::EmployeeRemoved => "employee.removed",
        EventType::EmploymentStarted => "employment.started",
        EventType::EmploymentChanged => "employment.changed",
        EventType::EmploymentEnded => "employment.ended",
        EventType::SyncCompleted => "sync.completed",
    }
}

/// The JSON body. `data` is the event as JSON plus `employer_key` and `employee_id` at its top
/// level: the receiver's order key. `timestamp` is when koppel observed the change, not the
/// attempt, so every retry sends the same bytes (only the signature headers change).
///
/// Serialized in one pass straight from the event. Going through `serde_json::Value` first (a
/// tree of maps, one allocation per field) took a fifth of the deliverer's CPU in the delivery
/// benchmark's profile.
pub fn webhook_body(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    let header = event.header();
    let timestamp = header
        .observed_at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let employer_key = header.employer_key.as_str();
    let employee_id = event.employee_id();
    let message_type = message_type(event.event_type());
    match event {
        Event::EmployerUpserted(inner) => {
            body_of(message_type, &timestamp, inner, employer_key, employee_id)
        }
        Event::EmployeeCreated(inner)
        | Event::EmployeeUpdated(inner)
        | Event::EmployeeRemoved(inner) => {
            body_of(message_type, &timestamp, inner, employer_key, employee_id)
        }
        Event::EmploymentStarted(inner)
        | Event::EmploymentChanged(inner)
        | Event::EmploymentEnded(inner) => {
            body_of(message_type, &timestamp, inner, employer_key, employee_id)
        }
        Event::SyncCompleted(inner) => {
            body_of(message_type, &timestamp, inner, employer_key, employee_id)
        }
    }
}

/// `{type, timestamp, data}`, with `data` the event's own fields followed by the order key.
#[derive(Serialize)]
struct WebhookMessage<'a, Inner: Serialize> {
    #[serde(rename = "type")]
    message_type: &'static str,
    timestamp: &'a str,
    data: WebhookData<'a, Inner>,
}

#[derive(Serialize)]
struct WebhookData<'a, Inner: Serialize> {
    #[serde(flatten)]
    event: &'a Inner,
    employer_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    employee_id: Option<&'a str>,
}

fn body_of<Inner: Serialize>(
    message_type: &'static str,
    timestamp: &str,
    event: &Inner,
    employer_key: &str,
    employee_id: Option<&str>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut body = Vec::with_capacity(2_048);
    serde_json::to_writer(
        &mut body,
        &WebhookMessage {
            message_type,
            timestamp,
            data: WebhookData {
                event,
                employer_key,
                employee_id,
            },
        },
    )?;
    Ok(body)
}

/// A Standard Webhooks endpoint.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    url: String,
    secret: WebhookSecret,
}

impl fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookClient")
            .field("url", &self.url)
            .field("secret", &self.secret)
            .finish()
    }
}

impl WebhookClient {
    pub fn new(http: reqwest::Client, url: String, secret: WebhookSecret) -> Self {
        WebhookClient { http, url, secret }
    }

    pub async fn deliver(&self, request: &DeliveryRequest<'_>) -> AttemptOutcome {
        let body = match webhook_body(request.event) {
            Ok(body) => body,
            Err(error) => {
                return AttemptOutcome::Permanent {
                    class: PermanentClass::Unmappable,
                    reason: format!("cannot serialize the event as JSON: {error}"),
                };
            }
        };
        let webhook_id = request.event_id.to_string();
        // The attempt's time, as the spec wants: receivers refuse stale timestamps.
        let timestamp = chrono::Utc::now().timestamp();
        let signature = self.secret.sign(&webhook_id, timestamp, &body);
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(WEBHOOK_ID_HEADER, &webhook_id)
            .header(WEBHOOK_TIMESTAMP_HEADER, timestamp.to_string())
            .header(WEBHOOK_SIGNATURE_HEADER, signature)
            .header(STREAM_SEQUENCE_HEADER, request.stream_sequence.to_string())
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return transport_failure(&error),
        };
        let status = response.status();
        let abort = response
            .headers()
            .get(DELIVERY_CONTROL_HEADER)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("abort-message"));
        // The receiver's instruction wins over the status: an abort on a 503 is still an abort.
        if abort {
            return AttemptOutcome::Permanent {
                class: PermanentClass::Aborted,
                reason: format!(
                    "the receiver answered HTTP {} with webhook-delivery: abort-message",
                    status.as_u16()
                ),
            };
        }
        match status {
            status if status.is_success() => AttemptOutcome::Delivered { duplicate: false },
            StatusCode::GONE => AttemptOutcome::Permanent {
                class: PermanentClass::Aborted,
                reason: "HTTP 410 Gone: the endpoint is disabled".to_owned(),
            },
            status if is_retryable_status(status) => AttemptOutcome::Retryable {
                reason: format!("HTTP {}", status.as_u16()),
                retry_after: koppel_runtime::http::retry_after(response.headers()),
            },
            // Other 4xx and redirects (never followed: a redirect could carry the payload to
            // another host): the endpoint refuses or is misconfigured.
            // The body is read bounded (`MAX_RESPONSE_BODY_BYTES`): a hostile endpoint answering
            // gigabytes gets a dead letter naming the limit, not the deliverer's memory.
            _ => AttemptOutcome::Permanent {
                class: PermanentClass::Refused,
                reason: refusal_reason(response).await,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koppel_events::sample;

    #[test]
    fn the_standard_webhooks_test_vector_signs_as_published() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn the_reference_crate_vector_signs_too() {
        let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let signature = secret.sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn bad_secrets_are_refused_and_never_printed() {
        assert_eq!(
            WebhookSecret::parse("whsec_!!!").unwrap_err(),
            WebhookSecretError::NotBase64
        );
        assert_eq!(
            WebhookSecret::parse("whsec_").unwrap_err(),
            WebhookSecretError::Empty
        );
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(!format!("{secret:?}").contains("MfKQ"));
    }

    #[test]
    fn the_body_carries_the_order_key_at_the_top_of_data() {
        let event = sample::employment_changed(9);
        let body: serde_json::Value =
            serde_json::from_slice(&webhook_body(&event).unwrap()).unwrap();
        assert_eq!(body["type"], "employment.changed");
        assert_eq!(
            body["timestamp"],
            event
                .header()
                .observed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        assert_eq!(body["data"]["employee_id"], "emp-000009");
        assert_eq!(body["data"]["employer_key"], "loket-acme-1001");
        assert_eq!(body["data"]["employment"]["hours_per_week"], "32");
        assert_eq!(
            body["data"]["header"]["event_id"],
            event.header().event_id.to_string()
        );
    }

    /// The one-pass body is the same JSON as the event's own serde form (the tagged enum's
    /// `data`) with the order key added: no field lost, renamed or duplicated.
    #[test]
    fn the_body_is_the_event_json_plus_the_order_key() {
        let event = sample::employment_changed(3);
        let body: serde_json::Value =
            serde_json::from_slice(&webhook_body(&event).unwrap()).unwrap();
        let mut expected = serde_json::to_value(&event).unwrap()["data"].clone();
        expected["employer_key"] = serde_json::Value::from("loket-acme-1001");
        expected["employee_id"] = serde_json::Value::from("emp-000003");
        assert_eq!(body["data"], expected);
        assert_eq!(body.as_object().unwrap().len(), 3);
    }
}

/// Hostile endpoints: a refusal with a huge body must become a dead letter naming the limit,
/// not a deliverer that buffers whatever the endpoint sends.
#[cfg(test)]
mod hostile_endpoint_tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use axum::http::{Response, StatusCode as AxumStatus};
    use bytes::Bytes;
    use koppel_events::sample;

    use super::*;
    use crate::recipient::MAX_RESPONSE_BODY_BYTES;

    const CHUNK: usize = 64 * 1024;

    /// Serves every request with `respond` and returns the endpoint's URL.
    async fn endpoint(respond: fn() -> Response<Body>) -> String {
        let app = axum::Router::new().fallback(move || async move { respond() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/hook")
    }

    async fn attempt(url: String) -> AttemptOutcome {
        let http = koppel_runtime::http::HttpClientSettings::default()
            .client()
            .unwrap();
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let client = WebhookClient::new(http, url, secret);
        let event = sample::employment_changed(1);
        let request = DeliveryRequest {
            event: &event,
            event_id: event.header().event_id,
            stream_sequence: 1,
            employer_key: &event.header().employer_key,
        };
        // Bounded: a client that reads the whole body would take the full request timeout.
        tokio::time::timeout(std::time::Duration::from_secs(20), client.deliver(&request))
            .await
            .expect("the attempt ended")
    }

    fn assert_refused_naming_the_limit(outcome: AttemptOutcome) {
        let AttemptOutcome::Permanent { class, reason } = outcome else {
            panic!("expected a permanent failure, got {outcome:?}");
        };
        assert_eq!(class, PermanentClass::Refused);
        assert!(reason.starts_with("HTTP 400"), "{reason}");
        assert!(
            reason.contains(&format!("{MAX_RESPONSE_BODY_BYTES}-byte limit")),
            "{reason}"
        );
        assert!(reason.chars().count() <= 401, "{reason}");
    }

    #[tokio::test]
    async fn a_refusal_with_a_body_over_the_limit_names_the_limit() {
        let url = endpoint(|| {
            Response::builder()
                .status(AxumStatus::BAD_REQUEST)
                .body(Body::from(vec![b'x'; 8 * 1024 * 1024]))
                .unwrap()
        })
        .await;
        assert_refused_naming_the_limit(attempt(url).await);
    }

    #[tokio::test]
    async fn a_refusal_with_an_endless_chunked_body_is_cut_at_the_limit() {
        let url = endpoint(|| {
            let chunks = futures::stream::repeat_with(|| {
                Ok::<_, Infallible>(Bytes::from_static(&[b'y'; CHUNK]))
            });
            Response::builder()
                .status(AxumStatus::BAD_REQUEST)
                .body(Body::from_stream(chunks))
                .unwrap()
        })
        .await;
        assert_refused_naming_the_limit(attempt(url).await);
    }

    #[tokio::test]
    async fn a_refusal_with_a_small_body_quotes_it() {
        let url = endpoint(|| {
            Response::builder()
                .status(AxumStatus::BAD_REQUEST)
                .body(Body::from("unknown employer"))
                .unwrap()
        })
        .await;
        let outcome = attempt(url).await;
        assert_eq!(
            outcome,
            AttemptOutcome::Permanent {
                class: PermanentClass::Refused,
                reason: "HTTP 400: unknown employer".to_owned(),
            }
        );
    }
}
