//! The whole pipeline end to end, as `koppel demo` runs it, on a real NATS container:
//!
//! ```text
//! Loket + Unit4 simulators ─HTTP─▶ extractor ─▶ JetStream ─▶ deliverer ─HTTP─▶ insurer + webhook simulators
//! ```
//!
//! Runs the demo in process and checks its summary: nothing lost against the mutation
//! engine's ground truth and the stream, no per-employee order violation at any recipient,
//! every published event delivered or dead-lettered, with faults injected on both sides.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use koppel::cli::DemoArgs;
use koppel::commands::demo::run_demo;
use koppel::output::{Output, OutputFormat};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_loses_nothing_and_keeps_per_employee_order() {
    let nats = koppel_test_support::nats_server();
    let arguments = DemoArgs {
        seed: 7,
        employers: 2,
        employees: 15,
        days: 20,
        drain_timeout_seconds: 300,
    };

    let summary = run_demo(
        &arguments,
        Some(nats.url.clone()),
        Output {
            format: OutputFormat::Json,
        },
    )
    .await
    .unwrap();

    let report = serde_json::to_string_pretty(&summary).unwrap();
    assert_eq!(summary.lost, 0, "{report}");
    assert_eq!(summary.lost_in_extraction, 0, "{report}");
    assert_eq!(summary.ground_truth_mismatches, 0, "{report}");
    assert_eq!(summary.employers, 4);
    assert!(summary.events_published > 100, "{report}");
    for recipient in ["insurer", "webhooks"] {
        assert_eq!(
            summary.order_violations[recipient], 0,
            "{recipient}: {report}"
        );
        assert_eq!(
            summary.lost_in_delivery[recipient], 0,
            "{recipient}: {report}"
        );
    }
    assert_eq!(
        summary.delivered["webhooks"] + summary.dead_lettered["webhooks"],
        summary.events_published,
        "every event reaches the webhook or its dead letters: {report}"
    );
    assert!(summary.delivered["insurer"] > 0, "{report}");
    let faults: u64 = summary.faults_injected.values().sum();
    assert!(
        faults > 1,
        "faults were injected, so retries were exercised: {report}"
    );
}
