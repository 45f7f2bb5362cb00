//! The whole pipeline in one process against the simulators: the topology in a namespace of
//! its own, every simulator, an extractor driven one sync at a time, the suite onboarded, and
//! the deliverer as `koppel deliverer` runs it. The demo and the end-to-end benchmark build on
//! it; the chaos suite runs the workers as processes instead.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use koppel_extract::{Extractor, ExtractorConfig, SyncOptions, SyncOutcome};
use koppel_nats::{NatsSettings, Topology, TopologySettings};
use koppel_registry::{Registry, SecretKey};
use koppel_sim::suite::{SimulatorSuite, SuiteConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::delivery_check::{DeliveryCheck, check_delivery};
use crate::drain::wait_until_drained;
use crate::onboarding::{Onboarded, RECIPIENTS, onboard};

/// How a [`Pipeline`] is built.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub nats_url: String,
    /// Prefixes every stream, bucket and subject, so the pipeline never touches another
    /// installation on the same server.
    pub namespace: String,
    pub suite: SuiteConfig,
    /// The Loket and Unit4 poll intervals onboarded (the in-process extractor syncs only when
    /// told to; they matter to a worker that reads the registry).
    pub poll_seconds: (u64, u64),
    pub retry: koppel_deliver::RetrySettings,
}

/// A running pipeline. [`Pipeline::stop`] ends it; dropping it stops the deliverer and the
/// simulators too, and removes its work directory.
#[derive(Debug)]
pub struct Pipeline {
    pub topology: Topology,
    pub registry: Registry,
    pub suite: SimulatorSuite,
    pub extractor: Extractor,
    pub onboarded: Onboarded,
    deliverer: Option<JoinHandle<Result<(), koppel_deliver::DeliverError>>>,
    shutdown: CancellationToken,
    /// Cancels `shutdown` when the pipeline is dropped without [`Pipeline::stop`].
    _stop_on_drop: DropGuard,
    _workdir: WorkDir,
}

/// The directory with the sealing key file both workers read; removed on drop.
#[derive(Debug)]
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Pipeline {
    /// Builds the topology, starts the simulators, onboards them and starts the deliverer.
    pub async fn start(settings: &PipelineSettings) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let workdir = std::env::temp_dir().join(format!("koppel-{}", settings.namespace));
        std::fs::create_dir_all(&workdir)?;
        let workdir = WorkDir(workdir);
        let key_file = workdir.0.join("secret.key");
        std::fs::write(&key_file, SecretKey::generate_base64()?)?;
        let key = SecretKey::from_file(&key_file)?;
        let nats = NatsSettings {
            url: settings.nats_url.clone(),
            ..NatsSettings::default()
        };
        let client = koppel_nats::connect(&nats)
            .await
            .context("cannot connect to NATS")?;
        let names = koppel_events::Names::namespaced(&settings.namespace)?;
        let topology = Topology::setup(
            async_nats::jetstream::new(client),
            names,
            &TopologySettings::default(),
        )
        .await?;
        let registry = Registry::new(topology.registry.clone());
        let suite = SimulatorSuite::start(&settings.suite, shutdown.clone()).await?;
        let extractor = Extractor::from_config(&ExtractorConfig {
            nats: nats.clone(),
            namespace: Some(settings.namespace.clone()),
            secret_key: koppel_extract::SecretKeySource::File {
                path: key_file.clone(),
            },
            ..ExtractorConfig::default()
        })
        .await?;
        let onboarded = onboard(
            &suite,
            &topology,
            &registry,
            &key,
            &extractor,
            settings.poll_seconds,
        )
        .await?;
        let deliverer = tokio::spawn(koppel_deliver::run(
            koppel_deliver::DelivererConfig {
                nats,
                namespace: Some(settings.namespace.clone()),
                secret_key: koppel_deliver::SecretKeySource::File { path: key_file },
                retry: settings.retry.clone(),
                ..koppel_deliver::DelivererConfig::default()
            },
            shutdown.clone(),
        ));
        Ok(Pipeline {
            topology,
            registry,
            suite,
            extractor,
            onboarded,
            deliverer: Some(deliverer),
            _stop_on_drop: shutdown.clone().drop_guard(),
            shutdown,
            _workdir: workdir,
        })
    }

    /// Syncs every onboarded employer once as of the simulated today, `concurrency` at a
    /// time. Returns (employer key, connection id, outcome) in onboarding order.
    pub async fn sync_all(
        &self,
        concurrency: usize,
    ) -> anyhow::Result<Vec<(String, String, SyncOutcome)>> {
        let options = SyncOptions {
            reference_date: Some(self.suite.loket.with_world(koppel_sim::world::World::today)),
            ..SyncOptions::default()
        };
        let options = &options;
        futures::stream::iter(&self.onboarded.employers)
            .map(|(employer_key, connection)| async move {
                let outcome = self
                    .extractor
                    .sync_employer_once(employer_key, options)
                    .await
                    .with_context(|| format!("sync of {employer_key} failed"))?;
                Ok((employer_key.clone(), connection.clone(), outcome))
            })
            .buffered(concurrency.max(1))
            .collect::<Vec<anyhow::Result<_>>>()
            .await
            .into_iter()
            .collect()
    }

    /// Waits until every recipient has drained, then stops the deliverer and returns how long
    /// the wait took. Fails when the deliverer failed.
    pub async fn drain(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let took = wait_until_drained(&self.topology, &RECIPIENTS, timeout).await?;
        self.shutdown.cancel();
        if let Some(deliverer) = self.deliverer.take() {
            match deliverer.await {
                Ok(result) => result.context("the deliverer failed")?,
                Err(error) => bail!("the deliverer task failed: {error}"),
            }
        }
        Ok(took)
    }

    /// What reached each recipient against what the stream holds; call it after
    /// [`Pipeline::drain`].
    pub async fn check_delivery(&self) -> anyhow::Result<DeliveryCheck> {
        check_delivery(&self.topology, &self.registry, &self.suite).await
    }

    /// Stops the deliverer and the simulators and removes the key file.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.suite.stop().await?;
        Ok(())
    }
}
