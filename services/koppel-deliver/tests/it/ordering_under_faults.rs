//! 20,000 events of 500 employees against an insurer that fails 30% of requests (503, 429
//! with Retry-After, and answers slower than the client's timeout): every event is applied
//! exactly once, in per-employee order, and retries after timeouts meet the idempotency key.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use koppel_deliver::dlq::{self, DlqSelection};
use koppel_sim::faults::FaultConfig;
use koppel_sim::insurer::{self, EmployerLink, InsurerConfig, InsurerSimulator};
use koppel_test_support::topology;

use crate::support::*;

const EMPLOYER: &str = "acme";
const PAYROLL_TAX_NUMBER: &str = "123456789L01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_and_in_order_despite_thirty_percent_failures() {
    let topology = topology().await;
    let simulator = InsurerSimulator::new(InsurerConfig::new(INSURER_TOKEN, 42));
    simulator
        .link_employer(
            PAYROLL_TAX_NUMBER,
            EmployerLink {
                contract_number: "PC-1".to_owned(),
                scheme_ids: vec![],
            },
        )
        .unwrap();
    simulator.configure_faults(FaultConfig {
        server_error_per_mille: 100,
        too_many_requests_per_mille: 100,
        retry_after_seconds: 1,
        slow_per_mille: 100,
        slow_delay_millis: 1_500,
    });
    let insurer = insurer::spawn(simulator).await.unwrap();
    let (key, encoded) = secret_key();
    register(
        &topology,
        &key,
        &[insurer_recipient(
            &key,
            "insurer",
            &insurer.base_url(),
            &[(EMPLOYER, PAYROLL_TAX_NUMBER)],
        )],
        &[(EMPLOYER, &["insurer"])],
    )
    .await;
    let events = interleaved(EMPLOYER, 0..500, 0..40);
    assert_eq!(events.len(), 20_000);
    publish(&topology, &events).await;

    let started = Instant::now();
    let deliverer = RunningDeliverer::start(config(&topology, &encoded));
    let books = insurer.simulator.clone();
    eventually(
        "all 20,000 events applied",
        Duration::from_secs(300),
        || books.summary().applied >= 20_000,
    )
    .await;
    let elapsed = started.elapsed();
    deliverer.stop().await;

    let summary = insurer.simulator.summary();
    assert_eq!(summary.applied, 20_000, "{summary:?}");
    assert_eq!(summary.order_violations, 0, "{summary:?}");
    assert!(summary.rejected_by_code.is_empty(), "{summary:?}");
    assert!(summary.faults.server_errors > 0 && summary.faults.too_many_requests > 0);
    assert!(summary.faults.slow > 0, "{summary:?}");
    let applied: HashSet<_> = insurer
        .simulator
        .applied_requests()
        .iter()
        .map(|request| request.idempotency_key)
        .collect();
    let published: HashSet<_> = events.iter().map(|event| event.header().event_id).collect();
    assert_eq!(applied, published, "every event applied exactly once");
    let dead = dlq::list(&topology, &DlqSelection::recipient("insurer"))
        .await
        .unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    tracing::info!(?elapsed, duplicates = summary.duplicates, "fault run done");
    insurer.stop().await.unwrap();
}
