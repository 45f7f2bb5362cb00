//! The long-running extractor: watches the registry and extracts every enabled employer of
//! every connection (Loket and Unit4) on its connection's schedule, one replica per employer
//! at a time (KV leases), until shutdown.
//!
//! Scheduling is per employer: after a run, the employer is due again after the connection's
//! `poll_interval_seconds`; for Loket, whether that run is a delta or a full sync follows from
//! the watermark's last full sync and `full_sync_interval_seconds`; Unit4, without a change
//! feed, diffs a full snapshot every time. Failed runs are retried on
//! the same schedule; permanent failures (a connection needing re-authorisation) are logged
//! as errors on every attempt so they stay visible.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use koppel_events::{Names, SourceSystem};
use koppel_nats::kv::KvError;
use koppel_nats::{NatsSettings, Publisher, PublisherSettings, Topology, TopologySettings};
use koppel_registry::{
    Connection, ConnectionSettings, EmployerRegistration, Registry, RegistryError, SecretKey,
};
use koppel_runtime::http::HttpClientSettings;
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::access_token::instant_after;
use tokio_util::sync::CancellationToken;

use crate::engine::{
    EngineSettings, SyncContext, SyncError, SyncOptions, SyncOutcome, sync_employer,
};
use crate::http_source::ErrorClass;
use crate::lease;
use crate::loket::{self, LoketSettings, LoketSource};
use crate::source::{DiscoveredEmployer, FetchRequest, Source, SourceError, SourceFetch};
use crate::unit4::{self, Unit4Settings, Unit4Source};

/// Where the key that opens sealed secrets comes from; shared with the deliverer.
pub use koppel_registry::SecretKeySource;

/// `[extraction]`: scheduling and safety settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractionSettings {
    /// How long an employer lease lasts; must exceed the longest sync.
    pub lease_seconds: u64,
    /// Employers extracted at once by this replica.
    pub max_concurrent_employers: usize,
    /// How often the scheduler looks for due employers, milliseconds.
    pub tick_milliseconds: u64,
    /// This replica's name in leases; a random one when absent.
    pub replica_id: Option<String>,
    /// See [`EngineSettings::removal_threshold_minimum_employees`].
    pub removal_threshold_minimum_employees: u32,
}

impl Default for ExtractionSettings {
    fn default() -> Self {
        ExtractionSettings {
            lease_seconds: 600,
            max_concurrent_employers: 4,
            tick_milliseconds: 1_000,
            replica_id: None,
            removal_threshold_minimum_employees: EngineSettings::default()
                .removal_threshold_minimum_employees,
        }
    }
}

/// The extractor's configuration (`koppel extractor --config extractor.toml`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractorConfig {
    #[serde(default)]
    pub nats: NatsSettings,
    #[serde(default)]
    pub topology: TopologySettings,
    #[serde(default)]
    pub publisher: PublisherSettings,
    #[serde(default)]
    pub http: HttpClientSettings,
    /// Prefixes every stream, bucket and subject (tests, side-by-side installations).
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub secret_key: SecretKeySource,
    #[serde(default)]
    pub extraction: ExtractionSettings,
    #[serde(default)]
    pub loket: LoketSettings,
    #[serde(default)]
    pub unit4: Unit4Settings,
}

/// Why the extractor (or one of its runs) failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("employer lease: {0}")]
    Lease(KvError),
    #[error("employer {employer_key} is being extracted by another replica")]
    LeaseHeld { employer_key: String },
    #[error("connection {connection_id} is a {source_system} connection, not the source asked for")]
    UnsupportedSource {
        connection_id: String,
        source_system: SourceSystem,
    },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

impl ExtractError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ExtractError::Registry(RegistryError::Kv(error)) => error.class(),
            ExtractError::Registry(RegistryError::Watch(_)) => ErrorClass::Retryable,
            ExtractError::Registry(
                RegistryError::Token(_)
                | RegistryError::NotFound { .. }
                | RegistryError::AlreadyExists { .. }
                | RegistryError::UnknownRecipient { .. }
                | RegistryError::UnknownConnection { .. }
                | RegistryError::Undecodable { .. },
            ) => ErrorClass::Permanent,
            ExtractError::Source(error) => error.class(),
            ExtractError::Sync(error) => error.class(),
            ExtractError::Lease(_) | ExtractError::LeaseHeld { .. } => ErrorClass::Retryable,
            ExtractError::UnsupportedSource { .. } | ExtractError::HttpClient(_) => {
                ErrorClass::Permanent
            }
        }
    }
}

