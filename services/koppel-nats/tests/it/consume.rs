//! Settling pulled messages: nak-with-delay waits at least the delay, in-progress keeps a slow
//! message from being redelivered.

use std::time::{Duration, Instant};

use futures::StreamExt;
use koppel_events::sample;
use koppel_nats::{
    AckOutcome, ConsumerSpec, PreparedEvent, Publisher, PublisherSettings, ensure_pull_consumer,
    settle,
};
use koppel_test_support::topology;

async fn one_event_and_consumer(
    ack_wait: Duration,
) -> (
    koppel_nats::Topology,
    async_nats::jetstream::consumer::PullConsumer,
) {
    let topology = topology().await;
    let event = PreparedEvent::encode(&topology.names, &sample::employment_changed(1)).unwrap();
    Publisher::new(topology.jetstream.clone(), PublisherSettings::default())
        .publish_all(&[event])
        .await
        .unwrap();
    let stream = topology.events_stream().await.unwrap();
    let spec = ConsumerSpec {
        ack_wait,
        ..ConsumerSpec::new("deliver-test", vec![topology.names.events_wildcard()])
    };
    let consumer = ensure_pull_consumer(&stream, &spec).await.unwrap();
    (topology, consumer)
}

async fn next_message(
    consumer: &async_nats::jetstream::consumer::PullConsumer,
    wait: Duration,
) -> Option<async_nats::jetstream::Message> {
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(wait)
        .messages()
        .await
        .unwrap();
    batch.next().await.map(|message| message.unwrap())
}

#[tokio::test]
async fn nak_with_delay_comes_back_no_earlier_than_the_delay() {
    let (_topology, consumer) = one_event_and_consumer(Duration::from_secs(30)).await;
    let first = next_message(&consumer, Duration::from_secs(5))
        .await
        .expect("first delivery");
    let delay = Duration::from_millis(1_500);

    settle(&first, AckOutcome::NakWithDelay(delay))
        .await
        .unwrap();
    let naked_at = Instant::now();
    let second = next_message(&consumer, Duration::from_secs(10))
        .await
        .expect("redelivery");

    assert!(
        naked_at.elapsed() >= delay,
        "redelivered after {:?}",
        naked_at.elapsed()
    );
    assert_eq!(second.info().unwrap().delivered, 2);
    assert_eq!(second.payload, first.payload);
    settle(&second, AckOutcome::Ack).await.unwrap();
}

#[tokio::test]
async fn without_progress_a_slow_message_is_redelivered_after_ack_wait() {
    // The control for the next test: it shows redelivery does happen when nobody says "working".
    let (_topology, consumer) = one_event_and_consumer(Duration::from_secs(1)).await;
    let first = next_message(&consumer, Duration::from_secs(5))
        .await
        .expect("first delivery");

    let again = next_message(&consumer, Duration::from_secs(5))
        .await
        .expect("redelivery after ack wait");

    assert_eq!(again.info().unwrap().delivered, 2);
    drop(first);
}

#[tokio::test]
async fn in_progress_acks_keep_a_slow_message_from_being_redelivered() {
    let (_topology, consumer) = one_event_and_consumer(Duration::from_secs(1)).await;
    let first = next_message(&consumer, Duration::from_secs(5))
        .await
        .expect("first delivery");

    // Work "slowly" for three ack-wait periods, saying so every 300 ms, while another pull
    // waits for any redelivery.
    let keep_alive = async {
        let mut ticker = tokio::time::interval(Duration::from_millis(300));
        for _ in 0..10 {
            ticker.tick().await;
            settle(&first, AckOutcome::InProgress).await.unwrap();
        }
    };
    let (_, redelivered) =
        tokio::join!(keep_alive, next_message(&consumer, Duration::from_secs(3)));

    assert!(
        redelivered.is_none(),
        "the message was redelivered while in progress"
    );
    settle(&first, AckOutcome::Ack).await.unwrap();
    let info = consumer.clone().info().await.unwrap().clone();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_redelivered, 0);
}

#[tokio::test]
async fn term_stops_redelivery() {
    let (_topology, consumer) = one_event_and_consumer(Duration::from_secs(1)).await;
    let first = next_message(&consumer, Duration::from_secs(5))
        .await
        .expect("first delivery");

    settle(&first, AckOutcome::Term).await.unwrap();

    assert!(
        next_message(&consumer, Duration::from_millis(2_500))
            .await
            .is_none()
    );
}
