//! Benchmark: first (full) extraction of 20 employers from the Loket and from the Unit4
//! simulator over loopback, publishing to a real NATS; at 1,000 and at 5,000 employees per
//! employer. Reports events
//! per second, API calls per employee and peak RSS (VmHWM), to show that calls and memory per
//! employee stay flat as employers grow.
//!
//! Each scenario runs in a child process of this binary, so its peak RSS is its own. The
//! simulator (and its world) runs in that process too; the RSS before extraction is reported
//! so the extractor's share can be read off.
//!
//! Run: `cargo bench -p koppel-extract` (with `KOPPEL_NATS_IMAGE` as for the tests). Each
//! child hands its figures back in a file; the parent appends calls and memory per employee at
//! 5× against 1× to `$KOPPEL_BENCH_REPORT` (see koppel-bench-report).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic
)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use koppel_bench_report::{Figure, record};
use koppel_events::SyncKind;
use koppel_extract::loket::{LoketSettings, client_secret_context, store_refresh_token};
use koppel_extract::unit4::Unit4Settings;
use koppel_extract::{ExtractionSettings, Extractor, SyncOptions};
use koppel_nats::{PublisherSettings, Topology};
use koppel_registry::{
    Connection, ConnectionSettings, EmployerRegistration, LoketConnectionSettings, Registry,
    SecretKey, Unit4ConnectionSettings, Unit4Paths,
};
use koppel_sim::loket::{AuthorizingUser, LoketSimulator, LoketSimulatorConfig, spawn};
use koppel_sim::unit4::{Unit4Simulator, Unit4SimulatorConfig, WebApiClient};
use koppel_sim::world::{World, WorldConfig};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const SCENARIO_VARIABLE: &str = "KOPPEL_EXTRACT_BENCH_SCENARIO";
/// The file a child writes its figures to: calls per employee, growth per employee in kB and
/// events per second, space separated.
const RESULT_VARIABLE: &str = "KOPPEL_EXTRACT_BENCH_RESULT";
const EMPLOYERS: usize = 20;
/// Employers extracted at once, as the worker's default `max_concurrent_employers`.
const CONCURRENT_EMPLOYERS: usize = 4;

fn main() {
    if let Ok(scenario) = std::env::var(SCENARIO_VARIABLE) {
        let (source, employees) = scenario.split_once(':').expect("source:employees");
        let employees: usize = employees.parse().expect("employees per employer");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        match source {
            "loket" => runtime.block_on(scenario_run(employees)),
            "unit4" => runtime.block_on(unit4_scenario_run(employees)),
            other => panic!("unknown source {other}"),
        }
        return;
    }
    println!(
        "koppel-extract: full sync of {EMPLOYERS} employers from each simulator (loopback), {CONCURRENT_EMPLOYERS} at a time"
    );
    println!(
        "{:>7} {:>10} {:>10} {:>9} {:>12} {:>10} {:>10} {:>11} {:>12} {:>14}",
        "source",
        "employees",
        "events",
        "seconds",
        "events/s",
        "api calls",
        "calls/emp",
        "RSS before",
        "peak RSS",
        "growth/emp"
    );
    let exe = std::env::current_exe().expect("own path");
    let result_file =
        std::env::temp_dir().join(format!("koppel-extract-bench-{}", std::process::id()));
    for source in ["loket", "unit4"] {
        let mut figures = Vec::new();
        for employees in [1_000usize, 5_000] {
            let _ = std::fs::remove_file(&result_file);
            let status = std::process::Command::new(&exe)
                .env(SCENARIO_VARIABLE, format!("{source}:{employees}"))
                .env(RESULT_VARIABLE, &result_file)
                .status()
                .expect("child run");
            assert!(status.success(), "scenario {source} {employees} failed");
            let result = std::fs::read_to_string(&result_file).expect("the child's figures");
            let values: Vec<f64> = result
                .split_whitespace()
                .map(|value| value.parse().expect("a number"))
                .collect();
            figures.push(values);
        }
        let _ = std::fs::remove_file(&result_file);
        let (one, five) = (&figures[0], &figures[1]);
        let bench = "extract";
        for figure in [
            Figure::against(
                bench,
                &format!("{source}: API calls per employee at 5×"),
                five[0],
                "calls",
                "at 1×",
                one[0],
            )
            .with_note(format!(
                "{EMPLOYERS} employers × 5,000 vs × 1,000 employees"
            )),
            Figure::against(
                bench,
                &format!("{source}: peak memory growth per employee at 5×"),
                five[1],
                "kB",
                "at 1×",
                one[1],
            )
            .with_note(
                "peak RSS over RSS before the sync, per employee of the employers in flight",
            ),
            Figure::against(
                bench,
                &format!("{source}: events per second at 5×"),
                five[2],
                "events/s",
                "at 1×",
                one[2],
            ),
        ] {
            record(&figure).unwrap();
        }
    }
}

