//! The streams and KV buckets of one koppel installation, created or updated idempotently, so
//! that a changed setting (retention, replicas) is applied on the next start.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use koppel_events::subject::{
    LEASES_BUCKET, REGISTRY_BUCKET, SCHEMAS_BUCKET, SNAPSHOTS_BUCKET, TOKENS_BUCKET,
    WATERMARKS_BUCKET,
};
use koppel_events::{EventSchema, Names, catalog};
use serde::Deserialize;

/// Retention and replication. Part of the `[nats]`-adjacent `[topology]` config section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologySettings {
    /// 1 for a single server, 3 on a cluster (tolerates the loss of one node).
    pub replicas: usize,
    /// How long events stay replayable. Zero keeps them forever.
    pub events_max_age_days: u64,
    /// How long JetStream remembers a `Nats-Msg-Id`. Covers an extractor retrying a run after
    /// a crash; later duplicates are still absorbed by recipients' idempotency keys.
    pub duplicate_window_seconds: u64,
    /// How long dead letters are kept. Zero keeps them until someone retries or purges them.
    pub dlq_max_age_days: u64,
}

impl Default for TopologySettings {
    fn default() -> Self {
        TopologySettings {
            replicas: 1,
            events_max_age_days: 400,
            duplicate_window_seconds: 30 * 60,
            dlq_max_age_days: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot create or update stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("cannot create or update KV bucket {bucket}: {reason}")]
    Bucket { bucket: String, reason: String },
    #[error("cannot register writer schema {fingerprint}: {reason}")]
    Schema { fingerprint: String, reason: String },
}

/// Handles to everything the topology created.
#[derive(Clone)]
pub struct Topology {
    pub names: Names,
    pub jetstream: jetstream::Context,
    pub registry: kv::Store,
    pub snapshots: kv::Store,
    pub watermarks: kv::Store,
    pub tokens: kv::Store,
    pub leases: kv::Store,
    pub schemas: kv::Store,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Topology {
    /// Creates or updates both streams and every bucket, and registers every writer schema this
    /// build knows. Safe to call from every process at every start.
    pub async fn ensure(
        jetstream: jetstream::Context,
        names: Names,
        settings: &TopologySettings,
    ) -> Result<Topology, TopologyError> {
        let events = events_stream_config(&names, settings);
        let dlq = dlq_stream_config(&names, settings);
        for config in [events, dlq] {
            let stream_name = config.name.clone();
            jetstream
                .create_or_update_stream(config)
                .await
                .map_err(|error| TopologyError::Stream {
                    stream: stream_name,
                    reason: error.to_string(),
                })?;
        }
        let bucket = |base: &str, history: i64, description: &str| kv::Config {
            bucket: names.bucket(base),
            description: description.to_owned(),
            history,
            storage: stream::StorageType::File,
            num_replicas: settings.replicas,
            ..Default::default()
        };
        let configs = [
            bucket(
                REGISTRY_BUCKET,
                5,
                "koppel registry: connections, employers, recipients, subscriptions",
            ),
            bucket(
                SNAPSHOTS_BUCKET,
                1,
                "koppel snapshots: per employer, entity id -> content hash and revision",
            ),
            bucket(
                WATERMARKS_BUCKET,
                5,
                "koppel watermarks: change-feed positions per employer",
            ),
            bucket(
                TOKENS_BUCKET,
                5,
                "koppel tokens: encrypted rotating refresh tokens, compare-and-set",
            ),
            bucket(
                LEASES_BUCKET,
                1,
                "koppel leases: one extractor per employer at a time",
            ),
            bucket(
                SCHEMAS_BUCKET,
                1,
                "koppel writer schemas by CRC-64-AVRO fingerprint",
            ),
        ];
        let mut stores = Vec::with_capacity(configs.len());
        for config in configs {
            let bucket_name = config.bucket.clone();
            let store = jetstream
                .create_or_update_key_value(config)
                .await
                .map_err(|error| TopologyError::Bucket {
                    bucket: bucket_name,
                    reason: error.to_string(),
                })?;
            stores.push(store);
        }
        let mut stores = stores.into_iter();
        let mut next = || {
            stores.next().ok_or_else(|| TopologyError::Bucket {
                bucket: "?".to_owned(),
                reason: "missing".to_owned(),
            })
        };
        let topology = Topology {
            registry: next()?,
            snapshots: next()?,
            watermarks: next()?,
            tokens: next()?,
            leases: next()?,
            schemas: next()?,
            names,
            jetstream,
        };
        topology.register_schemas().await?;
        Ok(topology)
    }

    /// Puts every writer schema of this build in the schemas bucket under its fingerprints, so
    /// a reader in any language, or an older koppel, can resolve payloads written by this build.
    /// See [`schema_bucket_keys`] for the keys.
    async fn register_schemas(&self) -> Result<(), TopologyError> {
        let catalog = catalog().map_err(|error| TopologyError::Schema {
            fingerprint: "*".to_owned(),
            reason: error.to_string(),
        })?;
        for schema in catalog.known_writer_schemas() {
            for key in schema_bucket_keys(schema) {
                match self.schemas.create(&key, schema.json.clone().into()).await {
                    Ok(_) => {}
                    // Same fingerprint, same canonical schema: someone registered it already.
                    Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {}
                    Err(error) => {
                        return Err(TopologyError::Schema {
                            fingerprint: key,
                            reason: error.to_string(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    pub async fn events_stream(&self) -> Result<stream::Stream, TopologyError> {
        let name = self.names.events_stream();
        self.jetstream
            .get_stream(&name)
            .await
            .map_err(|error| TopologyError::Stream {
                stream: name,
                reason: error.to_string(),
            })
    }

    pub async fn dlq_stream(&self) -> Result<stream::Stream, TopologyError> {
        let name = self.names.dlq_stream();
        self.jetstream
            .get_stream(&name)
            .await
            .map_err(|error| TopologyError::Stream {
                stream: name,
                reason: error.to_string(),
            })
    }
}

/// The keys a writer schema is registered under: the specification's fingerprint, which this
/// build writes and standard readers compute, and the legacy apache-avro 0.22 fingerprint that
/// payloads of release v1 and earlier carry. The legacy key stays as long as such payloads can
/// be in the stream (see schemas/README.md, "Fingerprints before and after v2").
pub fn schema_bucket_keys(schema: &EventSchema) -> Vec<String> {
    schema
        .fingerprints()
        .map(|fingerprint| fingerprint.to_hex())
        .collect()
}

fn days(days: u64) -> Duration {
    Duration::from_secs(days * 24 * 60 * 60)
}

pub(crate) fn events_stream_config(names: &Names, settings: &TopologySettings) -> stream::Config {
    stream::Config {
        name: names.events_stream(),
        description: Some(
            "koppel change events, Avro single-object encoded; replayable".to_owned(),
        ),
        subjects: vec![names.events_wildcard()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        max_age: days(settings.events_max_age_days),
        duplicate_window: Duration::from_secs(settings.duplicate_window_seconds),
        discard: stream::DiscardPolicy::Old,
        allow_direct: true,
        ..Default::default()
    }
}

pub(crate) fn dlq_stream_config(names: &Names, settings: &TopologySettings) -> stream::Config {
    stream::Config {
        name: names.dlq_stream(),
        description: Some("koppel dead letters: original payload plus error headers".to_owned()),
        subjects: vec![names.dlq_wildcard()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        max_age: days(settings.dlq_max_age_days),
        // Dead letters are written with a deterministic id too, so a deliverer that crashes
        // between dead-lettering and acking does not park the same event twice.
        duplicate_window: Duration::from_secs(settings.duplicate_window_seconds),
        // Never drop a dead letter to make room: refuse new ones instead, which keeps the
        // original unacked in the events stream.
        discard: stream::DiscardPolicy::New,
        allow_direct: true,
        ..Default::default()
    }
}
