//! The library behind `koppel dlq list|show|retry|purge`: reading, re-driving and removing one
//! recipient's dead letters. It returns data and prints nothing; the CLI renders it.
//!
//! Every call names a recipient, and only that recipient's dead letters (subject
//! `koppel.dlq.<recipient>.<employer_key>`) are read or touched: one recipient's operator cannot
//! re-drive into, or purge from, another.
//!
//! # Re-drive
//! `retry` delivers the dead letters itself, through the deliverer's own delivery path
//! ([`crate::delivery::deliver_one`]: the same tenant check, decoding and recipient client),
//! with the original event id as idempotency key and the original stream sequence, lane
//! by lane in original stream order, and removes each from the dead-letter stream once the
//! recipient has it. A lane stops at its first failure, so nothing overtakes what is still
//! dead. Removing a lane's last dead letter releases the lane: the running deliverer is told
//! (a core NATS notice) and re-checks. Why this way rather than republishing into a stream the
//! consumer reads is written down in docs/delivery.md.

use std::collections::{BTreeMap, BTreeSet};

use async_nats::jetstream;
use koppel_events::subject::header;
use koppel_events::{DecodeError, Event, Names};
use koppel_nats::schemas::SchemaCache;
use koppel_nats::{Topology, TopologyError};
use koppel_registry::{Registry, RegistryError, RegistrySnapshot, SecretKey};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::budget::SpentBudget;
use crate::config::RetrySettings;
use crate::dead_letter::{
    DLQ_PARKED_BEHIND, DeadLetterError, LaneReleaseNotice, RawDeadLetter, read_dead_letters,
    release_notice_subject,
};
use crate::delivery::{DeliveryTarget, StoredEvent, deliver_one};
use crate::lane::LaneKey;
use crate::outcome::Settlement;
use crate::recipient::{RecipientClient, RecipientSetupError};

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    #[error(transparent)]
    Token(#[from] koppel_events::subject::TokenError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    OpenRecipient(#[from] OpenRecipientError),
    #[error("dead letter {dlq_sequence} does not exist or is not recipient {recipient}'s")]
    NotFound {
        recipient: String,
        dlq_sequence: u64,
    },
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("the dead-letter stream did not remove dead letter {dlq_sequence}")]
    Remove {
        dlq_sequence: u64,
        #[source]
        source: jetstream::stream::DeleteMessageError,
    },
}

/// Which dead letters: always one recipient; optionally one employer; optionally one dead
/// letter (for `retry`, its whole lane, since re-driving it alone could overtake its lane's
/// earlier dead letters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqSelection {
    pub recipient: String,
    pub employer_key: Option<String>,
    pub dlq_sequence: Option<u64>,
}

impl DlqSelection {
    pub fn recipient(recipient: impl Into<String>) -> Self {
        DlqSelection {
            recipient: recipient.into(),
            ..Default::default()
        }
    }

    pub fn employer(mut self, employer_key: impl Into<String>) -> Self {
        self.employer_key = Some(employer_key.into());
        self
    }

    pub fn dead_letter(mut self, dlq_sequence: u64) -> Self {
        self.dlq_sequence = Some(dlq_sequence);
        self
    }
}

/// One dead letter as `dlq list` shows it. No payload, hence no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterSummary {
    pub dlq_sequence: u64,
    pub recipient: String,
    pub employer_key: String,
    pub employee_id: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// `refused`, `aborted`, `undecodable`, `unknown_schema`, `unmappable`,
    /// `budget_exhausted` or `parked`.
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub attempts: Option<u32>,
    pub original_subject: Option<String>,
    pub original_sequence: Option<u64>,
    /// For `parked`: the event id of the lane's first dead letter.
    pub parked_behind: Option<String>,
    pub dead_lettered_at: chrono::DateTime<chrono::Utc>,
    pub payload_bytes: usize,
}

impl DeadLetterSummary {
    fn of(letter: &RawDeadLetter) -> Self {
        let text = |name: &str| letter.header(name).map(str::to_owned);
        let lane = letter.lane();
        DeadLetterSummary {
            dlq_sequence: letter.dlq_sequence,
            recipient: text(header::DLQ_RECIPIENT).unwrap_or_default(),
            employer_key: lane.employer_key,
            employee_id: lane.employee_id,
            event_id: letter.event_id().map(str::to_owned),
            event_type: text(header::EVENT_TYPE),
            error_class: text(header::DLQ_ERROR_CLASS),
            error: text(header::DLQ_ERROR),
            attempts: letter
                .header(header::DLQ_ATTEMPTS)
                .and_then(|value| value.parse().ok()),
            original_subject: text(header::DLQ_ORIGINAL_SUBJECT),
            original_sequence: original_sequence(letter),
            parked_behind: text(DLQ_PARKED_BEHIND),
            dead_lettered_at: letter.stored_at,
            payload_bytes: letter.payload.len(),
        }
    }
}