/// `VmRSS` or `VmHWM` from /proc/self/status, in kB.
fn proc_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

async fn scenario_run(employees_per_employer: usize) {
    let world = World::generate(WorldConfig::new(7, EMPLOYERS, employees_per_employer));
    let employer_ids: Vec<_> = world.employers().iter().map(|e| e.id).collect();
    let employees: usize = world.employers().iter().map(|e| e.employees.len()).sum();
    let simulator = LoketSimulator::new(world.into_shared(), LoketSimulatorConfig::default());
    simulator.register_authorizing_user(AuthorizingUser::with_full_access("bench"));
    let shutdown = CancellationToken::new();
    let running = spawn(simulator.clone(), shutdown.clone()).await.unwrap();
    let topology = koppel_test_support::topology().await;
    let key = SecretKey::from_base64(&SecretKey::generate_base64().unwrap()).unwrap();
    let config = simulator.config().clone();
    let registry = Registry::new(topology.registry.clone());
    registry
        .put_connection(&Connection {
            id: "loket-bench".to_owned(),
            settings: ConnectionSettings::Loket(LoketConnectionSettings {
                oauth_base_url: running.oauth_base_url(),
                api_base_url: running.api_base_url(),
                client_id: config.client_id.clone(),
                client_secret: key
                    .seal(
                        &SecretString::from(config.client_secret.clone().unwrap_or_default()),
                        &client_secret_context("loket-bench"),
                    )
                    .unwrap(),
                redirect_uri: config.redirect_uri.clone(),
            }),
            poll_interval_seconds: 60,
            full_sync_interval_seconds: 86_400,
        })
        .await
        .unwrap();
    let keys = register_employers(&registry, "loket-bench", &employer_ids).await;
    store_refresh_token(
        &topology.tokens,
        &key,
        "loket-bench",
        &SecretString::from(simulator.issue_refresh_token("bench").unwrap()),
    )
    .await
    .unwrap();
    let extractor = Extractor::new(
        topology.clone(),
        PublisherSettings::default(),
        key,
        bench_http_client(),
        LoketSettings::default(),
        ExtractionSettings::default(),
    );
    measure(
        "loket",
        &extractor,
        &keys,
        employees,
        employees_per_employer,
        || simulator.reset_call_counts(),
        || simulator.api_call_count(),
    )
    .await;
    shutdown.cancel();
    let _ = running.stopped().await;
}

/// Registers one employer per id on `connection_id` and returns their keys.
async fn register_employers(
    registry: &Registry,
    connection_id: &str,
    employer_ids: &[uuid::Uuid],
) -> Vec<String> {
    let mut keys = Vec::new();
    for (index, id) in employer_ids.iter().enumerate() {
        let employer_key = format!("bench-{index}");
        registry
            .put_employer(&EmployerRegistration {
                employer_key: employer_key.clone(),
                connection_id: connection_id.to_owned(),
                source_employer_id: id.to_string(),
                name: format!("Employer {index}"),
                payroll_tax_number: None,
                recipients: Vec::new(),
                removal_threshold_percent: 20,
                enabled: true,
            })
            .await
            .unwrap();
        keys.push(employer_key);
    }
    keys
}

