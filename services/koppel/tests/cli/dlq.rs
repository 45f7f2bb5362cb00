//! `koppel dlq list|retry` against dead letters a real deliverer made: a webhook receiver that
//! answers 503 to everything exhausts a small retry budget, then recovers, and `dlq retry`
//! re-drives the dead letters with their original ids.

use std::collections::BTreeSet;
use std::time::Duration;

use koppel_events::sample;
use koppel_harness::eventually;
use koppel_harness::onboarding::webhook_recipient;
use koppel_nats::{PreparedEvent, Publisher, PublisherSettings};
use koppel_registry::{Registry, SecretKey};
use koppel_sim::faults::FaultConfig;
use koppel_sim::webhook_receiver::{WebhookReceiver, WebhookReceiverConfig};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::{Installation, register_connection, stderr, stdout};

/// The signing secret of the test webhook recipient `hooks`.
pub(crate) const SECRET: &str = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";

/// Registers connection `loket-acme`, webhook recipient `hooks` at `url` and employer
/// `loket-acme-1001` (the sample events' employer) subscribed to it.
pub(crate) async fn subscribe_webhook(installation: &Installation, url: &str) {
    let key = SecretKey::from_base64(&installation.secret_key).unwrap();
    let registry = Registry::new(installation.topology.registry.clone());
    register_connection(&registry, &key).await;
    registry
        .put_recipient(&webhook_recipient(&key, "hooks", url, SECRET, 4).unwrap())
        .await
        .unwrap();
    registry
        .put_employer(&koppel_registry::EmployerRegistration {
            employer_key: "loket-acme-1001".to_owned(),
            connection_id: "loket-acme".to_owned(),
            source_employer_id: "1001".to_owned(),
            name: "Acme".to_owned(),
            payroll_tax_number: None,
            recipients: vec!["hooks".to_owned()],
            removal_threshold_percent: 20,
            enabled: true,
        })
        .await
        .unwrap();
}

/// Runs a deliverer in process for the installation.
pub(crate) fn start_deliverer(
    installation: &Installation,
    retry: koppel_deliver::RetrySettings,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), koppel_deliver::DeliverError>>,
) {
    let shutdown = CancellationToken::new();
    let deliverer = tokio::spawn(koppel_deliver::run(
        koppel_deliver::DelivererConfig {
            nats: koppel_nats::NatsSettings {
                url: koppel_test_support::nats_server().url.clone(),
                ..Default::default()
            },
            namespace: Some(installation.namespace.clone()),
            secret_key: koppel_deliver::SecretKeySource::Inline {
                base64: SecretString::from(installation.secret_key.clone()),
            },
            retry,
            ..Default::default()
        },
        shutdown.clone(),
    ));
    (shutdown, deliverer)
}

// Multi-threaded: the CLI runs as a blocking child process while the receiver simulator it
// talks to is served by this test's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_retry_redelivers_them() {
    let installation = Installation::new().await;
    let receiver =
        WebhookReceiver::new(WebhookReceiverConfig::new(vec![SECRET.to_owned()], 3)).unwrap();
    receiver.configure_faults(FaultConfig {
        server_error_per_mille: 1000,
        ..FaultConfig::default()
    });
    let running = koppel_sim::webhook_receiver::spawn(receiver.clone())
        .await
        .unwrap();
    subscribe_webhook(&installation, &running.webhook_url()).await;
    let (shutdown, deliverer) = start_deliverer(
        &installation,
        koppel_deliver::RetrySettings {
            initial_backoff_millis: 5,
            max_backoff_millis: 10,
            max_attempts: 2,
            ..Default::default()
        },
    );
    let events: Vec<PreparedEvent> = (0..3)
        .map(|index| {
            PreparedEvent::encode(
                &installation.topology.names,
                &sample::employment_changed(index),
            )
            .unwrap()
        })
        .collect();
    let published: BTreeSet<String> = events
        .iter()
        .map(|event| event.event_id.to_string())
        .collect();
    Publisher::new(
        installation.topology.jetstream.clone(),
        PublisherSettings::default(),
    )
    .publish_all(&events)
    .await
    .unwrap();

    let selection = koppel_deliver::dlq::DlqSelection::recipient("hooks");
    eventually(
        "the events were dead-lettered",
        Duration::from_secs(60),
        || async {
            Ok(
                koppel_deliver::dlq::list(&installation.topology, &selection)
                    .await?
                    .len()
                    >= 3,
            )
        },
    )
    .await
    .unwrap();

    let listed = installation.koppel(&["--output", "json", "dlq", "list", "--recipient", "hooks"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let letters: serde_json::Value = serde_json::from_str(stdout(&listed).trim()).unwrap();
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 3);
    assert!(
        letters
            .iter()
            .all(|letter| letter["error_class"] == "budget_exhausted"),
        "{letters:?}"
    );
    let dead_ids: BTreeSet<String> = letters
        .iter()
        .map(|letter| letter["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(dead_ids, published);

    let status = installation.koppel(&["--output", "json", "status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let status: serde_json::Value = serde_json::from_str(stdout(&status).trim()).unwrap();
    assert_eq!(status["recipients"][0]["recipient"], "hooks");
    assert_eq!(status["recipients"][0]["dead_letters"], 3, "{status}");
    assert_eq!(
        status["recipients"][0]["lag"], 0,
        "dead-lettered events are settled: {status}"
    );
    assert_eq!(status["employers"][0]["employer_key"], "loket-acme-1001");

    receiver.configure_faults(FaultConfig::default());
    let retried =
        installation.koppel(&["--output", "json", "dlq", "retry", "--recipient", "hooks"]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    let report: serde_json::Value =
        serde_json::from_str(stdout(&retried).lines().last().unwrap()).unwrap();
    assert_eq!(report["delivered"], 3, "{report}");

    let accepted: BTreeSet<String> = receiver
        .accepted_messages()
        .iter()
        .map(|message| message.webhook_id.clone())
        .collect();
    assert_eq!(accepted, published, "re-driven with the original ids");
    let listed = installation.koppel(&["--output", "json", "dlq", "list", "--recipient", "hooks"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(stdout(&listed).trim()).unwrap(),
        serde_json::json!([])
    );

    shutdown.cancel();
    deliverer.await.unwrap().unwrap();
    running.stop().await.unwrap();
}
