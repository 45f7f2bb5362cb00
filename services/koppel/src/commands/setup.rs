//! `koppel setup`: creates or updates the streams and buckets from the `[topology]` config and
//! registers this build's writer schemas. It needs JetStream admin rights (the operator's NATS
//! user); workers and every other command only check that what they need exists.

use anyhow::Context as _;
use async_nats::jetstream;
use koppel_nats::Topology;
use serde::Serialize;

use crate::context::CliConfig;
use crate::output::Output;

/// What setup left in place, read back from the server.
#[derive(Debug, Serialize)]
struct StreamRow {
    stream: String,
    replicas: usize,
    /// Zero: no age limit.
    max_age_days: u64,
    /// Zero: no size limit.
    max_megabytes: u64,
    messages: u64,
}

pub(crate) async fn run(config: &CliConfig, output: Output) -> anyhow::Result<()> {
    let client = koppel_nats::connect(&config.nats)
        .await
        .context("cannot connect to NATS")?;
    let topology = Topology::setup(jetstream::new(client), config.names()?, &config.topology)
        .await
        .context("cannot set up streams and buckets (does this NATS user hold operator rights?)")?;
    let streams = Topology::stream_names(&topology.names);
    let mut records = Vec::with_capacity(streams.len());
    for name in streams {
        let mut stream = topology
            .jetstream
            .get_stream(&name)
            .await
            .with_context(|| format!("cannot read back stream {name}"))?;
        let info = stream
            .info()
            .await
            .with_context(|| format!("cannot read back stream {name}"))?;
        records.push(StreamRow {
            stream: name,
            replicas: info.config.num_replicas,
            max_age_days: info.config.max_age.as_secs() / 86_400,
            max_megabytes: u64::try_from(info.config.max_bytes).unwrap_or(0) / (1024 * 1024),
            messages: info.state.messages,
        });
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|row| {
            let limit = |value: u64| match value {
                0 => "none".to_owned(),
                value => value.to_string(),
            };
            vec![
                row.stream.clone(),
                row.replicas.to_string(),
                limit(row.max_age_days),
                limit(row.max_megabytes),
                row.messages.to_string(),
            ]
        })
        .collect();
    output.table(
        &[
            "STREAM",
            "REPLICAS",
            "MAX AGE (DAYS)",
            "MAX SIZE (MiB)",
            "MESSAGES",
        ],
        &rows,
        &records,
    );
    Ok(())
}
