//! The Loket.nl simulator: OAuth2 with rotating refresh tokens and the v2 REST API.
//!
//! It serves a [`crate::world`] in the shapes `shared/apis/sources.md` section 1 documents, on
//! one listener: the OAuth server paths (`/authorize`, `/token`) and the API under `/v2`, so a
//! client configured with `oauth_base_url = http://addr` and `api_base_url = http://addr/v2`
//! talks to it exactly as to `oauth.loket.nl` and `api.loket.nl/v2`.
//!
//! Tests and the demo drive it in-process through [`LoketSimulator`]'s control methods: advance
//! the world, register authorizing users, issue refresh tokens, expire access tokens, configure
//! faults and read per-route call counts.
//!
//! # Layout
//! - `oauth`: `/authorize`, `/token`, the token store and bearer authentication.
//! - `api`: the `/v2` handlers, paging, the `lastModifiedVersionNumber` filter and errors.
//! - `render`: world entities to Loket JSON.

mod api;
mod oauth;
mod render;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::faults::{FaultConfig, FaultCounts, FaultInjector};
use crate::server::{self, ServerTask, lock};
use crate::world::{RecordMalformation, SharedWorld, World, WorldChange, WorldError};

pub use oauth::AUTHORIZATION_CODE_LIFETIME;

/// Static settings of one simulated Loket tenant and its registered OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoketSimulatorConfig {
    /// The client id Loket issued to the integration.
    pub client_id: String,
    /// The client secret, or `None` for a client configured without one (S1: "dependent on
    /// the configuration of the client"); then any or no secret is accepted.
    pub client_secret: Option<String>,
    /// The redirect URI registered for the client; `/authorize` and the code exchange must use
    /// exactly this value.
    pub redirect_uri: String,
    /// Lifetime of access tokens; Loket's is 3599 seconds ("60 minutes minus 1 second").
    pub access_token_lifetime: Duration,
    /// `pageSize` when a request names none. Loket's default is undocumented; 100 is a choice.
    pub default_page_size: u32,
    /// Largest `pageSize` honoured; larger requests are clamped to it and the envelope's
    /// `pageSize` shows the size used. Loket's maximum is undocumented; clients use up to 250.
    pub max_page_size: u32,
    /// Seed of the fault injector's draws.
    pub fault_seed: u64,
}

impl Default for LoketSimulatorConfig {
    fn default() -> Self {
        Self {
            client_id: "koppel-simulated-client".to_owned(),
            client_secret: Some("koppel-simulated-secret".to_owned()),
            redirect_uri: "https://koppel.invalid/loket/return".to_owned(),
            access_token_lifetime: Duration::from_secs(3599),
            default_page_size: 100,
            max_page_size: 1000,
            fault_seed: 0x10_4E7,
        }
    }
}

/// Which employers a Loket user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmployerAccess {
    /// Every employer of the world (a provider-level user).
    All,
    /// Only these employers.
    Only(HashSet<Uuid>),
}

impl EmployerAccess {
    pub fn allows(&self, employer_id: Uuid) -> bool {
        match self {
            EmployerAccess::All => true,
            EmployerAccess::Only(employers) => employers.contains(&employer_id),
        }
    }
}

/// A Loket user who authorizes the integration; access tokens act with this user's rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizingUser {
    /// The Loket login name; `/authorize` selects the user by it through `login_hint`.
    pub user_name: String,
    pub employer_access: EmployerAccess,
    /// Whether the user may read BSNs (`/citizenservicenumber` is authorised separately).
    pub may_read_citizen_service_numbers: bool,
    /// The user's filter setting "hide former employees": the employment lists (and their
    /// version feed) leave out employments whose end date has passed, as Loket's employment
    /// list "only returns the employments that meet the filter settings set at the user level".
    pub hides_former_employments: bool,
}

impl AuthorizingUser {
    /// A user who sees every employer and may read BSNs.
    pub fn with_full_access(user_name: impl Into<String>) -> Self {
        Self {
            user_name: user_name.into(),
            employer_access: EmployerAccess::All,
            may_read_citizen_service_numbers: true,
            hides_former_employments: false,
        }
    }

    /// The same user with the "hide former employees" filter switched on.
    pub fn hiding_former_employments(mut self) -> Self {
        self.hides_former_employments = true;
        self
    }

    /// A user who sees only the given employers and may not read BSNs.
    pub fn with_employers(
        user_name: impl Into<String>,
        employers: impl IntoIterator<Item = Uuid>,
    ) -> Self {
        Self {
            user_name: user_name.into(),
            employer_access: EmployerAccess::Only(employers.into_iter().collect()),
            may_read_citizen_service_numbers: false,
            hides_former_employments: false,
        }
    }
}

