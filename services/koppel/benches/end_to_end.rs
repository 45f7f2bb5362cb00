//! End-to-end benchmark: events per second through the whole pipeline for the demo world at
//! ten times its size (the demo's 3 employers per source with 400 employees each instead of
//! 40), from the first sync to the last delivery settled: Loket and Unit4 simulators, the
//! extractor (4 employers at a time, as the worker), JetStream, the deliverer, and the pension
//! insurer and webhook receiver simulators, all over loopback HTTP. No faults are injected:
//! this measures throughput, not backoff waits (the demo test covers faults).
//!
//! Baseline, in the same run on the same server: the NATS share of the same work. The very
//! payloads koppel published are published again with async-nats's pipelined publish into a
//! fresh stream, then pulled and acked once per recipient with plain pull consumers. The ratio
//! says how close the pipeline, with its sources, mapping, diffing, snapshots, HTTP recipients
//! and guarantees, comes to the rate at which NATS alone could move its events. It has no
//! target (issue 7 sets none); it is recorded so a regression shows.
//!
//! `cargo bench -p koppel --bench end_to_end` (with `KOPPEL_NATS_IMAGE` as for the tests).
//! `KOPPEL_BENCH_E2E_EMPLOYEES` changes the employees per employer (default 400) and
//! `KOPPEL_BENCH_E2E_DAYS` the simulated days synced after the first sync (default 10).
//! Prints figures and appends them to `$KOPPEL_BENCH_REPORT`; fails if any event was lost.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic
)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use futures::StreamExt;
use koppel_bench_report::{Figure, record};
use koppel_harness::{INSURER, Pipeline, PipelineSettings, WEBHOOK};
use koppel_nats::{ConsumerSpec, Topology, ensure_pull_consumer};
use koppel_sim::suite::SuiteConfig;

/// The allocator the `koppel` binary runs with, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The demo's defaults (`koppel demo --help`): 3 employers per source, 40 employees each.
const DEMO_EMPLOYERS_PER_SOURCE: usize = 3;
const DEMO_EMPLOYEES_PER_EMPLOYER: usize = 40;
/// Employers synced at once, as the extractor worker's default.
const CONCURRENT_EMPLOYERS: usize = 4;
const IN_FLIGHT: usize = 512;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

