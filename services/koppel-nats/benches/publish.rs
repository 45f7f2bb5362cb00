//! Publish benchmark: the koppel publisher against a raw async-nats pipelined-publish loop over
//! payloads of the same size, in the same run, on the same server; plus Avro encode and decode
//! cost and size against serde_json.
//!
//! `cargo bench -p koppel-nats --bench publish` (needs Docker and the local NATS image, see
//! README, or `KOPPEL_NATS_URL`). `KOPPEL_BENCH_EVENTS` changes the event count (default 100000).
//! Prints figures and appends the publish ratio to `$KOPPEL_BENCH_REPORT` (see
//! koppel-bench-report; the codec figures are recorded by koppel-events' codec bench); asserts
//! nothing.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic
)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use koppel_bench_report::{Figure, Target, record};
use koppel_events::sample;
use koppel_nats::{PreparedEvent, Publisher, PublisherSettings, Topology, TopologySettings};

const IN_FLIGHT: usize = 512;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn fresh_topology() -> Topology {
    let client = async_nats::ConnectOptions::new()
        .connect(koppel_test_support::nats_server().url.as_str())
        .await
        .unwrap();
    let jetstream = async_nats::jetstream::new(client);
    Topology::setup(
        jetstream,
        koppel_test_support::unique_names(),
        &TopologySettings::without_size_limits(),
    )
    .await
    .unwrap()
}

async fn run() {
    let count: u64 = std::env::var("KOPPEL_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!("# koppel publish benchmark: {count} events, {IN_FLIGHT} in flight");

    // Codec figures on the same events.
    let events: Vec<_> = (0..count).map(sample::employment_changed).collect();
    let started = Instant::now();
    let payloads: Vec<Vec<u8>> = events
        .iter()
        .map(|event| koppel_events::encode(event).unwrap())
        .collect();
    let encode_time = started.elapsed();
    let started = Instant::now();
    for payload in &payloads {
        std::hint::black_box(koppel_events::decode(payload).unwrap());
    }
    let decode_time = started.elapsed();
    let started = Instant::now();
    let json: Vec<Vec<u8>> = events
        .iter()
        .map(|event| serde_json::to_vec(event).unwrap())
        .collect();
    let json_time = started.elapsed();
    let avro_bytes: usize = payloads.iter().map(Vec::len).sum();
    let json_bytes: usize = json.iter().map(Vec::len).sum();
    let per_event = |duration: Duration| duration.as_secs_f64() * 1e6 / count as f64;
    println!(
        "avro encode: {:.2} us/event; decode: {:.2} us/event; serde_json encode: {:.2} us/event",
        per_event(encode_time),
        per_event(decode_time),
        per_event(json_time)
    );
    println!(
        "size: avro {:.0} B/event, json {:.0} B/event, avro/json = {:.2}",
        avro_bytes as f64 / count as f64,
        json_bytes as f64 / count as f64,
        avro_bytes as f64 / json_bytes as f64
    );

    // Two rounds, alternating raw and koppel, each into a fresh stream: whichever runs first
    // would otherwise pay for the server warming up. The best round of each counts.
    let mut raw_best = Duration::MAX;
    let mut koppel_best = Duration::MAX;
    for round in 1..=2 {
        let raw_time = raw_publish(&events).await;
        let koppel_time = koppel_publish(&events, count).await;
        println!(
            "round {round}: raw {:.0} events/s, koppel {:.0} events/s",
            count as f64 / raw_time.as_secs_f64(),
            count as f64 / koppel_time.as_secs_f64()
        );
        raw_best = raw_best.min(raw_time);
        koppel_best = koppel_best.min(koppel_time);
    }
    let raw_time = raw_best;
    let koppel_time = koppel_best;

    let raw_rate = count as f64 / raw_time.as_secs_f64();
    let koppel_rate = count as f64 / koppel_time.as_secs_f64();
    println!("raw async-nats pipelined publish: {raw_rate:.0} events/s");
    println!("koppel publisher:                 {koppel_rate:.0} events/s");
    println!(
        "ratio koppel/raw: {:.2} (target >= 0.80)",
        koppel_rate / raw_rate
    );
    record(
        &Figure::against(
            "publish",
            "koppel publisher",
            koppel_rate,
            "events/s",
            "raw async-nats pipelined publish",
            raw_rate,
        )
        .with_target(Target::AtLeast(0.8))
        .with_note(format!(
            "{count} events, {IN_FLIGHT} in flight, best of 2 alternating rounds"
        )),
    )
    .unwrap();
}

/// The raw baseline: the same payload bytes, pipelined with the same in-flight bound, no
/// headers, no dedupe, no ack accounting.
async fn raw_publish(events: &[koppel_events::Event]) -> Duration {
    let topology = fresh_topology().await;
    let prepared: Vec<PreparedEvent> = events
        .iter()
        .map(|event| PreparedEvent::encode(&topology.names, event).unwrap())
        .collect();
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(IN_FLIGHT);
    for event in &prepared {
        if in_flight.len() >= IN_FLIGHT {
            let future: async_nats::jetstream::context::PublishAckFuture =
                in_flight.pop_front().unwrap();
            future.await.unwrap();
        }
        let future = topology
            .jetstream
            .send_publish(
                event.subject.clone(),
                PublishMessage::build().payload(event.payload.clone()),
            )
            .await
            .unwrap();
        in_flight.push_back(future);
    }
    while let Some(future) = in_flight.pop_front() {
        future.await.unwrap();
    }
    started.elapsed()
}

/// The koppel publisher: headers, `Nats-Msg-Id` dedupe, ordered ack accounting.
async fn koppel_publish(events: &[koppel_events::Event], count: u64) -> Duration {
    let topology = fresh_topology().await;
    let prepared: Vec<PreparedEvent> = events
        .iter()
        .map(|event| PreparedEvent::encode(&topology.names, event).unwrap())
        .collect();
    let publisher = Publisher::new(
        topology.jetstream.clone(),
        PublisherSettings {
            max_in_flight: IN_FLIGHT,
            ..Default::default()
        },
    );
    let started = Instant::now();
    let report = publisher.publish_all(&prepared).await.unwrap();
    assert_eq!(report.stored, count);
    started.elapsed()
}
