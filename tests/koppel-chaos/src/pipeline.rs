//! The pipeline under chaos: simulators in this process (real HTTP on 127.0.0.1), onboarding
//! through koppel-harness as the demo does it, and `koppel extractor` and `koppel deliverer` as real child
//! processes that a scenario kills and restarts. The world advances one simulated day at a
//! time; each day's ground truth is recorded with the stream sequence it starts at, so the
//! verifier can compare each day's events with that day's changes.
//!
//! Synchronisation is by condition, never by sleeping: "caught up" means every change of the
//! last day has its event in the stream; "drained" means every recipient consumer has nothing
//! pending and nothing unacknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use koppel_events::EventType;
use koppel_extract::{Extractor, ExtractorConfig};
use koppel_harness::scoring::{
    DayDiscrepancy, EmittedByConnection, GroundTruthScore, compare_day, record_published,
};
use koppel_harness::{
    INSURER, WEBHOOK, backlog, check_delivery, eventually, eventually_every, koppel_binary,
    onboard, wait_until_drained,
};
use koppel_nats::read::{ReadSpec, StartAt, read_stream};
use koppel_nats::{NatsSettings, Topology, TopologySettings};
use koppel_registry::{Registry, SecretKey};
use koppel_sim::faults::FaultConfig;
use koppel_sim::ground_truth::expected_events;
use koppel_sim::suite::{SimulatorSuite, SuiteConfig};
use koppel_sim::world::{MutationRates, WorldChange};
use tokio_util::sync::CancellationToken;

use crate::observer::PublishObserver;
use crate::process::WorkerProcess;
use crate::report::ChaosReport;

/// The recipients every pipeline has (as the harness onboards them).
pub use koppel_harness::RECIPIENTS;

/// How often a wait that reads the whole events stream reads it again.
const STREAM_POLL: Duration = Duration::from_millis(200);

/// How a pipeline is built. `PipelineOptions::new` gives a small world and fast retries.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The scenario's name, in the verdict line.
    pub scenario: String,
    /// NATS URL(s), comma separated, as the workers get them.
    pub nats_url: String,
    /// Stream and bucket replicas: 1 on a single server, 3 on a cluster.
    pub replicas: usize,
    pub seed: u64,
    pub employers_per_source: usize,
    pub employees_per_employer: usize,
    /// The deliverer's ack wait: how soon a killed deliverer's messages are redelivered.
    pub ack_wait_seconds: u64,
    pub retry_initial_backoff_millis: u64,
    pub retry_max_backoff_millis: u64,
    /// Large, so that an outage does not dead-letter (dead letters would still count as not
    /// lost, per the guarantee).
    pub retry_max_attempts: u32,
    /// The deadline of every wait (first sync, caught up, drained).
    pub wait_timeout: Duration,
    /// Faults the insurer and webhook simulators inject from the start (before the first
    /// sync is delivered); a scenario changes them later through `suite`.
    pub insurer_faults: FaultConfig,
    pub webhook_faults: FaultConfig,
    /// Faults both sources (Loket and Unit4) inject from the start.
    pub source_faults: FaultConfig,
    /// Daily mutation rates of both worlds; [`chaos_rates`] by default, so a small world
    /// changes a handful of entities every simulated day.
    pub rates: MutationRates,
}

/// Three times koppel-sim's busy rates: about a third of a small world's employees change per
/// simulated day, every kind of change included.
pub fn chaos_rates() -> MutationRates {
    MutationRates::busy().scaled(3)
}

impl PipelineOptions {
    pub fn new(scenario: &str, nats_url: &str) -> Self {
        PipelineOptions {
            scenario: scenario.to_owned(),
            nats_url: nats_url.to_owned(),
            replicas: 1,
            seed: 11,
            employers_per_source: 2,
            employees_per_employer: 8,
            ack_wait_seconds: 5,
            retry_initial_backoff_millis: 50,
            retry_max_backoff_millis: 1_000,
            retry_max_attempts: 100_000,
            wait_timeout: Duration::from_secs(180),
            insurer_faults: FaultConfig::default(),
            webhook_faults: FaultConfig::default(),
            source_faults: FaultConfig::default(),
            rates: chaos_rates(),
        }
    }
}

