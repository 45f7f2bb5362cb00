//! The shared harness: a simulated Loket world served over HTTP, an isolated koppel topology,
//! a registered connection with its employers, and an extractor wired to both.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use koppel_events::{Event, EventType, SyncKind};
use koppel_extract::loket::{LoketSettings, client_secret_context, store_refresh_token};
use koppel_extract::{ExtractionSettings, Extractor, RetryPolicy, SyncOptions, SyncOutcome};
use koppel_nats::{PublisherSettings, Topology};
use koppel_registry::{
    Connection, ConnectionSettings, EmployerRegistration, LoketConnectionSettings, Registry,
    SecretKey,
};
use koppel_sim::loket::{
    AuthorizingUser, LoketSimulator, LoketSimulatorConfig, RunningLoketSimulator, spawn,
};
use koppel_sim::world::{MutationRates, World, WorldConfig};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) const USER: &str = "provider.admin";
pub(crate) const CONNECTION_ID: &str = "loket-test";

pub(crate) struct Harness {
    pub(crate) simulator: LoketSimulator,
    pub(crate) running: RunningLoketSimulator,
    shutdown: CancellationToken,
    pub(crate) topology: Topology,
    pub(crate) key: SecretKey,
    pub(crate) extractor: Extractor,
    /// Employer keys in world order, and the world's employer ids.
    pub(crate) employer_keys: Vec<String>,
    pub(crate) employer_ids: Vec<Uuid>,
}

/// Retries fast: tests exercise the logic, not the patience. Both sources use it.
pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 12,
        min_delay_milliseconds: 5,
        max_delay_milliseconds: 100,
        max_retry_after_seconds: 5,
    }
}

/// Fast retries (see [`fast_retry`]).
pub(crate) fn fast_loket_settings() -> LoketSettings {
    LoketSettings {
        page_size: 50,
        retry: fast_retry(),
        token_race_grace_seconds: 5,
        ..LoketSettings::default()
    }
}

impl Harness {
    pub(crate) async fn start(
        seed: u64,
        employers: usize,
        employees: usize,
        rates: MutationRates,
    ) -> Self {
        Self::start_with(seed, employers, employees, rates, 20).await
    }

    pub(crate) async fn start_with(
        seed: u64,
        employers: usize,
        employees: usize,
        rates: MutationRates,
        removal_threshold_percent: u8,
    ) -> Self {
        let world = World::generate(WorldConfig::new(seed, employers, employees).with_rates(rates));
        let (employer_ids, names) = employer_ids_and_names(&world);
        let simulator = LoketSimulator::new(world.into_shared(), LoketSimulatorConfig::default());
        simulator.register_authorizing_user(AuthorizingUser::with_full_access(USER));
        let shutdown = CancellationToken::new();
        let running = spawn(simulator.clone(), shutdown.clone()).await.unwrap();
        let topology = koppel_test_support::topology().await;
        let key = new_secret_key();

        let config = simulator.config().clone();
        let registry = Registry::new(topology.registry.clone());
        let connection = Connection {
            id: CONNECTION_ID.to_owned(),
            settings: ConnectionSettings::Loket(LoketConnectionSettings {
                oauth_base_url: running.oauth_base_url(),
                api_base_url: running.api_base_url(),
                client_id: config.client_id.clone(),
                client_secret: key
                    .seal(
                        &SecretString::from(config.client_secret.clone().unwrap_or_default()),
                        &client_secret_context(CONNECTION_ID),
                    )
                    .unwrap(),
                redirect_uri: config.redirect_uri.clone(),
            }),
            poll_interval_seconds: 1,
            full_sync_interval_seconds: 24 * 60 * 60,
        };
        registry.put_connection(&connection).await.unwrap();
        let employer_keys = register_employers(
            &registry,
            CONNECTION_ID,
            "employer",
            &employer_ids,
            &names,
            removal_threshold_percent,
        )
        .await;
        let refresh_token = simulator.issue_refresh_token(USER).unwrap();
        store_refresh_token(
            &topology.tokens,
            &key,
            CONNECTION_ID,
            &SecretString::from(refresh_token),
        )
        .await
        .unwrap();
        let extractor = new_extractor(&topology, &key, fast_loket_settings());
        Harness {
            simulator,
            running,
            shutdown,
            topology,
            key,
            extractor,
            employer_keys,
            employer_ids,
        }
    }

