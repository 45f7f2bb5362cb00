//! Onboarding a simulator suite the way a payroll processor onboards with `koppel connection|
//! recipient|employer add`: a Loket and a Unit4 connection, every employer they can see, and
//! the insurer and webhook recipients, with every employer linked to both. The record
//! builders are public too, for tests that onboard only part of it.

use std::collections::HashMap;

use anyhow::Context as _;
use koppel_extract::{Extractor, client_secret_context};
use koppel_nats::Topology;
use koppel_registry::onboarding::{
    InsurerTerms, default_employer_key, register_employer, register_recipient,
};
use koppel_registry::{
    Connection, ConnectionSettings, EmployerRegistration, LoketConnectionSettings, Recipient,
    RecipientSettings, Registry, SealedSecret, SecretKey, Unit4ConnectionSettings, Unit4Paths,
};
use koppel_sim::suite::{
    INSURER_TOKEN, LOKET_USER, SimulatorSuite, UNIT4_CLIENT_ID, UNIT4_CLIENT_SECRET, WEBHOOK_SECRET,
};
use secrecy::SecretString;

/// The connection ids [`onboard`] registers.
pub const LOKET_CONNECTION: &str = "loket-demo";
pub const UNIT4_CONNECTION: &str = "unit4-demo";
/// The recipient names [`onboard`] registers.
pub const INSURER: &str = "insurer";
pub const WEBHOOK: &str = "webhooks";
pub const RECIPIENTS: [&str; 2] = [INSURER, WEBHOOK];

/// Loket reports no pension scheme per employment: the insurer link of a Loket employer names
/// the employer's one scheme, as an employer with a single contract has.
const LOKET_SCHEME: &str = "PGB-2026";

/// The employers onboarded: (employer key, connection id), and their names.
#[derive(Debug)]
pub struct Onboarded {
    pub employers: Vec<(String, String)>,
    pub names: HashMap<String, String>,
}

/// `secret` sealed as connection `connection_id`'s client secret.
pub fn seal_client_secret(
    key: &SecretKey,
    connection_id: &str,
    secret: &str,
) -> anyhow::Result<SealedSecret> {
    Ok(key.seal(
        &SecretString::from(secret),
        &client_secret_context(connection_id),
    )?)
}

/// `secret` sealed as `field` (`api_token`, `secret`) of recipient `recipient`.
pub fn seal_recipient_secret(
    key: &SecretKey,
    recipient: &str,
    field: &str,
    secret: &str,
) -> anyhow::Result<SealedSecret> {
    Ok(key.seal(
        &SecretString::from(secret),
        &koppel_deliver::recipient::secret_context(recipient, field),
    )?)
}

/// The client secret the suite's Loket simulator accepts.
pub fn loket_client_secret(suite: &SimulatorSuite) -> String {
    suite
        .loket
        .config()
        .client_secret
        .clone()
        .unwrap_or_default()
}

/// Loket connection `id` against the suite's Loket simulator, `client_secret` sealed; full
/// syncs once a day.
pub fn loket_connection(
    suite: &SimulatorSuite,
    key: &SecretKey,
    id: &str,
    client_secret: &str,
    poll_interval_seconds: u64,
) -> anyhow::Result<Connection> {
    let loket = suite.loket.config();
    Ok(Connection {
        id: id.to_owned(),
        settings: ConnectionSettings::Loket(LoketConnectionSettings {
            oauth_base_url: suite.loket_oauth_base_url(),
            api_base_url: suite.loket_api_base_url(),
            client_id: loket.client_id.clone(),
            client_secret: seal_client_secret(key, id, client_secret)?,
            redirect_uri: loket.redirect_uri.clone(),
        }),
        poll_interval_seconds,
        full_sync_interval_seconds: 86_400,
    })
}

/// Unit4 connection `id` against the suite's Unit4 simulator, `client_secret` sealed; it
/// polls, and fully syncs, every `interval_seconds` (Unit4 has no change feed).
pub fn unit4_connection(
    suite: &SimulatorSuite,
    key: &SecretKey,
    id: &str,
    client_secret: &str,
    interval_seconds: u64,
) -> anyhow::Result<Connection> {
    Ok(Connection {
        id: id.to_owned(),
        settings: ConnectionSettings::Unit4(Unit4ConnectionSettings {
            token_url: suite.unit4_token_url(),
            scope: suite.unit4.config().scope.clone(),
            api_base_url: suite.unit4_api_base_url(),
            client_id: UNIT4_CLIENT_ID.to_owned(),
            client_secret: seal_client_secret(key, id, client_secret)?,
            paths: Unit4Paths::default(),
        }),
        poll_interval_seconds: interval_seconds,
        full_sync_interval_seconds: interval_seconds,
    })
}

