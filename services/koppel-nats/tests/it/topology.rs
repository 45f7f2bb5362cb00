//! Topology: setup creates and updates streams and buckets with their limits; open only checks
//! and names `koppel setup` when something is missing; writer schemas are registered and used
//! to decode; unknown fingerprints are clear errors.

use std::time::Duration;

use koppel_events::{Names, catalog, sample};
use koppel_nats::schemas::load_writer_schemas;
use koppel_nats::{Topology, TopologyError, TopologySettings};
use koppel_test_support::{connect, stream_info, unique_names};

async fn setup(names: &Names, settings: &TopologySettings) -> Topology {
    let jetstream = async_nats::jetstream::new(connect().await);
    Topology::setup(jetstream, names.clone(), settings)
        .await
        .unwrap()
}

async fn open(names: &Names) -> Result<Topology, TopologyError> {
    Topology::open(async_nats::jetstream::new(connect().await), names.clone()).await
}

/// Small limits: JetStream reserves every size limit on the server, and the tests share one.
fn small_limits() -> TopologySettings {
    TopologySettings {
        events_max_megabytes: 64,
        dlq_max_megabytes: 16,
        snapshots_max_megabytes: 16,
        bucket_max_megabytes: 4,
        ..TopologySettings::default()
    }
}

#[tokio::test]
async fn a_stream_config_change_is_applied_by_the_next_setup() {
    let names = unique_names();
    let first = setup(&names, &TopologySettings::default()).await;
    let mut stream = first.events_stream().await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().config.max_age,
        Duration::from_secs(400 * 86_400)
    );

    let changed = TopologySettings {
        events_max_age_days: 30,
        duplicate_window_seconds: 600,
        ..Default::default()
    };
    let second = setup(&names, &changed).await;

    let mut stream = second.events_stream().await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.max_age, Duration::from_secs(30 * 86_400));
    assert_eq!(config.duplicate_window, Duration::from_secs(600));
}

#[tokio::test]
async fn setup_applies_the_size_and_age_limits_to_every_stream_and_bucket() {
    let names = unique_names();
    let settings = TopologySettings {
        dlq_max_age_days: 14,
        ..small_limits()
    };
    let topology = setup(&names, &settings).await;

    let mib = 1024 * 1024;
    let events = stream_info(&topology.jetstream, &topology.names.events_stream())
        .await
        .config;
    assert_eq!(
        (events.max_bytes, events.max_age),
        (64 * mib, Duration::from_secs(400 * 86_400))
    );
    let dlq = stream_info(&topology.jetstream, &topology.names.dlq_stream())
        .await
        .config;
    assert_eq!(
        (dlq.max_bytes, dlq.max_age),
        (16 * mib, Duration::from_secs(14 * 86_400))
    );
    for (store, expected) in [
        (&topology.registry, 4 * mib),
        (&topology.snapshots, 16 * mib),
        (&topology.watermarks, 4 * mib),
        (&topology.tokens, 4 * mib),
        (&topology.leases, 4 * mib),
        (&topology.schemas, 4 * mib),
    ] {
        let status = store.status().await.unwrap();
        assert_eq!(
            status.info.config.max_bytes,
            expected,
            "{}",
            status.bucket()
        );
        assert_eq!(
            status.info.config.max_age,
            Duration::ZERO,
            "{}",
            status.bucket()
        );
    }
}

