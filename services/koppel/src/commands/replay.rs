//! `koppel replay`: past events again to one recipient, through `koppel_deliver::replay` (which
//! holds the how and why); this module parses the arguments, draws the progress bar and prints
//! the report.

use anyhow::{Context as _, bail};
use async_nats::jetstream::consumer::DeliverPolicy;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use koppel_deliver::RetrySettings;
use koppel_deliver::dlq::RedriveSettings;
use koppel_deliver::replay::{ReplayPlan, ReplayRequest};
use koppel_registry::SecretKey;

use crate::cli::ReplayArgs;
use crate::commands::export::parse_time;
use crate::context::{CliConfig, Context};
use crate::output::Output;

pub(crate) async fn run(
    arguments: ReplayArgs,
    config: &CliConfig,
    output: Output,
) -> anyhow::Result<()> {
    let start = match (&arguments.since, arguments.from_seq) {
        (Some(since), None) => {
            let start_time = parse_time(since)?;
            let nanos = start_time
                .timestamp_nanos_opt()
                .context("--since is out of range")?;
            DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))?,
            }
        }
        (None, Some(start_sequence)) => DeliverPolicy::ByStartSequence { start_sequence },
        _ => bail!("give where the replay starts: --since <time> or --from-seq <sequence>"),
    };
    let context = Context::connect(config).await?;
    let request = ReplayRequest {
        recipient: arguments.recipient,
        start,
        employer: arguments.employer,
        name: arguments.name,
    };
    let plan = ReplayPlan::check(&context.topology, request).await?;
    let settings = RedriveSettings {
        secret_key: SecretKey::from_environment().context("cannot open the recipient's secrets")?,
        http: koppel_runtime::http::HttpClientSettings::default().client()?,
        retry: RetrySettings {
            initial_backoff_millis: 200,
            max_backoff_millis: 5_000,
            max_attempts: 20,
            max_age_seconds: 300,
            ..RetrySettings::default()
        },
    };
    let replay = plan.open(&context.topology, settings).await?;
    let name = replay.name().to_owned();
    output.text(format!(
        "replaying {} events to {} through consumer {}",
        replay.pending(),
        replay.recipient(),
        replay.consumer_name()
    ));
    let progress = if output.is_json() {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(replay.pending()), ProgressDrawTarget::stderr())
    };
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec})") {
        progress.set_style(style);
    }
    let shutdown = koppel_runtime::shutdown_on_signal();
    let report = replay.run(&shutdown, || progress.inc(1)).await?;
    progress.finish_and_clear();
    output.text(format!(
        "replayed {}: {} delivered ({} already there, absorbed by their idempotency keys), {} not for this recipient, {} failed{}",
        report.replayed,
        report.delivered,
        report.duplicates_absorbed,
        report.filtered,
        report.failed.len(),
        if report.finished { String::new() } else { format!("; interrupted, resume with --name {name}") }
    ));
    if output.is_json() {
        output.json(&report);
    }
    if !report.failed.is_empty() {
        bail!("{} events could not be replayed", report.failed.len());
    }
    Ok(())
}
