//! The `koppel` binary end to end against a real NATS: onboarding records, tail with BSN
//! masking, export read back with apache-avro, and clear one-line errors with a non-zero exit
//! for bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dlq;
mod readiness;
mod replay;
mod secrets_on_argv;
mod setup;
mod sync;

use std::process::{Command, Output};

use koppel_events::sample;
use koppel_nats::{PreparedEvent, Publisher, PublisherSettings, Topology, TopologySettings};
use koppel_test_support::{connect, nats_server, unique_names};

/// The `koppel` program under test, found the one way every end-to-end test finds it.
fn koppel_binary() -> std::path::PathBuf {
    koppel_harness::koppel_binary().unwrap()
}

pub(crate) struct Installation {
    pub(crate) namespace: String,
    pub(crate) secret_key: String,
    pub(crate) topology: Topology,
}

impl Installation {
    pub(crate) async fn new() -> Self {
        let names = unique_names();
        let namespace = names.namespace().unwrap().to_owned();
        let topology = Topology::setup(
            async_nats::jetstream::new(connect().await),
            names,
            &TopologySettings::without_size_limits(),
        )
        .await
        .unwrap();
        Installation {
            namespace,
            secret_key: koppel_registry::SecretKey::generate_base64().unwrap(),
            topology,
        }
    }

    pub(crate) fn koppel(&self, arguments: &[&str]) -> Output {
        Command::new(koppel_binary())
            .args(arguments)
            .env("KOPPEL_NATS_URL", &nats_server().url)
            .env("KOPPEL_NAMESPACE", &self.namespace)
            .env("KOPPEL_SECRET_KEY", &self.secret_key)
            .env(
                "KOPPEL_WEBHOOK_SECRET",
                "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=",
            )
            .env("KOPPEL_RECIPIENT_TOKEN", "insurer-token-do-not-print")
            .env_remove("KOPPEL_CONFIG")
            .output()
            .unwrap()
    }

    async fn publish_samples(&self, count: u64) {
        let events: Vec<PreparedEvent> = (0..count)
            .map(|index| {
                PreparedEvent::encode(&self.topology.names, &sample::employment_changed(index))
                    .unwrap()
            })
            .collect();
        Publisher::new(
            self.topology.jetstream.clone(),
            PublisherSettings::default(),
        )
        .publish_all(&events)
        .await
        .unwrap();
    }
}

