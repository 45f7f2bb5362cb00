//! Delivery benchmark: the koppel deliverer delivering a backlog to a webhook endpoint that
//! answers at once, against a raw async-nats pull-and-ack loop over the same messages, in the
//! same run on the same server; plus peak RSS (VmHWM) after a 10,000-event and after a
//! 100,000-event backlog, to show memory is bounded by the consumer's max_ack_pending and not
//! by the backlog.
//!
//! `cargo bench -p koppel-deliver` (needs Docker and the local NATS image, or
//! `KOPPEL_NATS_URL`). `KOPPEL_BENCH_EVENTS` changes the large backlog (default 100000).
//! Prints figures and appends them to `$KOPPEL_BENCH_REPORT` (see koppel-bench-report);
//! asserts nothing. Besides the rates it reports the process's CPU time per delivered event
//! (deliverer and endpoint together; NATS runs in its container): on a shared machine the
//! rate follows what the neighbours leave over, the CPU cost per event much less so.
//!
//! The endpoint is a bench-local axum handler that only counts, not koppel-sim's webhook
//! receiver: the receiver keeps a journal of every body, whose memory would hide the
//! deliverer's own in the process's peak RSS.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use koppel_bench_report::{Figure, Target, record};
use koppel_deliver::{ConsumerSettings, DelivererConfig, SecretKeySource};
use koppel_events::{Event, sample};
use koppel_nats::{
    ConsumerSpec, NatsSettings, PreparedEvent, Publisher, PublisherSettings, Topology,
    TopologySettings, ensure_pull_consumer,
};
use koppel_registry::{
    Connection, ConnectionSettings, EmployerRegistration, LoketConnectionSettings, Recipient,
    RecipientSettings, Registry, SecretKey,
};
use koppel_runtime::CancellationToken;
use secrecy::SecretString;