/// One decoded event of the stream, as the verifier needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedEvent {
    pub stream_sequence: u64,
    pub event_id: String,
    pub event_type: EventType,
    pub connection_id: String,
    pub employer_key: String,
    pub entity_id: String,
    pub revision: i64,
    pub changed_fields: Vec<String>,
    /// When the stream stored it (server clock).
    pub stored_at: chrono::DateTime<chrono::Utc>,
}

/// One simulated day: its ground truth and the first stream sequence its events can have.
#[derive(Debug, Clone)]
struct DayRecord {
    first_sequence: u64,
    loket: Vec<WorldChange>,
    unit4: Vec<WorldChange>,
}

/// The running pipeline. Call [`ChaosPipeline::stop`] at the end; dropping it kills the
/// workers and stops the simulators too.
#[derive(Debug)]
pub struct ChaosPipeline {
    pub options: PipelineOptions,
    pub suite: SimulatorSuite,
    pub topology: Topology,
    pub registry: Registry,
    /// (employer key, connection id) of every onboarded employer.
    pub employers: Vec<(String, String)>,
    pub extractor: WorkerProcess,
    pub deliverer: WorkerProcess,
    pub observer: PublishObserver,
    /// Config files, the secret key and worker logs.
    pub workdir: PathBuf,
    pub namespace: String,
    days: Vec<DayRecord>,
    caught_up: bool,
    /// From starting the workers to the first full sync of every employer in the stream.
    pub first_sync_took: Duration,
    /// Locating (building) the koppel binary, and the whole of `start`.
    pub binary_took: Duration,
    pub start_took: Duration,
    /// Keeps the onboarding extractor (and its NATS connection) for the pipeline's life.
    _onboarding: Extractor,
    shutdown: CancellationToken,
}

