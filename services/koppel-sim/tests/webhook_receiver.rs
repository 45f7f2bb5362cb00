//! The Standard Webhooks receiver simulator over real HTTP: signature acceptance and rejection,
//! the five-minute timestamp window, whsec handling and secret rotation, deduplication on
//! webhook-id, per-employee order violations, abort-message, and injected faults.

// clippy's allow-unwrap-in-tests covers #[test] functions only, not the helpers they share; a
// panic is the right failure in all of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use koppel_sim::faults::FaultConfig;
use koppel_sim::webhook_receiver::{
    self, RunningWebhookReceiver, WebhookOutcome, WebhookReceiver, WebhookReceiverConfig,
    WebhookSigningKey,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

async fn start_receiver(secrets: &[&str]) -> RunningWebhookReceiver {
    let config = WebhookReceiverConfig::new(
        secrets.iter().map(|secret| (*secret).to_owned()).collect(),
        7,
    );
    webhook_receiver::spawn(WebhookReceiver::new(config).unwrap())
        .await
        .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn payload(message_type: &str, employee_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": message_type,
        "timestamp": "2026-11-21T10:00:00Z",
        "data": {"employer_key": "acme", "employee_id": employee_id, "hours_per_week": "32"}
    }))
    .unwrap()
}

/// A message as koppel would send it: signed with `secret` over id, timestamp and body.
struct Outgoing {
    id: String,
    timestamp: i64,
    body: Vec<u8>,
    stream_sequence: Option<u64>,
}

impl Outgoing {
    fn new(id: &str, body: Vec<u8>, stream_sequence: u64) -> Self {
        Self {
            id: id.to_owned(),
            timestamp: now(),
            body,
            stream_sequence: Some(stream_sequence),
        }
    }

    fn signature(&self, secret: &str) -> String {
        WebhookSigningKey::from_secret(secret).unwrap().sign(
            &self.id,
            &self.timestamp.to_string(),
            &self.body,
        )
    }

    async fn send_with_signature(
        &self,
        client: &reqwest::Client,
        running: &RunningWebhookReceiver,
        signature: &str,
    ) -> reqwest::Response {
        let mut request = client
            .post(running.webhook_url())
            .header("content-type", "application/json")
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", self.timestamp.to_string())
            .header("webhook-signature", signature)
            .body(self.body.clone());
        if let Some(sequence) = self.stream_sequence {
            request = request.header("koppel-stream-sequence", sequence.to_string());
        }
        request.send().await.unwrap()
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        running: &RunningWebhookReceiver,
    ) -> reqwest::Response {
        self.send_with_signature(client, running, &self.signature(SECRET))
            .await
    }
}

