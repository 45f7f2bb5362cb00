//! No secret, token or BSN in anything koppel prints: a full `koppel demo` run as a child
//! process with every koppel log line on (trace) and every dependency at debug, then the
//! operator commands over what the demo left in NATS (`status`, `connection|employer|recipient
//! list`, `dlq list|show`, `tail`, `export`). stdout and stderr are scanned for:
//!
//! - the simulators' credentials (koppel_sim::suite and the Loket simulator's client), raw and
//!   in the forms an `Authorization` header would carry them (HTTP Basic base64);
//! - every BSN of both simulated worlds on every simulated day, regenerated here from the seed
//!   (the worlds are deterministic), 9 digits and, for a BSN with a leading zero, 8 digits;
//! - values shaped like the tokens the simulators issue inside the demo process (64 hex
//!   digits; this process cannot learn them, so their shape is checked against tokens the same
//!   simulators issue here) and like a 32-byte sealing key (the demo generates its own).
//!
//! Event payloads legitimately hold BSNs: `tail --show-pii` and an export *file* are not
//! scanned. `tail --show-pii` is used to prove the regenerated BSN list covers the demo's data.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use koppel_sim::loket::LoketSimulatorConfig;
use koppel_sim::suite::{
    INSURER_TOKEN, LOKET_USER, SimulatorSuite, SuiteConfig, UNIT4_CLIENT_ID, UNIT4_CLIENT_SECRET,
    WEBHOOK_SECRET,
};
use koppel_sim::world::{World, WorldConfig};

use crate::support::*;

const SEED: u64 = 11;
const EMPLOYERS: usize = 2;
const EMPLOYEES: usize = 10;
const DAYS: u32 = 30;
/// Every koppel crate at trace, everything else at debug: every log line the code can write.
const LOG_FILTER: &str = "debug,koppel=trace,koppel_events=trace,koppel_nats=trace,koppel_runtime=trace,koppel_registry=trace,koppel_sim=trace,koppel_extract=trace,koppel_deliver=trace";

/// Every BSN either world holds on any day of the demo, as the simulators serve it.
fn every_bsn_of_the_demo() -> BTreeSet<u32> {
    let mut worlds = [
        World::generate(WorldConfig::new(SEED, EMPLOYERS, EMPLOYEES)),
        World::generate(WorldConfig::new(SEED.wrapping_add(1), EMPLOYERS, EMPLOYEES)),
    ];
    let mut bsns = BTreeSet::new();
    for day in 0..=DAYS {
        for world in &mut worlds {
            if day > 0 {
                world.advance_days(1);
            }
            for employer in world.employers() {
                bsns.extend(
                    employer
                        .employees
                        .iter()
                        .map(|employee| employee.citizen_service_number),
                );
            }
        }
    }
    bsns
}

fn bsn_needles(bsns: &BTreeSet<u32>) -> Vec<Needle> {
    let mut needles = Vec::new();
    for (index, bsn) in bsns.iter().enumerate() {
        needles.push(Needle::number(format!("BSN #{index}"), format!("{bsn:09}")));
        if *bsn < 100_000_000 {
            needles.push(Needle::number(
                format!("BSN #{index} without its leading zero"),
                bsn.to_string(),
            ));
        }
    }
    needles
}

fn credential_needles() -> Vec<Needle> {
    let loket = LoketSimulatorConfig::default();
    let loket_secret = loket.client_secret.clone().unwrap_or_default();
    assert!(!loket_secret.is_empty());
    let webhook_key = WEBHOOK_SECRET.trim_start_matches("whsec_");
    let webhook_raw = String::from_utf8(STANDARD.decode(webhook_key).unwrap()).unwrap();
    let mut needles = vec![
        Needle::text("UNIT4_CLIENT_SECRET", UNIT4_CLIENT_SECRET),
        Needle::text("INSURER_TOKEN", INSURER_TOKEN),
        Needle::text("WEBHOOK_SECRET", WEBHOOK_SECRET),
        Needle::text("WEBHOOK_SECRET's key (base64)", webhook_key),
        Needle::text("WEBHOOK_SECRET's key (raw)", webhook_raw),
        Needle::text("Loket client secret", loket_secret.clone()),
    ];
    // What an `Authorization: Basic` header of each client would carry.
    for (label, id, secret) in [
        (
            "Unit4 Basic credentials",
            UNIT4_CLIENT_ID,
            UNIT4_CLIENT_SECRET,
        ),
        (
            "Loket Basic credentials",
            loket.client_id.as_str(),
            loket_secret.as_str(),
        ),
    ] {
        needles.push(Needle::text(
            label,
            STANDARD.encode(format!("{id}:{secret}")),
        ));
    }
    needles
}

