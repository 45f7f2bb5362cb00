//! `koppel sim`: every simulator until Ctrl-C. Optionally onboards them into a koppel
//! installation and advances the simulated worlds on a clock, which is how the compose setup
//! in deploy/ gives its workers something to do.

use std::time::Duration;

use anyhow::Context as _;
use koppel_extract::{Extractor, ExtractorConfig};
use koppel_harness::{Onboarded, onboard};
use koppel_registry::SecretKey;
use koppel_sim::suite::{SimulatorSuite, SuiteConfig};
use serde_json::json;

use crate::cli::SimArgs;
use crate::context::{CliConfig, Context};
use crate::output::Output;

pub(crate) async fn run(
    arguments: SimArgs,
    config: &CliConfig,
    output: Output,
) -> anyhow::Result<()> {
    let shutdown = koppel_runtime::shutdown_on_signal();
    let suite_config = SuiteConfig {
        listen_host: arguments.listen_host,
        base_port: arguments.base_port,
        advertise_host: arguments.advertise_host.clone(),
        ..SuiteConfig::local(arguments.seed, arguments.employers, arguments.employees)
    };
    let suite = SimulatorSuite::start(&suite_config, shutdown.clone())
        .await
        .context("cannot start the simulators")?;
    output.json(&json!({
        "loket": { "oauth_base_url": suite.loket_oauth_base_url(), "api_base_url": suite.loket_api_base_url() },
        "unit4": { "token_url": suite.unit4_token_url(), "api_base_url": suite.unit4_api_base_url(), "scope": suite.unit4.config().scope },
        "insurer": { "base_url": suite.insurer_base_url() },
        "webhook_receiver": { "url": suite.webhook_url() },
        "credentials": "the simulators' made-up credentials are the constants in koppel_sim::suite",
    }));
    if arguments.onboard {
        let key = SecretKey::from_environment().context("onboarding seals secrets")?;
        let context = Context::connect(config).await?;
        let extractor = Extractor::from_config(&ExtractorConfig {
            nats: config.nats.clone(),
            topology: config.topology.clone(),
            namespace: config.namespace.clone(),
            ..ExtractorConfig::default()
        })
        .await?;
        let Onboarded { employers, .. } = onboard(
            &suite,
            &context.topology,
            &context.registry,
            &key,
            &extractor,
            (arguments.poll_seconds, arguments.poll_seconds),
        )
        .await?;
        output.text(format!(
            "onboarded {} employers into the registry",
            employers.len()
        ));
    }
    output.text("simulators running; Ctrl-C stops them");
    if arguments.day_every_seconds > 0 {
        let mut ticker = tokio::time::interval(Duration::from_secs(arguments.day_every_seconds));
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    let (loket, unit4) = suite.advance_days(1);
                    tracing::info!(loket_changes = loket.len(), unit4_changes = unit4.len(), "Advanced the simulated worlds one day.");
                }
            }
        }
    } else {
        shutdown.cancelled().await;
    }
    suite.stop().await?;
    Ok(())
}