/// The allocator the `koppel` binary runs with, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EMPLOYEES: u64 = 1_000;
const EMPLOYER: &str = "loket-acme-1001";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time of this process so far (all threads), from /proc/self/stat.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |index: usize| -> u64 {
        fields
            .get(index)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; the kernel
    // counts them in USER_HZ, which is 100 on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

async fn endpoint() -> (String, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let app = axum::Router::new().route(
        "/webhooks",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/webhooks"), count)
}

/// Event `index`: one of EMPLOYEES employees, so lanes interleave as in a real backlog.
fn event(index: u64) -> Event {
    let mut event = sample::employment_changed(index);
    if let Event::EmploymentChanged(inner) = &mut event {
        let employee_id = format!("emp-{:06}", index % EMPLOYEES);
        inner.employment.employee_id = employee_id.clone();
        inner.employee.employee_id = employee_id;
    }
    event
}

async fn fresh_topology() -> Topology {
    let client = async_nats::connect(koppel_test_support::nats_server().url.as_str())
        .await
        .unwrap();
    Topology::setup(
        async_nats::jetstream::new(client),
        koppel_test_support::unique_names(),
        &TopologySettings::without_size_limits(),
    )
    .await
    .unwrap()
}

/// Encodes and publishes in chunks, so the benchmark itself holds little memory.
async fn publish(topology: &Topology, count: u64) {
    let publisher = Publisher::new(topology.jetstream.clone(), PublisherSettings::default());
    let mut start = 0;
    while start < count {
        let end = (start + 5_000).min(count);
        let chunk: Vec<PreparedEvent> = (start..end)
            .map(|index| PreparedEvent::encode(&topology.names, &event(index)).unwrap())
            .collect();
        publisher.publish_all(&chunk).await.unwrap();
        start = end;
    }
}

async fn register(topology: &Topology, key: &SecretKey, url: &str) {
    let registry = Registry::new(topology.registry.clone());
    registry
        .put_connection(&Connection {
            id: "loket-acme".to_owned(),
            settings: ConnectionSettings::Loket(LoketConnectionSettings {
                oauth_base_url: "http://127.0.0.1:1".to_owned(),
                api_base_url: "http://127.0.0.1:1/v2".to_owned(),
                client_id: "koppel".to_owned(),
                client_secret: key
                    .seal(
                        &SecretString::from("x"),
                        "connection/loket-acme/client_secret",
                    )
                    .unwrap(),
                redirect_uri: "http://localhost/callback".to_owned(),
            }),
            poll_interval_seconds: 60,
            full_sync_interval_seconds: 86_400,
        })
        .await
        .unwrap();
    registry
        .put_recipient(&Recipient {
            name: "hooks".to_owned(),
            settings: RecipientSettings::Webhook {
                url: url.to_owned(),
                secret: key
                    .seal(
                        &SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                        "recipient/hooks/secret",
                    )
                    .unwrap(),
            },
            max_in_flight: 64,
        })
        .await
        .unwrap();
    registry
        .put_employer(&EmployerRegistration {
            employer_key: EMPLOYER.to_owned(),
            connection_id: "loket-acme".to_owned(),
            source_employer_id: "1001".to_owned(),
            name: "Acme".to_owned(),
            payroll_tax_number: None,
            recipients: vec!["hooks".to_owned()],
            removal_threshold_percent: 20,
            enabled: true,
        })
        .await
        .unwrap();
}

/// Delivers a backlog of `count` events with the koppel deliverer; returns events per second
/// and the process's CPU time per event in microseconds.
async fn koppel_delivery(topology: &Topology, count: u64) -> (f64, f64) {
    let encoded = SecretKey::generate_base64().unwrap();
    let key = SecretKey::from_base64(&encoded).unwrap();
    let (url, received) = endpoint().await;
    register(topology, &key, &url).await;
    let config = DelivererConfig {
        nats: NatsSettings {
            url: koppel_test_support::nats_server().url.clone(),
            ..NatsSettings::default()
        },
        consumer: ConsumerSettings::default(),
        namespace: topology.names.namespace().map(str::to_owned),
        secret_key: SecretKeySource::Inline {
            base64: SecretString::from(encoded),
        },
        ..DelivererConfig::default()
    };
    let shutdown = CancellationToken::new();
    let cpu_before = process_cpu();
    let started = Instant::now();
    let deliverer = tokio::spawn(koppel_deliver::run(config, shutdown.clone()));
    while received.load(Ordering::Relaxed) < count {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    shutdown.cancel();
    deliverer.await.unwrap().unwrap();
    (
        count as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / count as f64,
    )
}

/// The recipient client alone, without NATS: the same webhook requests (JSON body, signature,
/// HTTP round trip to the same kind of endpoint) for `count` already decoded events, 64 at a
/// time as the recipient's `max_in_flight`. Returns requests per second and CPU per request in
/// microseconds: the floor under the deliverer's cost per event on this machine.
async fn recipient_client_alone(count: u64) -> (f64, f64) {
    use koppel_deliver::recipient::{WebhookClient, WebhookSecret};
    let (url, received) = endpoint().await;
    let http = koppel_runtime::http::HttpClientSettings::default()
        .client()
        .unwrap();
    let client = koppel_deliver::RecipientClient::Webhook(WebhookClient::new(
        http,
        url,
        WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
    ));
    let events: Vec<Event> = (0..count).map(event).collect();
    let cpu_before = process_cpu();
    let started = Instant::now();
    futures::stream::iter(events.iter().enumerate())
        .map(|(index, event)| {
            let client = &client;
            async move {
                let request = koppel_deliver::DeliveryRequest {
                    event,
                    event_id: event.header().event_id,
                    stream_sequence: index as u64 + 1,
                    employer_key: EMPLOYER,
                };
                client.deliver(&request).await
            }
        })
        .buffer_unordered(64)
        .for_each(|outcome| {
            assert!(matches!(
                outcome,
                koppel_deliver::AttemptOutcome::Delivered { .. }
            ));
            async {}
        })
        .await;
    let elapsed = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    assert_eq!(received.load(Ordering::Relaxed), count);
    (
        count as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / count as f64,
    )
}

/// A raw async-nats pull-and-ack loop over the same stream, with a consumer of the same shape
/// (same filter and max_ack_pending); returns messages per second.
async fn raw_pull_and_ack(topology: &Topology, count: u64) -> f64 {
    let stream = topology.events_stream().await.unwrap();
    let spec = ConsumerSpec::new(
        "raw-bench",
        vec![topology.names.employer_filter(EMPLOYER).unwrap()],
    );
    let consumer = ensure_pull_consumer(&stream, &spec).await.unwrap();
    let started = Instant::now();
    let mut messages = consumer.messages().await.unwrap();
    let mut acked = 0;
    while acked < count {
        let message = messages.next().await.unwrap().unwrap();
        message.ack().await.unwrap();
        acked += 1;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

async fn run() {
    println!("# koppel delivery benchmark");
    let small = fresh_topology().await;
    publish(&small, 10_000).await;
    let (small_rate, small_cpu) = koppel_delivery(&small, 10_000).await;
    let rss_small = peak_rss_kib();
    println!(
        "koppel deliverer, 10,000-event backlog:  {small_rate:>9.0} events/s, {small_cpu:.0} us CPU/event; peak RSS {rss_small} KiB"
    );

    let count: u64 = std::env::var("KOPPEL_BENCH_EVENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(100_000);
    let large = fresh_topology().await;
    publish(&large, count).await;
    let (large_rate, large_cpu) = koppel_delivery(&large, count).await;
    let rss_large = peak_rss_kib();
    println!(
        "koppel deliverer, {count}-event backlog: {large_rate:>9.0} events/s, {large_cpu:.0} us CPU/event; peak RSS {rss_large} KiB"
    );

    let raw_cpu_before = process_cpu();
    let raw_rate = raw_pull_and_ack(&large, count).await;
    let raw_cpu = process_cpu().saturating_sub(raw_cpu_before).as_secs_f64() * 1e6 / count as f64;
    println!(
        "raw async-nats pull-and-ack, same {count} messages: {raw_rate:>9.0} messages/s, {raw_cpu:.1} us CPU/message"
    );
    let (client_rate, client_cpu) = recipient_client_alone(count.min(30_000)).await;
    println!(
        "recipient client alone (no NATS), 64 in flight: {client_rate:>9.0} requests/s, {client_cpu:.0} us CPU/request"
    );
    println!(
        "ratio koppel / raw: {:.2} (target >= 0.5); peak RSS growth 10k -> {count} backlog: {} KiB",
        large_rate / raw_rate,
        rss_large.saturating_sub(rss_small)
    );
    let raw = "raw async-nats pull-and-ack, same messages";
    for figure in [
        Figure::against(
            "deliver",
            "koppel deliverer",
            large_rate,
            "events/s",
            raw,
            raw_rate,
        )
        .with_target(Target::AtLeast(0.5))
        .with_note(format!(
            "{count}-event backlog, 1,000 employees, webhook endpoint answering at once"
        )),
        Figure::against(
            "deliver",
            "koppel deliverer, small backlog",
            small_rate,
            "events/s",
            raw,
            raw_rate,
        )
        .with_note("10,000-event backlog"),
        Figure::against(
            "deliver",
            "koppel deliverer against its recipient client alone",
            large_rate,
            "events/s",
            "the same webhook requests without NATS, 64 in flight",
            client_rate,
        )
        .with_note("what pulling, lanes, decoding and acking cost on top of the HTTP delivery"),
        Figure::against(
            "deliver",
            "CPU per event, deliverer + endpoint",
            large_cpu,
            "µs",
            "recipient client alone + endpoint, per request",
            client_cpu,
        )
        .with_note(format!(
            "raw pull-and-ack loop: {raw_cpu:.1} µs per message in this process"
        )),
        Figure::against(
            "deliver",
            "peak RSS after the large backlog",
            rss_large as f64 / 1024.0,
            "MiB",
            "peak RSS after the 10,000-event backlog",
            rss_small as f64 / 1024.0,
        )
        .with_note("memory is bounded by max_ack_pending, not by the backlog"),
    ] {
        record(&figure).unwrap();
    }
}