/// The source of one connection, whichever system it is.
#[derive(Debug, Clone)]
pub enum ConnectionSource {
    Loket(LoketSource),
    Unit4(Unit4Source),
}

impl ConnectionSource {
    /// The employers the connection can see (onboarding's `employer discover`).
    pub async fn discover_employers(&self) -> Result<Vec<DiscoveredEmployer>, SourceError> {
        match self {
            ConnectionSource::Loket(source) => source.client().discover_employers().await,
            ConnectionSource::Unit4(source) => source.client().discover_employers().await,
        }
    }
}

impl Source for ConnectionSource {
    fn system(&self) -> SourceSystem {
        match self {
            ConnectionSource::Loket(source) => source.system(),
            ConnectionSource::Unit4(source) => source.system(),
        }
    }

    fn connection_id(&self) -> &str {
        match self {
            ConnectionSource::Loket(source) => source.connection_id(),
            ConnectionSource::Unit4(source) => source.connection_id(),
        }
    }

    fn supports_delta(&self) -> bool {
        match self {
            ConnectionSource::Loket(source) => source.supports_delta(),
            ConnectionSource::Unit4(source) => source.supports_delta(),
        }
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<SourceFetch, SourceError> {
        match self {
            ConnectionSource::Loket(source) => source.fetch(request).await,
            ConnectionSource::Unit4(source) => source.fetch(request).await,
        }
    }
}

/// Everything a running extractor holds: NATS handles, the registry, the secret key and one
/// source per connection (so each connection has one token manager or token cache).
#[derive(Debug)]
pub struct Extractor {
    context: SyncContext,
    registry: Registry,
    key: SecretKey,
    http: reqwest::Client,
    loket: LoketSettings,
    unit4: Unit4Settings,
    extraction: ExtractionSettings,
    replica_id: String,
    sources: Mutex<HashMap<String, (Connection, ConnectionSource)>>,
}

impl Extractor {
    pub fn new(
        topology: Topology,
        publisher: PublisherSettings,
        key: SecretKey,
        http: reqwest::Client,
        loket: LoketSettings,
        extraction: ExtractionSettings,
    ) -> Self {
        let replica_id = extraction
            .replica_id
            .clone()
            .unwrap_or_else(|| format!("extractor-{}", uuid::Uuid::new_v4().simple()));
        let engine = EngineSettings {
            removal_threshold_minimum_employees: extraction.removal_threshold_minimum_employees,
        };
        Extractor {
            registry: Registry::new(topology.registry.clone()),
            context: SyncContext {
                publisher: Publisher::new(topology.jetstream.clone(), publisher),
                topology,
                settings: engine,
            },
            key,
            http,
            loket,
            unit4: Unit4Settings::default(),
            extraction,
            replica_id,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// The Unit4 settings (`[unit4]`); [`Unit4Settings::default`] unless set here.
    pub fn with_unit4_settings(mut self, unit4: Unit4Settings) -> Self {
        self.unit4 = unit4;
        self
    }

    /// Connects to NATS, opens the topology (set up beforehand) and loads the secret key, per `config`.
    pub async fn from_config(config: &ExtractorConfig) -> anyhow::Result<Self> {
        let names = match &config.namespace {
            Some(namespace) => Names::namespaced(namespace)?,
            None => Names::production(),
        };
        let client = koppel_nats::connect(&config.nats).await?;
        let jetstream = async_nats::jetstream::new(client);
        let topology = Topology::open(jetstream, names).await?;
        let key = config.secret_key.load()?;
        let http = config.http.client()?;
        Ok(Extractor::new(
            topology,
            config.publisher.clone(),
            key,
            http,
            config.loket.clone(),
            config.extraction.clone(),
        )
        .with_unit4_settings(config.unit4.clone()))
    }

    pub fn context(&self) -> &SyncContext {
        &self.context
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// The source of a connection, built once and reused while the connection's record is
    /// unchanged.
    pub fn source(&self, connection: &Connection) -> Result<ConnectionSource, ExtractError> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, source)) = sources.get(&connection.id)
            && cached == connection
        {
            return Ok(source.clone());
        }
        let source = match &connection.settings {
            ConnectionSettings::Loket(_) => {
                let client = loket::connect(
                    connection,
                    &self.key,
                    self.http.clone(),
                    self.context.topology.tokens.clone(),
                    &self.loket,
                )?;
                ConnectionSource::Loket(LoketSource::new(client, self.loket.clone()))
            }
            ConnectionSettings::Unit4(_) => {
                let client = unit4::connect(connection, &self.key, self.http.clone(), &self.unit4)?;
                ConnectionSource::Unit4(Unit4Source::new(client))
            }
        };
        sources.insert(connection.id.clone(), (connection.clone(), source.clone()));
        Ok(source)
    }

