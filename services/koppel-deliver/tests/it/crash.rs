//! The deliverer is killed mid-stream (its task aborted, no graceful path) and started again:
//! every event still reaches the recipient, in per-employee order.

use std::time::Duration;

use koppel_sim::webhook_receiver::{self, WebhookReceiver, WebhookReceiverConfig};
use koppel_test_support::topology;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_the_deliverer_is_killed_and_restarted() {
    let topology = topology().await;
    let receiver = WebhookReceiver::new(WebhookReceiverConfig::new(
        vec![WEBHOOK_SECRET.to_owned()],
        5,
    ))
    .unwrap();
    let running = webhook_receiver::spawn(receiver).await.unwrap();
    let (key, encoded) = secret_key();
    register(
        &topology,
        &key,
        &[webhook_recipient(&key, "hooks", &running.webhook_url())],
        &[("acme", &["hooks"])],
    )
    .await;
    let events = interleaved("acme", 0..100, 0..30);
    publish(&topology, &events).await;

    let first = RunningDeliverer::start(config(&topology, &encoded));
    let books = running.receiver.clone();
    eventually("some events delivered", Duration::from_secs(60), || {
        books.summary().accepted >= 500
    })
    .await;
    first.kill().await;
    let at_kill = running.receiver.summary().accepted;
    assert!(
        at_kill < 3_000,
        "killed too late to mean anything ({at_kill})"
    );

    let second = RunningDeliverer::start(config(&topology, &encoded));
    eventually(
        "all 3,000 events delivered",
        Duration::from_secs(120),
        || books.summary().accepted == 3_000,
    )
    .await;
    second.stop().await;
    let summary = running.receiver.summary();
    assert_eq!(summary.accepted, 3_000, "{summary:?}");
    assert_eq!(summary.order_violations, 0, "{summary:?}");
    assert_eq!(summary.duplicates_with_different_body, 0, "{summary:?}");
    assert!(summary.rejected_by_reason.is_empty(), "{summary:?}");
    running.stop().await.unwrap();
}
