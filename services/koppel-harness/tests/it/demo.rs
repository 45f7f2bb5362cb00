//! The whole pipeline end to end, as `koppel demo` runs it, on a real NATS container:
//!
//! ```text
//! Loket + Unit4 simulators ─HTTP─▶ extractor ─▶ JetStream ─▶ deliverer ─HTTP─▶ insurer + webhook simulators
//! ```
//!
//! Runs the demo in process and checks its summary: nothing lost against the mutation
//! engine's ground truth and the stream, no per-employee order violation at any recipient,
//! every published event delivered or dead-lettered, with faults injected on both sides.

use std::time::Duration;

use koppel_harness::demo::{DemoSettings, run_demo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_loses_nothing_and_keeps_per_employee_order() {
    let nats = koppel_test_support::nats_server();
    let settings = DemoSettings {
        seed: 7,
        employers_per_source: 2,
        employees_per_employer: 15,
        days: 20,
        drain_timeout: Duration::from_secs(300),
    };

    let summary = run_demo(&settings, Some(nats.url.clone()), &mut |_| {})
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
