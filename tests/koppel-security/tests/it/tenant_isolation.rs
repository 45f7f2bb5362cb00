//! Tenant isolation end to end: employer A comes from a Loket connection, employer B from a
//! Unit4 connection; webhook recipient `tenant-a` is subscribed to A only, `tenant-b` to B
//! only. Real extraction, the real deliverer (in process), and the real `koppel replay` and
//! `koppel dlq list|show|retry|purge` commands. Whatever is asked for, including B's employer
//! explicitly, a wildcard, "everything", or a dead letter of `tenant-b` by its sequence,
//! `tenant-a`'s receiver never gets one of B's events, and `tenant-b`'s dead letters stay put.
//!
//! Dead letters are made by switching a receiver's faults to 503 on every request. A faulted
//! request is not recorded by the receiver, so a leak could hide in that window; it cannot stay
//! hidden: what fails there becomes one of the recipient's dead letters, which are checked one
//! by one and then re-driven to the (recording) receiver.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use koppel_deliver::dlq::{self, DlqSelection};
use koppel_extract::{Extractor, ExtractorConfig, SyncOptions};
use koppel_nats::{NatsSettings, Topology};
use koppel_registry::{EmployerRegistration, Recipient};
use koppel_sim::suite::{LOKET_USER, SimulatorSuite, SuiteConfig, UNIT4_CLIENT_SECRET};
use koppel_sim::webhook_receiver::{
    self, RunningWebhookReceiver, WebhookReceiver, WebhookReceiverConfig,
};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::support::*;

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TENANT_A: &str = "tenant-a";
const TENANT_B: &str = "tenant-b";

fn webhook(space: &TestNamespace, name: &str, url: &str) -> Recipient {
    koppel_harness::onboarding::webhook_recipient(&space.key, name, url, WEBHOOK_SECRET, 8).unwrap()
}

/// Every message a receiver verified (duplicates included), as (event id, employer key).
fn received(receiver: &WebhookReceiver) -> Vec<(String, String)> {
    receiver
        .received_messages()
        .iter()
        .map(|message| {
            (
                message.webhook_id.clone(),
                message.body["data"]["employer_key"]
                    .as_str()
                    .unwrap_or("<none>")
                    .to_owned(),
            )
        })
        .collect()
}

/// What a tenant's receiver got, checked: nothing of the other employer, by employer key or by
/// event id.
fn assert_only(
    receiver: &WebhookReceiver,
    employer: &str,
    foreign_ids: &BTreeSet<String>,
    when: &str,
) -> usize {
    let messages = received(receiver);
    for (event_id, employer_key) in &messages {
        assert_eq!(
            employer_key, employer,
            "{when}: a foreign employer's event arrived"
        );
        assert!(
            !foreign_ids.contains(event_id),
            "{when}: a foreign event id arrived"
        );
    }
    messages.len()
}

/// The tests' namespace, with what both tenants' checks do through it.
struct Tenants {
    space: TestNamespace,
}

impl Tenants {
    async fn new() -> Self {
        Tenants {
            space: TestNamespace::new().await,
        }
    }

    fn cli(&self, arguments: &[&str]) -> std::process::Command {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(arguments);
        let mut command = self.space.koppel_command(&all, "warn");
        command.env("KOPPEL_SECRET_KEY", &self.space.encoded_key);
        command
    }

    async fn point(&self, recipient: &str, url: &str) {
        self.space
            .registry
            .put_recipient(&webhook(&self.space, recipient, url))
            .await
            .unwrap();
    }

    async fn dead_letters(&self, recipient: &str) -> Vec<dlq::DeadLetterSummary> {
        dlq::list(&self.space.topology, &DlqSelection::recipient(recipient))
            .await
            .unwrap()
    }

    /// Waits until the recipient's consumer has nothing pending or unacknowledged.
    async fn drained(&self, recipient: &str) {
        koppel_harness::wait_until_drained(
            &self.space.topology,
            &[recipient],
            Duration::from_secs(90),
        )
        .await
        .unwrap();
    }
}