fn original_sequence(letter: &RawDeadLetter) -> Option<u64> {
    letter
        .header(header::DLQ_ORIGINAL_SEQUENCE)
        .and_then(|value| value.parse().ok())
}

/// A dead letter with its event decoded, for `dlq show`. The event's Debug masks BSNs; its
/// JSON serialization does not, so a CLI must mask unless asked not to.
#[derive(Debug, Clone)]
pub struct DeadLetterDetail {
    pub summary: DeadLetterSummary,
    pub event: Result<Event, DecodeError>,
}

async fn selected_letters(
    topology: &Topology,
    selection: &DlqSelection,
    headers_only: bool,
) -> Result<Vec<RawDeadLetter>, DlqError> {
    let names = &topology.names;
    let filter = names.dlq_filter(&selection.recipient, selection.employer_key.as_deref())?;
    let letters = read_dead_letters(&topology.jetstream, names, filter, headers_only).await?;
    Ok(letters
        .into_iter()
        .filter(|letter| letter.header(header::DLQ_RECIPIENT) == Some(selection.recipient.as_str()))
        .collect())
}

/// `dlq list`: the selected dead letters, oldest first.
pub async fn list(
    topology: &Topology,
    selection: &DlqSelection,
) -> Result<Vec<DeadLetterSummary>, DlqError> {
    let letters = selected_letters(topology, selection, true).await?;
    Ok(letters
        .iter()
        .filter(|letter| {
            selection
                .dlq_sequence
                .is_none_or(|sequence| letter.dlq_sequence == sequence)
        })
        .map(DeadLetterSummary::of)
        .collect())
}

/// `dlq show`: one dead letter of `recipient`, with its event decoded.
pub async fn show(
    topology: &Topology,
    recipient: &str,
    dlq_sequence: u64,
) -> Result<DeadLetterDetail, DlqError> {
    let letter = fetch(topology, recipient, dlq_sequence).await?;
    let schemas = SchemaCache::new(topology.schemas.clone());
    Ok(DeadLetterDetail {
        summary: DeadLetterSummary::of(&letter),
        event: schemas.decode(&letter.payload).await,
    })
}

async fn fetch(
    topology: &Topology,
    recipient: &str,
    dlq_sequence: u64,
) -> Result<RawDeadLetter, DlqError> {
    let not_found = || DlqError::NotFound {
        recipient: recipient.to_owned(),
        dlq_sequence,
    };
    let stream = dlq_stream(topology).await?;
    let message = stream
        .get_raw_message(dlq_sequence)
        .await
        .map_err(|_| not_found())?;
    let letter = RawDeadLetter {
        dlq_sequence,
        subject: message.subject.to_string(),
        headers: message.headers,
        payload: message.payload,
        stored_at: chrono::DateTime::from_timestamp(
            message.time.unix_timestamp(),
            message.time.nanosecond(),
        )
        .unwrap_or_default(),
    };
    let prefix = topology.names.dlq_filter(recipient, None)?;
    let prefix = prefix.trim_end_matches('*');
    if !letter.subject.starts_with(prefix)
        || letter.header(header::DLQ_RECIPIENT) != Some(recipient)
    {
        return Err(not_found());
    }
    Ok(letter)
}

async fn dlq_stream(topology: &Topology) -> Result<jetstream::stream::Stream, DlqError> {
    Ok(topology.dlq_stream().await?)
}

async fn remove(stream: &jetstream::stream::Stream, dlq_sequence: u64) -> Result<(), DlqError> {
    stream
        .delete_message(dlq_sequence)
        .await
        .map(|_| ())
        .map_err(|source| DlqError::Remove {
            dlq_sequence,
            source,
        })
}

/// What `retry` needs besides the topology: the key to open the recipient's secrets, an HTTP
/// client, and how hard to try each dead letter now.
#[derive(Debug, Clone)]
pub struct RedriveSettings {
    pub secret_key: SecretKey,
    pub http: reqwest::Client,
    pub retry: RetrySettings,
}

