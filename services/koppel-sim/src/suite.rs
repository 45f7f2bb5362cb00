//! Every simulator at once, wired for an end-to-end run: a Loket world and a Unit4 world (the
//! two sources), a pension insurer with every employer linked, and a webhook receiver. Used by
//! `koppel sim`, the demo and the end-to-end tests.

use std::collections::HashSet;

use tokio_util::sync::CancellationToken;

use crate::insurer::{EmployerLink, InsurerConfig, InsurerSimulator, RunningInsurer};
use crate::loket::{AuthorizingUser, LoketSimulator, LoketSimulatorConfig, RunningLoketSimulator};
use crate::unit4::{RunningUnit4Simulator, Unit4Simulator, Unit4SimulatorConfig, WebApiClient};
use crate::webhook_receiver::{RunningWebhookReceiver, WebhookReceiver, WebhookReceiverConfig};
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
}

/// The running simulators.
#[derive(Debug)]
pub struct SimulatorSuite {
    pub loket: LoketSimulator,
    pub loket_server: RunningLoketSimulator,
    pub unit4: Unit4Simulator,
    pub unit4_server: RunningUnit4Simulator,
    pub insurer: InsurerSimulator,
    pub insurer_server: RunningInsurer,
    pub webhook: WebhookReceiver,
    pub webhook_server: RunningWebhookReceiver,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot start a simulator: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot set up a simulator: {0}")]
    Setup(String),
}

impl SimulatorSuite {
    /// Starts every simulator on a free loopback port. The source simulators stop when
    /// `shutdown` is cancelled; the recipients stop with [`SimulatorSuite::stop`].
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
        let loket_server = crate::loket::spawn(loket.clone(), shutdown.clone()).await?;

        let unit4 = Unit4Simulator::new(unit4_world.into_shared(), Unit4SimulatorConfig::default());
        unit4.register_client(WebApiClient {
            client_id: UNIT4_CLIENT_ID.to_owned(),
            client_secret: UNIT4_CLIENT_SECRET.to_owned(),
            employers: unit4_employers,
        });
        let unit4_server = crate::unit4::spawn(unit4.clone(), shutdown).await?;

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
        let insurer_server = crate::insurer::spawn(insurer.clone()).await?;

        let webhook = WebhookReceiver::new(WebhookReceiverConfig::new(
            vec![WEBHOOK_SECRET.to_owned()],
            config.seed,
        ))
        .map_err(|error| SuiteError::Setup(error.to_string()))?;
        let webhook_server = crate::webhook_receiver::spawn(webhook.clone()).await?;

        Ok(SimulatorSuite {
            loket,
            loket_server,
            unit4,
            unit4_server,
            insurer,
            insurer_server,
            webhook,
            webhook_server,
        })
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

    /// Stops the recipient simulators (the sources stop with the shutdown token).
    pub async fn stop(self) -> Result<(), SuiteError> {
        self.insurer_server.stop().await?;
        self.webhook_server.stop().await?;
        Ok(())
    }
}
