//! What reached each recipient simulator, against what the events stream holds: the delivery
//! half of "nothing lost", shared by the demo pipeline, the chaos suite (`tests/koppel-chaos`)
//! and the end-to-end benchmark.
//!
//! Every event in the stream that a recipient should get must have been applied by it (or
//! answered finally, see [`check_delivery`]) or be in its dead letters; anything else is lost.

use std::collections::BTreeSet;

use koppel_nats::Topology;
use koppel_nats::read::{ReadSpec, StartAt, read_stream};
use koppel_registry::{RecipientSettings, Registry};
use koppel_sim::suite::SimulatorSuite;
use serde::Serialize;

use crate::onboarding::{INSURER, WEBHOOK};

/// One recipient's side of the check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecipientCheck {
    /// Events in the stream this recipient should receive.
    pub expected: u64,
    /// Requests the recipient applied (insurer) or accepted (webhooks), once per key.
    pub delivered: u64,
    /// Requests the recipient recognised as repeats of a key it had already seen.
    pub duplicates: u64,
    pub dead_lettered: u64,
    pub order_violations: u64,
    /// Event ids in the stream that the recipient neither received finally nor dead-lettered.
    pub missing: Vec<String>,
}

/// The whole check, after every consumer has drained.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryCheck {
    pub events_in_stream: u64,
    /// Stream messages that did not decode as events: counted as lost.
    pub undecodable: u64,
    pub insurer: RecipientCheck,
    pub webhook: RecipientCheck,
    pub insurer_summary: koppel_sim::insurer::InsurerSummary,
    pub webhook_summary: koppel_sim::webhook_receiver::WebhookSummary,
}

impl DeliveryCheck {
    /// Events lost in delivery at any recipient, plus undecodable ones.
    pub fn lost(&self) -> u64 {
        self.undecodable + self.insurer.missing.len() as u64 + self.webhook.missing.len() as u64
    }
}

/// Reads the whole events stream and compares it with what the insurer and the webhook
/// receiver of `suite` got, and with their dead letters. Call it once the deliverer drained.
pub async fn check_delivery(
    topology: &Topology,
    registry: &Registry,
    suite: &SimulatorSuite,
) -> anyhow::Result<DeliveryCheck> {
    let registry_snapshot = registry.snapshot().await?;
    let insurer_links = match registry_snapshot
        .recipients
        .get(INSURER)
        .map(|recipient| &recipient.settings)
    {
        Some(RecipientSettings::PensionInsurer { employer_links, .. }) => employer_links.clone(),
        _ => std::collections::BTreeMap::new(),
    };
    let insurer_employers = koppel_deliver::recipient::insurer::employer_links(
        INSURER,
        &insurer_links,
        &registry_snapshot,
    );
    let mut expected_at_insurer: BTreeSet<String> = BTreeSet::new();
    let mut expected_at_webhook: BTreeSet<String> = BTreeSet::new();
    let mut undecodable = 0u64;
    let stream = topology.events_stream().await?;
    let spec = ReadSpec {
        filter_subjects: vec![topology.names.events_wildcard()],
        start: StartAt::Beginning,
        follow: false,
    };
    let events_in_stream = read_stream(&stream, &spec, |message| {
        match koppel_events::decode(&message.payload) {
            Ok(event) => {
                let event_id = event.header().event_id.to_string();
                if let koppel_deliver::recipient::insurer::Plan::Send(_) =
                    koppel_deliver::recipient::insurer::plan(
                        &event,
                        insurer_employers.get(&event.header().employer_key),
                    )
                {
                    expected_at_insurer.insert(event_id.clone());
                }
                // The webhook recipient receives every event of its employers.
                expected_at_webhook.insert(event_id);
            }
            Err(_) => undecodable += 1,
        }
        true
    })
    .await?;
    let insurer_dead = dead_letter_ids(topology, INSURER).await?;
    let webhook_dead = dead_letter_ids(topology, WEBHOOK).await?;
    // What reached the insurer and got a final answer: applied, or a personal-data change for
    // someone who is no participant there (koppel's deliverer settles that as filtered).
    let insurer_applied: BTreeSet<String> = suite
        .insurer
        .received_requests()
        .iter()
        .filter(|request| {
            matches!(
                request.outcome,
                koppel_sim::insurer::RequestOutcome::Applied { .. }
            ) || (request.kind == koppel_sim::insurer::RequestKind::PersonalDataChange
                && request.outcome
                    == koppel_sim::insurer::RequestOutcome::Rejected {
                        code: koppel_sim::insurer::RejectionCode::UnknownParticipant,
                    })
        })
        .map(|request| request.idempotency_key.to_string())
        .collect();
    let webhook_accepted: BTreeSet<String> = suite
        .webhook
        .accepted_messages()
        .iter()
        .map(|message| message.webhook_id.clone())
        .collect();
    let insurer_summary = suite.insurer.summary();
    let webhook_summary = suite.webhook.summary();
    let missing = |expected: &BTreeSet<String>,
                   received: &BTreeSet<String>,
                   dead: &BTreeSet<String>|
     -> Vec<String> {
        expected
            .iter()
            .filter(|id| !received.contains(*id) && !dead.contains(*id))
            .cloned()
            .collect()
    };
    let insurer = RecipientCheck {
        expected: expected_at_insurer.len() as u64,
        delivered: insurer_summary.applied,
        duplicates: insurer_summary.duplicates,
        dead_lettered: insurer_dead.len() as u64,
        order_violations: insurer_summary.order_violations,
        missing: missing(&expected_at_insurer, &insurer_applied, &insurer_dead),
    };
    let webhook = RecipientCheck {
        expected: expected_at_webhook.len() as u64,
        delivered: webhook_summary.accepted,
        duplicates: webhook_summary.duplicates,
        dead_lettered: webhook_dead.len() as u64,
        order_violations: webhook_summary.order_violations,
        missing: missing(&expected_at_webhook, &webhook_accepted, &webhook_dead),
    };
    for event_id in &insurer.missing {
        let seen_as: Vec<String> = suite
            .insurer
            .received_requests()
            .iter()
            .filter(|request| request.idempotency_key.to_string() == *event_id)
            .map(|request| {
                format!(
                    "{:?} {:?} numiv {:?}",
                    request.kind, request.outcome, request.income_relationship_number
                )
            })
            .collect();
        tracing::error!(recipient = INSURER, %event_id, ?seen_as, "Published event neither delivered nor dead-lettered.");
    }
    for event_id in &webhook.missing {
        tracing::error!(recipient = WEBHOOK, %event_id, "Published event neither delivered nor dead-lettered.");
    }
    tracing::info!(insurer_dead = ?insurer_dead, "Dead letters at the insurer.");
    Ok(DeliveryCheck {
        events_in_stream,
        undecodable,
        insurer,
        webhook,
        insurer_summary,
        webhook_summary,
    })
}

async fn dead_letter_ids(
    topology: &Topology,
    recipient: &'static str,
) -> anyhow::Result<BTreeSet<String>> {
    let letters = koppel_deliver::dlq::list(
        topology,
        &koppel_deliver::dlq::DlqSelection::recipient(recipient),
    )
    .await?;
    Ok(letters
        .into_iter()
        .filter_map(|letter| letter.event_id)
        .collect())
}
