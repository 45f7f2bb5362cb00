//! `dlq retry` re-drives a parked lane in order with the original idempotency keys, removes
//! the dead letters, and releases the lane in the running deliverer, so later events of those
//! employees flow again.

use std::time::Duration;

use koppel_deliver::RetrySettings;
use koppel_deliver::dlq::{self, DlqSelection, RedriveSettings};
use koppel_runtime::http::HttpClientSettings;
use koppel_sim::insurer::{self, EmployerLink, InsurerConfig, InsurerSimulator};
use koppel_test_support::topology;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_redelivers_in_order_and_releases_the_lanes() {
    let topology = topology().await;
    let simulator = InsurerSimulator::new(InsurerConfig::new(INSURER_TOKEN, 2));
    let insurer = insurer::spawn(simulator).await.unwrap();
    let (key, encoded) = secret_key();
    register(
        &topology,
        &key,
        &[insurer_recipient(
            &key,
            "insurer",
            &insurer.base_url(),
            &[("employer-b", "222222222L01")],
        )],
        &[("employer-b", &["insurer"])],
    )
    .await;
    // The employer is not linked at the insurer yet: everything is refused and parked.
    publish(&topology, &interleaved("employer-b", 0..3, 0..4)).await;
    let deliverer = RunningDeliverer::start(config(&topology, &encoded));
    let selection = DlqSelection::recipient("insurer").employer("employer-b");
    eventually_async("12 dead letters", Duration::from_secs(60), || async {
        dlq::list(&topology, &selection).await.unwrap().len() == 12
    })
    .await;
    let dead = dlq::list(&topology, &selection).await.unwrap();
    let shown = dlq::show(&topology, "insurer", dead[0].dlq_sequence)
        .await
        .unwrap();
    assert!(shown.event.is_ok());
    assert!(
        dlq::show(&topology, "someone-else", dead[0].dlq_sequence)
            .await
            .is_err(),
        "another recipient cannot read this dead letter"
    );

    // The account manager links the employer; the operator re-drives.
    insurer
        .simulator
        .link_employer(
            "222222222L01",
            EmployerLink {
                contract_number: "PC-B".to_owned(),
                scheme_ids: vec![],
            },
        )
        .unwrap();
    let settings = RedriveSettings {
        secret_key: key.clone(),
        http: HttpClientSettings::default().client().unwrap(),
        retry: RetrySettings {
            initial_backoff_millis: 5,
            max_backoff_millis: 50,
            max_attempts: 5,
            ..RetrySettings::default()
        },
    };
    let report = dlq::retry(&topology, &settings, &selection).await.unwrap();
    assert_eq!(report.delivered, 12, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.lanes_released, 3);
    assert!(dlq::list(&topology, &selection).await.unwrap().is_empty());

    let applied = insurer.simulator.applied_requests();
    assert_eq!(applied.len(), 12);
    let expected: Vec<_> = dead.iter().map(|letter| letter.event_id.clone()).collect();
    let mut applied_ids: Vec<_> = applied
        .iter()
        .map(|request| Some(request.idempotency_key.to_string()))
        .collect();
    applied_ids.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(
        applied_ids, expected_sorted,
        "same idempotency keys as the originals"
    );

    // The running deliverer hears of the release: new events of those employees flow again.
    publish(&topology, &interleaved("employer-b", 0..3, 4..7)).await;
    let books = insurer.simulator.clone();
    eventually(
        "new events after the re-drive applied",
        Duration::from_secs(30),
        || books.summary().applied == 21,
    )
    .await;
    deliverer.stop().await;
    let summary = insurer.simulator.summary();
    assert_eq!(summary.order_violations, 0, "{summary:?}");
    assert!(dlq::list(&topology, &selection).await.unwrap().is_empty());
    insurer.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_skips_dead_letters_and_is_scoped_to_the_recipient() {
    let topology = topology().await;
    let simulator = InsurerSimulator::new(InsurerConfig::new(INSURER_TOKEN, 3));
    let insurer = insurer::spawn(simulator).await.unwrap();
    let (key, encoded) = secret_key();
    register(
        &topology,
        &key,
        &[insurer_recipient(
            &key,
            "insurer",
            &insurer.base_url(),
            &[("employer-b", "222222222L01")],
        )],
        &[("employer-b", &["insurer"])],
    )
    .await;
    publish(&topology, &interleaved("employer-b", 0..2, 0..2)).await;
    let deliverer = RunningDeliverer::start(config(&topology, &encoded));
    let selection = DlqSelection::recipient("insurer");
    eventually_async("4 dead letters", Duration::from_secs(60), || async {
        dlq::list(&topology, &selection).await.unwrap().len() == 4
    })
    .await;
    deliverer.stop().await;
    let other = dlq::purge(&topology, &DlqSelection::recipient("other"), "test")
        .await
        .unwrap();
    assert_eq!(other.removed, 0);
    let head = dlq::list(&topology, &selection).await.unwrap()[0].dlq_sequence;
    let report = dlq::purge(
        &topology,
        &selection.clone().dead_letter(head),
        "skip the head",
    )
    .await
    .unwrap();
    assert_eq!(report.removed, 1);
    assert_eq!(dlq::list(&topology, &selection).await.unwrap().len(), 3);
    let report = dlq::purge(&topology, &selection, "done").await.unwrap();
    assert_eq!(report.removed, 3);
    insurer.stop().await.unwrap();
}
