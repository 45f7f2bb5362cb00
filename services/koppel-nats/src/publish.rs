//! The publisher: pipelined JetStream publishes with bounded in-flight acks, `Nats-Msg-Id` set
//! to the event id, and an error whenever any ack fails or times out.
//!
//! `publish_all` returns `Ok` only when every event of the batch has a positive ack (stored or
//! duplicate), so a caller that advances a snapshot or watermark after it never advances past
//! an event the stream does not hold. Transient failures (timeouts, no responders during a
//! leader election, a reconnect) are retried with backoff from the first unacknowledged event;
//! re-sending already stored events is harmless because JetStream drops them by message id.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, message::PublishMessage};
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use koppel_events::subject::header;
use koppel_events::{EncodeError, Event, EventType, Fingerprint, Names};
use serde::Deserialize;
use uuid::Uuid;

use crate::ErrorClass;

/// One encoded event, ready to publish.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub subject: String,
    pub payload: Bytes,
    pub event_id: Uuid,
    pub event_type: EventType,
    pub employee_id: Option<String>,
    pub fingerprint: Fingerprint,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Subject(#[from] koppel_events::subject::TokenError),
}

impl PreparedEvent {
    /// Encodes `event` and works out its subject and headers.
    pub fn encode(names: &Names, event: &Event) -> Result<Self, PrepareError> {
        let header = event.header();
        let payload = koppel_events::encode(event)?;
        let fingerprint = koppel_events::codec::fingerprint_of(&payload)
            .map_err(|_| EncodeError::Avro("encoded payload lacks its header".to_owned()))?;
        Ok(PreparedEvent {
            subject: names.event_subject(
                header.source,
                &header.employer_key,
                event.event_type().entity(),
            )?,
            payload: Bytes::from(payload),
            event_id: header.event_id,
            event_type: event.event_type(),
            employee_id: event.employee_id().map(str::to_owned),
            fingerprint,
        })
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::MESSAGE_ID, self.event_id.to_string().as_str());
        headers.insert(header::EVENT_TYPE, self.event_type.schema_name());
        headers.insert(
            header::SCHEMA_FINGERPRINT,
            self.fingerprint.to_hex().as_str(),
        );
        headers.insert(header::CONTENT_TYPE, header::AVRO_CONTENT_TYPE);
        if let Some(employee_id) = &self.employee_id {
            headers.insert(header::EMPLOYEE_ID, employee_id.as_str());
        }
        headers
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublisherSettings {
    /// Publishes awaiting their ack at once. Bounded so memory stays flat for any batch size.
    pub max_in_flight: usize,
    /// How long transient failures are retried before `publish_all` gives up, in seconds.
    pub retry_for_seconds: u64,
}

impl Default for PublisherSettings {
    fn default() -> Self {
        PublisherSettings {
            max_in_flight: 512,
            retry_for_seconds: 60,
        }
    }
}

/// What a successful `publish_all` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Events the stream stored now.
    pub stored: u64,
    /// Events the stream already held (same `Nats-Msg-Id` within the duplicate window).
    pub duplicates: u64,
    /// The highest stream sequence acknowledged.
    pub last_sequence: u64,
}

/// A publish that failed, with async-nats's error (shared, so the error stays `Clone`) as its
/// source; its kind decided the variant (see `classify`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// Worth retrying later: the stream did not confirm in time, or NATS was unreachable.
    #[error("event {index} ({event_id}) was not acknowledged: {}", source.kind())]
    Unacknowledged {
        index: usize,
        event_id: Uuid,
        #[source]
        source: Arc<jetstream::context::PublishError>,
    },
    /// Will not succeed by retrying: the message is too big, or an expectation header failed.
    #[error("event {index} ({event_id}) was refused: {}", source.kind())]
    Refused {
        index: usize,
        event_id: Uuid,
        #[source]
        source: Arc<jetstream::context::PublishError>,
    },
}