fn bench_http_client() -> reqwest::Client {
    koppel_runtime::http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Runs the full syncs of `keys`, `CONCURRENT_EMPLOYERS` at a time, and prints one row.
#[allow(clippy::too_many_arguments)]
async fn measure(
    source: &str,
    extractor: &Extractor,
    keys: &[String],
    employees: usize,
    employees_per_employer: usize,
    reset_calls: impl Fn(),
    api_calls: impl Fn() -> u64,
) -> u64 {
    let options = SyncOptions {
        kind: Some(SyncKind::Full),
        ..SyncOptions::default()
    };
    reset_calls();
    let rss_before = proc_status_kb("VmRSS");
    let started = Instant::now();
    let outcomes: Vec<_> = futures::stream::iter(keys.iter())
        .map(|key| extractor.sync_employer_once(key, &options))
        .buffer_unordered(CONCURRENT_EMPLOYERS)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let events: usize = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("sync").published.len())
        .sum();
    let calls = api_calls();
    let peak = proc_status_kb("VmHWM");
    let growth_per_employee_kb = peak.saturating_sub(rss_before) as f64
        / (CONCURRENT_EMPLOYERS * employees_per_employer) as f64;
    println!(
        "{:>7} {:>10} {:>10} {:>9.1} {:>12.0} {:>10} {:>10.3} {:>8} MB {:>9} MB {:>11.2} kB",
        source,
        employees,
        events,
        elapsed,
        events as f64 / elapsed,
        calls,
        calls as f64 / employees as f64,
        rss_before / 1024,
        peak / 1024,
        growth_per_employee_kb
    );
    if let Some(path) = std::env::var_os(RESULT_VARIABLE) {
        std::fs::write(
            path,
            format!(
                "{} {growth_per_employee_kb} {}",
                calls as f64 / employees as f64,
                events as f64 / elapsed
            ),
        )
        .expect("result file");
    }
    calls
}

async fn unit4_scenario_run(employees_per_employer: usize) {
    const CONNECTION_ID: &str = "unit4-bench";
    const CLIENT_SECRET: &str = "bench-secret";
    let world = World::generate(WorldConfig::new(7, EMPLOYERS, employees_per_employer));
    let employer_ids: Vec<_> = world.employers().iter().map(|e| e.id).collect();
    let employees: usize = world.employers().iter().map(|e| e.employees.len()).sum();
    let simulator = Unit4Simulator::new(world.into_shared(), Unit4SimulatorConfig::default());
    simulator.register_client(WebApiClient {
        client_id: "bench".to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        employers: employer_ids.iter().copied().collect(),
    });
    let shutdown = CancellationToken::new();
    let running = koppel_sim::unit4::spawn(simulator.clone(), shutdown.clone())
        .await
        .unwrap();
    let topology: Topology = koppel_test_support::topology().await;
    let key = SecretKey::from_base64(&SecretKey::generate_base64().unwrap()).unwrap();
    let registry = Registry::new(topology.registry.clone());
    registry
        .put_connection(&Connection {
            id: CONNECTION_ID.to_owned(),
            settings: ConnectionSettings::Unit4(Unit4ConnectionSettings {
                token_url: running.token_url(),
                scope: simulator.config().scope.clone(),
                api_base_url: running.api_base_url(),
                client_id: "bench".to_owned(),
                client_secret: key
                    .seal(
                        &SecretString::from(CLIENT_SECRET.to_owned()),
                        &client_secret_context(CONNECTION_ID),
                    )
                    .unwrap(),
                paths: Unit4Paths::default(),
            }),
            poll_interval_seconds: 900,
            full_sync_interval_seconds: 86_400,
        })
        .await
        .unwrap();
    let keys = register_employers(&registry, CONNECTION_ID, &employer_ids).await;
    let extractor = Extractor::new(
        topology.clone(),
        PublisherSettings::default(),
        key,
        bench_http_client(),
        LoketSettings::default(),
        ExtractionSettings::default(),
    )
    .with_unit4_settings(Unit4Settings::default());
    measure(
        "unit4",
        &extractor,
        &keys,
        employees,
        employees_per_employer,
        || simulator.reset_call_counts(),
        || simulator.api_call_count(),
    )
    .await;
    shutdown.cancel();
    let _ = running.stopped().await;
}
