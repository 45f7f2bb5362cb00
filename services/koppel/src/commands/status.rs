//! `koppel status`: per employer, the last sync and its result (held-back runs stand out); per
//! recipient, how far delivery lags behind and how many dead letters wait; and registry records
//! this build cannot read.

use koppel_deliver::dlq::{self, DlqSelection};
use koppel_events::{EntityType, Event, SyncResult};
use serde::Serialize;

use crate::context::{CliConfig, Context};
use crate::output::Output;

#[derive(Debug, Serialize)]
struct EmployerStatus {
    employer_key: String,
    connection: String,
    enabled: bool,
    last_sync_at: Option<String>,
    last_sync_kind: Option<String>,
    last_sync_result: Option<String>,
    records_failed: Option<i64>,
    removals_held_back: Option<i64>,
}

#[derive(Debug, Serialize)]
struct RecipientStatus {
    recipient: String,
    employers: usize,
    /// Events not yet delivered (waiting plus in flight).
    lag: Option<u64>,
    dead_letters: usize,
}

/// A registry record this build cannot read (see koppel-registry's store): workers keep its
/// last good version, so it needs fixing, not panic.
#[derive(Debug, Serialize)]
struct RegistryProblemStatus {
    key: String,
    revision: u64,
    serving_last_good: bool,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Status {
    employers: Vec<EmployerStatus>,
    recipients: Vec<RecipientStatus>,
    registry_problems: Vec<RegistryProblemStatus>,
}

pub(crate) async fn run(config: &CliConfig, output: Output) -> anyhow::Result<()> {
    let context = Context::connect(config).await?;
    let snapshot = context.registry.snapshot().await?;
    let stream = context.topology.events_stream().await?;
    let mut employers = Vec::new();
    for employer in snapshot.employers.values() {
        let source = snapshot
            .connections
            .get(&employer.connection_id)
            .map(koppel_registry::Connection::source);
        let mut status = EmployerStatus {
            employer_key: employer.employer_key.clone(),
            connection: employer.connection_id.clone(),
            enabled: employer.enabled,
            last_sync_at: None,
            last_sync_kind: None,
            last_sync_result: None,
            records_failed: None,
            removals_held_back: None,
        };
        // The last SyncCompleted marker of the employer: one direct get, no scan.
        if let Some(source) = source {
            let subject = context.topology.names.event_subject(
                source,
                &employer.employer_key,
                EntityType::Sync,
            )?;
            if let Ok(message) = stream.direct_get_last_for_subject(subject).await
                && let Ok(Event::SyncCompleted(sync)) = koppel_events::decode(&message.payload)
            {
                status.last_sync_at = Some(sync.header.observed_at.to_rfc3339());
                status.last_sync_kind = Some(format!("{:?}", sync.kind).to_lowercase());
                status.last_sync_result = Some(
                    match sync.result {
                        SyncResult::Completed => "completed",
                        SyncResult::HeldBack => "HELD BACK",
                        SyncResult::Unknown => "unknown",
                    }
                    .to_owned(),
                );
                status.records_failed = Some(sync.counts.records_failed);
                status.removals_held_back = Some(sync.counts.removals_held_back);
            }
        }
        employers.push(status);
    }
    let mut recipients = Vec::new();
    for recipient in snapshot.recipients.keys() {
        let durable = context.topology.names.delivery_consumer(recipient)?;
        let lag = match stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&durable)
            .await
        {
            Ok(mut consumer) => consumer
                .info()
                .await
                .ok()
                .map(|info| info.num_pending + info.num_ack_pending as u64),
            Err(_) => None,
        };
        let dead_letters = dlq::list(
            &context.topology,
            &DlqSelection::recipient(recipient.clone()),
        )
        .await?
        .len();
        recipients.push(RecipientStatus {
            recipient: recipient.clone(),
            employers: snapshot.employers_of_recipient(recipient).len(),
            lag,
            dead_letters,
        });
    }
    let registry_problems = snapshot
        .problems
        .iter()
        .map(|(key, problem)| RegistryProblemStatus {
            key: key.clone(),
            revision: problem.revision,
            serving_last_good: problem.serving_last_good,
            reason: problem.reason.clone(),
        })
        .collect();
    let status = Status {
        employers,
        recipients,
        registry_problems,
    };
    if output.is_json() {
        output.json(&status);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = status
        .employers
        .iter()
        .map(|employer| {
            vec![
                employer.employer_key.clone(),
                employer.connection.clone(),
                employer
                    .last_sync_at
                    .clone()
                    .unwrap_or_else(|| "never".to_owned()),
                employer.last_sync_kind.clone().unwrap_or_default(),
                employer.last_sync_result.clone().unwrap_or_default(),
                employer
                    .records_failed
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                employer
                    .removals_held_back
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    output.table(
        &[
            "EMPLOYER",
            "CONNECTION",
            "LAST SYNC",
            "KIND",
            "RESULT",
            "BAD RECORDS",
            "HELD BACK",
        ],
        &rows,
        &status.employers,
    );
    output.text("");
    let rows: Vec<Vec<String>> = status
        .recipients
        .iter()
        .map(|recipient| {
            vec![
                recipient.recipient.clone(),
                recipient.employers.to_string(),
                recipient
                    .lag
                    .map_or_else(|| "no consumer".to_owned(), |lag| lag.to_string()),
                recipient.dead_letters.to_string(),
            ]
        })
        .collect();
    output.table(
        &["RECIPIENT", "EMPLOYERS", "LAG", "DEAD LETTERS"],
        &rows,
        &status.recipients,
    );
    if !status.registry_problems.is_empty() {
        output.text("");
        let rows: Vec<Vec<String>> = status
            .registry_problems
            .iter()
            .map(|problem| {
                vec![
                    problem.key.clone(),
                    problem.revision.to_string(),
                    if problem.serving_last_good {
                        "last good version".to_owned()
                    } else {
                        "none".to_owned()
                    },
                    problem.reason.clone(),
                ]
            })
            .collect();
        output.table(
            &["UNREADABLE REGISTRY RECORD", "REVISION", "IN USE", "REASON"],
            &rows,
            &status.registry_problems,
        );
    }
    Ok(())
}
