//! Settling pulled messages, and durable pull consumers.
//!
//! [`AckOutcome`] is the closed set of ways koppel settles a message. It has no bare NAK: a NAK
//! without delay makes JetStream redeliver at once, which burns through retries in milliseconds
//! and hammers a struggling recipient. Every retry names its delay.

use crate::error_class::ErrorClass;
use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};

/// The shortest delay a NAK may carry; anything shorter is raised to it.
pub const MIN_NAK_DELAY: Duration = Duration::from_millis(50);

/// How to settle one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// Done: delivered, or parked in the dead-letter stream. The server confirms it (a double
    /// ack), so a caller that then forgets the message knows JetStream did too.
    Ack,
    /// Done, without waiting for the server's confirmation: a plain ack. For hot paths where a
    /// lost ack costs no more than a redelivery that an idempotency key absorbs; waiting for
    /// every confirmation costs a round trip per message (half the deliverer's throughput in
    /// its benchmark). Buffered in the client: flush the connection before exiting.
    AckUnconfirmed,
    /// Redeliver after the delay (at least [`MIN_NAK_DELAY`]).
    NakWithDelay(Duration),
    /// Still working on it: restart the ack-wait clock so JetStream does not redeliver.
    InProgress,
    /// Never redeliver. Only for messages already dealt with elsewhere.
    Term,
}

/// A settle that did not reach the server (or, for the confirmed outcomes, was not confirmed).
#[derive(Debug, thiserror::Error)]
#[error("cannot settle message with {outcome:?}")]
pub struct SettleError {
    pub outcome: AckOutcome,
    #[source]
    pub source: async_nats::Error,
}

/// Sends the outcome to JetStream. `Ack` and `Term` are double acks (the server confirms);
/// `AckUnconfirmed`, `InProgress` and naks are fire-and-forget, as losing one only means an
/// earlier redelivery.
pub async fn settle(message: &jetstream::Message, outcome: AckOutcome) -> Result<(), SettleError> {
    let result = match outcome {
        AckOutcome::Ack => message.double_ack().await,
        AckOutcome::AckUnconfirmed => message.ack().await,
        AckOutcome::Term => message.double_ack_with(AckKind::Term).await,
        AckOutcome::InProgress => message.ack_with(AckKind::Progress).await,
        AckOutcome::NakWithDelay(delay) => {
            message
                .ack_with(AckKind::Nak(Some(delay.max(MIN_NAK_DELAY))))
                .await
        }
    };
    result.map_err(|source| SettleError { outcome, source })
}

/// A durable pull consumer's shape.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub durable_name: String,
    pub filter_subjects: Vec<String>,
    /// How long JetStream waits for a settle before redelivering. Workers that need longer send
    /// `InProgress`.
    pub ack_wait: Duration,
    /// Unacknowledged messages outstanding at once: the bound on a worker's memory.
    pub max_ack_pending: i64,
    pub deliver_policy: DeliverPolicy,
    pub description: Option<String>,
    /// Stored with the consumer (servers from 2.10): what a worker must remember about the
    /// consumer across its own restarts.
    pub metadata: HashMap<String, String>,
}

impl ConsumerSpec {
    pub fn new(durable_name: impl Into<String>, filter_subjects: Vec<String>) -> Self {
        ConsumerSpec {
            durable_name: durable_name.into(),
            filter_subjects,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1000,
            deliver_policy: DeliverPolicy::All,
            description: None,
            metadata: HashMap::new(),
        }
    }

    fn config(&self) -> consumer::pull::Config {
        // A consumer with one filter uses `filter_subject`: servers before 2.10 know no other.
        let (filter_subject, filter_subjects) = match self.filter_subjects.as_slice() {
            [single] => (single.clone(), Vec::new()),
            many => (String::new(), many.to_vec()),
        };
        consumer::pull::Config {
            durable_name: Some(self.durable_name.clone()),
            description: self.description.clone(),
            deliver_policy: self.deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            // Unlimited: koppel decides when to give up (and dead-letters), never the server,
            // which would leave the message unacked in the stream with nobody told.
            max_deliver: -1,
            max_ack_pending: self.max_ack_pending,
            filter_subject,
            filter_subjects,
            metadata: self.metadata.clone(),
            ..Default::default()
        }
    }
}

/// JetStream refused to create or update a durable consumer. The source keeps async-nats's
/// error kind; [`EnsureConsumerError::class`] says whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("cannot create or update consumer {durable_name}")]
pub struct EnsureConsumerError {
    pub durable_name: String,
    #[source]
    pub source: jetstream::stream::ConsumerError,
}

impl EnsureConsumerError {
    /// Timeouts and failed requests may pass; a refusal by JetStream (bad config, too many
    /// filters, an invalid name) will not until the spec changes.
    pub fn class(&self) -> ErrorClass {
        consumer_error_class(&self.source)
    }
}

/// The class of an async-nats consumer error: timeouts and failed requests may pass; a refusal
/// by JetStream (bad configuration, too many filters, an invalid name) will not until the spec
/// changes.
pub fn consumer_error_class(error: &jetstream::stream::ConsumerError) -> ErrorClass {
    use jetstream::stream::ConsumerErrorKind;
    match error.kind() {
        ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request | ConsumerErrorKind::Other => {
            ErrorClass::Retryable
        }
        ConsumerErrorKind::InvalidConsumerType
        | ConsumerErrorKind::InvalidName
        | ConsumerErrorKind::JetStream(_) => ErrorClass::Permanent,
    }
}

/// Creates the durable consumer, or updates its filter and limits if it exists. The position
/// of an existing durable is kept, so changing a subscription loses nothing.
pub async fn ensure_pull_consumer(
    stream: &jetstream::stream::Stream,
    spec: &ConsumerSpec,
) -> Result<PullConsumer, EnsureConsumerError> {
    stream
        .create_consumer(spec.config())
        .await
        .map_err(|source| EnsureConsumerError {
            durable_name: spec.durable_name.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_filter_uses_the_single_field_for_old_servers() {
        let config = ConsumerSpec::new("deliver-x", vec!["a.>".to_owned()]).config();
        assert_eq!(config.filter_subject, "a.>");
        assert!(config.filter_subjects.is_empty());
        let config =
            ConsumerSpec::new("deliver-x", vec!["a.>".to_owned(), "b.>".to_owned()]).config();
        assert_eq!(config.filter_subject, "");
        assert_eq!(config.filter_subjects.len(), 2);
        assert_eq!(config.max_deliver, -1);
    }
}
