//! Dead letters in `KOPPEL_DLQ`: writing one (the original payload and headers plus why, how
//! often, for whom and from where), and reading back which lanes are parked.
//!
//! A lane is parked exactly while the dead-letter stream holds a dead letter of it for that
//! recipient. That state lives in the stream, not in the deliverer's memory, so it survives a
//! restart, and `koppel dlq retry|purge` release a lane simply by removing its dead letters.

use std::collections::HashMap;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, message::PublishMessage};
use bytes::Bytes;
use futures::StreamExt;
use koppel_events::Names;
use koppel_events::subject::{TokenError, header};
use serde::{Deserialize, Serialize};

use crate::lane::{LaneKey, UNKNOWN_EMPLOYER};
use crate::outcome::DeadLetterClass;
use crate::recipient::one_line;

/// The original event id (its `Nats-Msg-Id`). The dead letter's own `Nats-Msg-Id` is derived
/// from it and the recipient, so writing the same dead letter twice stores it once.
pub const DLQ_EVENT_ID: &str = "Koppel-Dlq-Event-Id";
/// On a dead letter parked behind another: the event id of the lane's first dead letter.
pub const DLQ_PARKED_BEHIND: &str = "Koppel-Dlq-Parked-Behind";

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error(transparent)]
    Subject(#[from] TokenError),
    #[error("the dead-letter stream did not store the dead letter")]
    Publish(#[source] jetstream::context::PublishError),
    /// Any step of reading (the stream, the reader, a message) failed; all of them are worth
    /// trying again, so only the source says which.
    #[error("cannot read the dead-letter stream")]
    Read(#[source] async_nats::Error),
}

/// Everything a dead letter records.
#[derive(Debug, Clone)]
pub struct DeadLetterRecord<'a> {
    pub recipient: &'a str,
    pub lane: &'a LaneKey,
    pub original_subject: &'a str,
    pub original_headers: Option<&'a HeaderMap>,
    pub original_sequence: u64,
    pub payload: Bytes,
    pub class: DeadLetterClass,
    pub reason: &'a str,
    pub attempts: u32,
    pub parked_behind: Option<&'a str>,
}

impl DeadLetterRecord<'_> {
    /// The event id, or for a message without one, its stream sequence: either identifies the
    /// original uniquely, which is what the dead letter's dedupe id needs.
    pub fn original_id(&self) -> String {
        self.original_headers
            .and_then(|headers| headers.get(header::MESSAGE_ID))
            .map(|value| value.as_str().to_owned())
            .unwrap_or_else(|| format!("seq-{}", self.original_sequence))
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(original) = self.original_headers {
            for (name, values) in original.iter() {
                let name: &str = AsRef::<str>::as_ref(name);
                if name == header::MESSAGE_ID {
                    continue;
                }
                for value in values {
                    headers.append(name, value.as_str());
                }
            }
        }
        let original_id = self.original_id();
        headers.insert(
            header::MESSAGE_ID,
            format!("dlq-{}-{original_id}", self.recipient).as_str(),
        );
        headers.insert(DLQ_EVENT_ID, original_id.as_str());
        headers.insert(header::DLQ_ERROR, one_line(self.reason, 1_000).as_str());
        headers.insert(header::DLQ_ERROR_CLASS, self.class.as_str());
        headers.insert(header::DLQ_ATTEMPTS, self.attempts.to_string().as_str());
        headers.insert(header::DLQ_RECIPIENT, self.recipient);
        headers.insert(header::DLQ_ORIGINAL_SUBJECT, self.original_subject);
        headers.insert(
            header::DLQ_ORIGINAL_SEQUENCE,
            self.original_sequence.to_string().as_str(),
        );
        if let Some(head) = self.parked_behind {
            headers.insert(DLQ_PARKED_BEHIND, head);
        }
        headers
    }
}

/// Stores one dead letter and waits for the stream's ack. Returns whether it was new (false:
/// the stream already held it, e.g. after a crash between dead-lettering and acking).
pub async fn write_dead_letter(
    jetstream: &jetstream::Context,
    names: &Names,
    record: &DeadLetterRecord<'_>,
) -> Result<bool, DeadLetterError> {
    let subject = names.dlq_subject(record.recipient, &record.lane.employer_key)?;
    let message = PublishMessage::build()
        .payload(record.payload.clone())
        .headers(record.headers());
    let ack = jetstream
        .send_publish(subject, message)
        .await
        .map_err(DeadLetterError::Publish)?
        .await
        .map_err(DeadLetterError::Publish)?;
    Ok(!ack.duplicate)
}

