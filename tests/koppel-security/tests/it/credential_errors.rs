//! When a source refuses koppel's credentials (a Loket refresh token it does not know, a wrong
//! Unit4 client secret), the command fails with an error that says so, and neither that error
//! nor any log line at trace level repeats a credential, right or wrong.

use koppel_extract::client_secret_context;
use koppel_registry::{
    Connection, ConnectionSettings, LoketConnectionSettings, Registry, SecretKey,
    Unit4ConnectionSettings, Unit4Paths,
};
use koppel_sim::suite::{SimulatorSuite, SuiteConfig, UNIT4_CLIENT_ID, UNIT4_CLIENT_SECRET};
use secrecy::SecretString;

use crate::support::*;

const LOG_FILTER: &str = "debug,koppel=trace,koppel_extract=trace,koppel_registry=trace,koppel_nats=trace,koppel_runtime=trace";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_source_credentials_are_clear_errors_that_do_not_repeat_them() {
    let topology = koppel_test_support::topology().await;
    let registry = Registry::new(topology.registry.clone());
    let encoded_key = SecretKey::generate_base64().unwrap();
    let key = SecretKey::from_base64(&encoded_key).unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let suite = SimulatorSuite::start(&SuiteConfig::local(9, 1, 2), shutdown.clone())
        .await
        .unwrap();
    let loket = suite.loket.config().clone();
    let loket_secret = loket.client_secret.clone().unwrap_or_default();
    // Shaped like a real one, unknown to the simulator.
    let unknown_refresh_token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let wrong_unit4_secret = format!("wrong-unit4-secret-{}", uuid::Uuid::new_v4().simple());

    registry
        .put_connection(&Connection {
            id: "loket-refused".to_owned(),
            settings: ConnectionSettings::Loket(LoketConnectionSettings {
                oauth_base_url: suite.loket_oauth_base_url(),
                api_base_url: suite.loket_api_base_url(),
                client_id: loket.client_id.clone(),
                client_secret: key
                    .seal(
                        &SecretString::from(loket_secret.clone()),
                        &client_secret_context("loket-refused"),
                    )
                    .unwrap(),
                redirect_uri: loket.redirect_uri.clone(),
            }),
            poll_interval_seconds: 3600,
            full_sync_interval_seconds: 86_400,
        })
        .await
        .unwrap();
    koppel_extract::loket::store_refresh_token(
        &topology.tokens,
        &key,
        "loket-refused",
        &SecretString::from(unknown_refresh_token.clone()),
    )
    .await
    .unwrap();
    registry
        .put_connection(&Connection {
            id: "unit4-refused".to_owned(),
            settings: ConnectionSettings::Unit4(Unit4ConnectionSettings {
                token_url: suite.unit4_token_url(),
                scope: suite.unit4.config().scope.clone(),
                api_base_url: suite.unit4_api_base_url(),
                client_id: UNIT4_CLIENT_ID.to_owned(),
                client_secret: key
                    .seal(
                        &SecretString::from(wrong_unit4_secret.clone()),
                        &client_secret_context("unit4-refused"),
                    )
                    .unwrap(),
                paths: Unit4Paths::default(),
            }),
            poll_interval_seconds: 3600,
            full_sync_interval_seconds: 3600,
        })
        .await
        .unwrap();

    let nats_url = koppel_test_support::nats_server().url.clone();
    let namespace = topology.names.namespace().unwrap().to_owned();
    let needles = [
        Needle::text("the unknown refresh token", unknown_refresh_token.clone()),
        Needle::text("the wrong Unit4 secret", wrong_unit4_secret.clone()),
        Needle::text("the Loket client secret", loket_secret.clone()),
        Needle::text("UNIT4_CLIENT_SECRET", UNIT4_CLIENT_SECRET),
        Needle::text("the sealing key", encoded_key.clone()),
    ];
    for connection in ["loket-refused", "unit4-refused"] {
        let mut command = koppel_command(
            &[
                "--nats-url",
                &nats_url,
                "--namespace",
                &namespace,
                "connection",
                "test",
                connection,
            ],
            LOG_FILTER,
        );
        command.env("KOPPEL_SECRET_KEY", &encoded_key);
        let captured = run_koppel(&format!("koppel connection test {connection}"), command).await;
        let mut report = ScanReport::default();
        report.scan(&captured.label, &captured.all(), &needles, &[]);
        assert!(
            report.hits.is_empty(),
            "{connection}: a credential was printed:\n{}",
            report.hits.join("\n")
        );
        assert!(
            !captured.success,
            "{connection} worked with refused credentials"
        );
        // The command's one-line error (debug logs may come after it, as the connection closes).
        let last = captured
            .stderr
            .lines()
            .find(|line| line.starts_with("error: "))
            .unwrap_or_default();
        println!("{connection}: {last}");
        assert!(
            last.starts_with(&format!("error: connection {connection} does not work")),
            "{last}"
        );
        assert!(
            [
                "invalid_grant",
                "invalid_client",
                "401",
                "400",
                "refused",
                "rejected"
            ]
            .iter()
            .any(|word| last.contains(word)),
            "{connection}: the error says the source refused: {last}"
        );
    }
    suite.stop().await.unwrap();
}
