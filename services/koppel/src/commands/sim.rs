//! `koppel sim`: every simulator on loopback until Ctrl-C, with the URLs and credentials to
//! point koppel (or curl) at.

use anyhow::Context as _;
use koppel_sim::suite::{LOKET_USER, SimulatorSuite, SuiteConfig, UNIT4_CLIENT_ID};
use serde_json::json;

use crate::cli::SimArgs;
use crate::output::Output;

pub async fn run(arguments: SimArgs, output: Output) -> anyhow::Result<()> {
    let shutdown = koppel_runtime::shutdown_on_signal();
    let config = SuiteConfig {
        seed: arguments.seed,
        employers_per_source: arguments.employers,
        employees_per_employer: arguments.employees,
    };
    let suite = SimulatorSuite::start(&config, shutdown.clone())
        .await
        .context("cannot start the simulators")?;
    let loket_refresh_token = suite.loket.issue_refresh_token(LOKET_USER)?;
    let summary = json!({
        "loket": {
            "oauth_base_url": suite.loket_server.oauth_base_url(),
            "api_base_url": suite.loket_server.api_base_url(),
            "client_id": suite.loket.config().client_id,
            "user": LOKET_USER,
            "refresh_token_issued": !loket_refresh_token.is_empty(),
        },
        "unit4": {
            "token_url": suite.unit4_server.token_url(),
            "api_base_url": suite.unit4_server.api_base_url(),
            "scope": suite.unit4.config().scope,
            "client_id": UNIT4_CLIENT_ID,
        },
        "insurer": { "base_url": suite.insurer_server.base_url() },
        "webhook_receiver": { "url": suite.webhook_server.webhook_url() },
        "credentials": "the simulators' made-up credentials are the constants in koppel_sim::suite",
    });
    output.json(&summary);
    output.text("simulators running; Ctrl-C stops them");
    shutdown.cancelled().await;
    suite.stop().await?;
    Ok(())
}
