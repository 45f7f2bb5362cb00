//! The registry against a real NATS: records round-trip, references are checked, watchers see
//! changes live, and secrets are unreadable without the key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use koppel_registry::model::InsurerEmployerLink;
use koppel_registry::*;
use koppel_test_support::topology;
use secrecy::{ExposeSecret, SecretString};

fn key() -> SecretKey {
    SecretKey::from_base64(&SecretKey::generate_base64().unwrap()).unwrap()
}

fn loket_connection(key: &SecretKey) -> Connection {
    Connection {
        id: "loket-acme".to_owned(),
        settings: ConnectionSettings::Loket(LoketConnectionSettings {
            oauth_base_url: "http://127.0.0.1:1".to_owned(),
            api_base_url: "http://127.0.0.1:1/v2".to_owned(),
            client_id: "koppel".to_owned(),
            client_secret: key
                .seal(
                    &SecretString::from("loket-client-secret"),
                    "connection/loket-acme/client_secret",
                )
                .unwrap(),
            redirect_uri: "http://localhost/callback".to_owned(),
        }),
        poll_interval_seconds: 60,
        full_sync_interval_seconds: 86_400,
    }
}

fn insurer(key: &SecretKey) -> Recipient {
    Recipient {
        name: "insurer".to_owned(),
        settings: RecipientSettings::PensionInsurer {
            base_url: "http://127.0.0.1:2".to_owned(),
            api_token: key
                .seal(
                    &SecretString::from("insurer-token"),
                    "recipient/insurer/api_token",
                )
                .unwrap(),
            employer_links: BTreeMap::from([(
                "loket-acme-1".to_owned(),
                InsurerEmployerLink {
                    payroll_tax_number: "123456782L01".to_owned(),
                    contract_number: None,
                    scheme_id: None,
                },
            )]),
        },
        max_in_flight: 8,
    }
}

fn employer(recipients: Vec<String>) -> EmployerRegistration {
    EmployerRegistration {
        employer_key: "loket-acme-1".to_owned(),
        connection_id: "loket-acme".to_owned(),
        source_employer_id: "1".to_owned(),
        name: "Acme B.V.".to_owned(),
        payroll_tax_number: Some("123456782L01".to_owned()),
        recipients,
        removal_threshold_percent: 20,
        enabled: true,
    }
}

#[tokio::test]
async fn records_round_trip_and_references_are_checked() {
    let topology = topology().await;
    let registry = Registry::new(topology.registry.clone());
    let key = key();

    let error = registry.put_employer(&employer(vec![])).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "employer loket-acme-1 names connection loket-acme, which is not registered"
    );
    registry
        .put_connection(&loket_connection(&key))
        .await
        .unwrap();
    let error = registry
        .put_employer(&employer(vec!["insurer".to_owned()]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::UnknownRecipient { .. }),
        "{error}"
    );
    registry.put_recipient(&insurer(&key)).await.unwrap();
    registry
        .put_employer(&employer(vec!["insurer".to_owned()]))
        .await
        .unwrap();

    let stored = registry.connection("loket-acme").await.unwrap();
    assert_eq!(stored.id, "loket-acme");
    assert_eq!(stored.source(), koppel_events::SourceSystem::Loket);
    let snapshot = registry.snapshot().await.unwrap();
    assert_eq!(
        snapshot.employers_of_recipient("insurer"),
        vec!["loket-acme-1".to_owned()]
    );
    assert!(matches!(
        registry.employer("nope").await,
        Err(RegistryError::NotFound { .. })
    ));
    assert!(
        registry
            .put_connection(&Connection {
                id: "a.b".to_owned(),
                ..loket_connection(&key)
            })
            .await
            .is_err()
    );
}

/// A registry with the Loket connection and the insurer recipient registered.
async fn with_connection_and_insurer(topology: &koppel_nats::Topology) -> Registry {
    let registry = Registry::new(topology.registry.clone());
    let key = key();
    registry
        .put_connection(&loket_connection(&key))
        .await
        .unwrap();
    registry.put_recipient(&insurer(&key)).await.unwrap();
    registry
}

#[tokio::test]
async fn watchers_see_changes_without_a_restart() {
    let topology = topology().await;
    let registry = with_connection_and_insurer(&topology).await;
    let mut watcher = registry.watch().await.unwrap();
    assert!(watcher.borrow().employers.is_empty());

    registry
        .put_employer(&employer(vec!["insurer".to_owned()]))
        .await
        .unwrap();
    watcher
        .wait_for(|snapshot| snapshot.employers.contains_key("loket-acme-1"))
        .await
        .unwrap();

    registry.remove_employer("loket-acme-1").await.unwrap();
    watcher
        .wait_for(|snapshot| snapshot.employers.is_empty())
        .await
        .unwrap();
}

