//! `koppel tail`: decoded events as JSON lines, filtered by employer, source and type, with
//! BSNs masked unless `--show-pii`.

use anyhow::{Context as _, bail};
use koppel_events::subject::header;
use koppel_events::{EventType, SourceSystem};
use koppel_nats::read::{ReadSpec, StartAt, read_stream};
use koppel_nats::schemas::load_writer_schemas;
use serde_json::json;

use crate::cli::TailArgs;
use crate::context::{CliConfig, Context};
use crate::output::{Output, mask_bsns};

pub(crate) async fn run(
    arguments: TailArgs,
    config: &CliConfig,
    output: Output,
) -> anyhow::Result<()> {
    let source = match &arguments.source {
        Some(token) => Some(
            SourceSystem::from_token(token)
                .with_context(|| format!("unknown source {token:?}: use loket or unit4"))?,
        ),
        None => None,
    };
    let mut wanted_types = Vec::new();
    for name in &arguments.event_types {
        match EventType::from_schema_name(name) {
            Some(event_type) => wanted_types.push(event_type),
            None => bail!(
                "unknown event type {name:?}: use a name such as EmploymentChanged (see `koppel schema list`)"
            ),
        }
    }
    let context = Context::connect(config).await?;
    let filter = context
        .topology
        .names
        .events_filter(source, arguments.employer.as_deref())?;
    let writer_schemas = load_writer_schemas(&context.topology.schemas).await?;
    let stream = context.topology.events_stream().await?;
    let spec = ReadSpec {
        filter_subjects: vec![filter],
        start: if arguments.from_start {
            StartAt::Beginning
        } else {
            StartAt::New
        },
        follow: !arguments.no_follow,
    };
    let limit = arguments.limit.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    read_stream(&stream, &spec, |message| {
        let type_matches = wanted_types.is_empty()
            || message
                .header(header::EVENT_TYPE)
                .and_then(EventType::from_schema_name)
                .is_some_and(|event_type| wanted_types.contains(&event_type));
        if !type_matches {
            return true;
        }
        let mut line = match koppel_events::decode_with(&message.payload, &writer_schemas) {
            Ok(event) => json!({
                "stream_sequence": message.stream_sequence,
                "subject": message.subject,
                "published": message.published,
                "event": event,
            }),
            // An undecodable message is reported in the stream of lines, not fatal: tail is
            // how one finds such a message.
            Err(error) => json!({
                "stream_sequence": message.stream_sequence,
                "subject": message.subject,
                "published": message.published,
                "error": error.to_string(),
            }),
        };
        if !arguments.show_pii {
            mask_bsns(&mut line);
        }
        output.json_line(&line);
        printed += 1;
        printed < limit
    })
    .await?;
    Ok(())
}