impl RedriveSettings {
    /// The registry as it is now and the named recipient's client, opened with these settings:
    /// what a re-drive and a replay need before they deliver anything.
    pub async fn open_recipient(
        &self,
        topology: &Topology,
        recipient: &str,
    ) -> Result<(RegistrySnapshot, RecipientClient), OpenRecipientError> {
        let snapshot = Registry::new(topology.registry.clone()).snapshot().await?;
        let record = snapshot
            .recipients
            .get(recipient)
            .ok_or_else(|| OpenRecipientError::UnknownRecipient(recipient.to_owned()))?;
        let client =
            RecipientClient::from_registry(record, &snapshot, &self.secret_key, self.http.clone())?;
        Ok((snapshot, client))
    }
}

/// Why [`RedriveSettings::open_recipient`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenRecipientError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("recipient {0} is not registered")]
    UnknownRecipient(String),
    #[error(transparent)]
    RecipientSetup(#[from] RecipientSetupError),
}

/// A dead letter that is still dead after a re-drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedriveFailure {
    pub dlq_sequence: u64,
    pub event_id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveReport {
    /// Delivered now (or found already delivered) and removed from the dead-letter stream.
    pub delivered: u64,
    /// Nothing to send any more (e.g. the event is no longer relevant) and removed.
    pub filtered: u64,
    /// Failed again; left in place, with why.
    pub failed: Vec<RedriveFailure>,
    /// Not attempted because an earlier dead letter of the same lane failed.
    pub left_parked: u64,
    /// Lanes with no dead letters left.
    pub lanes_released: u64,
}

/// `dlq retry`: re-drives the selected lanes, see the module docs.
pub async fn retry(
    topology: &Topology,
    settings: &RedriveSettings,
    selection: &DlqSelection,
) -> Result<RedriveReport, DlqError> {
    let (snapshot, client) = settings
        .open_recipient(topology, &selection.recipient)
        .await?;
    let subscribed: BTreeSet<String> = snapshot
        .employers_of_recipient(&selection.recipient)
        .into_iter()
        .collect();
    let schemas = SchemaCache::new(topology.schemas.clone());
    let lanes = lanes_of(
        selected_letters(topology, selection, false).await?,
        selection,
    )?;
    let stream = dlq_stream(topology).await?;
    // Never cancelled: a re-drive is short and interactive; the CLI's Ctrl-C ends the process,
    // and a dead letter delivered but not yet removed is absorbed by the idempotency key.
    let never = CancellationToken::new();
    let target = DeliveryTarget {
        client: &client,
        subscribed: &subscribed,
        schemas: &schemas,
        retry: &settings.retry,
        progress_interval: std::time::Duration::from_secs(3600),
        shutdown: &never,
        permits: None,
    };
    let mut report = RedriveReport::default();
    for (lane, letters) in lanes {
        let total = letters.len();
        let mut done = 0usize;
        for letter in &letters {
            let failure = |reason: String| RedriveFailure {
                dlq_sequence: letter.dlq_sequence,
                event_id: letter.event_id().map(str::to_owned),
                reason,
            };
            let Some(stream_sequence) = original_sequence(letter) else {
                report.failed.push(failure(
                    "the dead letter lacks its original sequence".to_owned(),
                ));
                break;
            };
            // The lane's employer comes from the dead letter's subject; the tenant check in
            // `deliver_one` holds it and the payload's employer against the subscriptions.
            let stored = StoredEvent {
                subject_employer: &lane.employer_key,
                payload: &letter.payload,
                stream_sequence,
                parked_behind: None,
                spent: SpentBudget::default(),
            };
            match deliver_one(&target, &stored, || async {}).await {
                Settlement::Delivered { .. } => report.delivered += 1,
                Settlement::Filtered { .. } => report.filtered += 1,
                Settlement::NotForRecipient(violation) => {
                    report.failed.push(failure(violation.to_string()));
                    break;
                }
                Settlement::DeadLetter { reason, .. } => {
                    report.failed.push(failure(reason));
                    break;
                }
                Settlement::Released => {
                    report.failed.push(failure("interrupted".to_owned()));
                    break;
                }
            }
            remove(&stream, letter.dlq_sequence).await?;
            done += 1;
        }
        report.left_parked += (total - done).saturating_sub(usize::from(done < total)) as u64;
        if done == total {
            report.lanes_released += 1;
        }
        if done > 0 {
            notify_release(topology, &selection.recipient, &lane).await;
        }
    }
    Ok(report)
}