/// A dead letter as read back from the stream.
#[derive(Debug, Clone)]
pub struct RawDeadLetter {
    pub dlq_sequence: u64,
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
    pub stored_at: chrono::DateTime<chrono::Utc>,
}

impl RawDeadLetter {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.as_str())
    }

    /// The lane: employer from the dead letter's subject, employee from the original headers.
    pub fn lane(&self) -> LaneKey {
        LaneKey {
            employer_key: self
                .subject
                .rsplit('.')
                .next()
                .unwrap_or(UNKNOWN_EMPLOYER)
                .to_owned(),
            employee_id: self
                .header(header::EMPLOYEE_ID)
                .filter(|value| !value.is_empty())
                .map(str::to_owned),
        }
    }

    pub fn event_id(&self) -> Option<&str> {
        self.header(DLQ_EVENT_ID)
    }
}

/// How long a read waits for the next dead letter before concluding there is none.
const READ_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads every dead letter on `filter`, oldest first, through an ordered consumer (ephemeral,
/// no acks: reading never changes the stream). `headers_only` skips payloads.
pub async fn read_dead_letters(
    jetstream: &jetstream::Context,
    names: &Names,
    filter: String,
    headers_only: bool,
) -> Result<Vec<RawDeadLetter>, DeadLetterError> {
    fn read(error: impl Into<async_nats::Error>) -> DeadLetterError {
        DeadLetterError::Read(error.into())
    }
    let stream = jetstream
        .get_stream(names.dlq_stream())
        .await
        .map_err(read)?;
    let mut reader = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter,
            headers_only,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(read)?;
    let pending = reader.info().await.map_err(read)?.num_pending;
    let mut letters = Vec::new();
    if pending == 0 {
        return Ok(letters);
    }
    let mut messages = reader.messages().await.map_err(read)?;
    // `pending` ends the read normally. The idle limit ends it when dead letters counted as
    // pending were deleted meanwhile (a concurrent retry or purge): waiting for them would
    // wait forever.
    loop {
        let message = match tokio::time::timeout(READ_IDLE_LIMIT, messages.next()).await {
            Ok(Some(message)) => message,
            Ok(None) | Err(_) => break,
        };
        let message = message.map_err(read)?;
        let info = message.info().map_err(read)?;
        let remaining = info.pending;
        let dlq_sequence = info.stream_sequence;
        let stored_at = chrono::DateTime::from_timestamp(
            info.published.unix_timestamp(),
            info.published.nanosecond(),
        )
        .unwrap_or_default();
        letters.push(RawDeadLetter {
            dlq_sequence,
            subject: message.message.subject.to_string(),
            headers: message.message.headers.clone().unwrap_or_default(),
            payload: message.message.payload.clone(),
            stored_at,
        });
        if remaining == 0 {
            break;
        }
    }
    Ok(letters)
}

/// The parked lanes of `recipient`, each with the event id of its first dead letter.
pub async fn parked_lanes(
    jetstream: &jetstream::Context,
    names: &Names,
    recipient: &str,
) -> Result<HashMap<LaneKey, String>, DeadLetterError> {
    let letters =
        read_dead_letters(jetstream, names, names.dlq_filter(recipient, None)?, true).await?;
    let mut lanes = HashMap::new();
    for letter in letters {
        let head = letter.event_id().unwrap_or_default().to_owned();
        lanes.entry(letter.lane()).or_insert(head);
    }
    Ok(lanes)
}

/// The first dead letter of one lane, if the lane is still parked.
pub async fn lane_head(
    jetstream: &jetstream::Context,
    names: &Names,
    recipient: &str,
    lane: &LaneKey,
) -> Result<Option<String>, DeadLetterError> {
    let filter = names.dlq_subject(recipient, &lane.employer_key)?;
    let letters = read_dead_letters(jetstream, names, filter, true).await?;
    Ok(letters
        .into_iter()
        .find(|letter| &letter.lane() == lane)
        .map(|letter| letter.event_id().unwrap_or_default().to_owned()))
}

/// A notice that some of a lane's dead letters were removed, so a running deliverer re-checks
/// whether the lane is still parked. Core NATS, fire and forget: a deliverer that misses it
/// re-checks its parked lanes periodically and at start anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneReleaseNotice {
    pub employer_key: String,
    pub employee_id: Option<String>,
}

/// `<namespace>.koppel.control.dlq-released.<recipient>`: outside the streams' subjects on
/// purpose, since the notice must not be stored or replayed.
pub fn release_notice_subject(names: &Names, recipient: &str) -> String {
    match names.namespace() {
        Some(namespace) => format!("{namespace}.koppel.control.dlq-released.{recipient}"),
        None => format!("koppel.control.dlq-released.{recipient}"),
    }
}