#[tokio::test]
async fn stored_secrets_are_unreadable_without_the_key() {
    let topology = topology().await;
    let registry = Registry::new(topology.registry.clone());
    let key = key();
    registry
        .put_connection(&loket_connection(&key))
        .await
        .unwrap();

    let raw = topology
        .registry
        .get("connections.loket-acme")
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(!raw.contains("loket-client-secret"), "{raw}");

    let connection = registry.connection("loket-acme").await.unwrap();
    let ConnectionSettings::Loket(settings) = connection.settings else {
        panic!("wrong source")
    };
    assert_eq!(
        key.open(
            &settings.client_secret,
            "connection/loket-acme/client_secret"
        )
        .unwrap()
        .expose_secret(),
        "loket-client-secret"
    );
    assert_eq!(
        self::key()
            .open(
                &settings.client_secret,
                "connection/loket-acme/client_secret"
            )
            .unwrap_err(),
        SealError::Open
    );
}

/// Rolling upgrade: a newer koppel rewrites the recipient and employer with fields this build
/// does not know (and, for the recipient, a record that later fails to decode here). Today's
/// workers keep both, live and after a restart, so delivery for them continues.
#[tokio::test]
async fn records_written_by_a_newer_koppel_keep_their_recipient_and_employer() {
    let topology = topology().await;
    let registry = with_connection_and_insurer(&topology).await;
    registry
        .put_employer(&employer(vec!["insurer".to_owned()]))
        .await
        .unwrap();
    let mut watcher = registry.watch().await.unwrap();
    let before = watcher.borrow().clone();

    // A newer koppel writes both records with new optional fields, at every level.
    let raw = |key: &str| {
        let store = topology.registry.clone();
        let key = key.to_owned();
        async move {
            let entry = store.entry(&key).await.unwrap().unwrap();
            serde_json::from_slice::<serde_json::Value>(&entry.value).unwrap()
        }
    };
    let mut employer_json = raw("employers.loket-acme-1").await;
    employer_json["record_version"] = serde_json::json!(1);
    employer_json["delivery_calendar"] = serde_json::json!({"skip_weekends": true});
    let mut recipient_json = raw("recipients.insurer").await;
    recipient_json["rate_limit_per_second"] = serde_json::json!(20);
    recipient_json["settings"]["employer_links"]["loket-acme-1"]["portal"] =
        serde_json::json!("werkgeversportaal");
    recipient_json["settings"]["api_token"]["key_id"] = serde_json::json!("2026-12");
    for (key, json) in [
        ("employers.loket-acme-1", &employer_json),
        ("recipients.insurer", &recipient_json),
    ] {
        topology
            .registry
            .put(key, serde_json::to_vec(json).unwrap().into())
            .await
            .unwrap();
    }
    // Then a recipient record this build cannot read at all: a newer record version.
    let mut too_new = recipient_json.clone();
    too_new["record_version"] = serde_json::json!(2);
    topology
        .registry
        .put(
            "recipients.insurer",
            serde_json::to_vec(&too_new).unwrap().into(),
        )
        .await
        .unwrap();

    // The watcher processes changes in order: once it reports the too-new record, it has
    // applied the two before it.
    let live = watcher
        .wait_for(|snapshot| snapshot.problems.contains_key("recipients.insurer"))
        .await
        .unwrap()
        .clone();
    assert_eq!(
        live.employers, before.employers,
        "the employer reads as before"
    );
    assert_eq!(
        live.recipients, before.recipients,
        "the recipient keeps its last good version"
    );
    assert_eq!(live.employers_of_recipient("insurer"), vec!["loket-acme-1"]);
    let problem = &live.problems["recipients.insurer"];
    assert!(problem.serving_last_good);
    assert!(
        problem.reason.contains("record version 2"),
        "{}",
        problem.reason
    );

    // A worker that starts now finds the last good version in the bucket's history.
    let restarted = registry.snapshot().await.unwrap();
    assert_eq!(restarted.employers, before.employers);
    assert_eq!(restarted.recipients, before.recipients);
    assert!(restarted.problems["recipients.insurer"].serving_last_good);
    assert!(matches!(
        registry.recipient("insurer").await,
        Err(RegistryError::Undecodable { .. })
    ));

    // A delete is still a delete.
    topology
        .registry
        .delete("recipients.insurer")
        .await
        .unwrap();
    let deleted = watcher
        .wait_for(|snapshot| !snapshot.recipients.contains_key("insurer"))
        .await
        .unwrap()
        .clone();
    assert!(deleted.problems.is_empty());
}
