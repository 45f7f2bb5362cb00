//! Payloads that cannot be read go to the dead-letter stream (undecodable, unknown writer
//! schema) without blocking anyone else; the same employee's later events park behind them.

use std::time::Duration;

use async_nats::HeaderMap;
use koppel_deliver::dlq::{self, DlqSelection};
use koppel_events::subject::header;
use koppel_events::{EntityType, SourceSystem};
use koppel_sim::webhook_receiver::{self, WebhookReceiver, WebhookReceiverConfig};
use koppel_test_support::topology;

use crate::support::*;

async fn publish_raw(topology: &koppel_nats::Topology, employee: &str, payload: Vec<u8>) {
    let subject = topology
        .names
        .event_subject(SourceSystem::Loket, "acme", EntityType::Employment)
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::MESSAGE_ID,
        uuid::Uuid::new_v4().to_string().as_str(),
    );
    headers.insert(header::EMPLOYEE_ID, employee);
    topology
        .jetstream
        .publish_with_headers(subject, headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_payloads_are_dead_lettered_without_blocking_the_consumer() {
    let topology = topology().await;
    let receiver = WebhookReceiver::new(WebhookReceiverConfig::new(
        vec![WEBHOOK_SECRET.to_owned()],
        6,
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
    publish(&topology, &interleaved("acme", 0..10, 0..2)).await;
    publish_raw(&topology, "emp-00003", b"not avro at all".to_vec()).await;
    // Single-object marker and a fingerprint nobody registered.
    let mut unknown = vec![0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8];
    unknown.extend_from_slice(&[0, 0, 0]);
    publish_raw(&topology, "emp-00005", unknown).await;
    publish(&topology, &interleaved("acme", 0..10, 2..4)).await;

    let deliverer = RunningDeliverer::start(config(&topology, &encoded));
    let books = running.receiver.clone();
    eventually("everyone else delivered", Duration::from_secs(60), || {
        books.summary().accepted == 36
    })
    .await;
    let selection = DlqSelection::recipient("hooks");
    eventually_async("6 dead letters", Duration::from_secs(30), || async {
        dlq::list(&topology, &selection).await.unwrap().len() == 6
    })
    .await;
    deliverer.stop().await;

    let dead = dlq::list(&topology, &selection).await.unwrap();
    let classes: Vec<_> = dead
        .iter()
        .map(|letter| {
            (
                letter.employee_id.clone().unwrap(),
                letter.error_class.clone().unwrap(),
            )
        })
        .collect();
    for (employee, head_class) in [
        ("emp-00003", "undecodable"),
        ("emp-00005", "unknown_schema"),
    ] {
        let lane: Vec<_> = classes.iter().filter(|(id, _)| id == employee).collect();
        assert_eq!(lane.len(), 3, "{classes:?}");
        assert_eq!(lane[0].1, head_class);
        assert!(lane[1..].iter().all(|(_, class)| class == "parked"));
    }
    assert_eq!(running.receiver.summary().order_violations, 0);
    running.stop().await.unwrap();
}
