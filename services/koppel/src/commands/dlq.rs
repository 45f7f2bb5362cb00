//! `koppel dlq list|show|retry|purge`: dead letters per recipient and employer.

use anyhow::Context as _;
use koppel_deliver::dlq::{self, DlqSelection, RedriveSettings};
use koppel_registry::SecretKey;
use serde_json::json;

use crate::cli::{DlqCommand, DlqTarget};
use crate::context::{CliConfig, Context};
use crate::output::{Output, mask_bsns};

fn selection(target: &DlqTarget, sequence: Option<u64>) -> DlqSelection {
    let mut selection = DlqSelection::recipient(target.recipient.clone());
    if let Some(employer) = &target.employer {
        selection = selection.employer(employer.clone());
    }
    if let Some(sequence) = sequence {
        selection = selection.dead_letter(sequence);
    }
    selection
}

pub(crate) async fn run(
    command: DlqCommand,
    config: &CliConfig,
    output: Output,
) -> anyhow::Result<()> {
    let context = Context::connect(config).await?;
    let topology = &context.topology;
    match command {
        DlqCommand::List(target) => {
            let letters = dlq::list(topology, &selection(&target, None)).await?;
            let rows: Vec<Vec<String>> = letters
                .iter()
                .map(|letter| {
                    vec![
                        letter.dlq_sequence.to_string(),
                        letter.employer_key.clone(),
                        letter.event_type.clone().unwrap_or_default(),
                        letter.error_class.clone().unwrap_or_default(),
                        letter
                            .attempts
                            .map(|attempts| attempts.to_string())
                            .unwrap_or_default(),
                        letter.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output.table(
                &["SEQ", "EMPLOYER", "EVENT", "CLASS", "ATTEMPTS", "ERROR"],
                &rows,
                &letters,
            );
        }
        DlqCommand::Show {
            recipient,
            sequence,
            show_pii,
        } => {
            let detail = dlq::show(topology, &recipient, sequence).await?;
            let mut document = json!({
                "dead_letter": detail.summary,
                "event": match &detail.event {
                    Ok(event) => serde_json::to_value(event)?,
                    Err(error) => json!({ "undecodable": error.to_string() }),
                },
            });
            if !show_pii {
                mask_bsns(&mut document);
            }
            output.json(&document);
        }
        DlqCommand::Retry { target, sequence } => {
            let settings = RedriveSettings {
                secret_key: SecretKey::from_environment()
                    .context("cannot open the recipient's secrets")?,
                http: koppel_runtime::http::HttpClientSettings::default().client()?,
                // Interactive: a few quick attempts, then report what still fails rather than
                // wait out the deliverer's day-long budget.
                retry: koppel_deliver::RetrySettings {
                    initial_backoff_millis: 200,
                    max_backoff_millis: 2_000,
                    max_attempts: 5,
                    max_age_seconds: 60,
                    ..koppel_deliver::RetrySettings::default()
                },
            };
            let report = dlq::retry(topology, &settings, &selection(&target, sequence)).await?;
            output.text(format!(
                "re-driven: {} delivered, {} no longer relevant, {} failed again, {} left parked; {} lanes released",
                report.delivered,
                report.filtered,
                report.failed.len(),
                report.left_parked,
                report.lanes_released
            ));
            for failure in &report.failed {
                output.text(format!(
                    "  still dead: #{} {}",
                    failure.dlq_sequence, failure.reason
                ));
            }
            if output.is_json() {
                output.json(&report);
            }
        }
        DlqCommand::Purge {
            target,
            sequence,
            reason,
        } => {
            let report = dlq::purge(topology, &selection(&target, sequence), &reason).await?;
            output.text(format!("purged {} dead letters ({reason})", report.removed));
            if output.is_json() {
                output.json(&report);
            }
        }
    }
    Ok(())
}
