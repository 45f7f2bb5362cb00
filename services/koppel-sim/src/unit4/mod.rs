//! The Unit4 HR & Salarisgemak simulator: Unit4 Identity Services (IDS) client credentials and
//! a resource API over the shared [`crate::world`].
//!
//! The Web API's paths and JSON are not public (`shared/apis/sources.md` section 2). What this
//! simulator serves is koppel's **provisional contract**, written down in
//! `docs/sources/unit4.md`: Unit4's idiom (IDS `/identity/connect/token`, a versioned REST API)
//! with the Dutch domain names the product uses (werkgevers, werknemers, dienstverbanden,
//! salarisgegevens). A real deployment maps its paths through configuration
//! (`koppel_registry::Unit4Paths`), not code.
//!
//! Authorisation follows the product's setup: a payroll processor links employers to a user
//! group and creates a web-API user in it; the insurer receives that user's client id and
//! secret. A client sees only its group's employers; any other employer answers 403.
//!
//! # Layout
//! - `http`: the token endpoint, the resource handlers, paging and errors.
//! - `render`: world entities to the contract's JSON.

mod http;
mod render;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLockReadGuard};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::faults::{FaultConfig, FaultCounts, FaultInjector};
use crate::server::{self, ServerTask, lock};
use crate::world::{SharedWorld, World};

/// Where the resource API lives below the listener's root.
pub const API_PREFIX: &str = "/api/hr/v1";
/// The IDS token path, as Unit4 ERP's public example shows it.
pub const TOKEN_PATH: &str = "/identity/connect/token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit4SimulatorConfig {
    /// The scope a client must ask for.
    pub scope: String,
    pub access_token_lifetime: Duration,
    /// Page size when a request names none, and the largest honoured.
    pub default_page_size: u32,
    pub max_page_size: u32,
    pub fault_seed: u64,
}

impl Default for Unit4SimulatorConfig {
    fn default() -> Self {
        Unit4SimulatorConfig {
            scope: "hr-salarisgemak.api".to_owned(),
            access_token_lifetime: Duration::from_secs(3600),
            default_page_size: 100,
            max_page_size: 500,
            fault_seed: 0x0414,
        }
    }
}

/// A web-API user: client credentials plus the employers its user group holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebApiClient {
    pub client_id: String,
    pub client_secret: String,
    pub employers: HashSet<Uuid>,
}

#[derive(Debug)]
struct IssuedToken {
    client_id: String,
    expires_at: Instant,
}

#[derive(Debug)]
struct SimulatorState {
    world: SharedWorld,
    config: Unit4SimulatorConfig,
    clients: Mutex<HashMap<String, WebApiClient>>,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    faults: FaultInjector,
    calls: Mutex<BTreeMap<String, u64>>,
}

/// The Unit4 simulator; clones share state.
#[derive(Debug, Clone)]
pub struct Unit4Simulator {
    inner: Arc<SimulatorState>,
}

impl Unit4Simulator {
    pub fn new(world: SharedWorld, config: Unit4SimulatorConfig) -> Self {
        let faults = FaultInjector::new(config.fault_seed);
        Unit4Simulator {
            inner: Arc::new(SimulatorState {
                world,
                config,
                clients: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
                faults,
                calls: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &Unit4SimulatorConfig {
        &self.inner.config
    }

    /// Registers (or replaces) a web-API user linked to `employers`.
    pub fn register_client(&self, client: WebApiClient) {
        lock(&self.inner.clients).insert(client.client_id.clone(), client);
    }

    /// Links one more employer to a client's user group.
    pub fn link_employer(&self, client_id: &str, employer_id: Uuid) {
        if let Some(client) = lock(&self.inner.clients).get_mut(client_id) {
            client.employers.insert(employer_id);
        }
    }

    /// Makes every access token issued so far expire now.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for token in lock(&self.inner.tokens).values_mut() {
            token.expires_at = now;
        }
    }

    pub fn configure_faults(&self, config: FaultConfig) {
        self.inner.faults.configure(config);
    }

    pub fn fault_counts(&self) -> FaultCounts {
        self.inner.faults.counts()
    }

    /// Requests served per path family (ids shown as `{id}`), faulted ones included.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        lock(&self.inner.calls).clone()
    }

    /// Requests to the resource API served so far.
    pub fn api_call_count(&self) -> u64 {
        lock(&self.inner.calls)
            .iter()
            .filter(|(route, _)| route.starts_with(API_PREFIX))
            .map(|(_, count)| count)
            .sum()
    }

    pub fn reset_call_counts(&self) {
        lock(&self.inner.calls).clear();
    }

    pub fn shared_world(&self) -> SharedWorld {
        Arc::clone(&self.inner.world)
    }

    pub fn with_world<R>(&self, read: impl FnOnce(&World) -> R) -> R {
        read(&self.world_read())
    }

    pub fn router(&self) -> Router {
        http::router(self.clone())
    }

    fn world_read(&self) -> RwLockReadGuard<'_, World> {
        self.inner
            .world
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves the simulator on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    simulator: Unit4Simulator,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    server::serve_router(listener, simulator.router(), shutdown).await
}

/// A simulator serving on a local port.
#[derive(Debug)]
pub struct RunningUnit4Simulator {
    pub address: SocketAddr,
    task: ServerTask,
}

impl RunningUnit4Simulator {
    /// The IDS token URL.
    pub fn token_url(&self) -> String {
        format!("http://{}{TOKEN_PATH}", self.address)
    }

    /// The resource API base URL (paths such as `/werkgevers` go below it).
    pub fn api_base_url(&self) -> String {
        format!("http://{}{API_PREFIX}", self.address)
    }

    pub async fn stopped(self) -> std::io::Result<()> {
        server::join(self.task).await
    }
}

/// Binds `127.0.0.1:0` and serves the simulator there until `shutdown` is cancelled.
pub async fn spawn(
    simulator: Unit4Simulator,
    shutdown: CancellationToken,
) -> std::io::Result<RunningUnit4Simulator> {
    let (address, task) = server::spawn_on_local_port(simulator.router(), shutdown).await?;
    Ok(RunningUnit4Simulator { address, task })
}
