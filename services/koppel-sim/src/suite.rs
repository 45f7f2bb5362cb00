//! Every simulator at once, wired for an end-to-end run: a Loket world and a Unit4 world (the
//! two sources), a pension insurer with every employer linked, and a webhook receiver. Used by
//! `koppel sim`, the demo and the end-to-end tests.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::insurer::{EmployerLink, InsurerConfig, InsurerSimulator};
use crate::loket::{AuthorizingUser, LoketSimulator, LoketSimulatorConfig};
use crate::unit4::{Unit4Simulator, Unit4SimulatorConfig, WebApiClient};
use crate::webhook_receiver::{WebhookReceiver, WebhookReceiverConfig};
use crate::world::{World, WorldChange, WorldConfig};

/// Credentials the suite's simulators accept. Simulator secrets, not real ones.
pub const LOKET_USER: &str = "koppel.demo";
pub const UNIT4_CLIENT_ID: &str = "koppel-web-api-user";
pub const UNIT4_CLIENT_SECRET: &str = "simulated-unit4-secret";
pub const INSURER_TOKEN: &str = "simulated-insurer-token";
pub const WEBHOOK_SECRET: &str = "whsec_c2ltdWxhdGVkLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM=";

#[derive(Debug, Clone)]
pub struct SuiteConfig {
    pub seed: u64,
    pub employers_per_source: usize,
    pub employees_per_employer: usize,
    /// Where the simulators listen: loopback for tests and the demo, `0.0.0.0` in a container.
    pub listen_host: IpAddr,
    /// Loket, Unit4, insurer and webhooks listen on this port and the next three; 0 picks free
    /// ports.
    pub base_port: u16,
    /// The host name other processes reach the simulators by (`sim` in compose).
    pub advertise_host: String,
}

impl SuiteConfig {
    /// Loopback, free ports: what tests and the demo use.
    pub fn local(seed: u64, employers_per_source: usize, employees_per_employer: usize) -> Self {
        SuiteConfig {
            seed,
            employers_per_source,
            employees_per_employer,
            listen_host: IpAddr::from([127, 0, 0, 1]),
            base_port: 0,
            advertise_host: "127.0.0.1".to_owned(),
        }
    }
}

/// The running simulators and where they are reached.
#[derive(Debug)]
pub struct SimulatorSuite {
    pub loket: LoketSimulator,
    pub unit4: Unit4Simulator,
    pub insurer: InsurerSimulator,
    pub webhook: WebhookReceiver,
    advertise_host: String,
    ports: [u16; 4],
    shutdown: CancellationToken,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot start a simulator: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot set up a simulator: {0}")]
    Setup(String),
}

impl SimulatorSuite {
    /// Starts every simulator. They stop when `shutdown` is cancelled or [`SimulatorSuite::stop`]
    /// is called.
    pub async fn start(
        config: &SuiteConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, SuiteError> {
        let loket_world = World::generate(WorldConfig::new(
            config.seed,
            config.employers_per_source,
            config.employees_per_employer,
        ));
        let unit4_world = World::generate(WorldConfig::new(
            config.seed.wrapping_add(1),
            config.employers_per_source,
            config.employees_per_employer,
        ));
        let payroll_tax_numbers: Vec<String> = loket_world
            .employers()
            .iter()
            .chain(unit4_world.employers().iter())
            .map(|employer| employer.payroll_tax_number.clone())
            .collect();
        let unit4_employers: HashSet<_> = unit4_world
            .employers()
            .iter()
            .map(|employer| employer.id)
            .collect();

        let loket = LoketSimulator::new(loket_world.into_shared(), LoketSimulatorConfig::default());
        loket.register_authorizing_user(AuthorizingUser::with_full_access(LOKET_USER));
        let unit4 = Unit4Simulator::new(unit4_world.into_shared(), Unit4SimulatorConfig::default());
        unit4.register_client(WebApiClient {
            client_id: UNIT4_CLIENT_ID.to_owned(),
            client_secret: UNIT4_CLIENT_SECRET.to_owned(),
            employers: unit4_employers,
        });
        let insurer = InsurerSimulator::new(InsurerConfig::new(INSURER_TOKEN, config.seed));
        for (index, payroll_tax_number) in payroll_tax_numbers.into_iter().enumerate() {
            insurer
                .link_employer(
                    payroll_tax_number,
                    EmployerLink {
                        contract_number: format!("C-{:05}", index + 1),
                        scheme_ids: Vec::new(),
                    },
                )
                .map_err(|error| SuiteError::Setup(error.to_string()))?;
        }
        let webhook = WebhookReceiver::new(WebhookReceiverConfig::new(
            vec![WEBHOOK_SECRET.to_owned()],
            config.seed,
        ))
        .map_err(|error| SuiteError::Setup(error.to_string()))?;

        let mut listeners = Vec::with_capacity(4);
        for offset in 0..4u16 {
            let port = if config.base_port == 0 {
                0
            } else {
                config.base_port + offset
            };
            listeners.push(TcpListener::bind(SocketAddr::new(config.listen_host, port)).await?);
        }
        let mut ports = [0u16; 4];
        for (slot, listener) in ports.iter_mut().zip(&listeners) {
            *slot = listener.local_addr()?.port();
        }
        let mut listeners = listeners.into_iter();
        let mut next = || {
            listeners
                .next()
                .ok_or_else(|| SuiteError::Setup("listener missing".to_owned()))
        };
        let servers = vec![
            tokio::spawn(crate::loket::serve(
                next()?,
                loket.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(crate::unit4::serve(
                next()?,
                unit4.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(crate::insurer::serve(
                next()?,
                insurer.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(crate::webhook_receiver::serve(
                next()?,
                webhook.clone(),
                shutdown.clone(),
            )),
        ];
        Ok(SimulatorSuite {
            loket,
            unit4,
            insurer,
            webhook,
            advertise_host: config.advertise_host.clone(),
            ports,
            shutdown,
            servers,
        })
    }

    fn url(&self, index: usize, path: &str) -> String {
        format!("http://{}:{}{path}", self.advertise_host, self.ports[index])
    }

    /// Loket's OAuth server (`/authorize`, `/token`).
    pub fn loket_oauth_base_url(&self) -> String {
        self.url(0, "")
    }

    /// Loket's API, ending in `/v2`.
    pub fn loket_api_base_url(&self) -> String {
        self.url(0, "/v2")
    }

    pub fn unit4_token_url(&self) -> String {
        self.url(1, crate::unit4::TOKEN_PATH)
    }

    pub fn unit4_api_base_url(&self) -> String {
        self.url(1, crate::unit4::API_PREFIX)
    }

    pub fn insurer_base_url(&self) -> String {
        self.url(2, "")
    }

    pub fn webhook_url(&self) -> String {
        self.url(3, crate::webhook_receiver::WEBHOOK_PATH)
    }

    /// Advances both source worlds by `days`; returns the ground truth of each.
    pub fn advance_days(&self, days: u32) -> (Vec<WorldChange>, Vec<WorldChange>) {
        let loket_changes = self.loket.advance_days(days);
        let unit4_changes = self
            .unit4
            .shared_world()
            .write()
            .map(|mut world| world.advance_days(days).to_vec())
            .unwrap_or_default();
        (loket_changes, unit4_changes)
    }

    /// Stops every simulator and waits for them.
    pub async fn stop(self) -> Result<(), SuiteError> {
        self.shutdown.cancel();
        for server in self.servers {
            server
                .await
                .map_err(|error| SuiteError::Setup(error.to_string()))??;
        }
        Ok(())
    }
}
