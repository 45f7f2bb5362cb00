//! The configuration every subcommand shares, and the connection to NATS built from it.

use anyhow::{Context as _, bail};
use koppel_events::Names;
use koppel_nats::{NatsSettings, Topology, TopologySettings};
use koppel_registry::Registry;
use koppel_runtime::TelemetrySettings;
use serde::Deserialize;

use crate::cli::Cli;

/// `koppel`'s config file. Worker sections join it as the workers land.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CliConfig {
    pub nats: NatsSettings,
    pub topology: TopologySettings,
    pub telemetry: TelemetrySettings,
    /// Prefix of every stream, bucket and subject; unset in production.
    pub namespace: Option<String>,
}

impl Default for CliConfig {
    fn default() -> Self {
        CliConfig {
            nats: NatsSettings::default(),
            topology: TopologySettings::default(),
            // A command's stderr is for its one-line error; workers raise this to info.
            telemetry: TelemetrySettings {
                log_filter: "warn".to_owned(),
                ..TelemetrySettings::default()
            },
            namespace: None,
        }
    }
}

impl CliConfig {
    pub fn load(cli: &Cli) -> anyhow::Result<Self> {
        let mut config: CliConfig = koppel_runtime::load_config(cli.config.as_deref())
            .context("cannot load configuration")?;
        if let Some(url) = nats_url(cli)? {
            config.nats.url = url;
        }
        if let Some(namespace) = &cli.namespace {
            config.namespace = Some(namespace.clone());
        }
        Ok(config)
    }

    pub fn names(&self) -> anyhow::Result<Names> {
        match &self.namespace {
            Some(namespace) => Names::namespaced(namespace).context("invalid namespace"),
            None => Ok(Names::production()),
        }
    }
}

/// The NATS URL of `--nats-url` or KOPPEL_NATS_URL. A URL with credentials is refused when it
/// comes from the command line, where every user of the machine can read a process's
/// arguments; from the environment it is fine.
pub fn nats_url(cli: &Cli) -> anyhow::Result<Option<String>> {
    let Some(url) = &cli.nats_url else {
        return Ok(None);
    };
    let from_environment = std::env::var("KOPPEL_NATS_URL").is_ok_and(|value| value == *url);
    if !from_environment && url.contains('@') {
        bail!(
            "--nats-url must not carry credentials, which every user of this machine can read on \
             the command line: put the URL in KOPPEL_NATS_URL, or set [nats] user and \
             KOPPEL_NATS__PASSWORD"
        );
    }
    Ok(Some(url.clone()))
}

/// A connected command: the topology (streams, buckets) and the registry.
#[derive(Debug, Clone)]
pub struct Context {
    pub topology: Topology,
    pub registry: Registry,
}

impl Context {
    pub async fn connect(config: &CliConfig) -> anyhow::Result<Self> {
        let client = koppel_nats::connect(&config.nats)
            .await
            .context("cannot connect to NATS")?;
        let jetstream = async_nats::jetstream::new(client);
        // Only checks: streams and buckets are `koppel setup`'s to create or change.
        let topology = Topology::open(jetstream, config.names()?)
            .await
            .context("cannot open streams and buckets")?;
        let registry = Registry::new(topology.registry.clone());
        Ok(Context { topology, registry })
    }
}