    /// The Loket source of a connection (see [`Extractor::source`]).
    pub fn loket_source(&self, connection: &Connection) -> Result<LoketSource, ExtractError> {
        match self.source(connection)? {
            ConnectionSource::Loket(source) => Ok(source),
            ConnectionSource::Unit4(_) => Err(ExtractError::UnsupportedSource {
                connection_id: connection.id.clone(),
                source_system: connection.source(),
            }),
        }
    }

    /// The Unit4 source of a connection (see [`Extractor::source`]).
    pub fn unit4_source(&self, connection: &Connection) -> Result<Unit4Source, ExtractError> {
        match self.source(connection)? {
            ConnectionSource::Unit4(source) => Ok(source),
            ConnectionSource::Loket(_) => Err(ExtractError::UnsupportedSource {
                connection_id: connection.id.clone(),
                source_system: connection.source(),
            }),
        }
    }

    /// The employers a connection can see (onboarding's `employer discover`): for Loket those
    /// of the authorising user, for Unit4 those of the web-API user's group.
    pub async fn discover_employers(
        &self,
        connection_id: &str,
    ) -> Result<Vec<DiscoveredEmployer>, ExtractError> {
        let connection = self.registry.connection(connection_id).await?;
        let source = self.source(&connection)?;
        Ok(source.discover_employers().await?)
    }

    /// One sync of one registered employer, now, without a lease: what tests, the demo and
    /// `koppel extractor --once` use. `options` picks full or delta and the reference date.
    pub async fn sync_employer_once(
        &self,
        employer_key: &str,
        options: &SyncOptions,
    ) -> Result<SyncOutcome, ExtractError> {
        let employer = self.registry.employer(employer_key).await?;
        let connection = self.registry.connection(&employer.connection_id).await?;
        let source = self.source(&connection)?;
        Ok(sync_employer(&self.context, &source, &employer, options).await?)
    }

    /// One scheduled sync: under the employer's lease, with the connection's full-sync
    /// interval.
    async fn sync_with_lease(
        &self,
        connection: &Connection,
        employer: &EmployerRegistration,
    ) -> Result<SyncOutcome, ExtractError> {
        let ttl = Duration::from_secs(self.extraction.lease_seconds);
        let Some(lease) = lease::try_acquire(
            &self.context.topology.leases,
            &employer.employer_key,
            &self.replica_id,
            ttl,
        )
        .await
        .map_err(ExtractError::Lease)?
        else {
            return Err(ExtractError::LeaseHeld {
                employer_key: employer.employer_key.clone(),
            });
        };
        let options = SyncOptions {
            full_sync_interval: Duration::from_secs(connection.full_sync_interval_seconds),
            ..SyncOptions::default()
        };
        let result = match self.source(connection) {
            Ok(source) => sync_employer(&self.context, &source, employer, &options)
                .await
                .map_err(ExtractError::from),
            Err(error) => Err(error),
        };
        if let Err(error) = lease.release().await {
            tracing::warn!(employer = %employer.employer_key, %error, "Releasing the employer lease failed; it expires by itself.");
        }
        result
    }

