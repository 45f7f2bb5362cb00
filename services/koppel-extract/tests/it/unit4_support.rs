//! The Unit4 harness: a simulated world served by the Unit4 simulator over HTTP, an isolated
//! koppel topology, a registered Unit4 connection with its employers, and an extractor wired
//! to both. The Loket harness (`support`) is its twin.

use std::collections::HashSet;

use chrono::NaiveDate;
use koppel_events::{Event, SyncKind};
use koppel_extract::unit4::Unit4Settings;
use koppel_extract::{ExtractError, Extractor, SyncOptions, SyncOutcome, client_secret_context};
use koppel_nats::Topology;
use koppel_registry::{
    Connection, ConnectionSettings, Registry, SecretKey, Unit4ConnectionSettings, Unit4Paths,
};
use koppel_sim::unit4::{
    RunningUnit4Simulator, Unit4Simulator, Unit4SimulatorConfig, WebApiClient, spawn,
};
use koppel_sim::world::{MutationRates, RecordMalformation, World, WorldChange, WorldConfig};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{
    employer_ids_and_names, fast_loket_settings, fast_retry, new_extractor, new_secret_key,
    register_employers, stop_simulator, stored_events, stored_message_count, sync_options,
};

pub(crate) const UNIT4_CONNECTION_ID: &str = "unit4-test";
pub(crate) const CLIENT_ID: &str = "koppel-webapi";
pub(crate) const CLIENT_SECRET: &str = "unit4-client-secret";

pub(crate) struct Unit4Harness {
    pub(crate) simulator: Unit4Simulator,
    pub(crate) running: RunningUnit4Simulator,
    shutdown: CancellationToken,
    pub(crate) topology: Topology,
    pub(crate) key: SecretKey,
    pub(crate) extractor: Extractor,
    /// Employer keys in world order, and the world's employer ids.
    pub(crate) employer_keys: Vec<String>,
    pub(crate) employer_ids: Vec<Uuid>,
}

/// Small pages and fast retries: tests exercise paging and retries, not patience.
pub(crate) fn fast_unit4_settings() -> Unit4Settings {
    Unit4Settings {
        page_size: 25,
        retry: fast_retry(),
        ..Unit4Settings::default()
    }
}

/// How to start a harness.
pub(crate) struct Unit4Setup {
    pub(crate) seed: u64,
    pub(crate) employers: usize,
    pub(crate) employees: usize,
    pub(crate) rates: MutationRates,
    pub(crate) removal_threshold_percent: u8,
    /// World employers (by index) the web-API user's group does not hold; they are
    /// registered in koppel all the same.
    pub(crate) unlinked: Vec<usize>,
    pub(crate) client_secret_in_registry: String,
}

impl Unit4Setup {
    pub(crate) fn new(seed: u64, employers: usize, employees: usize) -> Self {
        Unit4Setup {
            seed,
            employers,
            employees,
            rates: MutationRates::none(),
            removal_threshold_percent: 20,
            unlinked: Vec::new(),
            client_secret_in_registry: CLIENT_SECRET.to_owned(),
        }
    }
}

impl Unit4Harness {
    pub(crate) async fn start(seed: u64, employers: usize, employees: usize) -> Self {
        Self::start_with(Unit4Setup::new(seed, employers, employees)).await
    }

    pub(crate) async fn start_with(setup: Unit4Setup) -> Self {
        let world = World::generate(
            WorldConfig::new(setup.seed, setup.employers, setup.employees).with_rates(setup.rates),
        );
        let (employer_ids, names) = employer_ids_and_names(&world);
        let simulator = Unit4Simulator::new(world.into_shared(), Unit4SimulatorConfig::default());
        let linked: HashSet<Uuid> = employer_ids
            .iter()
            .enumerate()
            .filter(|(index, _)| !setup.unlinked.contains(index))
            .map(|(_, id)| *id)
            .collect();
        simulator.register_client(WebApiClient {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            employers: linked,
        });
        let shutdown = CancellationToken::new();
        let running = spawn(simulator.clone(), shutdown.clone()).await.unwrap();
        let topology = koppel_test_support::topology().await;
        let key = new_secret_key();

        let registry = Registry::new(topology.registry.clone());
        let connection = Connection {
            id: UNIT4_CONNECTION_ID.to_owned(),
            settings: ConnectionSettings::Unit4(Unit4ConnectionSettings {
                token_url: running.token_url(),
                scope: simulator.config().scope.clone(),
                api_base_url: running.api_base_url(),
                client_id: CLIENT_ID.to_owned(),
                client_secret: key
                    .seal(
                        &SecretString::from(setup.client_secret_in_registry.clone()),
                        &client_secret_context(UNIT4_CONNECTION_ID),
                    )
                    .unwrap(),
                paths: Unit4Paths::default(),
            }),
            poll_interval_seconds: 1,
            full_sync_interval_seconds: 24 * 60 * 60,
        };
        registry.put_connection(&connection).await.unwrap();
        let employer_keys = register_employers(
            &registry,
            UNIT4_CONNECTION_ID,
            "unit4-employer",
            &employer_ids,
            &names,
            setup.removal_threshold_percent,
        )
        .await;
        let extractor = new_unit4_extractor(&topology, &key, fast_unit4_settings());
        Unit4Harness {
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

    /// Another extractor on the same topology, with its own token cache.
    pub(crate) fn another_extractor(&self, settings: Unit4Settings) -> Extractor {
        new_unit4_extractor(&self.topology, &self.key, settings)
    }

    pub(crate) fn today(&self) -> NaiveDate {
        self.simulator.with_world(|world| world.today())
    }

    pub(crate) fn options(&self, kind: Option<SyncKind>) -> SyncOptions {
        sync_options(self.today(), kind)
    }

    pub(crate) async fn try_sync(
        &self,
        employer_index: usize,
        kind: Option<SyncKind>,
    ) -> Result<SyncOutcome, ExtractError> {
        self.extractor
            .sync_employer_once(&self.employer_keys[employer_index], &self.options(kind))
            .await
    }

    pub(crate) async fn sync(&self, employer_index: usize, kind: Option<SyncKind>) -> SyncOutcome {
        self.try_sync(employer_index, kind).await.unwrap()
    }

    pub(crate) fn advance_days(&self, days: u32) -> Vec<WorldChange> {
        let world = self.simulator.shared_world();
        let mut world = world.write().unwrap();
        world.advance_days(days).to_vec()
    }

    pub(crate) fn inject_malformation(&self, employee_id: Uuid, malformation: RecordMalformation) {
        let world = self.simulator.shared_world();
        let mut world = world.write().unwrap();
        world
            .inject_malformation(employee_id, malformation)
            .unwrap();
    }

    /// Requests to the token endpoint so far.
    pub(crate) fn token_calls(&self) -> u64 {
        self.simulator
            .call_counts()
            .get(koppel_sim::unit4::TOKEN_PATH)
            .copied()
            .unwrap_or(0)
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

pub(crate) fn new_unit4_extractor(
    topology: &Topology,
    key: &SecretKey,
    settings: Unit4Settings,
) -> Extractor {
    new_extractor(topology, key, fast_loket_settings()).with_unit4_settings(settings)
}