#[tokio::test]
async fn open_before_setup_fails_naming_koppel_setup_and_creates_nothing() {
    let names = unique_names();

    let error = open(&names).await.unwrap_err();

    assert!(
        matches!(&error, TopologyError::Missing { name, .. } if *name == names.events_stream()),
        "{error:?}"
    );
    assert!(error.to_string().contains("run `koppel setup`"), "{error}");
    let jetstream = async_nats::jetstream::new(connect().await);
    assert!(jetstream.get_stream(names.events_stream()).await.is_err());
    assert!(
        jetstream
            .get_key_value(names.bucket(koppel_events::subject::REGISTRY_BUCKET))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn open_with_a_missing_bucket_names_that_bucket() {
    let names = unique_names();
    let topology = setup(&names, &small_limits()).await;
    let tokens = names.bucket(koppel_events::subject::TOKENS_BUCKET);
    topology.jetstream.delete_key_value(&tokens).await.unwrap();

    let error = open(&names).await.unwrap_err();

    assert!(
        matches!(&error, TopologyError::Missing { what: "KV bucket", name } if *name == tokens),
        "{error:?}"
    );
}

#[tokio::test]
async fn open_leaves_the_configuration_setup_made_unchanged() {
    let names = unique_names();
    let settings = TopologySettings {
        events_max_age_days: 7,
        duplicate_window_seconds: 90,
        ..small_limits()
    };
    let topology = setup(&names, &settings).await;
    let before = stream_info(&topology.jetstream, &topology.names.events_stream())
        .await
        .config;

    let opened = open(&names).await.unwrap();

    let after = stream_info(&opened.jetstream, &opened.names.events_stream())
        .await
        .config;
    assert_eq!(after.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(after.duplicate_window, before.duplicate_window);
    assert_eq!(after.max_bytes, before.max_bytes);
    Topology::probe(&opened.jetstream, &names).await.unwrap();
}

#[tokio::test]
async fn setup_is_idempotent_and_registers_every_writer_schema() {
    let names = unique_names();
    setup(&names, &TopologySettings::default()).await;
    let topology = setup(&names, &TopologySettings::default()).await;

    for schema in catalog().unwrap().current_schemas() {
        // Under the specification's fingerprint, and under the legacy one that payloads of
        // release v1 carry, so readers of old stream data still find it.
        assert_ne!(schema.fingerprint, schema.legacy_fingerprint);
        for fingerprint in [schema.fingerprint, schema.legacy_fingerprint] {
            let stored = topology
                .schemas
                .get(fingerprint.to_hex())
                .await
                .unwrap()
                .expect("registered");
            assert_eq!(stored, schema.json.as_bytes());
        }
    }
}

#[tokio::test]
async fn a_payload_with_an_unregistered_fingerprint_is_a_clear_error() {
    let topology = setup(&unique_names(), &TopologySettings::default()).await;
    let writer_schemas = load_writer_schemas(&topology.schemas).await.unwrap();
    let mut payload = koppel_events::encode(&sample::employment_changed(1)).unwrap();
    payload[2..10].copy_from_slice(&0xDEAD_BEEF_u64.to_le_bytes());

    let error = koppel_events::decode_with(&payload, &writer_schemas).unwrap_err();

    assert_eq!(
        error.to_string(),
        "writer schema efbeadde00000000 is not in the schema registry"
    );
}

#[tokio::test]
async fn a_schema_registered_by_a_newer_writer_decodes_through_the_bucket() {
    let topology = setup(&unique_names(), &TopologySettings::default()).await;
    // A newer writer added an optional field to SyncCompleted and registered its schema.
    let current = catalog()
        .unwrap()
        .current(koppel_events::EventType::SyncCompleted)
        .unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&current.json).unwrap();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "note", "type": ["null", "string"], "default": null}));
    let newer = koppel_events::EventSchema::parse(&json.to_string()).unwrap();
    topology
        .schemas
        .put(newer.fingerprint.to_hex(), json.to_string().into())
        .await
        .unwrap();

    // Write a datum with it: the current datum plus a null union for `note`.
    let event = koppel_events::Event::SyncCompleted(koppel_events::SyncCompleted {
        header: sample_header(),
        kind: koppel_events::SyncKind::Full,
        result: koppel_events::SyncResult::Completed,
        started_at: chrono::DateTime::from_timestamp_millis(1_000).unwrap(),
        counts: koppel_events::SyncCounts::default(),
        watermark: None,
        record_errors: vec![],
    });
    let mut payload = koppel_events::encode(&event).unwrap();
    payload[2..10].copy_from_slice(&newer.fingerprint.to_le_bytes());
    payload.push(0); // union branch 0: null

    assert!(
        koppel_events::decode(&payload).is_err(),
        "the compiled-in catalogue alone cannot know it"
    );
    let writer_schemas = load_writer_schemas(&topology.schemas).await.unwrap();
    assert_eq!(
        koppel_events::decode_with(&payload, &writer_schemas).unwrap(),
        event
    );
}

fn sample_header() -> koppel_events::EventHeader {
    koppel_events::EventHeader {
        event_type: koppel_events::EventType::SyncCompleted,
        changed_fields: vec![],
        effective_date_is_observation: Some(false),
        ..sample::employment_changed(0).header().clone()
    }
}
