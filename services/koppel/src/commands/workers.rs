//! `koppel extractor` and `koppel deliverer`: the long-running workers, with the operations
//! endpoints and graceful shutdown on SIGINT or SIGTERM.

use std::time::Duration;

use anyhow::Context as _;
use koppel_events::Names;
use koppel_nats::{NatsSettings, Topology};
use koppel_runtime::{CancellationToken, LogFormat, OpsSettings, Readiness, TelemetrySettings};

use crate::cli::{Cli, WorkerArgs};

fn telemetry(arguments: &WorkerArgs) -> TelemetrySettings {
    TelemetrySettings {
        log_format: if arguments.json_logs {
            LogFormat::Json
        } else {
            LogFormat::Pretty
        },
        log_filter: "info".to_owned(),
    }
}

async fn serve_ops(
    arguments: &WorkerArgs,
    shutdown: &koppel_runtime::CancellationToken,
) -> anyhow::Result<Readiness> {
    let metrics = koppel_runtime::init_telemetry(&telemetry(arguments));
    let readiness = Readiness::default();
    let address = koppel_runtime::serve_ops(
        &OpsSettings {
            listen: arguments.ops_listen,
        },
        metrics,
        readiness.clone(),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {} for /metrics", arguments.ops_listen))?;
    tracing::info!(%address, "Operations endpoints listening.");
    Ok(readiness)
}

/// How often a worker checks that NATS and its registry answer, for `/readyz`.
const READINESS_PERIOD: Duration = Duration::from_secs(5);

/// Keeps `readiness` true exactly while NATS answers and the installation's registry bucket is
/// there, through a connection of its own with the worker's settings and credentials.
async fn follow_dependencies(
    nats: NatsSettings,
    names: Names,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let nats = NatsSettings {
        // Connect in the background and keep trying; until then the probe fails.
        initial_connect_timeout: Duration::ZERO,
        client_name: nats
            .client_name
            .as_ref()
            .map(|name| format!("{name}-readiness")),
        ..nats
    };
    let client = match koppel_nats::connect(&nats).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "Cannot connect the readiness probe to NATS; never ready.");
            return;
        }
    };
    let jetstream = async_nats::jetstream::new(client);
    readiness
        .follow(READINESS_PERIOD, shutdown, || {
            let jetstream = jetstream.clone();
            let names = names.clone();
            async move {
                match Topology::probe(&jetstream, &names).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, "Not ready.");
                        false
                    }
                }
            }
        })
        .await;
}

/// Loads a worker's config, applies the command line's NATS URL and namespace, serves the
/// operations endpoints (ready once NATS and the registry answer) and runs the worker until
/// SIGINT or SIGTERM.
async fn run_worker<Config, Worker>(
    cli: &Cli,
    arguments: &WorkerArgs,
    what: &str,
    overrides: impl FnOnce(&mut Config, Option<String>, Option<String>),
    dependencies: impl FnOnce(&Config) -> (NatsSettings, Option<String>),
    worker: impl FnOnce(Config, CancellationToken) -> Worker,
) -> anyhow::Result<()>
where
    Config: serde::de::DeserializeOwned,
    Worker: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut config: Config = koppel_runtime::load_config(cli.config.as_deref())
        .with_context(|| format!("cannot load the {what} configuration"))?;
    overrides(
        &mut config,
        crate::context::nats_url(cli)?,
        cli.namespace.clone(),
    );
    let (nats, namespace) = dependencies(&config);
    let names = match namespace {
        Some(namespace) => Names::namespaced(&namespace).context("invalid namespace")?,
        None => Names::production(),
    };
    let shutdown = koppel_runtime::shutdown_on_signal();
    let readiness = serve_ops(arguments, &shutdown).await?;
    tokio::spawn(follow_dependencies(
        nats,
        names,
        readiness,
        shutdown.clone(),
    ));
    worker(config, shutdown)
        .await
        .with_context(|| format!("the {what} stopped"))
}

pub(crate) async fn extractor(cli: &Cli, arguments: &WorkerArgs) -> anyhow::Result<()> {
    run_worker(
        cli,
        arguments,
        "extractor",
        |config: &mut koppel_extract::ExtractorConfig, url, namespace| {
            if let Some(url) = url {
                config.nats.url = url;
            }
            if namespace.is_some() {
                config.namespace = namespace;
            }
        },
        |config| (config.nats.clone(), config.namespace.clone()),
        koppel_extract::run,
    )
    .await
}

pub(crate) async fn deliverer(cli: &Cli, arguments: &WorkerArgs) -> anyhow::Result<()> {
    run_worker(
        cli,
        arguments,
        "deliverer",
        |config: &mut koppel_deliver::DelivererConfig, url, namespace| {
            if let Some(url) = url {
                config.nats.url = url;
            }
            if namespace.is_some() {
                config.namespace = namespace;
            }
        },
        |config| (config.nats.clone(), config.namespace.clone()),
        |config, shutdown| async move { Ok(koppel_deliver::run(config, shutdown).await?) },
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use koppel_runtime::config::load_config_from;

    fn example(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/config")
            .join(name)
    }

    #[test]
    fn the_example_configs_load_into_the_real_config_types() {
        let extractor: koppel_extract::ExtractorConfig =
            load_config_from(Some(&example("extractor.toml")), Vec::new()).unwrap();
        assert_eq!(extractor.nats.user.as_deref(), Some("koppel-extractor"));
        assert!(extractor.nats.require_tls);
        let deliverer: koppel_deliver::DelivererConfig =
            load_config_from(Some(&example("deliverer.toml")), Vec::new()).unwrap();
        assert_eq!(deliverer.retry.max_attempts, 300);
        let command: crate::context::CliConfig =
            load_config_from(Some(&example("koppel.toml")), Vec::new()).unwrap();
        assert_eq!(command.telemetry.log_filter, "warn");
        let cluster: crate::context::CliConfig =
            load_config_from(Some(&example("koppel-cluster.toml")), Vec::new()).unwrap();
        assert_eq!(cluster.topology.replicas, 3);
        assert_eq!(cluster.topology.events_max_megabytes, 4096);
        assert_eq!(cluster.nats.user.as_deref(), Some("koppel-operator"));
    }
}