    /// Extracts every enabled employer of every connection on its schedule until `shutdown`
    /// fires, then lets running syncs finish. A failing employer (a 403, a refused secret) is
    /// reported on its own and retried on its own schedule; the others are not held up.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), ExtractError> {
        let registry = self.registry.watch().await?;
        let mut next_due: HashMap<String, Instant> = HashMap::new();
        let mut in_flight: HashSet<String> = HashSet::new();
        let mut running: JoinSet<(String, Duration, Result<SyncOutcome, ExtractError>)> =
            JoinSet::new();
        // Which employer each task syncs, so a task that panicked is rescheduled, not lost.
        let mut employer_of_task: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut ticker = tokio::time::interval(Duration::from_millis(
            self.extraction.tick_milliseconds.max(10),
        ));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(replica = %self.replica_id, "Extractor started.");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                    match joined {
                        Ok((task, (employer_key, poll_interval, result))) => {
                            employer_of_task.remove(&task);
                            in_flight.remove(&employer_key);
                            next_due.insert(employer_key.clone(), instant_after(Instant::now(), poll_interval));
                            report(&employer_key, result);
                        }
                        Err(join_error) => {
                            // A panic in one employer's sync: the employer is tried again on
                            // the next tick rather than forgotten (it stays "in flight" else).
                            if let Some(employer_key) = employer_of_task.remove(&join_error.id()) {
                                in_flight.remove(&employer_key);
                                metrics::counter!("koppel_extract_task_panics_total").increment(1);
                                tracing::error!(employer = %employer_key, %join_error, "A sync task failed to complete; the employer is rescheduled.");
                            } else {
                                tracing::error!(%join_error, "A sync task failed to complete.");
                            }
                        }
                    }
                }
                _ = ticker.tick() => {
                    let snapshot = registry.borrow().clone();
                    let now = Instant::now();
                    for employer in snapshot.employers.values().filter(|employer| employer.enabled) {
                        if running.len() >= self.extraction.max_concurrent_employers.max(1) {
                            break;
                        }
                        let Some(connection) = snapshot.connections.get(&employer.connection_id) else {
                            continue;
                        };
                        if in_flight.contains(&employer.employer_key)
                            || next_due.get(&employer.employer_key).is_some_and(|due| *due > now)
                        {
                            continue;
                        }
                        in_flight.insert(employer.employer_key.clone());
                        let worker = Arc::clone(&self);
                        let connection = connection.clone();
                        let employer = employer.clone();
                        let employer_key = employer.employer_key.clone();
                        let task = running.spawn(async move {
                            let poll_interval = Duration::from_secs(connection.poll_interval_seconds.max(1));
                            let result = worker.sync_with_lease(&connection, &employer).await;
                            (employer.employer_key, poll_interval, result)
                        });
                        employer_of_task.insert(task.id(), employer_key);
                    }
                }
            }
        }
        tracing::info!(
            running = running.len(),
            "Extractor stopping; letting running syncs finish."
        );
        while let Some(joined) = running.join_next().await {
            if let Ok((employer_key, _, result)) = joined {
                report(&employer_key, result);
            }
        }
        Ok(())
    }
}

fn report(employer_key: &str, result: Result<SyncOutcome, ExtractError>) {
    match result {
        Ok(_) => {}
        Err(ExtractError::LeaseHeld { .. }) => {
            tracing::debug!(
                employer = employer_key,
                "Another replica holds the employer lease."
            );
        }
        Err(error) => match error.class() {
            ErrorClass::Retryable => {
                metrics::counter!("koppel_extract_failures_total", "class" => "retryable")
                    .increment(1);
                tracing::warn!(employer = employer_key, %error, "Sync failed; retrying on the next poll.");
            }
            ErrorClass::Permanent => {
                metrics::counter!("koppel_extract_failures_total", "class" => "permanent")
                    .increment(1);
                tracing::error!(employer = employer_key, %error, "Sync failed and will keep failing until fixed.");
            }
        },
    }
}

/// The extractor process: connect, then extract until `shutdown` fires.
pub async fn run(config: ExtractorConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let extractor = Arc::new(Extractor::from_config(&config).await?);
    extractor.run(shutdown).await?;
    Ok(())
}