    /// Another extractor on the same topology (a second replica), with its own token manager.
    pub(crate) fn another_extractor(&self) -> Extractor {
        new_extractor(&self.topology, &self.key, fast_loket_settings())
    }

    pub(crate) fn today(&self) -> NaiveDate {
        self.simulator.with_world(|world| world.today())
    }

    pub(crate) fn options(&self, kind: Option<SyncKind>) -> SyncOptions {
        sync_options(self.today(), kind)
    }

    pub(crate) async fn sync(&self, employer_index: usize, kind: Option<SyncKind>) -> SyncOutcome {
        self.extractor
            .sync_employer_once(&self.employer_keys[employer_index], &self.options(kind))
            .await
            .unwrap()
    }

    /// Every event in the events stream, decoded, in stream order.
    pub(crate) async fn stored_events(&self) -> Vec<Event> {
        stored_events(&self.topology).await
    }

    pub(crate) async fn stored_message_count(&self) -> u64 {
        stored_message_count(&self.topology).await
    }

    pub(crate) async fn stop(self) {
        stop_simulator(&self.shutdown, self.running.stopped()).await;
    }
}

// The helpers below are the parts of the harness that do not depend on the source; the Unit4
// harness (`unit4_support`) uses them too.

/// A fresh sealing key for one harness.
pub(crate) fn new_secret_key() -> SecretKey {
    SecretKey::from_base64(&SecretKey::generate_base64().unwrap()).unwrap()
}

/// The world's employer ids and company names, in world order.
pub(crate) fn employer_ids_and_names(world: &World) -> (Vec<Uuid>, Vec<String>) {
    let employer_ids: Vec<Uuid> = world.employers().iter().map(|e| e.id).collect();
    let names: Vec<String> = world
        .employers()
        .iter()
        .map(|e| e.company_name.clone())
        .collect();
    (employer_ids, names)
}

/// Registers every world employer under `connection_id` as `{key_prefix}-{index}`; returns
/// the employer keys in world order.
pub(crate) async fn register_employers(
    registry: &Registry,
    connection_id: &str,
    key_prefix: &str,
    employer_ids: &[Uuid],
    names: &[String],
    removal_threshold_percent: u8,
) -> Vec<String> {
    let mut employer_keys = Vec::new();
    for (index, (id, name)) in employer_ids.iter().zip(names).enumerate() {
        let employer_key = format!("{key_prefix}-{index}");
        registry
            .put_employer(&EmployerRegistration {
                employer_key: employer_key.clone(),
                connection_id: connection_id.to_owned(),
                source_employer_id: id.to_string(),
                name: name.clone(),
                payroll_tax_number: None,
                recipients: Vec::new(),
                removal_threshold_percent,
                enabled: true,
            })
            .await
            .unwrap();
        employer_keys.push(employer_key);
    }
    employer_keys
}

/// Sync options for the simulated world's today.
pub(crate) fn sync_options(today: NaiveDate, kind: Option<SyncKind>) -> SyncOptions {
    SyncOptions {
        kind,
        reference_date: Some(today),
        ..SyncOptions::default()
    }
}

/// Every event in the topology's events stream, decoded, in stream order.
pub(crate) async fn stored_events(topology: &Topology) -> Vec<Event> {
    let mut stream = topology.events_stream().await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut events = Vec::new();
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.unwrap();
        events.push(koppel_events::decode(&message.payload).unwrap());
    }
    events
}

pub(crate) async fn stored_message_count(topology: &Topology) -> u64 {
    let mut stream = topology.events_stream().await.unwrap();
    stream.info().await.unwrap().state.messages
}

/// Cancels a simulator and waits (at most five seconds) for it to stop.
pub(crate) async fn stop_simulator(
    shutdown: &CancellationToken,
    stopped: impl Future<Output = std::io::Result<()>>,
) {
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), stopped).await;
}

pub(crate) fn new_extractor(
    topology: &Topology,
    key: &SecretKey,
    loket: LoketSettings,
) -> Extractor {
    // reqwest is built without a default TLS provider; the processes install ring.
    let http = koppel_runtime::http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Extractor::new(
        topology.clone(),
        PublisherSettings::default(),
        key.clone(),
        http,
        loket,
        ExtractionSettings::default(),
    )
}

pub(crate) fn counts(outcome: &SyncOutcome) -> BTreeMap<EventType, usize> {
    koppel_extract::engine::counts_by_type(&outcome.published)
}
