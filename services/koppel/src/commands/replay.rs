//! `koppel replay`: redelivers past events to one recipient, in stream order, with their
//! original idempotency keys (the event ids) and stream sequences, so the recipient absorbs
//! what it already has and nothing is applied twice.
//!
//! The replay reads through a durable consumer of its own (`replay-<recipient>-<name>`),
//! filtered to the recipient's subscribed employers, and acks each event once the recipient has
//! settled it. Interrupted, it resumes where it stopped when run again with the same name; done,
//! it deletes its consumer. Events are delivered one at a time, which keeps per-employee order
//! without the lane machinery of the live deliverer.

use std::time::Duration;

use anyhow::{Context as _, bail};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use koppel_deliver::recipient::{DeliveryRequest, RecipientClient};
use koppel_deliver::{RetrySettings, Settlement};
use koppel_registry::SecretKey;
use serde::Serialize;
use serde_json::json;

use crate::cli::ReplayArgs;
use crate::commands::export::parse_time;
use crate::context::{CliConfig, Context};
use crate::output::Output;

#[derive(Debug, Default, Serialize)]
struct ReplayReport {
    consumer: String,
    replayed: u64,
    delivered: u64,
    /// Duplicates the recipient said it absorbed (the insurer answers 409; a webhook receiver
    /// answers 200 either way, so for webhooks this stays 0).
    duplicates_absorbed: u64,
    filtered: u64,
    failed: Vec<serde_json::Value>,
    finished: bool,
}

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
    let names = &context.topology.names;
    let snapshot = context.registry.snapshot().await?;
    let recipient = snapshot
        .recipients
        .get(&arguments.recipient)
        .with_context(|| format!("recipient {} is not registered", arguments.recipient))?;
    let subscribed = snapshot.employers_of_recipient(&arguments.recipient);
    let employers: Vec<String> = match &arguments.employer {
        Some(employer) if subscribed.contains(employer) => vec![employer.clone()],
        Some(employer) => bail!(
            "employer {employer} is not subscribed to {}",
            arguments.recipient
        ),
        None => subscribed.clone(),
    };
    if employers.is_empty() {
        bail!(
            "recipient {} has no subscribed employers: nothing to replay",
            arguments.recipient
        );
    }
    let name = arguments
        .name
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    koppel_events::subject::validate_token("replay name", &name)?;
    // No `-` in the name: recipient names may hold one, and `replay-a-b-c` must not be both
    // recipient `a` with replay `b-c` and recipient `a-b` with replay `c`, or one replay could
    // resume (and ack) the other's consumer.
    if name.contains('-') {
        bail!("a replay name holds letters, digits and `_` only, not `-`: {name}");
    }
    let durable = format!("replay-{}-{name}", arguments.recipient);
    let filter_subjects = employers
        .iter()
        .map(|employer| names.employer_filter(employer))
        .collect::<Result<Vec<_>, _>>()?;

    let key = SecretKey::from_environment().context("cannot open the recipient's secrets")?;
    let client = RecipientClient::from_registry(
        recipient,
        &snapshot,
        &key,
        koppel_runtime::http::HttpClientSettings::default().client()?,
    )?;
    let writer_schemas =
        koppel_nats::schemas::load_writer_schemas(&context.topology.schemas).await?;
    let stream = context.topology.events_stream().await?;
    // An existing consumer of this name is an interrupted replay: resume it as it is.
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        match stream.get_consumer(&durable).await {
            Ok(consumer) => consumer,
            Err(_) => {
                let (filter_subject, filter_subjects) = match filter_subjects.as_slice() {
                    [single] => (single.clone(), Vec::new()),
                    many => (String::new(), many.to_vec()),
                };
                stream
                    .create_consumer(pull::Config {
                        durable_name: Some(durable.clone()),
                        description: Some(format!("koppel replay to {}", arguments.recipient)),
                        deliver_policy: start,
                        ack_policy: AckPolicy::Explicit,
                        ack_wait: Duration::from_secs(300),
                        max_deliver: -1,
                        filter_subject,
                        filter_subjects,
                        ..Default::default()
                    })
                    .await
                    .context("cannot create the replay's consumer")?
            }
        };
    let mut info_consumer = consumer.clone();
    let pending = info_consumer.info().await?.num_pending;
    output.text(format!(
        "replaying {pending} events to {} through consumer {durable}",
        arguments.recipient
    ));
    let progress = if output.is_json() {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(pending), ProgressDrawTarget::stderr())
    };
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec})") {
        progress.set_style(style);
    }
    let shutdown = koppel_runtime::shutdown_on_signal();
    let retry = RetrySettings {
        initial_backoff_millis: 200,
        max_backoff_millis: 5_000,
        max_attempts: 20,
        max_age_seconds: 300,
        ..RetrySettings::default()
    };
    let mut report = ReplayReport {
        consumer: durable.clone(),
        ..ReplayReport::default()
    };
    let mut remaining = pending;
    while remaining > 0 && !shutdown.is_cancelled() {
        let mut batch = consumer
            .fetch()
            .max_messages(100)
            .expires(Duration::from_secs(2))
            .messages()
            .await?;
        let mut got_any = false;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|error| anyhow::anyhow!("{error}"))?;
            got_any = true;
            let info = message.info().map_err(|error| anyhow::anyhow!("{error}"))?;
            let stream_sequence = info.stream_sequence;
            remaining = info.pending;
            let settlement = match koppel_events::decode_with(&message.payload, &writer_schemas) {
                Ok(event) if employers.contains(&event.header().employer_key) => {
                    let request = DeliveryRequest {
                        event: &event,
                        event_id: event.header().event_id,
                        stream_sequence,
                        employer_key: &event.header().employer_key,
                    };
                    koppel_deliver::retry::retry_until_settled(
                        &retry,
                        Duration::from_secs(60),
                        &shutdown,
                        |_| client.deliver(&request),
                        || async {},
                    )
                    .await
                }
                // Subjects already filter by employer; this is the second lock on the door.
                Ok(_) => Settlement::Filtered {
                    reason: "employer not subscribed",
                },
                Err(error) => Settlement::DeadLetter {
                    class: koppel_deliver::DeadLetterClass::Permanent(
                        koppel_deliver::PermanentClass::Undecodable,
                    ),
                    reason: error.to_string(),
                    attempts: 0,
                },
            };
            match settlement {
                Settlement::Released => break,
                Settlement::Delivered { duplicate, .. } => {
                    report.delivered += 1;
                    report.duplicates_absorbed += u64::from(duplicate);
                }
                Settlement::Filtered { .. } => report.filtered += 1,
                Settlement::DeadLetter { reason, .. } => {
                    report
                        .failed
                        .push(json!({ "stream_sequence": stream_sequence, "reason": reason }));
                }
            }
            message.ack().await.map_err(|error| {
                anyhow::anyhow!("cannot ack stream sequence {stream_sequence}: {error}")
            })?;
            report.replayed += 1;
            progress.inc(1);
        }
        if !got_any {
            remaining = info_consumer.info().await?.num_pending;
        }
    }
    progress.finish_and_clear();
    report.finished = remaining == 0 && !shutdown.is_cancelled();
    if report.finished {
        // Done: the consumer has nothing left to resume.
        let _ = stream.delete_consumer(&durable).await;
    }
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
