//! Publishing stores every event once; republishing is absorbed by `Nats-Msg-Id`.

use koppel_events::sample;
use koppel_nats::{PreparedEvent, Publisher, PublisherSettings};
use koppel_test_support::topology;

fn prepared(names: &koppel_events::Names, count: u64) -> Vec<PreparedEvent> {
    (0..count)
        .map(|index| PreparedEvent::encode(names, &sample::employment_changed(index)).unwrap())
        .collect()
}

#[tokio::test]
async fn publishing_n_events_stores_n() {
    let topology = topology().await;
    let events = prepared(&topology.names, 1_000);
    let publisher = Publisher::new(
        topology.jetstream.clone(),
        PublisherSettings {
            max_in_flight: 64,
            ..Default::default()
        },
    );

    let report = publisher.publish_all(&events).await.unwrap();

    assert_eq!(report.stored, 1_000);
    assert_eq!(report.duplicates, 0);
    let mut stream = topology.events_stream().await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 1_000);
    assert_eq!(report.last_sequence, info.state.last_sequence);
}

#[tokio::test]
async fn a_huge_max_in_flight_from_config_publishes_instead_of_panicking() {
    // `VecDeque::with_capacity(usize::MAX)` panicked with "capacity overflow" before.
    let topology = topology().await;
    let events = prepared(&topology.names, 10);
    let publisher = Publisher::new(
        topology.jetstream.clone(),
        PublisherSettings {
            max_in_flight: usize::MAX,
            ..Default::default()
        },
    );
    let report = publisher.publish_all(&events).await.unwrap();
    assert_eq!(report.stored + report.duplicates, 10);
}

#[tokio::test]
async fn republishing_stores_nothing_new_and_acks_say_duplicate() {
    let topology = topology().await;
    let events = prepared(&topology.names, 200);
    let publisher = Publisher::new(topology.jetstream.clone(), PublisherSettings::default());
    publisher.publish_all(&events).await.unwrap();

    let again = publisher.publish_all(&events).await.unwrap();

    assert_eq!(again.stored, 0);
    assert_eq!(again.duplicates, 200);
    let mut stream = topology.events_stream().await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 200);
}

#[tokio::test]
async fn stored_messages_carry_the_contract_headers_and_decode() {
    let topology = topology().await;
    let events = prepared(&topology.names, 1);
    Publisher::new(topology.jetstream.clone(), PublisherSettings::default())
        .publish_all(&events)
        .await
        .unwrap();

    let stream = topology.events_stream().await.unwrap();
    let message = stream.get_raw_message(1).await.unwrap();
    let headers = message.headers;
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()),
        Some(events[0].event_id.to_string())
    );
    assert_eq!(
        headers
            .get("Koppel-Event-Type")
            .map(|v| v.as_str().to_owned()),
        Some("EmploymentChanged".to_owned())
    );
    assert_eq!(
        headers
            .get("Koppel-Employee-Id")
            .map(|v| v.as_str().to_owned()),
        Some("emp-000000".to_owned())
    );
    assert_eq!(message.subject.as_str(), events[0].subject);
    assert!(
        message
            .subject
            .ends_with(".koppel.events.loket.loket-acme-1001.employment")
    );
    assert_eq!(
        koppel_events::decode(&message.payload).unwrap(),
        sample::employment_changed(0)
    );
}

#[tokio::test]
async fn an_event_no_stream_captures_is_an_error_not_a_silent_loss() {
    let topology = topology().await;
    let mut events = prepared(&topology.names, 3);
    events[1].subject = "nobody.listens.here".to_owned();
    let publisher = Publisher::new(
        topology.jetstream.clone(),
        PublisherSettings {
            retry_for_seconds: 1,
            ..Default::default()
        },
    );

    let error = publisher.publish_all(&events).await.unwrap_err();

    assert!(error.to_string().starts_with("event 1 "), "{error}");
}