async fn run() {
    let employees = setting(
        "KOPPEL_BENCH_E2E_EMPLOYEES",
        10 * DEMO_EMPLOYEES_PER_EMPLOYER as u64,
    ) as usize;
    let days = setting("KOPPEL_BENCH_E2E_DAYS", 10) as u32;
    println!(
        "# koppel end-to-end benchmark: {} employers x {employees} employees, first sync + {days} days",
        2 * DEMO_EMPLOYERS_PER_SOURCE
    );
    let namespace = koppel_test_support::unique_names()
        .namespace()
        .unwrap()
        .to_owned();
    let mut pipeline = Pipeline::start(&PipelineSettings {
        nats_url: koppel_test_support::nats_server().url.clone(),
        namespace,
        suite: SuiteConfig::local(7, DEMO_EMPLOYERS_PER_SOURCE, employees),
        poll_seconds: (60, 900),
        retry: koppel_deliver::RetrySettings::default(),
    })
    .await
    .unwrap();

    let started = Instant::now();
    let mut published = sync_all(&pipeline).await;
    let first_sync = started.elapsed();
    for _ in 0..days {
        pipeline.suite.advance_days(1);
        published += sync_all(&pipeline).await;
    }
    let extracted = started.elapsed();
    pipeline.drain(Duration::from_secs(1_800)).await.unwrap();
    let elapsed = started.elapsed();

    let check = pipeline.check_delivery().await.unwrap();
    assert_eq!(check.lost(), 0, "events were lost: {check:?}");
    assert_eq!(check.insurer_summary.order_violations, 0);
    assert_eq!(check.webhook_summary.order_violations, 0);
    let rate = published as f64 / elapsed.as_secs_f64();
    println!(
        "koppel: {published} events; first sync {:.1} s, all syncs {:.1} s, drained at {:.1} s: {rate:.0} events/s",
        first_sync.as_secs_f64(),
        extracted.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    let topology = &pipeline.topology;
    let payloads = stream_contents(topology, published).await;
    let raw_time = raw_nats_share(&payloads).await;
    let raw_rate = payloads.len() as f64 / raw_time.as_secs_f64();
    println!(
        "raw async-nats publish + one pull-and-ack per recipient of the same {} payloads: {raw_rate:.0} events/s",
        payloads.len()
    );
    println!("ratio koppel / raw NATS share: {:.3}", rate / raw_rate);
    let size = format!(
        "{} employers x {employees} employees, first sync + {days} days, {published} events, 2 recipients",
        2 * DEMO_EMPLOYERS_PER_SOURCE
    );
    record(
        &Figure::against(
            "end_to_end",
            "pipeline, first sync to drained",
            rate,
            "events/s",
            "raw NATS share (publish + 2 pull-and-ack)",
            raw_rate,
        )
        .with_note(size),
    )
    .unwrap();
    record(&Figure::plain(
        "end_to_end",
        "first full sync alone",
        first_sync.as_secs_f64(),
        "s",
    ))
    .unwrap();
    record(&Figure::plain(
        "end_to_end",
        "last delivery settled after the last sync",
        (elapsed - extracted).as_secs_f64(),
        "s",
    ))
    .unwrap();
    pipeline.stop().await.unwrap();
}

/// Syncs every employer once, `CONCURRENT_EMPLOYERS` at a time; returns the events published.
async fn sync_all(pipeline: &Pipeline) -> u64 {
    pipeline
        .sync_all(CONCURRENT_EMPLOYERS)
        .await
        .unwrap()
        .iter()
        .map(|(_, _, outcome)| outcome.published.len() as u64)
        .sum()
}

/// The subjects and payloads of the events stream, read untimed for the baseline.
async fn stream_contents(topology: &Topology, expected: u64) -> Vec<(String, bytes::Bytes)> {
    let stream = topology.events_stream().await.unwrap();
    let consumer = ensure_pull_consumer(
        &stream,
        &ConsumerSpec::new("bench-reader", vec![topology.names.events_wildcard()]),
    )
    .await
    .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut contents = Vec::new();
    while (contents.len() as u64) < expected {
        let message = messages.next().await.unwrap().unwrap();
        message.ack().await.unwrap();
        contents.push((
            message.message.subject.to_string(),
            message.message.payload.clone(),
        ));
    }
    contents
}

/// Publishes `payloads` into a fresh stream with async-nats's pipelined publish, then pulls
/// and acks all of them once per recipient; returns the time taken.
async fn raw_nats_share(payloads: &[(String, bytes::Bytes)]) -> Duration {
    let fresh = koppel_test_support::topology().await;
    // The same subjects under the fresh namespace, so the stream's filter takes them.
    let old_prefix = payloads
        .first()
        .map(|(subject, _)| subject.split(".koppel.").next().unwrap_or("").to_owned())
        .unwrap_or_default();
    let new_prefix = fresh.names.namespace().unwrap().to_owned();
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(IN_FLIGHT);
    for (subject, payload) in payloads {
        if in_flight.len() >= IN_FLIGHT {
            let future: async_nats::jetstream::context::PublishAckFuture =
                in_flight.pop_front().unwrap();
            future.await.unwrap();
        }
        let subject = subject.replacen(&old_prefix, &new_prefix, 1);
        let future = fresh
            .jetstream
            .send_publish(subject, PublishMessage::build().payload(payload.clone()))
            .await
            .unwrap();
        in_flight.push_back(future);
    }
    while let Some(future) = in_flight.pop_front() {
        future.await.unwrap();
    }
    let stream = fresh.events_stream().await.unwrap();
    for recipient in [INSURER, WEBHOOK] {
        let consumer = ensure_pull_consumer(
            &stream,
            &ConsumerSpec::new(
                format!("raw-{recipient}"),
                vec![fresh.names.events_wildcard()],
            ),
        )
        .await
        .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        for _ in 0..payloads.len() {
            let message = messages.next().await.unwrap().unwrap();
            message.ack().await.unwrap();
        }
    }
    started.elapsed()
}