impl ChaosPipeline {
    /// Builds the topology, starts the simulators, onboards two connections (Loket, Unit4)
    /// with every employer linked to the insurer and the webhook receiver, starts the
    /// publish observer and both worker processes, and waits until the first full sync of
    /// every employer is in the stream.
    pub async fn start(options: PipelineOptions) -> anyhow::Result<Self> {
        let started = Instant::now();
        let binary = koppel_binary()?;
        let binary_took = started.elapsed();
        let namespace = format!("chaos{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let workdir = std::env::temp_dir().join(format!("koppel-{namespace}"));
        std::fs::create_dir_all(&workdir)?;
        let key_file = workdir.join("secret.key");
        std::fs::write(&key_file, SecretKey::generate_base64()?)?;
        let key = SecretKey::from_file(&key_file)?;
        let shutdown = CancellationToken::new();

        let nats = NatsSettings {
            url: options.nats_url.clone(),
            client_name: Some("koppel-chaos-harness".to_owned()),
            ..NatsSettings::default()
        };
        let topology_settings = TopologySettings {
            replicas: options.replicas,
            ..TopologySettings::default()
        };
        let client = koppel_nats::connect(&nats)
            .await
            .context("cannot connect to NATS")?;
        let names = koppel_events::Names::namespaced(&namespace)?;
        let topology = Topology::setup(
            async_nats::jetstream::new(client.clone()),
            names,
            &topology_settings,
        )
        .await?;
        let registry = Registry::new(topology.registry.clone());
        let suite = SimulatorSuite::start(
            &SuiteConfig::local(
                options.seed,
                options.employers_per_source,
                options.employees_per_employer,
            ),
            shutdown.clone(),
        )
        .await?;
        suite
            .loket
            .with_world_mut(|world| world.set_rates(options.rates.clone()));
        if let Ok(mut world) = suite.unit4.shared_world().write() {
            world.set_rates(options.rates.clone());
        }
        suite
            .insurer
            .configure_faults(options.insurer_faults.clone());
        suite
            .webhook
            .configure_faults(options.webhook_faults.clone());
        let onboarding = Extractor::from_config(&ExtractorConfig {
            nats: nats.clone(),
            topology: topology_settings.clone(),
            namespace: Some(namespace.clone()),
            secret_key: koppel_extract::SecretKeySource::File {
                path: key_file.clone(),
            },
            ..ExtractorConfig::default()
        })
        .await?;
        // Poll every second: a running extractor picks up each simulated day at once.
        let onboarded = onboard(&suite, &topology, &registry, &key, &onboarding, (1, 1)).await?;
        // Source faults only after onboarding: discovery is no part of any scenario.
        suite.loket.configure_faults(options.source_faults.clone());
        suite.unit4.configure_faults(options.source_faults.clone());
        let observer = PublishObserver::start(client, topology.names.events_wildcard()).await?;

        let extractor_config = workdir.join("extractor.toml");
        std::fs::write(&extractor_config, extractor_toml(&options))?;
        let deliverer_config = workdir.join("deliverer.toml");
        std::fs::write(&deliverer_config, deliverer_toml(&options))?;
        let worker = |name: &str, config: &PathBuf| -> anyhow::Result<WorkerProcess> {
            let arguments: Vec<OsString> = vec![
                "--config".into(),
                config.into(),
                "--nats-url".into(),
                options.nats_url.clone().into(),
                "--namespace".into(),
                namespace.clone().into(),
                name.into(),
                "--ops-listen".into(),
                "127.0.0.1:0".into(),
            ];
            WorkerProcess::spawn(
                name,
                &binary,
                arguments,
                vec![("KOPPEL_SECRET_KEY_FILE".into(), key_file.clone().into())],
                workdir.join(format!("{name}.log")),
            )
        };
        let workers_started = Instant::now();
        let extractor = worker("extractor", &extractor_config)?;
        let deliverer = worker("deliverer", &deliverer_config)?;

        let mut pipeline = ChaosPipeline {
            options,
            suite,
            topology,
            registry,
            employers: onboarded.employers,
            extractor,
            deliverer,
            observer,
            workdir,
            namespace,
            days: Vec::new(),
            caught_up: true,
            first_sync_took: Duration::ZERO,
            binary_took,
            start_took: Duration::ZERO,
            _onboarding: onboarding,
            shutdown,
        };
        pipeline.wait_first_sync().await?;
        pipeline.first_sync_took = workers_started.elapsed();
        pipeline.start_took = started.elapsed();
        Ok(pipeline)
    }

    /// Waits until every employer has a `SyncCompleted` in the stream: the first full sync.
    async fn wait_first_sync(&self) -> anyhow::Result<()> {
        let done: Mutex<BTreeSet<String>> = Mutex::default();
        let waited = eventually_every(
            "the first sync of every employer",
            self.options.wait_timeout,
            STREAM_POLL,
            || async {
                // A read error (NATS restarting) is "not yet", until the deadline.
                let events = self
                    .read_events(1)
                    .await
                    .map(|(events, _)| events)
                    .unwrap_or_default();
                let synced: BTreeSet<String> = events
                    .iter()
                    .filter(|event| event.event_type == EventType::SyncCompleted)
                    .map(|event| event.employer_key.clone())
                    .collect();
                let all = self
                    .employers
                    .iter()
                    .all(|(employer, _)| synced.contains(employer));
                *done.lock().unwrap_or_else(PoisonError::into_inner) = synced;
                Ok(all)
            },
        )
        .await;
        waited.map(|_| ()).with_context(|| {
            format!(
                "done: {:?}\n{}",
                done.lock().unwrap_or_else(PoisonError::into_inner),
                self.worker_logs()
            )
        })
    }

    /// The events stream's last sequence (0 when empty).
    pub async fn last_sequence(&self) -> anyhow::Result<u64> {
        let mut stream = self.topology.events_stream().await?;
        Ok(stream.info().await?.state.last_sequence)
    }

    /// Advances both source worlds by one simulated day and records its ground truth.
    /// Returns the number of entities it changed (expected events). The previous day must be
    /// caught up first ([`ChaosPipeline::wait_caught_up`]): each day's events are told apart
    /// by stream sequence.
    pub async fn advance_day(&mut self) -> anyhow::Result<u64> {
        if !self.caught_up {
            bail!("advance_day called before the previous day was caught up");
        }
        let first_sequence = self.last_sequence().await? + 1;
        let (loket, unit4) = self.suite.advance_days(1);
        let changes = (expected_events(&loket).len() + expected_events(&unit4).len()) as u64;
        self.days.push(DayRecord {
            first_sequence,
            loket,
            unit4,
        });
        self.caught_up = false;
        Ok(changes)
    }

    /// Advances the worlds by one simulated day into the current comparison window instead of
    /// a new one: for a scenario in which the extractor cannot catch up between days (it is
    /// down). The verifier then compares the merged days with their events at once; a change
    /// that undoes itself within the window would show as missing (rare at these rates).
    pub async fn advance_day_into_current_window(&mut self) -> anyhow::Result<u64> {
        if self.days.is_empty() {
            return self.advance_day().await;
        }
        let (loket, unit4) = self.suite.advance_days(1);
        let changes = (expected_events(&loket).len() + expected_events(&unit4).len()) as u64;
        if let Some(day) = self.days.last_mut() {
            day.loket.extend(loket);
            day.unit4.extend(unit4);
        }
        self.caught_up = false;
        Ok(changes)
    }

    /// The first stream sequence the last simulated day's events can have.
    pub fn current_day_first_sequence(&self) -> Option<u64> {
        self.days.last().map(|day| day.first_sequence)
    }

    /// Simulated days advanced so far.
    pub fn days(&self) -> u32 {
        u32::try_from(self.days.len()).unwrap_or(u32::MAX)
    }

    /// Reads the stream from `from_sequence` to its current end, decoded. Returns the events
    /// and the number of messages that did not decode.
    pub async fn read_events(
        &self,
        from_sequence: u64,
    ) -> anyhow::Result<(Vec<ObservedEvent>, u64)> {
        let stream = self.topology.events_stream().await?;
        let spec = ReadSpec {
            filter_subjects: vec![self.topology.names.events_wildcard()],
            start: StartAt::Sequence(from_sequence.max(1)),
            follow: false,
        };
        let mut events = Vec::new();
        let mut undecodable = 0u64;
        read_stream(&stream, &spec, |message| {
            match koppel_events::decode(&message.payload) {
                Ok(event) => {
                    let header = event.header();
                    events.push(ObservedEvent {
                        stream_sequence: message.stream_sequence,
                        event_id: header.event_id.to_string(),
                        event_type: header.event_type,
                        connection_id: header.connection_id.clone(),
                        employer_key: header.employer_key.clone(),
                        entity_id: header.entity_id.clone(),
                        revision: header.revision,
                        stored_at: message.published,
                        changed_fields: header.changed_fields.clone(),
                    });
                }
                Err(_) => undecodable += 1,
            }
            true
        })
        .await?;
        Ok((events, undecodable))
    }

    /// Ground-truth discrepancies of day `index` (0-based) against `events` (the stream from
    /// at least that day's first sequence).
    fn day_discrepancies(&self, index: usize, events: &[ObservedEvent]) -> Vec<DayDiscrepancy> {
        let Some(day) = self.days.get(index) else {
            return Vec::new();
        };
        let end = self
            .days
            .get(index + 1)
            .map_or(u64::MAX, |next| next.first_sequence);
        let mut emitted = EmittedByConnection::new();
        for event in events.iter().filter(|event| {
            event.stream_sequence >= day.first_sequence && event.stream_sequence < end
        }) {
            record_published(
                &mut emitted,
                &event.connection_id,
                event.event_type,
                &event.entity_id,
                &event.changed_fields,
            );
        }
        compare_day(
            u32::try_from(index + 1).unwrap_or(u32::MAX),
            &day.loket,
            &day.unit4,
            &emitted,
        )
    }

    /// Waits until every change of the last simulated day has its event in the stream, and
    /// every employer that published in the day's range has completed a sync since (see
    /// [`ChaosPipeline::unsaved_runs`]). So a run killed between publish and snapshot update
    /// is caught up only once a re-run has completed. Returns how long that took. Fails (with what is missing and the
    /// worker logs) at the deadline.
    pub async fn wait_caught_up(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let Some(index) = self.days.len().checked_sub(1) else {
            self.caught_up = true;
            return Ok(started.elapsed());
        };
        let from = self.days[index].first_sequence;
        let missing: Mutex<Vec<String>> = Mutex::default();
        let waited = eventually_every(
            &format!("the extractor caught up with day {}", index + 1),
            self.options.wait_timeout,
            STREAM_POLL,
            || async {
                // A read error (NATS restarting) is "not yet", until the deadline.
                let now_missing: Vec<String> = match self.read_events(from).await {
                    Ok((events, _)) => {
                        let mut now_missing: Vec<String> = self
                            .day_discrepancies(index, &events)
                            .into_iter()
                            .filter(|discrepancy| discrepancy.discrepancy.is_loss())
                            .map(|discrepancy| discrepancy.to_string())
                            .collect();
                        now_missing.extend(self.unsaved_runs(&events).await);
                        now_missing
                    }
                    Err(error) => vec![format!("cannot read the stream: {error:#}")],
                };
                let caught_up = now_missing.is_empty();
                *missing.lock().unwrap_or_else(PoisonError::into_inner) = now_missing;
                Ok(caught_up)
            },
        )
        .await;
        let took = waited.with_context(|| {
            format!(
                "{}: missing:\n{}\n{}",
                self.options.scenario,
                missing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .join("\n"),
                self.worker_logs()
            )
        })?;
        self.caught_up = true;
        Ok(took)
    }

    /// Employers with events in `events` whose run has not finished: no sync of theirs has
    /// completed (watermark `last_sync_at`, written after the snapshot) since their last event
    /// was stored. A run killed between publish and snapshot update stays here until a re-run
    /// completes; a re-run that finds nothing left to publish (the killed run saved part of
    /// its snapshot) still completes, so this does not wait for a marker it will not get.
    pub async fn unsaved_runs(&self, events: &[ObservedEvent]) -> Vec<String> {
        let mut last_stored: BTreeMap<&str, chrono::DateTime<chrono::Utc>> = BTreeMap::new();
        for event in events {
            let entry = last_stored
                .entry(event.employer_key.as_str())
                .or_insert(event.stored_at);
            *entry = (*entry).max(event.stored_at);
        }
        let mut unsaved = Vec::new();
        for (employer, stored_at) in last_stored {
            match koppel_extract::Watermark::load(&self.topology.watermarks, employer).await {
                Ok(Some(watermark))
                    if watermark
                        .last_sync_at
                        .is_some_and(|finished| finished >= stored_at) => {}
                Ok(watermark) => unsaved.push(format!(
                    "{employer}: events stored {stored_at}, last sync finished {:?}",
                    watermark.and_then(|watermark| watermark.last_sync_at)
                )),
                Err(error) => unsaved.push(format!("{employer}: {error:#}")),
            }
        }
        unsaved
    }

    /// Employers whose events in `events` were published more than once (the publish observer
    /// saw an id again) or closed twice under one revision (two `SyncCompleted` markers): a
    /// run that published and was then re-run from the same snapshot, which is what a kill
    /// between publish and snapshot update leaves.
    pub fn republished_employers(&self, events: &[ObservedEvent]) -> BTreeSet<String> {
        let repeated = self.observer.repeated_ids();
        let mut markers: BTreeMap<(&str, i64), u32> = BTreeMap::new();
        let mut employers = BTreeSet::new();
        for event in events {
            if event.event_type == EventType::SyncCompleted {
                *markers
                    .entry((event.employer_key.as_str(), event.revision))
                    .or_insert(0) += 1;
            }
            if repeated.contains(&event.event_id) {
                employers.insert(event.employer_key.clone());
            }
        }
        for ((employer, _), count) in markers {
            if count > 1 {
                employers.insert(employer.to_owned());
            }
        }
        employers
    }

    /// Messages pending plus unacknowledged on `recipient`'s consumer (`None` before the
    /// deliverer created it).
    pub async fn backlog(&self, recipient: &str) -> anyhow::Result<Option<u64>> {
        backlog(&self.topology, recipient).await
    }

    /// Waits until every recipient's consumer has nothing pending and nothing unacknowledged.
    pub async fn wait_drained(&self) -> anyhow::Result<Duration> {
        wait_until_drained(&self.topology, &RECIPIENTS, self.options.wait_timeout)
            .await
            .with_context(|| format!("{}\n{}", self.options.scenario, self.worker_logs()))
    }

    /// Polls `condition` until it holds or `timeout` passes.
    pub async fn wait_for<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        condition: F,
    ) -> anyhow::Result<Duration>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        eventually(what, timeout, condition)
            .await
            .with_context(|| format!("{}\n{}", self.options.scenario, self.worker_logs()))
    }

    /// The snapshot's sync revision of `employer_key`: it moves only when a run saved its
    /// snapshot, which is after every event of the run was acknowledged.
    pub async fn snapshot_revision(&self, employer_key: &str) -> anyhow::Result<i64> {
        Ok(
            koppel_extract::snapshot::Snapshot::load(&self.topology.snapshots, employer_key)
                .await?
                .sync_revision,
        )
    }

    /// Snapshot revisions of every employer.
    pub async fn snapshot_revisions(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let mut revisions = BTreeMap::new();
        for (employer, _) in &self.employers {
            revisions.insert(employer.clone(), self.snapshot_revision(employer).await?);
        }
        Ok(revisions)
    }

    /// Compares everything: each simulated day's ground truth with that day's events in the
    /// stream, and the whole stream with what each recipient simulator received or
    /// dead-lettered. Call it after [`ChaosPipeline::wait_caught_up`] and
    /// [`ChaosPipeline::wait_drained`].
    pub async fn verify(&self, time_to_recover: Duration) -> anyhow::Result<ChaosReport> {
        let (events, undecodable) = self.read_events(1).await?;
        let mut discrepancies = Vec::new();
        let mut ground_truth_changes = 0u64;
        for (index, day) in self.days.iter().enumerate() {
            ground_truth_changes +=
                (expected_events(&day.loket).len() + expected_events(&day.unit4).len()) as u64;
            discrepancies.extend(self.day_discrepancies(index, &events));
        }
        let mut score = GroundTruthScore::default();
        score.add(&discrepancies);
        let mut problems: Vec<String> = discrepancies.iter().map(ToString::to_string).collect();

        let check = check_delivery(&self.topology, &self.registry, &self.suite).await?;
        for (recipient, side) in [(INSURER, &check.insurer), (WEBHOOK, &check.webhook)] {
            problems.extend(
                side.missing
                    .iter()
                    .map(|event_id| format!("{recipient}: never received {event_id}")),
            );
        }
        if undecodable > 0 {
            problems.push(format!("{undecodable} stream messages do not decode"));
        }
        let per_recipient = |insurer: u64, webhook: u64| {
            BTreeMap::from([(INSURER.to_owned(), insurer), (WEBHOOK.to_owned(), webhook)])
        };
        let distinct_ids: BTreeSet<&str> =
            events.iter().map(|event| event.event_id.as_str()).collect();
        let duplicate_ids_in_stream = (events.len() - distinct_ids.len()) as u64;
        // One revision of an entity should name one content: a second event id under the same
        // (entity, revision) is content the snapshot never recorded being superseded.
        let mut ids_per_revision: BTreeMap<(&str, &str, i64), BTreeSet<&str>> = BTreeMap::new();
        for event in events
            .iter()
            .filter(|event| event.event_type != EventType::SyncCompleted)
        {
            ids_per_revision
                .entry((
                    event.employer_key.as_str(),
                    event.entity_id.as_str(),
                    event.revision,
                ))
                .or_default()
                .insert(event.event_id.as_str());
        }
        let revisions_reused = ids_per_revision
            .values()
            .filter(|ids| ids.len() > 1)
            .count() as u64;
        let publishes = self.observer.counts();
        let mut report = ChaosReport {
            scenario: self.options.scenario.clone(),
            days: self.days(),
            ground_truth_changes,
            events_in_stream: events.len() as u64 + undecodable,
            lost_in_extraction: score.lost,
            lost_in_delivery: per_recipient(
                check.insurer.missing.len() as u64 + undecodable,
                check.webhook.missing.len() as u64 + undecodable,
            ),
            order_violations: per_recipient(
                check.insurer.order_violations,
                check.webhook.order_violations,
            ),
            duplicates_absorbed_at_publish: publishes.repeats(),
            duplicates_absorbed_by_recipient: per_recipient(
                check.insurer.duplicates,
                check.webhook.duplicates,
            ),
            duplicates_with_different_body: check.webhook_summary.duplicates_with_different_body,
            dead_lettered: per_recipient(check.insurer.dead_lettered, check.webhook.dead_lettered),
            delivered: per_recipient(check.insurer.delivered, check.webhook.delivered),
            ground_truth_mismatches: score.mismatches,
            duplicate_ids_in_stream,
            revisions_reused,
            time_to_recover,
            figures: BTreeMap::new(),
            problems,
        };
        report
            .figure("publishes observed", publishes.messages)
            .figure(
                "first full sync took",
                crate::seconds_text(self.first_sync_took),
            )
            .figure(
                "pipeline start took",
                format!(
                    "{} (koppel binary {})",
                    crate::seconds_text(self.start_took),
                    crate::seconds_text(self.binary_took)
                ),
            )
            .figure("extractor starts", self.extractor.starts())
            .figure("deliverer starts", self.deliverer.starts());
        Ok(report)
    }

    /// The tail of both workers' logs.
    pub fn worker_logs(&self) -> String {
        format!(
            "{}\n{}",
            self.extractor.log_tail(40),
            self.deliverer.log_tail(40)
        )
    }

    /// Panics with the report and the workers' logs unless the report passed.
    #[track_caller]
    pub fn assert_pass(&self, report: &ChaosReport) {
        assert!(report.passed(), "{}\n{}", report.text(), self.worker_logs());
    }

    /// Kills both workers, stops the simulators and removes the work directory (on drop).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for worker in [&mut self.extractor, &mut self.deliverer] {
            if worker.is_running() {
                worker.kill_9()?;
            }
        }
        self.shutdown.cancel();
        Ok(())
    }
}

