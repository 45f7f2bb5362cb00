//! The 3-node cluster fixture does what chaos tests rely on: an R3 stream keeps taking
//! publishes after its leader is stopped (a new leader is elected), loses nothing, and the
//! stopped node comes back on the same URL and catches up; then the same for a follower.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use koppel_test_support::cluster::{CLUSTER_SIZE, NatsCluster};

const STREAM: &str = "CLUSTER_FIXTURE";
const EVENTS_PER_PHASE: u64 = 40;

/// Publishes message `number` until the cluster acknowledges it. Retries reuse the message id,
/// so a publish that was stored but whose ack was lost comes back as a duplicate, not a second
/// copy. Returns how many attempts failed.
async fn publish_until_acked(js: &jetstream::Context, number: u64, deadline: Instant) -> u64 {
    let mut failures = 0;
    loop {
        let attempt = async {
            js.send_publish(
                format!("{STREAM}.events"),
                PublishMessage::build()
                    .message_id(format!("message-{number}"))
                    .payload(number.to_string().into()),
            )
            .await?
            .await
            .map_err(async_nats::Error::from)
        };
        match attempt.await {
            Ok(_) => return failures,
            Err(error) => {
                failures += 1;
                assert!(
                    Instant::now() < deadline,
                    "message {number} still not acknowledged: {error}"
                );
            }
        }
    }
}

async fn publish_range(js: &jetstream::Context, numbers: std::ops::Range<u64>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut failures = 0;
    for number in numbers {
        failures += publish_until_acked(js, number, deadline).await;
    }
    failures
}

/// Every message in the stream, in stream order.
async fn stored_numbers(js: &jetstream::Context) -> Vec<u64> {
    let stream = js.get_stream(STREAM).await.unwrap();
    let last = stream.get_info().await.unwrap().state.last_sequence;
    let mut numbers = Vec::new();
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.unwrap();
        numbers.push(
            std::str::from_utf8(&message.payload)
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    numbers
}

#[allow(clippy::print_stdout)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_stream_survives_stopping_its_leader_and_then_a_follower() {
    let started = Instant::now();
    let cluster = NatsCluster::start().await.expect("cluster starts");
    println!(
        "cluster up in {:.1?} on {}",
        started.elapsed(),
        cluster.url()
    );
    let js = jetstream::new(cluster.connect().await.unwrap());
    js.create_stream(stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![format!("{STREAM}.>")],
        num_replicas: CLUSTER_SIZE,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();
    cluster
        .wait_until_stream_current(STREAM, CLUSTER_SIZE, Duration::from_secs(30))
        .await
        .unwrap();

    assert_eq!(publish_range(&js, 0..EVENTS_PER_PHASE).await, 0);

    // Stop the leader. Publishing goes on (after a failure or two while the group elects).
    let old_leader = cluster.stream_leader(STREAM).await.unwrap();
    let old_leader_url = cluster.node_url(old_leader).unwrap();
    let stopped_at = Instant::now();
    cluster.stop_node(old_leader).await.unwrap();
    let mut failures_during_election =
        publish_range(&js, EVENTS_PER_PHASE..EVENTS_PER_PHASE + 1).await;
    let publishing_resumed_in = stopped_at.elapsed();
    failures_during_election +=
        publish_range(&js, EVENTS_PER_PHASE + 1..2 * EVENTS_PER_PHASE).await;
    let new_leader = cluster
        .wait_for_stream_leader(STREAM, Some(old_leader), Duration::from_secs(30))
        .await
        .unwrap();
    assert_ne!(new_leader, old_leader);

    // Bring it back on the same URL; it catches up with what it missed.
    let restarted_at = Instant::now();
    cluster.start_node(old_leader).await.unwrap();
    assert_eq!(cluster.node_url(old_leader).unwrap(), old_leader_url);
    let placement = cluster
        .wait_until_stream_current(STREAM, CLUSTER_SIZE, Duration::from_secs(60))
        .await
        .unwrap();
    let leader_caught_up_in = restarted_at.elapsed();
    assert!(
        placement
            .followers
            .iter()
            .any(|(node, _)| *node == old_leader)
            || placement.leader == Some(old_leader),
        "the restarted node is back in the group: {placement:?}"
    );

    // Now a follower: publishing must not even notice.
    let follower = cluster.stream_followers(STREAM).await.unwrap()[0];
    cluster.stop_node(follower).await.unwrap();
    let failures_without_follower =
        publish_range(&js, 2 * EVENTS_PER_PHASE..3 * EVENTS_PER_PHASE).await;
    let restarted_at = Instant::now();
    cluster.start_node(follower).await.unwrap();
    cluster
        .wait_until_stream_current(STREAM, CLUSTER_SIZE, Duration::from_secs(60))
        .await
        .unwrap();
    let follower_caught_up_in = restarted_at.elapsed();

    let numbers = stored_numbers(&js).await;
    let expected: Vec<u64> = (0..3 * EVENTS_PER_PHASE).collect();
    assert_eq!(numbers, expected, "every message exactly once, in order");

    println!(
        "leader n{} stopped: publishing resumed in {publishing_resumed_in:.1?} ({failures_during_election} failed attempts), \
         new leader n{}, back and current in {leader_caught_up_in:.1?}; follower n{} stopped: \
         {failures_without_follower} failed attempts, back and current in {follower_caught_up_in:.1?}; \
         {} messages, none lost or doubled; total {:.1?}",
        old_leader + 1,
        new_leader + 1,
        follower + 1,
        numbers.len(),
        started.elapsed()
    );
}
