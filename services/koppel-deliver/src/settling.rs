//! Settling: turning a [`Settlement`] from the delivery path into what JetStream and the
//! dead-letter stream must know. Delivered, filtered and refused-by-tenant messages are acked;
//! a dead letter is stored (retrying until it is) and then the original acked; a released
//! message is NAKed with a delay. Every ack goes through [`koppel_nats::settle`].

use std::time::Duration;

use async_nats::jetstream;
use backon::{ExponentialBuilder, Retryable};
use koppel_nats::{AckOutcome, settle};

use crate::config::RetrySettings;
use crate::dead_letter::{DeadLetterRecord, write_dead_letter};
use crate::delivery::TenantViolation;
use crate::dispatcher::{ItemContext, ItemResult};
use crate::lane::LaneKey;
use crate::outcome::Settlement;
use crate::retry::backoff_schedule;

/// How long a released message waits before JetStream offers it again.
pub(crate) const RELEASE_DELAY: Duration = Duration::from_secs(1);

/// Settles one message the way its settlement says, and tells the lane what it means.
pub(crate) async fn settle_message(
    context: &ItemContext,
    lane: &LaneKey,
    message: &jetstream::Message,
    stream_sequence: u64,
    parked_head: Option<&str>,
    settlement: Settlement,
) -> ItemResult {
    let recipient = &*context.recipient;
    match settlement {
        Settlement::Delivered {
            duplicate,
            attempts,
        } => {
            metrics::counter!("koppel_delivery_delivered_total", "recipient" => recipient.to_owned()).increment(1);
            if duplicate {
                metrics::counter!("koppel_delivery_duplicates_total", "recipient" => recipient.to_owned()).increment(1);
            }
            if attempts > 1 {
                metrics::counter!("koppel_delivery_retries_total", "recipient" => recipient.to_owned())
                    .increment(u64::from(attempts - 1));
            }
            ack(message, recipient).await;
            ItemResult::Done
        }
        Settlement::Filtered { reason } => {
            metrics::counter!("koppel_delivery_filtered_total", "recipient" => recipient.to_owned(), "reason" => reason).increment(1);
            ack(message, recipient).await;
            ItemResult::Done
        }
        // Not this recipient's: acked without being sent, nor dead-lettered (its dead letters
        // are this recipient's too).
        Settlement::NotForRecipient(violation) => {
            match &violation {
                // A message pulled just before its employer was unsubscribed.
                TenantViolation::NotSubscribed { .. } => {
                    metrics::counter!("koppel_delivery_not_subscribed_total", "recipient" => recipient.to_owned()).increment(1);
                }
                TenantViolation::EmployerMismatch {
                    subject_employer,
                    event_employer,
                } => {
                    metrics::counter!("koppel_delivery_employer_mismatch_total", "recipient" => recipient.to_owned()).increment(1);
                    tracing::error!(recipient, %subject_employer, %event_employer, stream_sequence, "An event's employer differs from its subject's; not delivered.");
                }
            }
            ack(message, recipient).await;
            ItemResult::Done
        }
        Settlement::DeadLetter {
            class,
            reason,
            attempts,
        } => {
            let record = DeadLetterRecord {
                recipient,
                lane,
                original_subject: message.message.subject.as_str(),
                original_headers: message.message.headers.as_ref(),
                original_sequence: stream_sequence,
                payload: message.message.payload.clone(),
                class,
                reason: &reason,
                attempts,
                parked_behind: parked_head,
            };
            if !dead_letter_until_stored(context, message, &record).await {
                let _ = settle(message, AckOutcome::NakWithDelay(RELEASE_DELAY)).await;
                return ItemResult::Done;
            }
            metrics::counter!("koppel_delivery_dead_letters_total", "recipient" => recipient.to_owned(), "class" => class.as_str()).increment(1);
            tracing::warn!(recipient, employer = %lane.employer_key, stream_sequence, class = class.as_str(), %reason, "Dead-lettered.");
            let head = parked_head
                .map(str::to_owned)
                .unwrap_or_else(|| record.original_id());
            ack(message, recipient).await;
            ItemResult::Parked { head }
        }
        Settlement::Released => {
            let _ = settle(message, AckOutcome::NakWithDelay(RELEASE_DELAY)).await;
            ItemResult::Done
        }
    }
}

/// Writes the dead letter, retrying while the dead-letter stream is unreachable: the message
/// must not be acked before its dead letter is stored. False when shutdown came first.
async fn dead_letter_until_stored(
    context: &ItemContext,
    message: &jetstream::Message,
    record: &DeadLetterRecord<'_>,
) -> bool {
    let shared = &context.shared;
    let mut schedule = backoff_schedule(&RetrySettings {
        initial_backoff_millis: 200,
        max_backoff_millis: 10_000,
        ..shared.retry.clone()
    });
    loop {
        match write_dead_letter(&shared.topology.jetstream, &shared.topology.names, record).await {
            Ok(_) => return true,
            Err(error) => {
                tracing::error!(
                    recipient = record.recipient,
                    error = &error as &dyn std::error::Error,
                    "Cannot store a dead letter; retrying."
                );
                let _ = settle(message, AckOutcome::InProgress).await;
                let delay = schedule.next().unwrap_or(Duration::from_secs(10));
                tokio::select! {
                    _ = context.stop.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {},
                }
            }
        }
    }
}

/// Acks without waiting for the server's confirmation ([`AckOutcome::AckUnconfirmed`]),
/// trying three times if the ack cannot even be sent.
///
/// Unconfirmed because waiting for the server to confirm every ack costs a round trip per
/// message and cut throughput by half in the benchmark, while a lost ack buys nothing worse
/// than a redelivery, which the recipient's idempotency key absorbs (and, for a dead letter,
/// the dead-letter stream's dedupe id). Acks still buffered in the client at shutdown are
/// flushed by `run`.
async fn ack(message: &jetstream::Message, recipient: &str) {
    let sent = (|| settle(message, AckOutcome::AckUnconfirmed))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_times(2),
        )
        .await;
    if let Err(error) = sent {
        tracing::warn!(
            recipient,
            error = &error as &dyn std::error::Error,
            "Ack not sent; the message may be redelivered (the idempotency key absorbs it)."
        );
    }
}