/// Webhook recipient `name` at `url`, signing with `secret` (sealed).
pub fn webhook_recipient(
    key: &SecretKey,
    name: &str,
    url: &str,
    secret: &str,
    max_in_flight: usize,
) -> anyhow::Result<Recipient> {
    Ok(Recipient {
        name: name.to_owned(),
        settings: RecipientSettings::Webhook {
            url: url.to_owned(),
            secret: seal_recipient_secret(key, name, "secret", secret)?,
        },
        max_in_flight,
    })
}

/// Pension-insurer recipient `name` at `base_url` with API token `token` (sealed) and no
/// employer linked yet.
pub fn insurer_recipient(
    key: &SecretKey,
    name: &str,
    base_url: &str,
    token: &str,
    max_in_flight: usize,
) -> anyhow::Result<Recipient> {
    Ok(Recipient {
        name: name.to_owned(),
        settings: RecipientSettings::PensionInsurer {
            base_url: base_url.to_owned(),
            api_token: seal_recipient_secret(key, name, "api_token", token)?,
            employer_links: std::collections::BTreeMap::new(),
        },
        max_in_flight,
    })
}

/// Onboards everything `suite` simulates: connections [`LOKET_CONNECTION`] and
/// [`UNIT4_CONNECTION`] (with Loket's refresh token stored), recipients [`INSURER`] and
/// [`WEBHOOK`], and every employer the connections can see, linked to both recipients through
/// the same registry steps `koppel recipient|employer add` take. `poll_seconds` are the Loket
/// and Unit4 poll intervals the workers use.
pub async fn onboard(
    suite: &SimulatorSuite,
    topology: &Topology,
    registry: &Registry,
    key: &SecretKey,
    extractor: &Extractor,
    poll_seconds: (u64, u64),
) -> anyhow::Result<Onboarded> {
    let loket_secret = loket_client_secret(suite);
    registry
        .put_connection(&loket_connection(
            suite,
            key,
            LOKET_CONNECTION,
            &loket_secret,
            poll_seconds.0,
        )?)
        .await?;
    let refresh_token = SecretString::from(suite.loket.issue_refresh_token(LOKET_USER)?);
    koppel_extract::loket::store_refresh_token(
        &topology.tokens,
        key,
        LOKET_CONNECTION,
        &refresh_token,
    )
    .await?;
    registry
        .put_connection(&unit4_connection(
            suite,
            key,
            UNIT4_CONNECTION,
            UNIT4_CLIENT_SECRET,
            poll_seconds.1,
        )?)
        .await?;
    register_recipient(
        registry,
        insurer_recipient(key, INSURER, &suite.insurer_base_url(), INSURER_TOKEN, 16)?,
    )
    .await?;
    register_recipient(
        registry,
        webhook_recipient(key, WEBHOOK, &suite.webhook_url(), WEBHOOK_SECRET, 16)?,
    )
    .await?;

    let mut employers: Vec<(String, String)> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for connection in [LOKET_CONNECTION, UNIT4_CONNECTION] {
        let terms = InsurerTerms {
            contract_number: None,
            scheme_id: (connection == LOKET_CONNECTION).then(|| LOKET_SCHEME.to_owned()),
        };
        for discovered in extractor
            .discover_employers(connection)
            .await
            .with_context(|| format!("cannot discover the employers of {connection}"))?
        {
            let employer_key = default_employer_key(connection, &discovered.source_employer_id);
            let name = discovered
                .name
                .clone()
                .unwrap_or_else(|| discovered.source_employer_id.clone());
            let registration = EmployerRegistration {
                employer_key: employer_key.clone(),
                connection_id: connection.to_owned(),
                source_employer_id: discovered.source_employer_id.clone(),
                name: name.clone(),
                payroll_tax_number: discovered.payroll_tax_number.clone(),
                recipients: RECIPIENTS.iter().map(|name| (*name).to_owned()).collect(),
                removal_threshold_percent: 20,
                enabled: true,
            };
            register_employer(registry, &registration, &terms)
                .await
                .with_context(|| format!("cannot register employer {employer_key}"))?;
            names.insert(employer_key.clone(), name);
            employers.push((employer_key, connection.to_owned()));
        }
    }
    Ok(Onboarded { employers, names })
}
