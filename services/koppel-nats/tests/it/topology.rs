//! Topology: create-or-update applies changed settings; writer schemas are registered and used
//! to decode; unknown fingerprints are clear errors.

use std::time::Duration;

use koppel_events::{Names, catalog, sample};
use koppel_nats::schemas::load_writer_schemas;
use koppel_nats::{Topology, TopologySettings};
use koppel_test_support::{connect, unique_names};

async fn ensure(names: &Names, settings: &TopologySettings) -> Topology {
    let jetstream = async_nats::jetstream::new(connect().await);
    Topology::ensure(jetstream, names.clone(), settings)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stream_config_change_is_applied_on_restart() {
    let names = unique_names();
    let first = ensure(&names, &TopologySettings::default()).await;
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
    let second = ensure(&names, &changed).await;

    let mut stream = second.events_stream().await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.max_age, Duration::from_secs(30 * 86_400));
    assert_eq!(config.duplicate_window, Duration::from_secs(600));
}

#[tokio::test]
async fn ensure_is_idempotent_and_registers_every_writer_schema() {
    let names = unique_names();
    ensure(&names, &TopologySettings::default()).await;
    let topology = ensure(&names, &TopologySettings::default()).await;

    for schema in catalog().unwrap().current_schemas() {
        let stored = topology
            .schemas
            .get(schema.fingerprint.to_hex())
            .await
            .unwrap()
            .expect("registered");
        assert_eq!(stored, schema.json.as_bytes());
    }
}

#[tokio::test]
async fn a_payload_with_an_unregistered_fingerprint_is_a_clear_error() {
    let topology = ensure(&unique_names(), &TopologySettings::default()).await;
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
    let topology = ensure(&unique_names(), &TopologySettings::default()).await;
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
