//! `koppel demo`: the whole pipeline on one machine, end to end. The pipeline is
//! `koppel_harness::demo`; this module turns the command line into its settings and prints
//! its progress and summary. It fails when anything was lost.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use koppel_harness::demo::{DemoSettings, DemoSummary, Progress, run_demo};
use koppel_harness::{INSURER, WEBHOOK};

use crate::cli::DemoArgs;
use crate::output::Output;

/// Runs the demo against `$NATS_URL` (or a nats-server it starts) and prints its summary;
/// fails when anything was lost.
pub(crate) async fn run(arguments: DemoArgs, output: Output) -> anyhow::Result<()> {
    let nats_url = std::env::var("NATS_URL").ok().filter(|url| !url.is_empty());
    let settings = DemoSettings {
        seed: arguments.seed,
        employers_per_source: arguments.employers,
        employees_per_employer: arguments.employees,
        days: arguments.days,
        drain_timeout: Duration::from_secs(arguments.drain_timeout_seconds),
    };
    let days = arguments.days;
    let summary = run_demo(&settings, nats_url, &mut |progress| {
        if let Some(line) = progress_line(&progress, days) {
            output.text(line);
        }
    })
    .await?;
    print_summary(&summary, output);
    if summary.lost > 0 {
        bail!("{} events were lost", summary.lost);
    }
    Ok(())
}

/// The line a progress report prints, if any: every tenth simulated day, and the last.
fn progress_line(progress: &Progress, days: u32) -> Option<String> {
    Some(match progress {
        Progress::Nats { url, started_here } => format!(
            "NATS:        {url}{}",
            if *started_here {
                " (started for the demo)"
            } else {
                ""
            }
        ),
        Progress::Simulators {
            loket,
            unit4,
            insurer,
            webhooks,
        } => format!(
            "Simulators:  Loket {loket}, Unit4 {unit4}, insurer {insurer}, webhooks {webhooks}"
        ),
        Progress::Onboarded { employers } => format!(
            "Onboarded:   {employers} employers over 2 connections, linked to {INSURER} and {WEBHOOK}"
        ),
        Progress::FirstSync { events_published } => {
            format!("First sync:  {events_published} events published")
        }
        Progress::Day {
            day,
            events_published,
        } if day % 10 == 0 || *day == days => {
            format!("Day {day:>3}:     {events_published} events published so far")
        }
        Progress::Day { .. } => return None,
        Progress::Draining => {
            "Draining:    waiting for every recipient to receive its events...".to_owned()
        }
    })
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