async fn status_and_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_signed_message_is_accepted_once_and_its_repeat_is_a_duplicate() {
    let running = start_receiver(&[SECRET]).await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let message = Outgoing::new("msg_first", payload("employment.changed", "e-1"), 1);

    let (status, body) = status_and_json(message.send(&client, &running).await).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (StatusCode::OK, Some("accepted"))
    );
    // A retry: same id, a new attempt timestamp and therefore a new signature.
    let retry = Outgoing {
        timestamp: now(),
        ..Outgoing::new("msg_first", message.body.clone(), 1)
    };
    let (status, body) = status_and_json(retry.send(&client, &running).await).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    let summary = running.receiver.summary();
    assert_eq!(
        (summary.accepted, summary.duplicates, summary.received),
        (1, 1, 2)
    );
    assert_eq!(summary.duplicates_with_different_body, 0);
    let accepted = running.receiver.accepted_messages();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].webhook_id, "msg_first");
    assert_eq!(accepted[0].message_type, "employment.changed");
    assert_eq!(accepted[0].stream_sequence, Some(1));
    assert_eq!(accepted[0].body["data"]["hours_per_week"], "32");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_signatures_are_refused_with_401() {
    let running = start_receiver(&[SECRET]).await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let message = Outgoing::new("msg_sig", payload("employee.updated", "e-1"), 1);

    let wrong_key = message.signature(OTHER_SECRET);
    let (status, body) = status_and_json(
        message
            .send_with_signature(&client, &running, &wrong_key)
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_signature"))
    );

    // The classic mistake: using the whsec_ string itself as the HMAC key instead of the
    // base64-decoded bytes after the prefix.
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{}.{}.", message.id, message.timestamp).as_bytes());
    mac.update(&message.body);
    let raw_key_signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let response = message
        .send_with_signature(&client, &running, &raw_key_signature)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A body changed after signing.
    let tampered = Outgoing {
        body: payload("employee.updated", "e-2"),
        timestamp: message.timestamp,
        ..Outgoing::new("msg_sig", vec![], 1)
    };
    let response = tampered
        .send_with_signature(&client, &running, &message.signature(SECRET))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A missing signature header is a malformed request.
    let response = client
        .post(running.webhook_url())
        .header("webhook-id", "msg_nosig")
        .header("webhook-timestamp", now().to_string())
        .body(payload("employee.updated", "e-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let summary = running.receiver.summary();
    assert_eq!(
        summary.rejected_by_reason.get("invalid_signature"),
        Some(&3)
    );
    assert_eq!(summary.rejected_by_reason.get("missing_header"), Some(&1));
    assert_eq!(
        summary.received, 0,
        "nothing unverified reaches the journal"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn timestamps_more_than_five_minutes_off_either_way_are_refused() {
    let running = start_receiver(&[SECRET]).await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    // Correctly signed, but with a stale or future attempt timestamp: the signature covers the
    // timestamp, so this is exactly a replay of an old capture or a sender with a wrong clock.
    let stale = Outgoing {
        timestamp: now() - 301,
        ..Outgoing::new("msg_stale", payload("a.b", "e-1"), 1)
    };
    let (status, body) = status_and_json(stale.send(&client, &running).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("timestamp_too_old"))
    );

    let future = Outgoing {
        timestamp: now() + 301,
        ..Outgoing::new("msg_future", payload("a.b", "e-1"), 1)
    };
    let (status, body) = status_and_json(future.send(&client, &running).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("timestamp_too_new"))
    );

    // Inside the window (with a margin for the test's own run time) is fine.
    let recent = Outgoing {
        timestamp: now() - 240,
        ..Outgoing::new("msg_recent", payload("a.b", "e-1"), 1)
    };
    assert_eq!(
        recent.send(&client, &running).await.status(),
        StatusCode::OK
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn whsec_prefix_is_optional_and_rotation_signatures_are_accepted() {
    // The receiver holds the bare base64 form of the secret; the sender uses the whsec_ form.
    let bare = SECRET.trim_start_matches("whsec_");
    let running = start_receiver(&[bare]).await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let message = Outgoing::new("msg_rotation", payload("employee.updated", "e-1"), 1);
    // During a rotation the sender signs with the new and the old secret side by side.
    let header = format!(
        "{} {}",
        message.signature(OTHER_SECRET),
        message.signature(SECRET)
    );
    let response = message
        .send_with_signature(&client, &running, &header)
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    assert!(
        WebhookReceiver::new(WebhookReceiverConfig::new(vec!["whsec_!!!".to_owned()], 1)).is_err()
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_lower_sequence_for_the_same_employee_is_an_order_violation() {
    let running = start_receiver(&[SECRET]).await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let sends = [
        ("msg_1", "e-1", 5),
        ("msg_2", "e-2", 6),
        ("msg_3", "e-1", 8),
        ("msg_1", "e-1", 5), // a duplicate: absorbed, not judged
        ("msg_4", "e-2", 7), // e-2 is still in order
        ("msg_5", "e-1", 7), // overtaken by sequence 8 of the same employee
    ];
    for (id, employee, sequence) in sends {
        let message = Outgoing::new(id, payload("employment.changed", employee), sequence);
        assert_eq!(
            message.send(&client, &running).await.status(),
            StatusCode::OK
        );
    }
    // No sequence header: accepted, but its order cannot be judged.
    let unsequenced = Outgoing {
        stream_sequence: None,
        ..Outgoing::new("msg_6", payload("employment.changed", "e-1"), 0)
    };
    assert_eq!(
        unsequenced.send(&client, &running).await.status(),
        StatusCode::OK
    );

    let summary = running.receiver.summary();
    assert_eq!(
        (
            summary.accepted,
            summary.duplicates,
            summary.order_violations
        ),
        (6, 1, 1)
    );
    assert_eq!(summary.without_stream_sequence, 1);
    let violations: Vec<String> = running
        .receiver
        .received_messages()
        .into_iter()
        .filter(|line| line.order_violation)
        .map(|line| line.webhook_id)
        .collect();
    assert_eq!(violations, ["msg_5"]);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn chosen_message_types_are_aborted_and_a_retry_after_abort_is_caught() {
    let running = start_receiver(&[SECRET]).await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    // 503 is a status the sender would normally retry; only the header says it must not.
    running
        .receiver
        .abort_message_types(["employee.removed"], StatusCode::SERVICE_UNAVAILABLE);

    let removed = Outgoing::new("msg_removed", payload("employee.removed", "e-1"), 1);
    let response = removed.send(&client, &running).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["webhook-delivery"], "abort-message");

    let other = Outgoing::new("msg_other", payload("employee.updated", "e-1"), 2);
    let response = other.send(&client, &running).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("webhook-delivery").is_none());

    // A sender that ignores the instruction and retries is answered the same and counted.
    let retry = Outgoing {
        timestamp: now(),
        ..Outgoing::new("msg_removed", removed.body.clone(), 1)
    };
    let response = retry.send(&client, &running).await;
    assert_eq!(response.headers()["webhook-delivery"], "abort-message");

    let summary = running.receiver.summary();
    assert_eq!(
        (
            summary.aborted,
            summary.retried_after_abort,
            summary.accepted
        ),
        (1, 1, 1)
    );
    let outcomes: Vec<WebhookOutcome> = running
        .receiver
        .received_messages()
        .into_iter()
        .map(|line| line.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            WebhookOutcome::Aborted,
            WebhookOutcome::Accepted,
            WebhookOutcome::RetriedAfterAbort
        ]
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn injected_faults_answer_429_with_retry_after_and_503() {
    let running = start_receiver(&[SECRET]).await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    running.receiver.configure_faults(FaultConfig {
        too_many_requests_per_mille: 1000,
        retry_after_seconds: 4,
        ..FaultConfig::default()
    });
    let message = Outgoing::new("msg_fault", payload("employee.updated", "e-1"), 1);
    let response = message.send(&client, &running).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "4");

    running.receiver.configure_faults(FaultConfig {
        server_error_per_mille: 1000,
        ..FaultConfig::default()
    });
    assert_eq!(
        message.send(&client, &running).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    running.receiver.configure_faults(FaultConfig::default());
    assert_eq!(
        message.send(&client, &running).await.status(),
        StatusCode::OK
    );
    let summary = running.receiver.summary();
    assert_eq!(
        (
            summary.faults.too_many_requests,
            summary.faults.server_errors
        ),
        (1, 1)
    );
    assert_eq!(summary.accepted, 1, "faulted attempts are not applied");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_that_is_not_the_envelope_is_refused_after_verification() {
    let running = start_receiver(&[SECRET]).await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let not_envelope = Outgoing::new("msg_body", br#"{"hello":"world"}"#.to_vec(), 1);
    let (status, body) = status_and_json(not_envelope.send(&client, &running).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );
    let dotted_id = Outgoing::new("msg.dotted", payload("a.b", "e-1"), 1);
    let (status, body) = status_and_json(dotted_id.send(&client, &running).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_webhook_id"))
    );
    running.stop().await.unwrap();
}
