//! `koppel export`: events of a time range to an Avro object container file (writer schema
//! embedded, deflate) or JSON lines, readable by any Avro library or JSON tool.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::{Context as _, bail};
use apache_avro::{Codec, DeflateSettings, Writer};
use chrono::{DateTime, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use koppel_nats::read::{ReadSpec, StartAt, read_stream};
use koppel_nats::schemas::load_writer_schemas;
use serde_json::json;

use crate::cli::{ExportArgs, ExportFormat};
use crate::context::{CliConfig, Context};
use crate::output::Output;

/// Accepts `2026-11-01T10:00:00Z` (RFC 3339) or `2026-11-01` (midnight UTC).
pub(crate) fn parse_time(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(midnight) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc());
    }
    bail!("malformed time {text:?}: use RFC 3339 (2026-11-01T10:00:00Z) or a date (2026-11-01)")
}

enum Sink<'schema> {
    Avro(Box<Writer<'schema, BufWriter<File>>>),
    Jsonl(BufWriter<File>),
}

pub(crate) async fn run(
    arguments: ExportArgs,
    config: &CliConfig,
    output: Output,
) -> anyhow::Result<()> {
    let since = arguments.since.as_deref().map(parse_time).transpose()?;
    let until = arguments.until.as_deref().map(parse_time).transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && until <= since
    {
        bail!("--until must be after --since");
    }
    let context = Context::connect(config).await?;
    let filter = context
        .topology
        .names
        .events_filter(None, arguments.employer.as_deref())?;
    let writer_schemas = load_writer_schemas(&context.topology.schemas).await?;
    let stream = context.topology.events_stream().await?;
    let file = File::create(&arguments.out)
        .with_context(|| format!("cannot create {}", arguments.out.display()))?;
    let union = koppel_events::schema::event_union_schema()?;
    let mut sink = match arguments.format {
        ExportFormat::Avro => Sink::Avro(Box::new(Writer::with_codec(
            &union,
            BufWriter::new(file),
            Codec::Deflate(DeflateSettings::default()),
        )?)),
        ExportFormat::Jsonl => Sink::Jsonl(BufWriter::new(file)),
    };
    let progress = if output.is_json() {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    };
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} exporting {pos}/{len} events ({per_sec})")
    {
        progress.set_style(style);
    }
    let spec = ReadSpec {
        filter_subjects: vec![filter],
        start: since.map_or(StartAt::Beginning, StartAt::Time),
        follow: false,
    };
    let mut exported = 0u64;
    let mut skipped: Vec<u64> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    read_stream(&stream, &spec, |message| {
        if progress.length().is_none() {
            progress.set_length(message.pending + 1);
        }
        if until.is_some_and(|until| message.published >= until) {
            return false;
        }
        // An undecodable event is skipped and reported; the rest of the range still exports.
        let event = match koppel_events::decode_with(&message.payload, &writer_schemas) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(stream_sequence = message.stream_sequence, %error, "Skipping an event that does not decode.");
                skipped.push(message.stream_sequence);
                return true;
            }
        };
        let written: anyhow::Result<()> = match &mut sink {
                Sink::Avro(writer) => koppel_events::codec::event_to_union_value(&event)
                .map_err(anyhow::Error::from)
                .and_then(|value| writer.append_value(value).map(drop).map_err(anyhow::Error::from)),
                Sink::Jsonl(writer) => {
                    let line = json!({ "stream_sequence": message.stream_sequence, "subject": message.subject, "event": event });
                    writeln!(writer, "{line}").map_err(anyhow::Error::from)
                }
            };
        match written {
            Ok(()) => {
                exported += 1;
                progress.inc(1);
                true
            }
            Err(error) => {
                failure = Some(error);
                false
            }
        }
    })
    .await?;
    progress.finish_and_clear();
    if let Some(error) = failure {
        return Err(error);
    }
    match sink {
        Sink::Avro(writer) => {
            writer.into_inner()?.flush()?;
        }
        Sink::Jsonl(mut writer) => writer.flush()?,
    }
    let summary = json!({ "exported": exported, "skipped_undecodable": skipped, "file": arguments.out.display().to_string() });
    if output.is_json() {
        output.json(&summary);
    } else {
        output.text(format!(
            "exported {exported} events to {}",
            arguments.out.display()
        ));
        if !skipped.is_empty() {
            output.text(format!(
                "skipped {} undecodable events at stream sequences {skipped:?}",
                skipped.len()
            ));
        }
    }
    Ok(())
}