/// Registers the connection `loket-acme` (employer records must name an existing one).
pub(crate) async fn register_connection(
    registry: &koppel_registry::Registry,
    key: &koppel_registry::SecretKey,
) {
    registry
        .put_connection(&koppel_registry::Connection {
            id: "loket-acme".to_owned(),
            settings: koppel_registry::ConnectionSettings::Loket(
                koppel_registry::LoketConnectionSettings {
                    oauth_base_url: "http://127.0.0.1:9".to_owned(),
                    api_base_url: "http://127.0.0.1:9/v2".to_owned(),
                    client_id: "c".to_owned(),
                    client_secret: key
                        .seal(
                            &secrecy::SecretString::from("s"),
                            "connection/loket-acme/client_secret",
                        )
                        .unwrap(),
                    redirect_uri: "http://localhost/r".to_owned(),
                },
            ),
            poll_interval_seconds: 60,
            full_sync_interval_seconds: 86_400,
        })
        .await
        .unwrap();
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn onboarding_records_round_trip_and_secrets_never_print() {
    let installation = Installation::new().await;
    // A connection record is needed first; register one directly.
    let registry = koppel_registry::Registry::new(installation.topology.registry.clone());
    let key = koppel_registry::SecretKey::from_base64(&installation.secret_key).unwrap();
    register_connection(&registry, &key).await;

    let added = installation.koppel(&[
        "recipient",
        "add",
        "webhook",
        "--name",
        "hooks",
        "--url",
        "http://127.0.0.1:9/webhooks",
    ]);
    assert!(added.status.success(), "{}", stderr(&added));
    let added = installation.koppel(&[
        "recipient",
        "add",
        "insurer",
        "--name",
        "insurer",
        "--base-url",
        "http://127.0.0.1:9",
    ]);
    assert!(added.status.success(), "{}", stderr(&added));
    let without_lhnr = installation.koppel(&[
        "employer",
        "add",
        "--connection",
        "loket-acme",
        "--source-id",
        "1001",
        "--name",
        "Acme",
        "--recipient",
        "insurer",
    ]);
    assert_eq!(without_lhnr.status.code(), Some(1));
    assert!(
        stderr(&without_lhnr).contains("--payroll-tax-number"),
        "{}",
        stderr(&without_lhnr)
    );
    let employer = installation.koppel(&[
        "employer",
        "add",
        "--connection",
        "loket-acme",
        "--source-id",
        "1001",
        "--key",
        "acme",
        "--name",
        "Acme B.V.",
        "--payroll-tax-number",
        "123456782L01",
        "--recipient",
        "insurer",
        "--recipient",
        "hooks",
    ]);
    assert!(employer.status.success(), "{}", stderr(&employer));

    let listed = installation.koppel(&["--output", "json", "recipient", "list"]);
    let recipients: serde_json::Value = serde_json::from_str(stdout(&listed).trim()).unwrap();
    assert_eq!(recipients.as_array().unwrap().len(), 2);
    assert!(
        recipients
            .as_array()
            .unwrap()
            .iter()
            .all(|recipient| recipient["employers"] == 1)
    );
    for output in [&added, &employer, &listed] {
        let printed = format!("{}{}", stdout(output), stderr(output));
        assert!(
            !printed.contains("insurer-token-do-not-print") && !printed.contains("whsec_"),
            "{printed}"
        );
    }
    let employers = installation.koppel(&["--output", "json", "employer", "list"]);
    let employers: serde_json::Value = serde_json::from_str(stdout(&employers).trim()).unwrap();
    assert_eq!(employers[0]["employer_key"], "acme");
    assert_eq!(
        employers[0]["recipients"],
        serde_json::json!(["insurer", "hooks"])
    );

    let removed = installation.koppel(&["employer", "remove", "acme"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let again = installation.koppel(&["employer", "remove", "acme"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again).trim(),
        "error: cannot remove employer acme: employer acme is not registered"
    );
}

#[tokio::test]
async fn tail_masks_bsns_unless_asked() {
    let installation = Installation::new().await;
    installation.publish_samples(4).await;

    let masked = installation.koppel(&["tail", "--from-start", "--no-follow"]);
    assert!(masked.status.success(), "{}", stderr(&masked));
    let lines: Vec<serde_json::Value> = stdout(&masked)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["event"]["type"], "EmploymentChanged");
    let text = stdout(&masked);
    for bsn in ["111222333", "123456782", "999999990", "100000009"] {
        assert!(!text.contains(bsn), "BSN {bsn} printed by tail");
    }
    assert!(text.contains("*****2333"));

    let full = installation.koppel(&[
        "tail",
        "--from-start",
        "--no-follow",
        "--show-pii",
        "--limit",
        "1",
    ]);
    assert_eq!(stdout(&full).lines().count(), 1);
    assert!(stdout(&full).contains("111222333"));

    let filtered = installation.koppel(&[
        "tail",
        "--from-start",
        "--no-follow",
        "--type",
        "EmployeeCreated",
    ]);
    assert_eq!(stdout(&filtered).lines().count(), 0);
}

#[tokio::test]
async fn export_reads_back_with_apache_avro_and_matches_the_stream() {
    let installation = Installation::new().await;
    installation.publish_samples(30).await;
    let directory = std::env::temp_dir().join(format!("koppel-export-{}", installation.namespace));
    std::fs::create_dir_all(&directory).unwrap();
    let avro_path = directory.join("events.avro");
    let jsonl_path = directory.join("events.jsonl");

    let exported = installation.koppel(&[
        "--output",
        "json",
        "export",
        "--format",
        "avro",
        "--out",
        avro_path.to_str().unwrap(),
    ]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let summary: serde_json::Value =
        serde_json::from_str(stdout(&exported).lines().last().unwrap()).unwrap();
    assert_eq!(summary["exported"], 30);

    let file = std::fs::File::open(&avro_path).unwrap();
    let reader = apache_avro::Reader::new(file).unwrap();
    let records: Vec<apache_avro::types::Value> = reader.map(Result::unwrap).collect();
    assert_eq!(records.len(), 30);
    let expected =
        koppel_events::codec::event_to_union_value(&sample::employment_changed(7)).unwrap();
    assert_eq!(
        records[7], expected,
        "branch 5 is EmploymentChanged, in EventType::ALL order"
    );

    let jsonl = installation.koppel(&[
        "export",
        "--format",
        "jsonl",
        "--out",
        jsonl_path.to_str().unwrap(),
        "--since",
        "2000-01-01",
    ]);
    assert!(jsonl.status.success(), "{}", stderr(&jsonl));
    assert_eq!(
        std::fs::read_to_string(&jsonl_path)
            .unwrap()
            .lines()
            .count(),
        30
    );
    let _ = std::fs::remove_dir_all(&directory);
}

#[tokio::test]
async fn bad_input_gets_one_clear_line_and_a_non_zero_exit() {
    let installation = Installation::new().await;
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "export",
                "--out",
                "/tmp/never.avro",
                "--since",
                "last tuesday",
            ],
            "error: malformed time \"last tuesday\"",
        ),
        (
            vec!["tail", "--employer", "a.b"],
            "error: employer key \"a.b\" is not a valid subject token",
        ),
        (
            vec!["employer", "remove", "nobody"],
            "error: cannot remove employer nobody: employer nobody is not registered",
        ),
        (
            vec!["schema", "show", "Nope"],
            "error: no schema named \"Nope\"",
        ),
    ];
    for (arguments, expected) in cases {
        let output = installation.koppel(&arguments);
        assert_eq!(output.status.code(), Some(1), "{arguments:?}");
        let error = stderr(&output);
        assert_eq!(error.lines().count(), 1, "{arguments:?}: {error}");
        assert!(error.starts_with(expected), "{arguments:?}: {error}");
    }

    let without_key = Command::new(koppel_binary())
        .args([
            "recipient",
            "add",
            "webhook",
            "--name",
            "x",
            "--url",
            "http://127.0.0.1:9",
        ])
        .env("KOPPEL_NATS_URL", &nats_server().url)
        .env("KOPPEL_NAMESPACE", &installation.namespace)
        .env("KOPPEL_WEBHOOK_SECRET", "whsec_abc")
        .env_remove("KOPPEL_SECRET_KEY")
        .env_remove("KOPPEL_SECRET_KEY_FILE")
        .output()
        .unwrap();
    assert_eq!(without_key.status.code(), Some(1));
    assert!(
        stderr(&without_key).contains("no secret key: set KOPPEL_SECRET_KEY"),
        "{}",
        stderr(&without_key)
    );

    let unreachable = Command::new(koppel_binary())
        .args(["--nats-url", "nats://127.0.0.1:1", "employer", "list"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        stderr(&unreachable)
            .starts_with("error: cannot connect to NATS: cannot reach NATS at nats://127.0.0.1:1")
    );

    let usage = Command::new(koppel_binary())
        .args(["export"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
}
