//! 422s go to the dead-letter stream with the insurer's code; the employee's later events are
//! parked behind the first instead of overtaking it; everyone else is delivered.

use std::time::Duration;

use koppel_deliver::dlq::{self, DlqSelection};
use koppel_sim::insurer::{self, EmployerLink, InsurerConfig, InsurerSimulator};
use koppel_test_support::topology;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_dead_lettered_with_their_code_and_park_their_lane() {
    let topology = topology().await;
    let simulator = InsurerSimulator::new(InsurerConfig::new(INSURER_TOKEN, 1));
    // Employer A is linked at the insurer; B is not, so the insurer refuses B with 0014.2.
    simulator
        .link_employer(
            "111111111L01",
            EmployerLink {
                contract_number: "PC-A".to_owned(),
                scheme_ids: vec![],
            },
        )
        .unwrap();
    let insurer = insurer::spawn(simulator).await.unwrap();
    let (key, encoded) = secret_key();
    register(
        &topology,
        &key,
        &[insurer_recipient(
            &key,
            "insurer",
            &insurer.base_url(),
            &[
                ("employer-a", "111111111L01"),
                ("employer-b", "222222222L01"),
            ],
        )],
        &[("employer-a", &["insurer"]), ("employer-b", &["insurer"])],
    )
    .await;
    let mut events = interleaved("employer-a", 0..10, 0..5);
    events.extend(interleaved("employer-b", 100..103, 0..4));
    publish(&topology, &events).await;
    let deliverer = RunningDeliverer::start(config(&topology, &encoded));

    let books = insurer.simulator.clone();
    eventually("A's 50 events applied", Duration::from_secs(60), || {
        books.summary().applied == 50
    })
    .await;
    let selection = DlqSelection::recipient("insurer").employer("employer-b");
    eventually_async(
        "B's 12 events dead-lettered",
        Duration::from_secs(60),
        || async { dlq::list(&topology, &selection).await.unwrap().len() == 12 },
    )
    .await;
    deliverer.stop().await;

    let dead = dlq::list(&topology, &selection).await.unwrap();
    for employee in ["emp-00100", "emp-00101", "emp-00102"] {
        let lane: Vec<_> = dead
            .iter()
            .filter(|letter| letter.employee_id.as_deref() == Some(employee))
            .collect();
        assert_eq!(lane.len(), 4);
        let head = lane[0];
        assert_eq!(head.error_class.as_deref(), Some("refused"));
        assert!(
            head.error.as_deref().unwrap().contains("0014.2"),
            "{head:?}"
        );
        assert_eq!(head.event_type.as_deref(), Some("EmploymentStarted"));
        for parked in &lane[1..] {
            assert_eq!(parked.error_class.as_deref(), Some("parked"));
            assert_eq!(parked.parked_behind, head.event_id);
        }
        let sequences: Vec<_> = lane.iter().map(|letter| letter.original_sequence).collect();
        let mut sorted = sequences.clone();
        sorted.sort();
        assert_eq!(sequences, sorted, "parked in stream order");
    }
    // Only the heads reached the insurer: parked events were never attempted.
    let summary = insurer.simulator.summary();
    assert_eq!(
        summary.rejected_by_code.get("0014.2"),
        Some(&3),
        "{summary:?}"
    );
    assert_eq!(summary.order_violations, 0);
    assert!(
        dlq::list(
            &topology,
            &DlqSelection::recipient("insurer").employer("employer-a")
        )
        .await
        .unwrap()
        .is_empty()
    );
    insurer.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_abort_instruction_is_permanent_even_on_a_503() {
    use koppel_sim::webhook_receiver::{self, WebhookReceiver, WebhookReceiverConfig};

    let topology = topology().await;
    let receiver = WebhookReceiver::new(WebhookReceiverConfig::new(
        vec![WEBHOOK_SECRET.to_owned()],
        4,
    ))
    .unwrap();
    receiver.abort_message_types(
        ["employment.started"],
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
    );
    let running = webhook_receiver::spawn(receiver).await.unwrap();
    let (key, encoded) = secret_key();
    register(
        &topology,
        &key,
        &[webhook_recipient(&key, "hooks", &running.webhook_url())],
        &[("acme", &["hooks"])],
    )
    .await;
    publish(&topology, &interleaved("acme", 0..2, 0..2)).await;
    let deliverer = RunningDeliverer::start(config(&topology, &encoded));
    let selection = DlqSelection::recipient("hooks");
    eventually_async("4 dead letters", Duration::from_secs(30), || async {
        dlq::list(&topology, &selection).await.unwrap().len() == 4
    })
    .await;
    deliverer.stop().await;
    let dead = dlq::list(&topology, &selection).await.unwrap();
    let heads: Vec<_> = dead
        .iter()
        .filter(|letter| letter.error_class.as_deref() == Some("aborted"))
        .collect();
    assert_eq!(heads.len(), 2, "{dead:?}");
    let summary = running.receiver.summary();
    assert_eq!(summary.aborted, 2);
    assert_eq!(summary.retried_after_abort, 0, "the abort was honoured");
    running.stop().await.unwrap();
}
