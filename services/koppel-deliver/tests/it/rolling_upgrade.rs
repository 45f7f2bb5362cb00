//! Rolling upgrade of the registry: a newer koppel rewrites a recipient and its employer with
//! fields this build does not know, then writes a recipient record this build cannot read at
//! all. Today's deliverer keeps delivering to that recipient for that employer, and skips
//! nothing. (Before, either write dropped the record from its snapshot and stopped delivery.)

use std::collections::BTreeSet;
use std::time::Duration;

use koppel_sim::webhook_receiver::{self, WebhookReceiver, WebhookReceiverConfig};
use koppel_test_support::topology;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_newer_koppel_wrote_do_not_stop_delivery() {
    let topology = topology().await;
    let hooks = webhook_receiver::spawn(
        WebhookReceiver::new(WebhookReceiverConfig::new(
            vec![WEBHOOK_SECRET.to_owned()],
            3,
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    let (key, encoded) = secret_key();
    let registry = register(
        &topology,
        &key,
        &[webhook_recipient(&key, "hooks", &hooks.webhook_url())],
        &[("employer-a", &["hooks"])],
    )
    .await;
    publish(&topology, &interleaved("employer-a", 0..5, 0..2)).await;
    let deliverer = RunningDeliverer::start(config(&topology, &encoded));
    let books = hooks.receiver.clone();
    eventually(
        "the first 10 events arrive",
        Duration::from_secs(60),
        || books.summary().accepted == 10,
    )
    .await;

    // A newer koppel rewrites both records with new optional fields...
    let newer = |key: &'static str, extra: serde_json::Value| {
        let store = topology.registry.clone();
        async move {
            let entry = store.entry(key).await.unwrap().unwrap();
            let mut json: serde_json::Value = serde_json::from_slice(&entry.value).unwrap();
            for (field, value) in extra.as_object().unwrap() {
                json[field] = value.clone();
            }
            store
                .put(key, serde_json::to_vec(&json).unwrap().into())
                .await
                .unwrap();
            json
        }
    };
    newer(
        "employers.employer-a",
        serde_json::json!({"delivery_calendar": {"skip_weekends": true}}),
    )
    .await;
    let recipient = newer(
        "recipients.hooks",
        serde_json::json!({"rate_limit_per_second": 20}),
    )
    .await;
    // ...and then a recipient record in a format this build must not interpret.
    let mut too_new = recipient.clone();
    too_new["record_version"] = serde_json::json!(2);
    topology
        .registry
        .put(
            "recipients.hooks",
            serde_json::to_vec(&too_new).unwrap().into(),
        )
        .await
        .unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    assert!(snapshot.problems.contains_key("recipients.hooks"));

    publish(&topology, &interleaved("employer-a", 0..5, 2..5)).await;

    eventually("all 25 events arrive", Duration::from_secs(60), || {
        books.summary().accepted == 25
    })
    .await;
    let sequences: BTreeSet<u64> = hooks
        .receiver
        .accepted_messages()
        .iter()
        .filter_map(|message| message.stream_sequence)
        .collect();
    assert_eq!(
        sequences,
        (1..=25).collect::<BTreeSet<u64>>(),
        "nothing skipped"
    );
    assert_eq!(hooks.receiver.summary().duplicates_with_different_body, 0);
    deliverer.stop().await;
}
