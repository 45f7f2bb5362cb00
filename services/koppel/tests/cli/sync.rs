//! `koppel sync` against the simulators: a full sync publishes the employer, its employees and
//! employments; an immediate delta finds nothing new.

use koppel_extract::{Extractor, ExtractorConfig};
use koppel_registry::{Registry, SecretKey};
use koppel_sim::suite::{SimulatorSuite, SuiteConfig};
use tokio_util::sync::CancellationToken;

use super::{Installation, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_publishes_the_employer_and_a_rerun_publishes_nothing() {
    let installation = Installation::new().await;
    let shutdown = CancellationToken::new();
    let suite = SimulatorSuite::start(&SuiteConfig::local(11, 1, 6), shutdown.clone())
        .await
        .unwrap();
    let key = SecretKey::from_base64(&installation.secret_key).unwrap();
    let key_file =
        std::env::temp_dir().join(format!("koppel-sync-test-{}.key", installation.namespace));
    std::fs::write(&key_file, &installation.secret_key).unwrap();
    let extractor = Extractor::from_config(&ExtractorConfig {
        nats: koppel_nats::NatsSettings {
            url: koppel_test_support::nats_server().url.clone(),
            ..Default::default()
        },
        namespace: Some(installation.namespace.clone()),
        secret_key: koppel_extract::SecretKeySource::File {
            path: key_file.clone(),
        },
        ..ExtractorConfig::default()
    })
    .await
    .unwrap();
    let registry = Registry::new(installation.topology.registry.clone());
    let onboarded = koppel_harness::onboard(
        &suite,
        &installation.topology,
        &registry,
        &key,
        &extractor,
        (60, 60),
    )
    .await
    .unwrap();
    let (employer_key, _) = onboarded
        .employers
        .iter()
        .find(|(_, connection)| connection == koppel_harness::LOKET_CONNECTION)
        .unwrap()
        .clone();

    let first = installation.koppel(&[
        "--output",
        "json",
        "sync",
        "--employer",
        &employer_key,
        "--full",
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    let summary: serde_json::Value = serde_json::from_str(stdout(&first).trim()).unwrap();
    assert_eq!(summary["kind"], "full");
    assert_eq!(summary["published"]["EmployerUpserted"], 1, "{summary}");
    assert_eq!(summary["published"]["EmployeeCreated"], 6, "{summary}");

    let again = installation.koppel(&["--output", "json", "sync", "--employer", &employer_key]);
    let summary: serde_json::Value = serde_json::from_str(stdout(&again).trim()).unwrap();
    assert_eq!(
        summary["stored"], 0,
        "nothing changed, nothing new: {summary}"
    );
    shutdown.cancel();
    suite.stop().await.unwrap();
    let _ = std::fs::remove_file(&key_file);
}