impl PublishError {
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            PublishError::Unacknowledged { .. } => ErrorClass::Retryable,
            PublishError::Refused { .. } => ErrorClass::Permanent,
        }
    }

    fn index(&self) -> usize {
        match self {
            PublishError::Unacknowledged { index, .. } | PublishError::Refused { index, .. } => {
                *index
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Publisher {
    jetstream: jetstream::Context,
    settings: PublisherSettings,
}

impl Publisher {
    pub fn new(jetstream: jetstream::Context, settings: PublisherSettings) -> Self {
        Publisher {
            jetstream,
            settings,
        }
    }

    /// Publishes every event, in order, and returns once all are acknowledged.
    pub async fn publish_all(
        &self,
        events: &[PreparedEvent],
    ) -> Result<PublishReport, PublishError> {
        // Where the next attempt resumes, and what earlier attempts confirmed. Shared, because
        // the attempt closure reads them while the notify closure updates them; a Mutex, not a
        // Cell, so the returned future is Send and can be spawned on a multi-threaded runtime.
        let resume = std::sync::Mutex::new((0usize, PublishReport::default()));
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_total_delay(Some(Duration::from_secs(self.settings.retry_for_seconds)))
            .without_max_times();
        // Each attempt resumes at the first event not yet acknowledged. Acks are awaited in
        // publish order, so everything before a failure is known to be stored.
        let result = (|| {
            let (offset, report_so_far) =
                *resume.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            async move { self.publish_from(events, offset, report_so_far).await }
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|failure: &PublishFailure| failure.error.is_retryable())
        .notify(|failure: &PublishFailure, delay: Duration| {
            *resume.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                (failure.error.index(), failure.report);
            tracing::warn!(error = %failure.error, retry_in_ms = delay.as_millis() as u64, "Publish not acknowledged; retrying from the first unacknowledged event.");
        })
        .await;
        match result {
            Ok(report) => Ok(report),
            Err(failure) => Err(failure.error),
        }
    }

    async fn publish_from(
        &self,
        events: &[PreparedEvent],
        offset: usize,
        mut report: PublishReport,
    ) -> Result<PublishReport, PublishFailure> {
        let mut in_flight: VecDeque<(usize, PublishAckFuture)> =
            // Capped by the batch: `max_in_flight` comes from config, and a huge one must not
            // become a huge (or impossible) allocation.
            VecDeque::with_capacity(self.settings.max_in_flight.clamp(1, events.len().max(1)));
        for (index, event) in events.iter().enumerate().skip(offset) {
            if in_flight.len() >= self.settings.max_in_flight.max(1)
                && let Some((acked_index, future)) = in_flight.pop_front()
            {
                await_ack(events, acked_index, future, &mut report).await?;
            }
            let message = PublishMessage::build()
                .payload(event.payload.clone())
                .headers(event.headers());
            let future = self
                .jetstream
                .send_publish(event.subject.clone(), message)
                .await
                .map_err(|error| PublishFailure {
                    error: classify(index, event.event_id, error),
                    report,
                })?;
            in_flight.push_back((index, future));
        }
        while let Some((index, future)) = in_flight.pop_front() {
            await_ack(events, index, future, &mut report).await?;
        }
        Ok(report)
    }
}

/// A failed attempt, with what the attempt had confirmed before it failed.
#[derive(Debug)]
struct PublishFailure {
    error: PublishError,
    report: PublishReport,
}

async fn await_ack(
    events: &[PreparedEvent],
    index: usize,
    future: PublishAckFuture,
    report: &mut PublishReport,
) -> Result<(), PublishFailure> {
    let event_id = events
        .get(index)
        .map(|event| event.event_id)
        .unwrap_or_default();
    match future.await {
        Ok(ack) => {
            if ack.duplicate {
                report.duplicates += 1;
                metrics::counter!("koppel_publish_duplicates_total").increment(1);
            } else {
                report.stored += 1;
                metrics::counter!("koppel_events_published_total").increment(1);
            }
            report.last_sequence = report.last_sequence.max(ack.sequence);
            Ok(())
        }
        Err(error) => Err(PublishFailure {
            error: classify(index, event_id, error),
            report: *report,
        }),
    }
}

fn classify(index: usize, event_id: Uuid, error: jetstream::context::PublishError) -> PublishError {
    let source = Arc::new(error);
    match source.kind() {
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending
        // No responders: during a leader election or a restart nobody answers for a moment.
        | PublishErrorKind::StreamNotFound
        | PublishErrorKind::Other => PublishError::Unacknowledged { index, event_id, source },
        PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence => PublishError::Refused { index, event_id, source },
    }
}
