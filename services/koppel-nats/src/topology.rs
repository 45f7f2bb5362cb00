//! The streams and KV buckets of one koppel installation. `Topology::setup` creates or updates
//! them from the settings (operator rights; `koppel setup` runs it); `Topology::open` only checks
//! that they exist and hands them out, which is all a worker or a command may do.
//!
//! Setup is apart from runtime so that no worker or command needs JetStream admin rights, and
//! so that a process started with another config (a CLI without the production `[topology]`,
//! whose default is one replica) cannot rewrite an R3 stream to R1.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use koppel_events::subject::{
    LEASES_BUCKET, REGISTRY_BUCKET, SCHEMAS_BUCKET, SNAPSHOTS_BUCKET, TOKENS_BUCKET,
    WATERMARKS_BUCKET,
};
use koppel_events::{EventSchema, Names, catalog};
use serde::Deserialize;

/// Replication, retention and size limits: the `[topology]` config section, applied by
/// `koppel setup`. Sizes are in mebibytes and ages in days; zero means no limit.
///
/// JetStream reserves a stream's size limit on every server that holds a replica, so the sum of
/// the limits must fit the servers' file store (`max_file_store`, by default 75% of the free
/// disk), or setup fails with "insufficient storage resources". The defaults (about 1.6 GiB in
/// all) fit a small single server such as the demo's; `deploy/` sets production sizes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologySettings {
    /// 1 for a single server, 3 on a cluster (tolerates the loss of one node).
    pub replicas: usize,
    /// How long events stay replayable.
    pub events_max_age_days: u64,
    /// The events stream's size limit. When it is full, publishes are refused (the extractor
    /// retries, and its snapshot does not move on) rather than undelivered events dropped.
    pub events_max_megabytes: u64,
    /// How long JetStream remembers a `Nats-Msg-Id`. Covers an extractor retrying a run after
    /// a crash; later duplicates are still absorbed by recipients' idempotency keys.
    pub duplicate_window_seconds: u64,
    /// How long dead letters, which hold full personal payloads, are kept. A dead letter that is
    /// neither retried nor purged within this time is dropped, and its lane resumes.
    pub dlq_max_age_days: u64,
    /// The dead-letter stream's size limit. When it is full, dead-lettering fails and the event
    /// stays unacked in the events stream; no earlier dead letter is dropped.
    pub dlq_max_megabytes: u64,
    /// The snapshots bucket's size limit (one entry per employer chunk).
    pub snapshots_max_megabytes: u64,
    /// The size limit of each of the small buckets: registry, watermarks, tokens, leases and
    /// writer schemas. Buckets hold current state, so they have no age limit: a full bucket
    /// refuses writes and never drops a live key.
    pub bucket_max_megabytes: u64,
}

impl Default for TopologySettings {
    fn default() -> Self {
        TopologySettings {
            replicas: 1,
            events_max_age_days: 400,
            events_max_megabytes: 1024,
            duplicate_window_seconds: 30 * 60,
            dlq_max_age_days: 90,
            dlq_max_megabytes: 256,
            snapshots_max_megabytes: 256,
            bucket_max_megabytes: 16,
        }
    }
}