/// Why a control call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoketSimulatorError {
    #[error("no authorizing user named {0:?} is registered")]
    UnknownUser(String),
    #[error(transparent)]
    World(#[from] WorldError),
}

/// The Loket simulator: cheap to clone, every clone drives the same state.
#[derive(Debug, Clone)]
pub struct LoketSimulator {
    inner: Arc<SimulatorState>,
}

#[derive(Debug)]
struct SimulatorState {
    world: SharedWorld,
    config: LoketSimulatorConfig,
    tokens: Mutex<oauth::TokenStore>,
    faults: FaultInjector,
    /// Requests served per path family (for example `/v2/providers/employers/{id}/employees`),
    /// faulted ones included.
    calls: Mutex<BTreeMap<String, u64>>,
}

impl LoketSimulator {
    pub fn new(world: SharedWorld, config: LoketSimulatorConfig) -> Self {
        let faults = FaultInjector::new(config.fault_seed);
        Self {
            inner: Arc::new(SimulatorState {
                world,
                config,
                tokens: Mutex::new(oauth::TokenStore::default()),
                faults,
                calls: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &LoketSimulatorConfig {
        &self.inner.config
    }

    /// The world this simulator serves, for sharing with another simulator.
    pub fn shared_world(&self) -> SharedWorld {
        Arc::clone(&self.inner.world)
    }

    /// Runs `read` with the world locked for reading (keep it short: requests wait meanwhile).
    pub fn with_world<R>(&self, read: impl FnOnce(&World) -> R) -> R {
        read(&self.world_read())
    }

    /// Runs `change` with the world locked for writing.
    pub fn with_world_mut<R>(&self, change: impl FnOnce(&mut World) -> R) -> R {
        change(&mut self.world_write())
    }

    /// Advances the world by `days` and returns the ground-truth entries those days produced.
    pub fn advance_days(&self, days: u32) -> Vec<WorldChange> {
        self.world_write().advance_days(days).to_vec()
    }

    /// The world version counter (the highest `lastModifiedVersionNumber` handed out).
    pub fn world_version(&self) -> u64 {
        self.world_read().version()
    }

    /// Ground-truth entries with a version above `version`.
    pub fn changes_since(&self, version: u64) -> Vec<WorldChange> {
        self.world_read().changes_since(version).to_vec()
    }

    /// Makes an employer's employee and employment lists (and the employer-wide
    /// `actual...` lists) come back empty, or restores them.
    pub fn set_employee_list_empty(
        &self,
        employer_id: Uuid,
        empty: bool,
    ) -> Result<(), LoketSimulatorError> {
        Ok(self
            .world_write()
            .set_serves_empty_employee_list(employer_id, empty)?)
    }

    /// Serves one employee record with a defect; see [`RecordMalformation`] for what each
    /// defect looks like in Loket JSON.
    pub fn inject_malformation(
        &self,
        employee_id: Uuid,
        malformation: RecordMalformation,
    ) -> Result<(), LoketSimulatorError> {
        Ok(self
            .world_write()
            .inject_malformation(employee_id, malformation)?)
    }

    /// Registers (or replaces) a Loket user who can authorize the client.
    pub fn register_authorizing_user(&self, user: AuthorizingUser) {
        self.tokens().register_user(user);
    }

    /// Issues a refresh token for a registered user without the browser step, as if the user
    /// had authorized and the code had been exchanged once.
    pub fn issue_refresh_token(&self, user_name: &str) -> Result<String, LoketSimulatorError> {
        self.tokens().issue_refresh_token(user_name)
    }

    /// Makes every access token issued so far expire now; refresh tokens stay valid.
    pub fn expire_access_tokens(&self) {
        self.tokens().expire_access_tokens();
    }

    /// Replaces the fault configuration (429 with Retry-After, 503, slow answers).
    pub fn configure_faults(&self, config: FaultConfig) {
        self.inner.faults.configure(config);
    }

    pub fn fault_counts(&self) -> FaultCounts {
        self.inner.faults.counts()
    }

    /// Requests served so far per path family (UUID segments shown as `{id}`), faulted ones
    /// included; the OAuth paths count as `/authorize` and `/token`.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        lock(&self.inner.calls).clone()
    }

    /// All requests to `/v2` served so far.
    pub fn api_call_count(&self) -> u64 {
        lock(&self.inner.calls)
            .iter()
            .filter(|(route, _)| route.starts_with("/v2/"))
            .map(|(_, count)| count)
            .sum()
    }

    pub fn reset_call_counts(&self) {
        lock(&self.inner.calls).clear();
    }

    /// The axum router serving the OAuth and API paths.
    pub fn router(&self) -> Router {
        let providers = "/v2/providers/employers";
        Router::new()
            .route("/authorize", get(oauth::authorize))
            .route("/token", post(oauth::token))
            .route(providers, get(api::employers))
            .route(
                &format!("{providers}/lastmodifiedversionnumbers"),
                get(api::employer_versions),
            )
            .route(&format!("{providers}/{{employerId}}"), get(api::employer))
            .route(
                &format!("{providers}/{{employerId}}/employees"),
                get(api::employees),
            )
            .route(
                &format!("{providers}/{{employerId}}/employees/employments"),
                get(api::employments_of_employer),
            )
            .route(
                &format!(
                    "{providers}/{{employerId}}/employees/employments/lastmodifiedversionnumbers"
                ),
                get(api::employment_versions),
            )
            .route(
                &format!("{providers}/{{employerId}}/actualorganizationalentities"),
                get(api::actual_organizational_entities),
            )
            .route(
                &format!("{providers}/{{employerId}}/actualworkinghours"),
                get(api::actual_working_hours),
            )
            .route(
                &format!("{providers}/{{employerId}}/departments"),
                get(api::departments),
            )
            .route(
                &format!("{providers}/{{employerId}}/users"),
                get(api::users),
            )
            .route(
                &format!("{providers}/{{employerId}}/users/departments"),
                get(api::users_departments),
            )
            .route(
                &format!("{providers}/departments/{{departmentId}}"),
                get(api::department),
            )
            .route(
                &format!("{providers}/employees/{{employeeId}}"),
                get(api::employee),
            )
            .route(
                &format!("{providers}/employees/{{employeeId}}/citizenservicenumber"),
                get(api::citizen_service_number),
            )
            .route(
                &format!("{providers}/employees/{{employeeId}}/employments"),
                get(api::employments_of_employee),
            )
            .route(
                &format!("{providers}/employees/employments/{{employmentId}}"),
                get(api::employment),
            )
            .route(
                &format!(
                    "{providers}/employees/employments/{{employmentId}}/organizationalentities"
                ),
                get(api::organizational_entities),
            )
            .route(
                &format!("{providers}/employees/employments/{{employmentId}}/workinghours"),
                get(api::working_hours),
            )
            .route(
                &format!("{providers}/employees/employments/{{employmentId}}/wages"),
                get(api::wages),
            )
            .route_layer(middleware::from_fn_with_state(
                self.clone(),
                count_and_inject_faults,
            ))
            .with_state(self.clone())
    }

    fn world_read(&self) -> RwLockReadGuard<'_, World> {
        self.inner
            .world
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn world_write(&self) -> RwLockWriteGuard<'_, World> {
        self.inner
            .world
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn tokens(&self) -> MutexGuard<'_, oauth::TokenStore> {
        lock(&self.inner.tokens)
    }
}

/// Runs in front of every handler: counts the call under its path family, then draws a fault
/// (which may delay the request, or answer it with a 429 or 503 instead). Doing this in one
/// route layer puts the fault check at the top of every handler without repeating it in each.
async fn count_and_inject_faults(
    State(simulator): State<LoketSimulator>,
    request: Request,
    next: Next,
) -> Response {
    let family = path_family(request.uri().path());
    *lock(&simulator.inner.calls).entry(family).or_insert(0) += 1;
    if let Some(fault) = simulator.inner.faults.before_request().await {
        return fault.into_response();
    }
    next.run(request).await
}

/// The path with every UUID segment replaced by `{id}`, so calls group per endpoint
/// (`/v2/providers/employers/{id}/employees`) rather than per entity.
fn path_family(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if Uuid::parse_str(segment).is_ok() {
                "{id}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Serves the simulator on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    simulator: LoketSimulator,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    server::serve_router(listener, simulator.router(), shutdown).await
}

/// A simulator serving on a local port, as [`spawn`] started it.
#[derive(Debug)]
pub struct RunningLoketSimulator {
    pub address: SocketAddr,
    task: ServerTask,
}

impl RunningLoketSimulator {
    /// Base URL of the OAuth server (`/authorize`, `/token` live under it).
    pub fn oauth_base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Base URL of the API, ending in `/v2` like `https://api.loket.nl/v2`.
    pub fn api_base_url(&self) -> String {
        format!("http://{}/v2", self.address)
    }

    /// Waits for the server task to finish (after its shutdown token was cancelled).
    pub async fn stopped(self) -> std::io::Result<()> {
        server::join(self.task).await
    }
}

/// Binds `127.0.0.1:0`, serves the simulator there in a background task until `shutdown` is
/// cancelled, and returns the bound address.
pub async fn spawn(
    simulator: LoketSimulator,
    shutdown: CancellationToken,
) -> std::io::Result<RunningLoketSimulator> {
    let (address, task) = server::spawn_on_local_port(simulator.router(), shutdown).await?;
    Ok(RunningLoketSimulator { address, task })
}
