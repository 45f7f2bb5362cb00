//! `koppel replay` redelivers past events with their original idempotency keys: the recipient
//! absorbs them as duplicates, nothing is applied twice, and another employer's events never
//! reach it.

use std::time::Duration;

use koppel_events::{Event, sample};
use koppel_harness::eventually;
use koppel_nats::{PreparedEvent, Publisher, PublisherSettings};
use koppel_sim::webhook_receiver::{WebhookReceiver, WebhookReceiverConfig};

use super::dlq::{SECRET, start_deliverer, subscribe_webhook};
use super::{Installation, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_redelivers_with_the_original_keys_and_only_subscribed_employers() {
    let installation = Installation::new().await;
    let receiver =
        WebhookReceiver::new(WebhookReceiverConfig::new(vec![SECRET.to_owned()], 5)).unwrap();
    let running = koppel_sim::webhook_receiver::spawn(receiver.clone())
        .await
        .unwrap();
    subscribe_webhook(&installation, &running.webhook_url()).await;
    let (shutdown, deliverer) =
        start_deliverer(&installation, koppel_deliver::RetrySettings::default());

    let mut events: Vec<Event> = (0..3).map(sample::employment_changed).collect();
    let mut other = sample::employment_changed(9);
    if let Event::EmploymentChanged(inner) = &mut other {
        inner.header.employer_key = "someone-else".to_owned();
    }
    events.push(other);
    let prepared: Vec<PreparedEvent> = events
        .iter()
        .map(|event| PreparedEvent::encode(&installation.topology.names, event).unwrap())
        .collect();
    Publisher::new(
        installation.topology.jetstream.clone(),
        PublisherSettings::default(),
    )
    .publish_all(&prepared)
    .await
    .unwrap();
    eventually(
        "the events were delivered",
        Duration::from_secs(30),
        || async { Ok(receiver.summary().accepted >= 3) },
    )
    .await
    .unwrap();
    shutdown.cancel();
    deliverer.await.unwrap().unwrap();

    let replayed = installation.koppel(&[
        "--output",
        "json",
        "replay",
        "--recipient",
        "hooks",
        "--from-seq",
        "1",
        "--name",
        "again",
    ]);
    assert!(replayed.status.success(), "{}", stderr(&replayed));
    let report: serde_json::Value =
        serde_json::from_str(stdout(&replayed).lines().last().unwrap()).unwrap();
    assert_eq!(report["replayed"], 3, "{report}");
    assert_eq!(report["delivered"], 3, "{report}");
    assert_eq!(report["finished"], true);

    let summary = receiver.summary();
    assert_eq!(summary.accepted, 3, "nothing applied twice");
    assert_eq!(
        summary.duplicates, 3,
        "the webhook receiver absorbed all three by webhook-id"
    );
    assert!(
        receiver
            .received_messages()
            .iter()
            .all(|message| message.body["data"]["employer_key"] != "someone-else")
    );

    let without_start = installation.koppel(&["replay", "--recipient", "hooks"]);
    assert_eq!(without_start.status.code(), Some(1));
    assert!(
        stderr(&without_start).contains("--since <time> or --from-seq"),
        "{}",
        stderr(&without_start)
    );

    // `replay-hooks-a-b` could also be recipient `hooks-a`'s replay `b`.
    let ambiguous = installation.koppel(&[
        "replay",
        "--recipient",
        "hooks",
        "--from-seq",
        "1",
        "--name",
        "a-b",
    ]);
    assert_eq!(ambiguous.status.code(), Some(1));
    assert!(
        stderr(&ambiguous).contains("not `-`"),
        "{}",
        stderr(&ambiguous)
    );
    running.stop().await.unwrap();
}