fn json_of(captured: &Captured) -> serde_json::Value {
    let line = captured.stdout.lines().last().unwrap_or("null");
    serde_json::from_str(line).unwrap_or(serde_json::Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_never_receives_another_employers_events() {
    let tenants = Tenants::new().await;
    let space = &tenants.space;
    let TestNamespace {
        registry,
        encoded_key,
        nats_url,
        namespace,
        ..
    } = space;
    let nats = NatsSettings {
        url: nats_url.clone(),
        ..NatsSettings::default()
    };
    let shutdown = CancellationToken::new();
    let suite = SimulatorSuite::start(&SuiteConfig::local(5, 1, 10), shutdown.clone())
        .await
        .unwrap();
    let receiver = || {
        WebhookReceiver::new(WebhookReceiverConfig::new(
            vec![WEBHOOK_SECRET.to_owned()],
            1,
        ))
        .unwrap()
    };
    let hooks_a: RunningWebhookReceiver = webhook_receiver::spawn(receiver()).await.unwrap();
    let hooks_b: RunningWebhookReceiver = webhook_receiver::spawn(receiver()).await.unwrap();
    // Everything the commands print, scanned for BSNs and secrets at the end.
    let mut printed: Vec<Captured> = Vec::new();

    // Onboarding: two processors' connections, one employer each, one recipient each.
    let loket_secret = koppel_harness::onboarding::loket_client_secret(&suite);
    space
        .register_loket_connection(
            "loket-a",
            LoketEndpoint::Simulator(&suite),
            &loket_secret,
            3600,
        )
        .await;
    space
        .store_refresh_token(
            "loket-a",
            &suite.loket.issue_refresh_token(LOKET_USER).unwrap(),
        )
        .await;
    space
        .register_unit4_connection("unit4-b", &suite, UNIT4_CLIENT_SECRET, 3600)
        .await;
    tenants.point(TENANT_A, &hooks_a.webhook_url()).await;
    tenants.point(TENANT_B, &hooks_b.webhook_url()).await;
    let extractor = Extractor::from_config(&ExtractorConfig {
        nats: nats.clone(),
        namespace: Some(namespace.clone()),
        secret_key: koppel_extract::SecretKeySource::Inline {
            base64: SecretString::from(encoded_key.clone()),
        },
        ..ExtractorConfig::default()
    })
    .await
    .unwrap();
    for (connection, employer_key, recipient) in [
        ("loket-a", "employer-a", TENANT_A),
        ("unit4-b", "employer-b", TENANT_B),
    ] {
        let discovered = extractor.discover_employers(connection).await.unwrap();
        let first = discovered.first().expect("the source has an employer");
        registry
            .put_employer(&EmployerRegistration {
                employer_key: employer_key.to_owned(),
                connection_id: connection.to_owned(),
                source_employer_id: first.source_employer_id.clone(),
                name: first.name.clone().unwrap_or_default(),
                payroll_tax_number: first.payroll_tax_number.clone(),
                recipients: vec![recipient.to_owned()],
                removal_threshold_percent: 100,
                enabled: true,
            })
            .await
            .unwrap();
    }

    // Extraction and live delivery.
    let mut event_ids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let sync = |employer_key: &'static str| {
        let extractor = &extractor;
        let suite = &suite;
        async move {
            let today = suite.loket.with_world(koppel_sim::world::World::today);
            extractor
                .sync_employer_once(
                    employer_key,
                    &SyncOptions {
                        reference_date: Some(today),
                        ..SyncOptions::default()
                    },
                )
                .await
                .unwrap()
                .published
                .iter()
                .map(|event| event.event_id.to_string())
                .collect::<BTreeSet<String>>()
        }
    };
    for employer_key in ["employer-a", "employer-b"] {
        let published = sync(employer_key).await;
        assert!(
            published.len() > 5,
            "{employer_key} published {}",
            published.len()
        );
        event_ids.insert(employer_key, published);
    }
    let deliverer = tokio::spawn(koppel_deliver::run(
        koppel_deliver::DelivererConfig {
            nats: nats.clone(),
            namespace: Some(namespace.clone()),
            secret_key: koppel_deliver::SecretKeySource::Inline {
                base64: SecretString::from(encoded_key.clone()),
            },
            retry: koppel_deliver::RetrySettings {
                initial_backoff_millis: 20,
                max_backoff_millis: 100,
                max_attempts: 3,
                ..koppel_deliver::RetrySettings::default()
            },
            ..koppel_deliver::DelivererConfig::default()
        },
        shutdown.clone(),
    ));
    let ids_a = event_ids["employer-a"].clone();
    let ids_b = event_ids["employer-b"].clone();
    let books_a = hooks_a.receiver.clone();
    let books_b = hooks_b.receiver.clone();
    eventually("tenant-a has A's events", Duration::from_secs(90), || {
        let seen: BTreeSet<String> = received(&books_a).into_iter().map(|(id, _)| id).collect();
        ids_a.is_subset(&seen)
    })
    .await;
    eventually("tenant-b has B's events", Duration::from_secs(90), || {
        let seen: BTreeSet<String> = received(&books_b).into_iter().map(|(id, _)| id).collect();
        ids_b.is_subset(&seen)
    })
    .await;
    tenants.drained(TENANT_A).await;
    tenants.drained(TENANT_B).await;
    let live_a = assert_only(&hooks_a.receiver, "employer-a", &ids_b, "live delivery");
    assert_only(&hooks_b.receiver, "employer-b", &ids_a, "live delivery");

    // Replay to tenant-a: everything it may have, and nothing when asked for B.
    let replay = run_koppel(
        "koppel replay tenant-a",
        tenants.cli(&["replay", "--recipient", TENANT_A, "--from-seq", "1"]),
    )
    .await;
    assert!(replay.success, "{}", replay.stderr);
    let report = json_of(&replay);
    println!("replay tenant-a: {report}");
    assert_eq!(
        report["delivered"].as_u64(),
        Some(ids_a.len() as u64),
        "the replay re-sent A's events: {report}"
    );
    let after_replay = assert_only(&hooks_a.receiver, "employer-a", &ids_b, "replay");
    assert_eq!(
        after_replay,
        live_a + ids_a.len(),
        "the replay reached tenant-a"
    );
    printed.push(replay);
    for employer in ["employer-b", "*", ">", "employer-a,employer-b"] {
        let refused = run_koppel(
            "koppel replay tenant-a --employer",
            tenants.cli(&[
                "replay",
                "--recipient",
                TENANT_A,
                "--employer",
                employer,
                "--from-seq",
                "1",
            ]),
        )
        .await;
        assert!(!refused.success, "replay of {employer} to tenant-a ran");
        assert!(
            refused.stderr.contains("not subscribed"),
            "{employer}: {}",
            refused.stderr
        );
        printed.push(refused);
    }
    assert_eq!(
        assert_only(&hooks_a.receiver, "employer-a", &ids_b, "refused replays"),
        after_replay
    );

    // Dead letters for both tenants: their endpoints fail every request, the worlds move on.
    let failing = koppel_sim::faults::FaultConfig {
        server_error_per_mille: 1000,
        ..koppel_sim::faults::FaultConfig::default()
    };
    hooks_a.receiver.configure_faults(failing.clone());
    hooks_b.receiver.configure_faults(failing);
    let mut new_a = BTreeSet::new();
    let mut new_b = BTreeSet::new();
    for _ in 0..30 {
        suite.advance_days(1);
        new_a.extend(sync("employer-a").await);
        new_b.extend(sync("employer-b").await);
        if !new_a.is_empty() && !new_b.is_empty() {
            break;
        }
    }
    assert!(
        !new_a.is_empty() && !new_b.is_empty(),
        "both employers changed"
    );
    let all_b: BTreeSet<String> = ids_b.union(&new_b).cloned().collect();
    let all_a: BTreeSet<String> = ids_a.union(&new_a).cloned().collect();
    tenants.drained(TENANT_A).await;
    tenants.drained(TENANT_B).await;
    let letters_a = tenants.dead_letters(TENANT_A).await;
    let letters_b = tenants.dead_letters(TENANT_B).await;
    println!(
        "first sync: A {} events, B {}; later: A {}, B {}; dead letters: tenant-a {}, tenant-b {}",
        ids_a.len(),
        ids_b.len(),
        new_a.len(),
        new_b.len(),
        letters_a.len(),
        letters_b.len()
    );
    assert_eq!(
        letters_a.len(),
        new_a.len(),
        "each new A event is a dead letter"
    );
    assert_eq!(
        letters_b.len(),
        new_b.len(),
        "each new B event is a dead letter"
    );
    assert!(
        letters_a
            .iter()
            .all(|letter| letter.employer_key == "employer-a")
    );
    assert!(
        letters_b
            .iter()
            .all(|letter| letter.employer_key == "employer-b")
    );
    hooks_a
        .receiver
        .configure_faults(koppel_sim::faults::FaultConfig::default());
    hooks_b
        .receiver
        .configure_faults(koppel_sim::faults::FaultConfig::default());
    let before = assert_only(&hooks_a.receiver, "employer-a", &all_b, "dead-lettering");

    // tenant-a's operator reaches for B's dead letters: by employer, by sequence, to show, to
    // purge. Nothing is delivered, shown or removed.
    let by_employer = run_koppel(
        "koppel dlq retry tenant-a --employer employer-b",
        tenants.cli(&[
            "dlq",
            "retry",
            "--recipient",
            TENANT_A,
            "--employer",
            "employer-b",
        ]),
    )
    .await;
    let report = json_of(&by_employer);
    assert_eq!(report["delivered"].as_u64().unwrap_or(0), 0, "{report}");
    printed.push(by_employer);
    let b_sequence = letters_b[0].dlq_sequence.to_string();
    for arguments in [
        vec!["dlq", "retry", "--recipient", TENANT_A, b_sequence.as_str()],
        vec!["dlq", "show", "--recipient", TENANT_A, b_sequence.as_str()],
    ] {
        let attempt = run_koppel(
            "koppel dlq <B's dead letter> as tenant-a",
            tenants.cli(&arguments),
        )
        .await;
        assert!(!attempt.success, "{arguments:?} succeeded");
        assert!(
            attempt
                .stderr
                .contains("does not exist or is not recipient tenant-a's"),
            "{arguments:?}: {}",
            attempt.stderr
        );
        assert!(
            !attempt.stdout.contains("employee"),
            "{arguments:?} showed an event"
        );
        printed.push(attempt);
    }
    let purge = run_koppel(
        "koppel dlq purge <B's dead letter> as tenant-a",
        tenants.cli(&[
            "dlq",
            "purge",
            "--recipient",
            TENANT_A,
            b_sequence.as_str(),
            "--reason",
            "cross-tenant attempt",
        ]),
    )
    .await;
    assert!(
        !purge.success && purge.stderr.contains("does not exist or is not recipient"),
        "purge as tenant-a of B's dead letter was not refused: {} {}",
        purge.stdout,
        purge.stderr
    );
    printed.push(purge);
    assert_eq!(tenants.dead_letters(TENANT_B).await.len(), letters_b.len());
    assert_eq!(
        assert_only(&hooks_a.receiver, "employer-a", &all_b, "cross-tenant dlq"),
        before
    );

    // Re-drive everything of tenant-a: A's dead letters arrive, B's stay where they are.
    let everything = run_koppel(
        "koppel dlq retry tenant-a",
        tenants.cli(&["dlq", "retry", "--recipient", TENANT_A]),
    )
    .await;
    assert!(everything.success, "{}", everything.stderr);
    let report = json_of(&everything);
    println!("dlq retry tenant-a: {report}");
    assert_eq!(
        report["delivered"].as_u64(),
        Some(new_a.len() as u64),
        "{report}"
    );
    let seen_a: BTreeSet<String> = received(&hooks_a.receiver)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(new_a.is_subset(&seen_a), "A's re-driven events arrived");
    printed.push(everything);
    assert!(tenants.dead_letters(TENANT_A).await.is_empty());
    assert_eq!(tenants.dead_letters(TENANT_B).await.len(), letters_b.len());

    // tenant-b's operator looks at its own dead letters: listed without payload, shown with
    // BSNs masked.
    let listing = run_koppel(
        "koppel dlq list tenant-b",
        tenants.cli(&["dlq", "list", "--recipient", TENANT_B]),
    )
    .await;
    assert!(listing.success, "{}", listing.stderr);
    printed.push(listing);
    let mut masked = 0;
    for letter in &letters_b {
        let sequence = letter.dlq_sequence.to_string();
        let show = run_koppel(
            "koppel dlq show tenant-b",
            tenants.cli(&["dlq", "show", "--recipient", TENANT_B, &sequence]),
        )
        .await;
        assert!(show.success, "{}", show.stderr);
        masked += show.stdout.matches("\"*****").count();
        printed.push(show);
    }
    assert!(masked > 0, "the dead letters shown have masked BSNs");

    // And tenant-b's own re-drive reaches tenant-b only.
    let own = run_koppel(
        "koppel dlq retry tenant-b",
        tenants.cli(&["dlq", "retry", "--recipient", TENANT_B]),
    )
    .await;
    assert!(own.success, "{}", own.stderr);
    let seen_b: BTreeSet<String> = received(&hooks_b.receiver)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(new_b.is_subset(&seen_b), "B's re-driven events arrived");
    printed.push(own);

    // A full replay after all that, for good measure.
    let replay = run_koppel(
        "koppel replay tenant-a again",
        tenants.cli(&["replay", "--recipient", TENANT_A, "--from-seq", "1"]),
    )
    .await;
    assert!(replay.success, "{}", replay.stderr);
    printed.push(replay);

    // Nothing those commands printed holds a BSN of the events (as `tail --show-pii` lists
    // them) or a secret.
    let pii = run_koppel(
        "koppel tail --show-pii",
        tenants.cli(&["tail", "--from-start", "--no-follow", "--show-pii"]),
    )
    .await;
    assert!(pii.success, "{}", pii.stderr);
    let mut bsns = BTreeSet::new();
    for line in pii.stdout.lines() {
        collect_bsns(&serde_json::from_str(line).unwrap(), &mut bsns);
    }
    assert!(bsns.len() >= 20, "the events carry BSNs: {}", bsns.len());
    let mut needles: Vec<Needle> = bsns
        .iter()
        .enumerate()
        .map(|(index, bsn)| Needle::number(format!("BSN #{index}"), format!("{bsn:09}")))
        .collect();
    needles.extend([
        Needle::text("webhook secret", WEBHOOK_SECRET),
        Needle::text("UNIT4_CLIENT_SECRET", UNIT4_CLIENT_SECRET),
        Needle::text("Loket client secret", loket_secret.clone()),
        Needle::text("sealing key", encoded_key.clone()),
    ]);
    let mut control = ScanReport::default();
    control.scan("tail --show-pii", &pii.stdout, &needles, &[]);
    assert!(
        !control.hits.is_empty(),
        "the scan finds BSNs where they are shown on purpose"
    );
    let mut report = ScanReport::default();
    for captured in &printed {
        report.scan(&captured.label, &captured.all(), &needles, &[]);
    }
    assert!(
        report.hits.is_empty(),
        "the commands printed a BSN or secret:\n{}",
        report.hits.join("\n")
    );
    shutdown.cancel();
    deliverer.await.unwrap().unwrap();
    assert_only(&hooks_a.receiver, "employer-a", &all_b, "the end");
    assert_only(&hooks_b.receiver, "employer-b", &all_a, "the end");
    for running in [hooks_a, hooks_b] {
        running.stop().await.unwrap();
    }
    suite.stop().await.unwrap();
}

/// `employment_changed` sample of `index` as an event of `employer_key`, with a fresh id.
fn sample_event(employer_key: &str, index: u64) -> koppel_events::Event {
    let koppel_events::Event::EmploymentChanged(mut inner) =
        koppel_events::sample::employment_changed(index)
    else {
        panic!("the sample is an EmploymentChanged");
    };
    inner.header.employer_key = employer_key.to_owned();
    inner.header.event_id = uuid::Uuid::new_v4();
    koppel_events::Event::EmploymentChanged(inner)
}

/// Publishes `event`'s payload on `subject` with the headers the publisher would give it.
async fn publish_raw(
    topology: &Topology,
    subject: String,
    prepared: &koppel_nats::PreparedEvent,
    extra: &[(&str, String)],
) {
    use koppel_events::subject::header;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(header::MESSAGE_ID, prepared.event_id.to_string().as_str());
    headers.insert(header::EVENT_TYPE, prepared.event_type.schema_name());
    headers.insert(
        header::SCHEMA_FINGERPRINT,
        prepared.fingerprint.to_hex().as_str(),
    );
    headers.insert(header::CONTENT_TYPE, header::AVRO_CONTENT_TYPE);
    if let Some(employee_id) = &prepared.employee_id {
        headers.insert(header::EMPLOYEE_ID, employee_id.as_str());
    }
    for (name, value) in extra {
        headers.insert(*name, value.as_str());
    }
    topology
        .jetstream
        .publish_with_headers(subject, headers, prepared.payload.clone())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// A message whose subject says employer A but whose payload is employer B's event (written by
/// something that is not koppel's extractor, or a bug in one) must not reach A's recipient, live
/// or re-driven from a dead letter forged the same way: the payload is what gets sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_another_employer_under_a_subscribed_subject_is_not_delivered() {
    let tenants = Tenants::new().await;
    let space = &tenants.space;
    let TestNamespace {
        topology,
        registry,
        encoded_key,
        nats_url,
        namespace,
        ..
    } = space;
    let hooks_a = webhook_receiver::spawn(
        WebhookReceiver::new(WebhookReceiverConfig::new(
            vec![WEBHOOK_SECRET.to_owned()],
            2,
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    space
        .register_loket_connection("loket-x", LoketEndpoint::Unreachable, "unused", 3600)
        .await;
    tenants.point(TENANT_A, &hooks_a.webhook_url()).await;
    tenants.point(TENANT_B, "http://127.0.0.1:1/webhooks").await;
    for (employer_key, recipient) in [("employer-a", TENANT_A), ("employer-b", TENANT_B)] {
        registry
            .put_employer(&EmployerRegistration {
                employer_key: employer_key.to_owned(),
                connection_id: "loket-x".to_owned(),
                source_employer_id: employer_key.to_owned(),
                name: employer_key.to_owned(),
                payroll_tax_number: None,
                recipients: vec![recipient.to_owned()],
                removal_threshold_percent: 20,
                enabled: true,
            })
            .await
            .unwrap();
    }
    let shutdown = CancellationToken::new();
    let deliverer = tokio::spawn(koppel_deliver::run(
        koppel_deliver::DelivererConfig {
            nats: NatsSettings {
                url: nats_url.clone(),
                ..NatsSettings::default()
            },
            namespace: Some(namespace.clone()),
            secret_key: koppel_deliver::SecretKeySource::Inline {
                base64: SecretString::from(encoded_key.clone()),
            },
            ..koppel_deliver::DelivererConfig::default()
        },
        shutdown.clone(),
    ));

    // Live: B's event under A's subject, then A's own event in the same lane (same employee),
    // which the deliverer handles only after the forged one.
    let names = &topology.names;
    let forged = koppel_nats::PreparedEvent::encode(names, &sample_event("employer-b", 1)).unwrap();
    let a_subject = forged.subject.replace(".employer-b.", ".employer-a.");
    assert_ne!(a_subject, forged.subject);
    publish_raw(topology, a_subject.clone(), &forged, &[]).await;
    let sentinel =
        koppel_nats::PreparedEvent::encode(names, &sample_event("employer-a", 1)).unwrap();
    assert_eq!(sentinel.subject, a_subject);
    publish_raw(topology, sentinel.subject.clone(), &sentinel, &[]).await;
    let books = hooks_a.receiver.clone();
    let sentinel_id = sentinel.event_id.to_string();
    eventually("A's own event arrived", Duration::from_secs(60), || {
        received(&books).iter().any(|(id, _)| *id == sentinel_id)
    })
    .await;
    tenants.drained(TENANT_A).await;
    let foreign = BTreeSet::from([forged.event_id.to_string()]);
    assert_only(
        &hooks_a.receiver,
        "employer-a",
        &foreign,
        "live, forged subject",
    );
    assert!(
        tenants.dead_letters(TENANT_A).await.is_empty(),
        "B's event is not kept among tenant-a's dead letters either"
    );

    // Re-drive: a dead letter of tenant-a for employer A that holds B's event.
    use koppel_events::subject::header;
    let forged_letter =
        koppel_nats::PreparedEvent::encode(names, &sample_event("employer-b", 2)).unwrap();
    publish_raw(
        topology,
        names.dlq_subject(TENANT_A, "employer-a").unwrap(),
        &forged_letter,
        &[
            (header::DLQ_RECIPIENT, TENANT_A.to_owned()),
            (header::DLQ_ORIGINAL_SUBJECT, a_subject.clone()),
            (header::DLQ_ORIGINAL_SEQUENCE, "1".to_owned()),
            (header::DLQ_ERROR_CLASS, "refused".to_owned()),
            (header::DLQ_ERROR, "forged".to_owned()),
            (
                koppel_deliver::dead_letter::DLQ_EVENT_ID,
                forged_letter.event_id.to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(tenants.dead_letters(TENANT_A).await.len(), 1);
    let retry = run_koppel(
        "koppel dlq retry tenant-a (forged)",
        tenants.cli(&["dlq", "retry", "--recipient", TENANT_A]),
    )
    .await;
    let report = json_of(&retry);
    println!("dlq retry of a forged dead letter: {report}");
    assert_eq!(report["delivered"].as_u64().unwrap_or(0), 0, "{report}");
    let foreign = BTreeSet::from([
        forged.event_id.to_string(),
        forged_letter.event_id.to_string(),
    ]);
    assert_only(
        &hooks_a.receiver,
        "employer-a",
        &foreign,
        "re-drive, forged dead letter",
    );
    shutdown.cancel();
    deliverer.await.unwrap().unwrap();
    hooks_a.stop().await.unwrap();
}