impl TopologySettings {
    /// The defaults without size limits, so that nothing is reserved on the server: for the
    /// many short-lived installations tests create side by side on one server.
    pub fn without_size_limits() -> Self {
        TopologySettings {
            events_max_megabytes: 0,
            dlq_max_megabytes: 0,
            snapshots_max_megabytes: 0,
            bucket_max_megabytes: 0,
            ..TopologySettings::default()
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
    /// A stream or bucket this process needs is not there: setup has not run (or ran with
    /// another namespace).
    #[error("{what} {name} does not exist: run `koppel setup` with operator rights first")]
    Missing { what: &'static str, name: String },
    #[error("cannot look up {what} {name}: {reason}")]
    Lookup {
        what: &'static str,
        name: String,
        reason: String,
    },
}

/// Handles to the streams' context and every bucket.
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
    /// Creates or updates both streams and every bucket from `settings`, and registers every
    /// writer schema this build knows. Needs JetStream admin rights: `koppel setup` runs it, and
    /// so do the demo and test harnesses before they start workers.
    pub async fn setup(
        jetstream: jetstream::Context,
        names: Names,
        settings: &TopologySettings,
    ) -> Result<Topology, TopologyError> {
        for config in [
            events_stream_config(&names, settings),
            dlq_stream_config(&names, settings),
        ] {
            let stream_name = config.name.clone();
            jetstream
                .create_or_update_stream(config)
                .await
                .map_err(|error| TopologyError::Stream {
                    stream: stream_name,
                    reason: error.to_string(),
                })?;
        }
        for config in bucket_configs(&names, settings) {
            let bucket_name = config.bucket.clone();
            jetstream
                .create_or_update_key_value(config)
                .await
                .map_err(|error| TopologyError::Bucket {
                    bucket: bucket_name,
                    reason: error.to_string(),
                })?;
        }
        let topology = Topology::open(jetstream, names).await?;
        topology.register_schemas().await?;
        Ok(topology)
    }

    /// Checks that both streams and every bucket exist and returns their handles. Creates and
    /// changes nothing, so it needs only read access to stream info: this is what every worker
    /// and command calls. A missing one is [`TopologyError::Missing`], which names `koppel setup`.
    pub async fn open(
        jetstream: jetstream::Context,
        names: Names,
    ) -> Result<Topology, TopologyError> {
        for stream_name in [names.events_stream(), names.dlq_stream()] {
            look_up_stream(&jetstream, "stream", &stream_name).await?;
        }
        let mut stores = Vec::new();
        for base in BUCKETS {
            stores.push(open_bucket(&jetstream, &names.bucket(base)).await?);
        }
        let [registry, snapshots, watermarks, tokens, leases, schemas] =
            <[kv::Store; 6]>::try_from(stores).map_err(|_| TopologyError::Lookup {
                what: "KV bucket",
                name: "*".to_owned(),
                reason: "wrong number of buckets".to_owned(),
            })?;
        Ok(Topology {
            registry,
            snapshots,
            watermarks,
            tokens,
            leases,
            schemas,
            names,
            jetstream,
        })
    }

    /// Every stream of the installation, buckets as their `KV_` streams: what setup makes.
    pub fn stream_names(names: &Names) -> Vec<String> {
        let mut streams = vec![names.events_stream(), names.dlq_stream()];
        streams.extend(
            BUCKETS
                .iter()
                .map(|base| format!("KV_{}", names.bucket(base))),
        );
        streams
    }

    /// Whether NATS answers and this installation's registry bucket is there: one stream info.
    /// Workers' readiness probes call it.
    pub async fn probe(jetstream: &jetstream::Context, names: &Names) -> Result<(), TopologyError> {
        let stream_name = format!("KV_{}", names.bucket(REGISTRY_BUCKET));
        look_up_stream(jetstream, "KV bucket", &stream_name)
            .await
            .map(|_| ())
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

/// Every bucket, in the order of [`Topology`]'s fields.
const BUCKETS: [&str; 6] = [
    REGISTRY_BUCKET,
    SNAPSHOTS_BUCKET,
    WATERMARKS_BUCKET,
    TOKENS_BUCKET,
    LEASES_BUCKET,
    SCHEMAS_BUCKET,
];

/// Stream info for `name`; JetStream's "stream not found" becomes [`TopologyError::Missing`].
async fn look_up_stream(
    jetstream: &jetstream::Context,
    what: &'static str,
    name: &str,
) -> Result<stream::Stream, TopologyError> {
    match jetstream.get_stream(name).await {
        Ok(stream) => Ok(stream),
        Err(error) => match error.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(source)
                if source.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Err(TopologyError::Missing {
                    what,
                    name: name.to_owned(),
                })
            }
            _ => Err(TopologyError::Lookup {
                what,
                name: name.to_owned(),
                reason: error.to_string(),
            }),
        },
    }
}

async fn open_bucket(
    jetstream: &jetstream::Context,
    bucket: &str,
) -> Result<kv::Store, TopologyError> {
    // Its stream first: async-nats's get_key_value does not tell "missing" from other errors.
    look_up_stream(jetstream, "KV bucket", &format!("KV_{bucket}"))
        .await
        .map_err(|error| match error {
            TopologyError::Missing { what, .. } => TopologyError::Missing {
                what,
                name: bucket.to_owned(),
            },
            other => other,
        })?;
    jetstream
        .get_key_value(bucket)
        .await
        .map_err(|error| TopologyError::Lookup {
            what: "KV bucket",
            name: bucket.to_owned(),
            reason: error.to_string(),
        })
}

fn days(days: u64) -> Duration {
    Duration::from_secs(days * 24 * 60 * 60)
}

/// Mebibytes to the byte count JetStream takes; zero is no limit (-1).
fn max_bytes(megabytes: u64) -> i64 {
    match megabytes {
        0 => -1,
        megabytes => i64::try_from(megabytes.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX),
    }
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
        max_bytes: max_bytes(settings.events_max_megabytes),
        duplicate_window: Duration::from_secs(settings.duplicate_window_seconds),
        // When the size limit is reached, refuse new events instead of dropping old ones that a
        // recipient may not have received yet: the extractor retries, nothing is lost.
        discard: stream::DiscardPolicy::New,
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
        max_bytes: max_bytes(settings.dlq_max_megabytes),
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

/// Every bucket's config, in the order of [`BUCKETS`].
pub(crate) fn bucket_configs(names: &Names, settings: &TopologySettings) -> Vec<kv::Config> {
    let bucket = |base: &str, history: i64, megabytes: u64, description: &str| kv::Config {
        bucket: names.bucket(base),
        description: description.to_owned(),
        history,
        max_bytes: max_bytes(megabytes),
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        ..Default::default()
    };
    let small = settings.bucket_max_megabytes;
    vec![
        bucket(
            REGISTRY_BUCKET,
            5,
            small,
            "koppel registry: connections, employers, recipients, subscriptions",
        ),
        bucket(
            SNAPSHOTS_BUCKET,
            1,
            settings.snapshots_max_megabytes,
            "koppel snapshots: per employer, entity id -> content hash and revision",
        ),
        bucket(
            WATERMARKS_BUCKET,
            5,
            small,
            "koppel watermarks: change-feed positions per employer",
        ),
        bucket(
            TOKENS_BUCKET,
            5,
            small,
            "koppel tokens: encrypted rotating refresh tokens, compare-and-set",
        ),
        bucket(
            LEASES_BUCKET,
            1,
            small,
            "koppel leases: one extractor per employer at a time",
        ),
        bucket(
            SCHEMAS_BUCKET,
            1,
            small,
            "koppel writer schemas by CRC-64-AVRO fingerprint",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_jetstream_byte_counts_and_zero_is_unlimited() {
        assert_eq!(max_bytes(0), -1);
        assert_eq!(max_bytes(1), 1_048_576);
        assert_eq!(max_bytes(u64::MAX), i64::MAX);
    }

    #[test]
    fn every_stream_and_bucket_carries_its_limits_and_replicas() {
        let names = Names::production();
        let settings = TopologySettings {
            replicas: 3,
            ..TopologySettings::default()
        };
        let events = events_stream_config(&names, &settings);
        assert_eq!(events.max_bytes, 1024 * 1_048_576);
        assert_eq!(events.max_age, days(400));
        assert_eq!(events.discard, stream::DiscardPolicy::New);
        let dlq = dlq_stream_config(&names, &settings);
        assert_eq!(dlq.max_bytes, 256 * 1_048_576);
        assert_eq!(dlq.max_age, days(90));
        let buckets = bucket_configs(&names, &settings);
        let names_in_order: Vec<&str> = buckets.iter().map(|c| c.bucket.as_str()).collect();
        assert_eq!(names_in_order, BUCKETS);
        for config in &buckets {
            assert_eq!(config.num_replicas, 3, "{}", config.bucket);
            assert!(config.max_bytes > 0, "{} has no size limit", config.bucket);
            assert_eq!(
                config.max_age,
                Duration::ZERO,
                "{} would expire live keys",
                config.bucket
            );
        }
        assert_eq!(buckets[1].max_bytes, 256 * 1_048_576);
    }
}