/// Groups letters by lane, each lane in original stream order. With a dead letter selected,
/// only its lane.
fn lanes_of(
    letters: Vec<RawDeadLetter>,
    selection: &DlqSelection,
) -> Result<BTreeMap<LaneKey, Vec<RawDeadLetter>>, DlqError> {
    let only_lane = match selection.dlq_sequence {
        Some(sequence) => Some(
            letters
                .iter()
                .find(|letter| letter.dlq_sequence == sequence)
                .map(RawDeadLetter::lane)
                .ok_or_else(|| DlqError::NotFound {
                    recipient: selection.recipient.clone(),
                    dlq_sequence: sequence,
                })?,
        ),
        None => None,
    };
    let mut lanes: BTreeMap<LaneKey, Vec<RawDeadLetter>> = BTreeMap::new();
    for letter in letters {
        let lane = letter.lane();
        if only_lane.as_ref().is_some_and(|only| only != &lane) {
            continue;
        }
        lanes.entry(lane).or_default().push(letter);
    }
    for letters in lanes.values_mut() {
        letters.sort_by_key(|letter| {
            (
                original_sequence(letter).unwrap_or(u64::MAX),
                letter.dlq_sequence,
            )
        });
    }
    Ok(lanes)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub removed: u64,
    /// Dead letters removed per lane's employer, for the audit line the CLI writes.
    pub removed_by_employer: BTreeMap<String, u64>,
}

/// `dlq purge`: removes the selected dead letters without delivering them ("skip"), with a
/// reason that is logged for the audit trail. Removing a lane's first dead letter while later
/// ones remain keeps the lane parked behind the next one.
pub async fn purge(
    topology: &Topology,
    selection: &DlqSelection,
    reason: &str,
) -> Result<PurgeReport, DlqError> {
    let letters = selected_letters(topology, selection, true).await?;
    // One named dead letter that is not this recipient's is an error, as in `show` and
    // `retry`: "purged 0" would read as if it had been handled.
    if let Some(sequence) = selection.dlq_sequence
        && !letters.iter().any(|letter| letter.dlq_sequence == sequence)
    {
        return Err(DlqError::NotFound {
            recipient: selection.recipient.clone(),
            dlq_sequence: sequence,
        });
    }
    let stream = dlq_stream(topology).await?;
    let mut report = PurgeReport::default();
    let mut lanes = std::collections::BTreeSet::new();
    for letter in letters.iter().filter(|letter| {
        selection
            .dlq_sequence
            .is_none_or(|sequence| letter.dlq_sequence == sequence)
    }) {
        remove(&stream, letter.dlq_sequence).await?;
        let lane = letter.lane();
        report.removed += 1;
        *report
            .removed_by_employer
            .entry(lane.employer_key.clone())
            .or_default() += 1;
        tracing::info!(recipient = %selection.recipient, employer = %lane.employer_key, dlq_sequence = letter.dlq_sequence, event_id = letter.event_id().unwrap_or_default(), %reason, "Dead letter purged.");
        lanes.insert(lane);
    }
    for lane in &lanes {
        notify_release(topology, &selection.recipient, lane).await;
    }
    Ok(report)
}

/// Tells a running deliverer to re-check the lane. Best effort: it also re-checks on its own.
async fn notify_release(topology: &Topology, recipient: &str, lane: &LaneKey) {
    let notice = LaneReleaseNotice {
        employer_key: lane.employer_key.clone(),
        employee_id: lane.employee_id.clone(),
    };
    let Ok(payload) = serde_json::to_vec(&notice) else {
        return;
    };
    let client = topology.jetstream.client();
    let subject = release_notice_subject(&topology.names, recipient);
    if client.publish(subject, payload.into()).await.is_ok() {
        let _ = client.flush().await;
    }
}

/// The event id of a dead letter as a UUID, when it is one.
pub fn event_uuid(summary: &DeadLetterSummary) -> Option<Uuid> {
    summary
        .event_id
        .as_deref()
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// The names this module reads, for callers that only hold a [`Names`].
pub fn dlq_filter(names: &Names, selection: &DlqSelection) -> Result<String, DlqError> {
    Ok(names.dlq_filter(&selection.recipient, selection.employer_key.as_deref())?)
}