impl Drop for ChaosPipeline {
    /// On a failing test (a panic before `stop`), prints the workers' logs and keeps the work
    /// directory for a look; otherwise removes it.
    #[allow(
        clippy::print_stderr,
        reason = "a failing test's diagnostics go to its output"
    )]
    fn drop(&mut self) {
        self.shutdown.cancel();
        if std::thread::panicking() {
            eprintln!(
                "{}: worker logs kept in {}\n{}",
                self.options.scenario,
                self.workdir.display(),
                self.worker_logs()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.workdir);
        }
    }
}

/// The sections both workers' configs share: where NATS is, the client name the worker
/// connects as, and the stream replicas.
fn worker_toml_header(options: &PipelineOptions, worker: &str) -> String {
    format!(
        r#"# Written by the chaos harness.
[nats]
url = "{url}"
client_name = "koppel-chaos-{worker}"
initial_connect_timeout = 0

[topology]
replicas = {replicas}
"#,
        url = options.nats_url,
        replicas = options.replicas,
    )
}

fn extractor_toml(options: &PipelineOptions) -> String {
    format!(
        r#"{header}
[publisher]
retry_for_seconds = 120

[http]
timeout_seconds = 10

[extraction]
# A fixed replica id: a restarted extractor takes over its own leases at once, as a
# StatefulSet pod would, instead of waiting for them to expire.
replica_id = "chaos-extractor"
lease_seconds = 60
tick_milliseconds = 100
max_concurrent_employers = 4
"#,
        header = worker_toml_header(options, "extractor"),
    )
}

fn deliverer_toml(options: &PipelineOptions) -> String {
    format!(
        r#"{header}
[http]
timeout_seconds = 5

[retry]
initial_backoff_millis = {initial}
max_backoff_millis = {max}
jitter = true
max_attempts = {attempts}
max_age_seconds = 3600

[consumer]
ack_wait_seconds = {ack_wait}
shutdown_grace_seconds = 1
"#,
        header = worker_toml_header(options, "deliverer"),
        initial = options.retry_initial_backoff_millis,
        max = options.retry_max_backoff_millis,
        attempts = options.retry_max_attempts,
        ack_wait = options.ack_wait_seconds,
    )
}