const SHAPES: [SecretShape; 2] = [SecretShape::OpaqueToken, SecretShape::Base64Key];

/// The shapes stand in for tokens the demo's simulators issue: prove they match real ones.
async fn the_shapes_match_tokens_the_simulators_issue() {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let suite = SimulatorSuite::start(&SuiteConfig::local(1, 1, 1), shutdown.clone())
        .await
        .unwrap();
    let refresh_token = suite.loket.issue_refresh_token(LOKET_USER).unwrap();
    let http = koppel_runtime::http::HttpClientSettings::default()
        .client()
        .unwrap();
    let unit4: serde_json::Value = http
        .post(suite.unit4_token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", UNIT4_CLIENT_ID),
            ("client_secret", UNIT4_CLIENT_SECRET),
            ("scope", suite.unit4.config().scope.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = unit4["access_token"].as_str().unwrap().to_owned();
    let key = koppel_registry::SecretKey::generate_base64().unwrap();
    for (what, value, shape) in [
        (
            "Loket refresh token",
            refresh_token,
            SecretShape::OpaqueToken,
        ),
        ("Unit4 access token", access_token, SecretShape::OpaqueToken),
        ("sealing key", key, SecretShape::Base64Key),
    ] {
        let line = format!("token={value}");
        assert_eq!(
            shape.find(&line),
            vec![(6, line.len())],
            "the {what} does not have the shape the scan looks for"
        );
    }
    suite.stop().await.unwrap();
}

/// The namespaces of every demo on the server (`DEMO…_KOPPEL_EVENTS` streams).
async fn demo_namespaces(url: &str) -> BTreeSet<String> {
    use futures::TryStreamExt;
    let client = async_nats::connect(url).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let names: Vec<String> = jetstream.stream_names().try_collect().await.unwrap();
    names
        .iter()
        .filter_map(|name| name.strip_suffix("_KOPPEL_EVENTS"))
        .filter(|prefix| prefix.starts_with("DEMO"))
        .map(str::to_lowercase)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_output_leaks_no_secret() {
    the_shapes_match_tokens_the_simulators_issue().await;
    let nats = koppel_test_support::nats_server();
    let earlier_demos = demo_namespaces(&nats.url).await;

    let mut demo = koppel_command(
        &[
            "demo",
            "--seed",
            &SEED.to_string(),
            "--employers",
            &EMPLOYERS.to_string(),
            "--employees",
            &EMPLOYEES.to_string(),
            "--days",
            &DAYS.to_string(),
            "--drain-timeout-seconds",
            "120",
        ],
        LOG_FILTER,
    );
    demo.env("NATS_URL", &nats.url);
    let demo = run_koppel("koppel demo", demo).await;
    let mut outputs = vec![demo];

    // The demo's namespace: the one that was not there before it ran.
    let new_demos: Vec<String> = demo_namespaces(&nats.url)
        .await
        .difference(&earlier_demos)
        .cloned()
        .collect();
    assert_eq!(
        new_demos.len(),
        1,
        "the demo made one namespace: {new_demos:?}; its last lines: {}",
        last_lines_redacted(&outputs[0], &credential_needles())
    );
    let namespace = new_demos[0].clone();
    let global = [
        "--nats-url",
        nats.url.as_str(),
        "--namespace",
        namespace.as_str(),
    ];
    let with_global = |arguments: &[&str]| -> Vec<String> {
        global
            .iter()
            .chain(arguments)
            .map(|argument| (*argument).to_owned())
            .collect()
    };
    let export_dir = std::env::temp_dir().join(format!("koppel-security-{namespace}"));
    std::fs::create_dir_all(&export_dir).unwrap();
    let avro_file = export_dir.join("events.avro");
    let jsonl_file = export_dir.join("events.jsonl");
    let mut commands: Vec<(String, Vec<String>)> = [
        vec!["status"],
        vec!["--output", "json", "status"],
        vec!["connection", "list"],
        vec!["--output", "json", "connection", "list"],
        vec!["employer", "list"],
        vec!["recipient", "list"],
        vec!["--output", "json", "recipient", "list"],
        vec!["dlq", "list", "--recipient", "insurer"],
        vec!["dlq", "list", "--recipient", "webhooks"],
        vec!["tail", "--from-start", "--no-follow"],
        vec!["--output", "json", "tail", "--from-start", "--no-follow"],
        vec![
            "export",
            "--format",
            "avro",
            "--out",
            avro_file.to_str().unwrap(),
        ],
        vec![
            "export",
            "--format",
            "jsonl",
            "--out",
            jsonl_file.to_str().unwrap(),
        ],
        // A failing command's error line.
        vec!["dlq", "show", "--recipient", "insurer", "999999999"],
    ]
    .into_iter()
    .map(|arguments| {
        (
            format!("koppel {}", arguments.join(" ")),
            with_global(&arguments),
        )
    })
    .collect();

    // Every dead letter, shown (BSNs masked, as `dlq show` promises without --show-pii).
    for recipient in ["insurer", "webhooks"] {
        let listing = run_koppel(
            "dlq list (json)",
            koppel_command(
                &with_global(&["--output", "json", "dlq", "list", "--recipient", recipient])
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                "warn",
            ),
        )
        .await;
        assert!(listing.success, "dlq list failed");
        let letters: serde_json::Value = serde_json::from_str(listing.stdout.trim()).unwrap();
        for letter in letters.as_array().unwrap().iter().take(5) {
            let sequence = letter["dlq_sequence"].as_u64().unwrap().to_string();
            commands.push((
                format!("koppel dlq show --recipient {recipient} {sequence}"),
                with_global(&["dlq", "show", "--recipient", recipient, &sequence]),
            ));
        }
        outputs.push(listing);
    }
    for (label, arguments) in &commands {
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        outputs.push(run_koppel(label, koppel_command(&arguments, LOG_FILTER)).await);
    }

    // The BSN list is only worth something if it covers the demo's data: every BSN in the
    // published events (printed in full only with --show-pii, which is not scanned) is in it.
    let bsns = every_bsn_of_the_demo();
    let pii = run_koppel(
        "tail --show-pii",
        koppel_command(
            &with_global(&[
                "--output",
                "json",
                "tail",
                "--from-start",
                "--no-follow",
                "--show-pii",
            ])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
            "warn",
        ),
    )
    .await;
    assert!(pii.success, "tail --show-pii failed");
    let mut published_bsns = BTreeSet::new();
    for line in pii.stdout.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        collect_bsns(&event, &mut published_bsns);
    }
    assert!(
        published_bsns.len() > 10,
        "the demo's events carry BSNs: found {}",
        published_bsns.len()
    );
    let unknown = published_bsns
        .iter()
        .filter(|bsn| !bsns.contains(bsn))
        .count();
    assert_eq!(
        unknown, 0,
        "{unknown} BSNs in the demo's events are missing from the regenerated worlds"
    );

    let mut needles = credential_needles();
    needles.extend(bsn_needles(&bsns));
    // Positive control: the same scan over the output that shows BSNs on purpose finds them.
    let mut control = ScanReport::default();
    control.scan("tail --show-pii", &pii.stdout, &needles, &SHAPES);
    assert!(
        control.hits.len() > 10,
        "the scan finds the BSNs --show-pii prints: {} hits",
        control.hits.len()
    );
    let mut report = ScanReport::default();
    for captured in &outputs {
        report.scan(&captured.label, &captured.all(), &needles, &SHAPES);
    }
    let _ = std::fs::remove_dir_all(&export_dir);

    // Each command did its job (a failing one is expected to fail), and there was plenty to scan.
    for captured in &outputs {
        let expected_to_fail = captured.label.contains("999999999");
        assert_eq!(
            captured.success,
            !expected_to_fail,
            "{} {}: {}",
            captured.label,
            if expected_to_fail {
                "succeeded"
            } else {
                "failed"
            },
            last_lines_redacted(captured, &needles)
        );
    }
    let demo_log_lines = outputs[0].stderr.lines().count();
    println!(
        "scanned {} lines ({} bytes) from {} commands, the demo's log {demo_log_lines} lines, for {} BSNs and {} credential forms",
        report.lines_scanned,
        report.bytes_scanned,
        outputs.len(),
        bsns.len(),
        credential_needles().len()
    );
    assert!(
        demo_log_lines > 1_000,
        "the demo logged only {demo_log_lines} lines: is trace logging on?"
    );
    assert!(
        outputs[0].stdout.contains("Lost:"),
        "the demo printed its summary"
    );
    assert!(
        report.hits.is_empty(),
        "{} lines leak a secret or BSN:\n{}",
        report.hits.len(),
        report
            .hits
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The last lines of a command's stderr for a failure message, scanned and redacted first.
fn last_lines_redacted(captured: &Captured, needles: &[Needle]) -> String {
    let tail: Vec<&str> = captured.stderr.lines().rev().take(5).collect();
    let mut report = ScanReport::default();
    let text = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    report.scan("stderr", &text, needles, &SHAPES);
    if report.hits.is_empty() {
        text
    } else {
        report.hits.join("\n")
    }
}
