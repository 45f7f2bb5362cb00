//! `koppel sync --employer E [--full]`: one sync now, as the extractor would run it, with a
//! spinner while it works and a summary of what it published.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use koppel_events::SyncKind;
use koppel_extract::SyncOptions;
use serde_json::json;

use crate::commands::connection::extractor;
use crate::context::CliConfig;
use crate::output::Output;

pub(crate) async fn run(
    employer: &str,
    full: bool,
    config: &CliConfig,
    output: Output,
) -> anyhow::Result<()> {
    let extractor = extractor(config).await?;
    let spinner = if output.is_json() {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        spinner.set_style(style);
    }
    spinner.set_message(format!(
        "syncing {employer}{}",
        if full { " (full)" } else { "" }
    ));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let options = SyncOptions {
        kind: full.then_some(SyncKind::Full),
        ..SyncOptions::default()
    };
    let outcome = extractor
        .sync_employer_once(employer, &options)
        .await
        .with_context(|| format!("sync of {employer} failed"));
    spinner.finish_and_clear();
    let outcome = outcome?;
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    for event in &outcome.published {
        *by_type.entry(event.event_type.schema_name()).or_insert(0) += 1;
    }
    let summary = json!({
        "employer": employer,
        "kind": format!("{:?}", outcome.kind).to_lowercase(),
        "result": format!("{:?}", outcome.result).to_lowercase(),
        "unchanged": outcome.unchanged,
        "published": by_type,
        "stored": outcome.publish_report.stored,
        "duplicates": outcome.publish_report.duplicates,
        "held_back": outcome.held_back.len(),
        "record_errors": outcome.record_errors.len(),
    });
    if output.is_json() {
        output.json(&summary);
    } else {
        output.text(format!(
            "{employer}: {} sync {}, {} events published ({} already in the stream), {} held back, {} bad records",
            summary["kind"].as_str().unwrap_or_default(),
            summary["result"].as_str().unwrap_or_default(),
            outcome.published.len(),
            outcome.publish_report.duplicates,
            outcome.held_back.len(),
            outcome.record_errors.len()
        ));
        for (event_type, count) in by_type {
            output.text(format!("  {event_type:<18} {count}"));
        }
    }
    Ok(())
}
