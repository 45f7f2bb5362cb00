//! Tenant isolation: a recipient receives only its subscribed employers' events, subscription
//! changes at runtime move the consumer's filter, and a recipient without employers has no
//! consumer at all (an empty filter would mean "everything").

use std::collections::BTreeSet;
use std::time::Duration;

use koppel_sim::webhook_receiver::{self, WebhookReceiver, WebhookReceiverConfig};
use koppel_test_support::topology;

use crate::support::*;

fn receiver(seed: u64) -> WebhookReceiver {
    WebhookReceiver::new(WebhookReceiverConfig::new(
        vec![WEBHOOK_SECRET.to_owned()],
        seed,
    ))
    .unwrap()
}

fn employers_seen(receiver: &WebhookReceiver) -> BTreeSet<String> {
    receiver
        .accepted_messages()
        .iter()
        .filter_map(|message| {
            message.body["data"]["employer_key"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_see_only_their_employers_and_follow_subscription_changes() {
    let topology = topology().await;
    let only_a = webhook_receiver::spawn(receiver(7)).await.unwrap();
    let everyone = webhook_receiver::spawn(receiver(8)).await.unwrap();
    let nobody = webhook_receiver::spawn(receiver(9)).await.unwrap();
    let (key, encoded) = secret_key();
    let registry = register(
        &topology,
        &key,
        &[
            webhook_recipient(&key, "hooks-a", &only_a.webhook_url()),
            webhook_recipient(&key, "hooks-all", &everyone.webhook_url()),
            webhook_recipient(&key, "hooks-none", &nobody.webhook_url()),
        ],
        &[
            ("employer-a", &["hooks-a", "hooks-all"]),
            ("employer-b", &["hooks-all"]),
        ],
    )
    .await;
    publish(&topology, &interleaved("employer-a", 0..5, 0..2)).await;
    publish(&topology, &interleaved("employer-b", 0..5, 0..2)).await;
    let deliverer = RunningDeliverer::start(config(&topology, &encoded));

    let all_books = everyone.receiver.clone();
    let a_books = only_a.receiver.clone();
    eventually("the sentinel has A and B", Duration::from_secs(60), || {
        all_books.summary().accepted == 20
    })
    .await;
    eventually("hooks-a has A", Duration::from_secs(30), || {
        a_books.summary().accepted == 10
    })
    .await;
    assert_eq!(
        employers_seen(&only_a.receiver),
        BTreeSet::from(["employer-a".to_owned()])
    );
    assert_eq!(nobody.receiver.summary().received, 0);
    let stream = topology.events_stream().await.unwrap();
    assert!(
        stream.consumer_info("deliver-hooks-none").await.is_err(),
        "no consumer for a recipient without employers"
    );

    // Subscribe hooks-a to B as well, and wait until its consumer's filter says so.
    subscribe(&registry, "employer-b", &["hooks-all", "hooks-a"]).await;
    let b_filter = topology.names.employer_filter("employer-b").unwrap();
    eventually_async(
        "hooks-a's filter includes B",
        Duration::from_secs(30),
        || {
            let stream = stream.clone();
            let b_filter = b_filter.clone();
            async move {
                let info = stream.consumer_info("deliver-hooks-a").await.unwrap();
                info.config.filter_subjects.contains(&b_filter)
                    || info.config.filter_subject == b_filter
            }
        },
    )
    .await;
    let new_b = interleaved("employer-b", 0..5, 2..3);
    publish(&topology, &new_b).await;
    let new_ids: BTreeSet<String> = new_b
        .iter()
        .map(|event| event.header().event_id.to_string())
        .collect();
    eventually(
        "hooks-a gets B's new events",
        Duration::from_secs(30),
        || {
            let seen: BTreeSet<String> = a_books
                .accepted_messages()
                .iter()
                .map(|message| message.webhook_id.clone())
                .collect();
            new_ids.is_subset(&seen)
        },
    )
    .await;

    // Unsubscribe hooks-a from A: A's next events reach the sentinel, never hooks-a.
    subscribe(&registry, "employer-a", &["hooks-all"]).await;
    let a_filter = topology.names.employer_filter("employer-a").unwrap();
    eventually_async("hooks-a's filter drops A", Duration::from_secs(30), || {
        let stream = stream.clone();
        let a_filter = a_filter.clone();
        async move {
            let info = stream.consumer_info("deliver-hooks-a").await.unwrap();
            !info.config.filter_subjects.contains(&a_filter)
                && info.config.filter_subject != a_filter
        }
    })
    .await;
    let a_before = only_a.receiver.summary().accepted;
    let sentinel_before = everyone.receiver.summary().accepted;
    publish(&topology, &interleaved("employer-a", 0..5, 2..3)).await;
    eventually(
        "the sentinel has A's new events",
        Duration::from_secs(30),
        || all_books.summary().accepted == sentinel_before + 5,
    )
    .await;
    deliverer.stop().await;
    assert_eq!(only_a.receiver.summary().accepted, a_before);
    assert_eq!(nobody.receiver.summary().received, 0);
    for running in [only_a, everyone, nobody] {
        running.stop().await.unwrap();
    }
}
