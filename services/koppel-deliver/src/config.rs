//! The deliverer's configuration: a serde struct that refuses unknown fields, so a typo in a
//! config file fails at start instead of silently falling back to a default.

use std::time::Duration;

use koppel_events::Names;
use koppel_events::subject::TokenError;
use koppel_nats::{NatsSettings, TopologySettings};
use koppel_runtime::http::HttpClientSettings;
use serde::Deserialize;

/// Everything `koppel deliverer` needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DelivererConfig {
    pub nats: NatsSettings,
    pub topology: TopologySettings,
    pub http: HttpClientSettings,
    pub retry: RetrySettings,
    pub consumer: ConsumerSettings,
    /// Prefixes every stream, bucket and subject; tests run side by side on one server with it.
    pub namespace: Option<String>,
    /// Where the key that opens the recipients' sealed secrets comes from.
    pub secret_key: SecretKeySource,
}

impl DelivererConfig {
    /// The names of this installation's streams, buckets and subjects.
    pub fn names(&self) -> Result<Names, TokenError> {
        match &self.namespace {
            Some(namespace) => Names::namespaced(namespace),
            None => Ok(Names::production()),
        }
    }
}

/// How one message is retried, and when koppel gives up on it (the retry budget).
///
/// Milliseconds, not seconds, because tests run the whole engine with backoffs of a few
/// milliseconds; production keeps the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// The first backoff; each further one doubles, up to `max_backoff_millis`.
    pub initial_backoff_millis: u64,
    pub max_backoff_millis: u64,
    /// Randomise each backoff (backon's jitter), so lanes that failed together do not retry
    /// together and hit a recovering recipient in one burst.
    pub jitter: bool,
    /// Attempts per message, the first included, before it is dead-lettered. Zero: no limit.
    pub max_attempts: u32,
    /// Seconds since the first attempt after which a message is dead-lettered instead of
    /// retried again. Zero: no limit.
    pub max_age_seconds: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        // About a day of retries at the 5-minute cap: longer than any planned recipient
        // maintenance, shorter than the patience of the people waiting for the data.
        RetrySettings {
            initial_backoff_millis: 1_000,
            max_backoff_millis: 5 * 60 * 1_000,
            jitter: true,
            max_attempts: 300,
            max_age_seconds: 24 * 60 * 60,
        }
    }
}

impl RetrySettings {
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_millis.max(1))
    }

    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(
            self.max_backoff_millis
                .max(self.initial_backoff_millis.max(1)),
        )
    }

    pub fn max_age(&self) -> Option<Duration> {
        (self.max_age_seconds > 0).then(|| Duration::from_secs(self.max_age_seconds))
    }
}

/// The shape of each recipient's durable consumer and the engine around it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerSettings {
    /// JetStream's ack wait. The engine sends in-progress acks at a third of it for every
    /// message it holds, so only a dead deliverer's messages are redelivered.
    pub ack_wait_seconds: u64,
    /// Messages held unacknowledged at once per recipient: the bound on the engine's memory.
    pub max_ack_pending: i64,
    /// Messages asked for per pull request.
    pub pull_batch: usize,
    /// On shutdown, how long attempts already on the wire may take to finish before their
    /// messages are released (redelivered later) instead.
    pub shutdown_grace_seconds: u64,
    /// How often parked lanes re-check the dead-letter stream, in case a release notice from
    /// `koppel dlq retry|purge` was missed while disconnected.
    pub parked_rescan_seconds: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            ack_wait_seconds: 30,
            max_ack_pending: 1_000,
            pull_batch: 200,
            shutdown_grace_seconds: 10,
            parked_rescan_seconds: 60,
        }
    }
}

impl ConsumerSettings {
    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_seconds.max(1))
    }

    /// How often held messages are told "still working on it".
    pub fn progress_interval(&self) -> Duration {
        (self.ack_wait() / 3).max(Duration::from_millis(200))
    }
}

/// Where the key that opens sealed secrets comes from; shared with the extractor.
pub use koppel_registry::SecretKeySource;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused_and_defaults_fill_the_rest() {
        let config: DelivererConfig =
            serde_json::from_str(r#"{"namespace": "t1", "retry": {"max_attempts": 3}}"#).unwrap();
        assert_eq!(config.retry.max_attempts, 3);
        assert_eq!(config.consumer, ConsumerSettings::default());
        assert!(serde_json::from_str::<DelivererConfig>(r#"{"retries": {}}"#).is_err());
    }

    #[test]
    fn inline_keys_do_not_show_in_debug() {
        let source = SecretKeySource::Inline {
            base64: secrecy::SecretString::from("c2VjcmV0"),
        };
        assert!(!format!("{source:?}").contains("c2VjcmV0"));
    }
}
