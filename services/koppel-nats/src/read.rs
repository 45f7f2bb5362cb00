//! Reading a range of a stream in order, without acks: what `koppel tail`, `export` and the
//! dead-letter tools need. An ordered consumer (ephemeral, recreated by async-nats on a gap)
//! reads from a start position; unless following, the read ends at the last message the stream
//! held when it began.

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    Sequence(u64),
    Time(DateTime<Utc>),
    /// Only messages stored after the read begins (implies following).
    New,
}

/// One stored message.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub stream_sequence: u64,
    pub subject: String,
    pub headers: Option<HeaderMap>,
    pub payload: Bytes,
    pub published: DateTime<Utc>,
    /// Matching messages after this one when it was delivered.
    pub pending: u64,
}

impl StoredMessage {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.as_ref()?.get(name).map(|value| value.as_str())
    }
}

/// A failed read, keeping async-nats's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the start time {0} is outside what NATS can represent")]
    StartOutOfRange(DateTime<Utc>),
    #[error("cannot create the reading consumer: {}", source.kind())]
    CreateConsumer {
        #[source]
        source: async_nats::jetstream::stream::ConsumerError,
    },
    #[error("cannot read the consumer's position: {}", source.kind())]
    ConsumerInfo {
        #[source]
        source: async_nats::jetstream::context::ConsumerInfoError,
    },
    #[error("cannot start reading messages: {}", source.kind())]
    Messages {
        #[source]
        source: async_nats::jetstream::consumer::StreamError,
    },
    #[error("reading the next message failed: {}", source.kind())]
    NextMessage {
        #[source]
        source: async_nats::jetstream::consumer::pull::OrderedError,
    },
    #[error("a message lacks its JetStream metadata")]
    MessageInfo {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What to read.
#[derive(Debug, Clone)]
pub struct ReadSpec {
    /// Subjects to read; empty reads everything.
    pub filter_subjects: Vec<String>,
    pub start: StartAt,
    /// Keep waiting for new messages instead of ending at the stream's end.
    pub follow: bool,
}

fn to_nats_time(instant: DateTime<Utc>) -> Result<time::OffsetDateTime, ReadError> {
    let nanos = instant
        .timestamp_nanos_opt()
        .ok_or(ReadError::StartOutOfRange(instant))?;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .map_err(|_| ReadError::StartOutOfRange(instant))
}

fn from_nats_time(instant: time::OffsetDateTime) -> DateTime<Utc> {
    let nanos = instant.unix_timestamp_nanos();
    DateTime::from_timestamp_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// Reads `spec` from `stream`, handing each message to `visit` in stream order. `visit`
/// returns `false` to stop early. Returns the number of messages visited.
pub async fn read_stream<F>(
    stream: &Stream,
    spec: &ReadSpec,
    mut visit: F,
) -> Result<u64, ReadError>
where
    F: FnMut(StoredMessage) -> bool,
{
    let deliver_policy = match spec.start {
        StartAt::Beginning => DeliverPolicy::All,
        StartAt::Sequence(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
        StartAt::Time(start) => DeliverPolicy::ByStartTime {
            start_time: to_nats_time(start)?,
        },
        StartAt::New => DeliverPolicy::New,
    };
    let (filter_subject, filter_subjects) = match spec.filter_subjects.as_slice() {
        [single] => (single.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    };
    let follow = spec.follow || spec.start == StartAt::New;
    let mut consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy,
            filter_subject,
            filter_subjects,
            ..Default::default()
        })
        .await
        .map_err(|source| ReadError::CreateConsumer { source })?;
    let pending_at_start = consumer
        .info()
        .await
        .map_err(|source| ReadError::ConsumerInfo { source })?
        .num_pending;
    if !follow && pending_at_start == 0 {
        return Ok(0);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|source| ReadError::Messages { source })?;
    let mut visited = 0u64;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|source| ReadError::NextMessage { source })?;
        let info = message
            .info()
            .map_err(|source| ReadError::MessageInfo { source })?;
        let stored = StoredMessage {
            stream_sequence: info.stream_sequence,
            subject: message.subject.to_string(),
            headers: message.headers.clone(),
            payload: message.payload.clone(),
            published: from_nats_time(info.published),
            pending: info.pending,
        };
        visited += 1;
        let pending = stored.pending;
        if !visit(stored) || (!follow && pending == 0) {
            break;
        }
    }
    Ok(visited)
}
