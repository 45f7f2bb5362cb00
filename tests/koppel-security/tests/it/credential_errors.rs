//! When a source refuses koppel's credentials (a Loket refresh token it does not know, a wrong
//! Unit4 client secret), the command fails with an error that says so, and neither that error
//! nor any log line at trace level repeats a credential, right or wrong.

use koppel_sim::suite::{SimulatorSuite, SuiteConfig, UNIT4_CLIENT_SECRET};

use crate::support::*;

const LOG_FILTER: &str = "debug,koppel=trace,koppel_extract=trace,koppel_registry=trace,koppel_nats=trace,koppel_runtime=trace";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_source_credentials_are_clear_errors_that_do_not_repeat_them() {
    let space = TestNamespace::new().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let suite = SimulatorSuite::start(&SuiteConfig::local(9, 1, 2), shutdown.clone())
        .await
        .unwrap();
    let loket_secret = koppel_harness::onboarding::loket_client_secret(&suite);
    // Shaped like a real one, unknown to the simulator.
    let unknown_refresh_token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let wrong_unit4_secret = format!("wrong-unit4-secret-{}", uuid::Uuid::new_v4().simple());

    space
        .register_loket_connection(
            "loket-refused",
            LoketEndpoint::Simulator(&suite),
            &loket_secret,
            3600,
        )
        .await;
    space
        .store_refresh_token("loket-refused", &unknown_refresh_token)
        .await;
    space
        .register_unit4_connection("unit4-refused", &suite, &wrong_unit4_secret, 3600)
        .await;

    let needles = [
        Needle::text("the unknown refresh token", unknown_refresh_token.clone()),
        Needle::text("the wrong Unit4 secret", wrong_unit4_secret.clone()),
        Needle::text("the Loket client secret", loket_secret.clone()),
        Needle::text("UNIT4_CLIENT_SECRET", UNIT4_CLIENT_SECRET),
        Needle::text("the sealing key", space.encoded_key.clone()),
    ];
    for connection in ["loket-refused", "unit4-refused"] {
        let mut command = space.koppel_command(&["connection", "test", connection], LOG_FILTER);
        command.env("KOPPEL_SECRET_KEY", &space.encoded_key);
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
