//! Reading stream ranges in order: from the beginning, from a sequence, filtered, and ending at
//! the stream's end when not following.

use koppel_events::sample;
use koppel_nats::read::{ReadSpec, StartAt, read_stream};
use koppel_nats::{PreparedEvent, Publisher, PublisherSettings};
use koppel_test_support::topology;

#[tokio::test]
async fn reads_everything_in_order_and_ends_at_the_end() {
    let topology = topology().await;
    let events: Vec<PreparedEvent> = (0..25)
        .map(|index| {
            PreparedEvent::encode(&topology.names, &sample::employment_changed(index)).unwrap()
        })
        .collect();
    Publisher::new(topology.jetstream.clone(), PublisherSettings::default())
        .publish_all(&events)
        .await
        .unwrap();
    let stream = topology.events_stream().await.unwrap();

    let mut sequences = Vec::new();
    let spec = ReadSpec {
        filter_subjects: vec![],
        start: StartAt::Beginning,
        follow: false,
    };
    let count = read_stream(&stream, &spec, |message| {
        sequences.push(message.stream_sequence);
        true
    })
    .await
    .unwrap();

    assert_eq!(count, 25);
    assert_eq!(sequences, (1..=25).collect::<Vec<u64>>());

    let mut from_twenty = Vec::new();
    let spec = ReadSpec {
        filter_subjects: vec![],
        start: StartAt::Sequence(20),
        follow: false,
    };
    read_stream(&stream, &spec, |message| {
        from_twenty.push(message.stream_sequence);
        true
    })
    .await
    .unwrap();
    assert_eq!(from_twenty, (20..=25).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_filter_matching_nothing_ends_at_once() {
    let topology = topology().await;
    let events =
        vec![PreparedEvent::encode(&topology.names, &sample::employment_changed(1)).unwrap()];
    Publisher::new(topology.jetstream.clone(), PublisherSettings::default())
        .publish_all(&events)
        .await
        .unwrap();
    let stream = topology.events_stream().await.unwrap();
    let spec = ReadSpec {
        filter_subjects: vec![topology.names.employer_filter("someone-else").unwrap()],
        start: StartAt::Beginning,
        follow: false,
    };
    assert_eq!(read_stream(&stream, &spec, |_| true).await.unwrap(), 0);
}
