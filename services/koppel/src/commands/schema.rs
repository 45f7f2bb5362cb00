//! `koppel schema list|show`: the writer schemas, for data teams decoding events elsewhere.
//!
//! The fingerprint is the Avro specification's, what every standard reader computes. The
//! legacy column is the key payloads written by release v1 and earlier carry (apache-avro
//! 0.22's fingerprint); `show` accepts either.

use anyhow::{Context as _, bail};
use koppel_events::{EventType, Fingerprint, catalog};
use serde::Serialize;

use crate::cli::SchemaCommand;
use crate::output::Output;

#[derive(Debug, Serialize)]
struct SchemaRow {
    event_type: &'static str,
    fingerprint: String,
    legacy_fingerprint: String,
}

pub(crate) fn run(command: SchemaCommand, output: Output) -> anyhow::Result<()> {
    let catalog = catalog().context("the compiled-in schemas are broken")?;
    match command {
        SchemaCommand::List => {
            let records: Vec<SchemaRow> = catalog
                .current_schemas()
                .iter()
                .map(|schema| SchemaRow {
                    event_type: schema.event_type.schema_name(),
                    fingerprint: schema.fingerprint.to_hex(),
                    legacy_fingerprint: schema.legacy_fingerprint.to_hex(),
                })
                .collect();
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|row| {
                    vec![
                        row.event_type.to_owned(),
                        row.fingerprint.clone(),
                        row.legacy_fingerprint.clone(),
                    ]
                })
                .collect();
            output.table(
                &["EVENT TYPE", "FINGERPRINT", "LEGACY FINGERPRINT (V1)"],
                &rows,
                &records,
            );
            Ok(())
        }
        SchemaCommand::Show { name } => {
            let schema = match (
                EventType::from_schema_name(&name),
                Fingerprint::from_hex(&name),
            ) {
                (Some(event_type), _) => catalog.current(event_type),
                (None, Some(fingerprint)) => catalog.by_fingerprint(fingerprint),
                (None, None) => None,
            };
            let Some(schema) = schema else {
                bail!(
                    "no schema named {name:?}: give an event type such as EmploymentChanged, or a 16-hex-digit fingerprint"
                );
            };
            let json: serde_json::Value = serde_json::from_str(&schema.json)?;
            output.json(&json);
            Ok(())
        }
    }
}
