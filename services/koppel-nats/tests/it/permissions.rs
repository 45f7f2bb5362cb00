//! The NATS users that `deploy/` ships (deploy/nats/permissions.conf, loaded as is into a real
//! server): the extractor publishes events and keeps its buckets but cannot consume deliveries,
//! write the registry or change a stream; the deliverer consumes, acks and dead-letters but
//! cannot publish events, write a bucket or change a stream; only the operator sets up. Each
//! refusal is checked twice: the operation fails, and the server reported a permissions
//! violation for exactly that subject; each allowed operation is checked to have happened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;
use koppel_events::subject::{REGISTRY_BUCKET, SNAPSHOTS_BUCKET};
use koppel_events::{Names, sample};
use koppel_nats::{
    ConsumerSpec, PreparedEvent, Publisher, PublisherSettings, Topology, TopologySettings,
    ensure_pull_consumer,
};
use koppel_test_support::configured::ConfiguredNats;

const PERMISSIONS: &str = include_str!("../../../../deploy/nats/permissions.conf");

const SERVER_CONFIG: &str = r#"
port: 4222
jetstream { store_dir: "/data" }
include permissions.conf
"#;

const EXTRACTOR: (&str, &str) = ("koppel-extractor", "extractor-password-for-tests");
const DELIVERER: (&str, &str) = ("koppel-deliverer", "deliverer-password-for-tests");
const OPERATOR: (&str, &str) = ("koppel-operator", "operator-password-for-tests");

async fn start_server() -> ConfiguredNats {
    ConfiguredNats::start(
        SERVER_CONFIG,
        &[(
            "/etc/nats/permissions.conf",
            PERMISSIONS.as_bytes().to_vec(),
        )],
        &[
            ("KOPPEL_EXTRACTOR_NATS_PASSWORD", EXTRACTOR.1),
            ("KOPPEL_DELIVERER_NATS_PASSWORD", DELIVERER.1),
            ("KOPPEL_OPERATOR_NATS_PASSWORD", OPERATOR.1),
        ],
    )
    .await
}

/// A connection as one user, with the server's error reports collected.
struct Identity {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    server_errors: Arc<Mutex<Vec<String>>>,
}

impl Identity {
    async fn connect(url: &str, (user, password): (&str, &str)) -> Identity {
        let server_errors = Arc::new(Mutex::new(Vec::new()));
        let collected = server_errors.clone();
        let client = async_nats::ConnectOptions::with_user_and_password(
            user.to_owned(),
            password.to_owned(),
        )
        .event_callback(move |event| {
            let collected = collected.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    collected.lock().unwrap().push(error.to_string());
                }
            }
        })
        .connect(url)
        .await
        .unwrap();
        // Refused requests get no answer: fail them fast.
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(2))
            .build(client.clone());
        Identity {
            client,
            jetstream,
            server_errors,
        }
    }

    /// Waits until the server has reported a permissions violation naming `subject`.
    async fn assert_refused(&self, subject: &str) {
        let started = Instant::now();
        loop {
            let reported = self.server_errors.lock().unwrap().iter().any(|error| {
                let error = error.to_lowercase();
                error.contains("permissions violation") && error.contains(&subject.to_lowercase())
            });
            if reported {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no permissions violation for {subject}; the server reported {:?}",
                self.server_errors.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn small_limits() -> TopologySettings {
    TopologySettings {
        events_max_megabytes: 16,
        dlq_max_megabytes: 4,
        snapshots_max_megabytes: 4,
        bucket_max_megabytes: 1,
        ..TopologySettings::default()
    }
}

/// The operator sets up the production names (the server is this test's own) and publishes
/// one event; returns its topology.
async fn operator_setup(url: &str) -> Topology {
    let operator = Identity::connect(url, OPERATOR).await;
    let topology = Topology::setup(operator.jetstream, Names::production(), &small_limits())
        .await
        .unwrap();
    let event = PreparedEvent::encode(&topology.names, &sample::employment_changed(1)).unwrap();
    Publisher::new(topology.jetstream.clone(), PublisherSettings::default())
        .publish_all(&[event])
        .await
        .unwrap();
    topology
}

async fn stream_config_and_count(topology: &Topology, name: &str) -> (stream::Config, u64) {
    let info = koppel_test_support::stream_info(&topology.jetstream, name).await;
    (info.config, info.state.messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extractor_publishes_and_keeps_its_buckets_but_cannot_consume_write_the_registry_or_change_streams()
 {
    let server = start_server().await;
    let operator = operator_setup(&server.url()).await;
    let names = Names::production();
    let deliveries = names.delivery_consumer("insurer").unwrap();
    ensure_pull_consumer(
        &operator.events_stream().await.unwrap(),
        &ConsumerSpec::new(deliveries.clone(), vec![names.events_wildcard()]),
    )
    .await
    .unwrap();
    let (events_before, _) = stream_config_and_count(&operator, &names.events_stream()).await;

    let extractor = Identity::connect(&server.url(), EXTRACTOR).await;
    let topology = Topology::open(extractor.jetstream.clone(), names.clone())
        .await
        .unwrap();
    // Allowed: publish events (through koppel's publisher) and keep snapshots; read the registry.
    let event = PreparedEvent::encode(&names, &sample::employment_changed(2)).unwrap();
    Publisher::new(topology.jetstream.clone(), PublisherSettings::default())
        .publish_all(&[event])
        .await
        .unwrap();
    topology
        .snapshots
        .put("acme", "snapshot".into())
        .await
        .unwrap();
    assert_eq!(
        topology.snapshots.get("acme").await.unwrap().unwrap(),
        "snapshot".as_bytes()
    );
    assert_eq!(topology.registry.get("nothing-here").await.unwrap(), None);

    // Refused: pull from the deliverer's consumer.
    let consumer: consumer::PullConsumer = operator
        .events_stream()
        .await
        .unwrap()
        .get_consumer(&deliveries)
        .await
        .unwrap();
    let next = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.{deliveries}",
        names.events_stream()
    );
    let pulled = extractor.client.request(next.clone(), "1".into()).await;
    assert!(pulled.is_err(), "the extractor pulled a delivery");
    extractor.assert_refused(&next).await;
    let mut consumer = consumer;
    assert_eq!(consumer.info().await.unwrap().delivered.stream_sequence, 0);

    // Refused: a consumer of its own on the events stream.
    let created = topology
        .events_stream()
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("extractor-reads".to_owned()),
            ..Default::default()
        })
        .await;
    assert!(created.is_err(), "the extractor created a consumer");
    extractor
        .assert_refused(&format!(
            "$JS.API.CONSUMER.CREATE.{}",
            names.events_stream()
        ))
        .await;

    // Refused: write the registry.
    let registry_put = topology.registry.put("recipient.evil", "x".into()).await;
    assert!(registry_put.is_err(), "the extractor wrote the registry");
    extractor
        .assert_refused(&format!(
            "$KV.{}.recipient.evil",
            names.bucket(REGISTRY_BUCKET)
        ))
        .await;

    // Refused: change, purge or delete the events stream.
    let changed = extractor
        .jetstream
        .update_stream(stream::Config {
            num_replicas: 1,
            max_age: Duration::from_secs(60),
            ..events_before.clone()
        })
        .await;
    assert!(changed.is_err(), "the extractor changed the events stream");
    extractor
        .assert_refused(&format!("$JS.API.STREAM.UPDATE.{}", names.events_stream()))
        .await;
    assert!(
        extractor
            .jetstream
            .delete_stream(names.events_stream())
            .await
            .is_err()
    );
    extractor
        .assert_refused(&format!("$JS.API.STREAM.DELETE.{}", names.events_stream()))
        .await;

    let (events_after, count) = stream_config_and_count(&operator, &names.events_stream()).await;
    assert_eq!(events_after.max_age, events_before.max_age);
    assert_eq!(count, 2, "the operator's event and the extractor's");
    assert_eq!(operator.registry.get("recipient.evil").await.unwrap(), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deliverer_consumes_acks_and_dead_letters_but_cannot_publish_events_write_buckets_or_change_streams()
 {
    let server = start_server().await;
    let operator = operator_setup(&server.url()).await;
    let names = Names::production();
    let (events_before, _) = stream_config_and_count(&operator, &names.events_stream()).await;

    let deliverer = Identity::connect(&server.url(), DELIVERER).await;
    let topology = Topology::open(deliverer.jetstream.clone(), names.clone())
        .await
        .unwrap();
    // Allowed: its durable consumer, a pull, and an ack the server confirms.
    let spec = ConsumerSpec::new(
        names.delivery_consumer("insurer").unwrap(),
        vec![names.events_wildcard()],
    );
    let consumer = ensure_pull_consumer(&topology.events_stream().await.unwrap(), &spec)
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    let message = batch.next().await.unwrap().unwrap();
    let reply = message.reply.clone().unwrap().to_string();
    // The ack subject is one of the two forms permissions.conf allows: 9 tokens,
    // $JS.ACK.<stream>.<consumer>..., which 2.15.1 sends without a domain, or 12 tokens,
    // $JS.ACK.<domain>.<account hash>.<stream>.<consumer>....
    let tokens: Vec<&str> = reply.split('.').collect();
    let stream_token = match tokens.len() {
        9 => tokens[2],
        12 => tokens[4],
        _ => panic!("an ack subject of neither form: {reply}"),
    };
    assert_eq!(stream_token, names.events_stream(), "{reply}");
    message.double_ack().await.unwrap();
    let mut stored = operator
        .events_stream()
        .await
        .unwrap()
        .get_consumer::<consumer::pull::Config>(&spec.durable_name)
        .await
        .unwrap();
    assert_eq!(stored.info().await.unwrap().ack_floor.stream_sequence, 1);

    // Allowed: dead-letter, and read the registry and the writer schemas.
    let dead_letter_subject = names.dlq_subject("insurer", "acme").unwrap();
    deliverer
        .jetstream
        .publish(dead_letter_subject, "dead letter".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(topology.registry.get("nothing-here").await.unwrap(), None);
    assert!(
        koppel_nats::schemas::load_writer_schemas(&topology.schemas)
            .await
            .is_ok()
    );

    // Refused: publish an event.
    let event_subject = PreparedEvent::encode(&names, &sample::employment_changed(3))
        .unwrap()
        .subject
        .clone();
    let published = deliverer
        .jetstream
        .publish(event_subject.clone(), "forged".into())
        .await;
    let acknowledged = match published {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    };
    assert!(!acknowledged, "the deliverer published an event");
    deliverer.assert_refused(&event_subject).await;

    // Refused: write a bucket (the registry or the extractor's snapshots).
    assert!(
        topology
            .registry
            .put("recipient.evil", "x".into())
            .await
            .is_err()
    );
    deliverer
        .assert_refused(&format!(
            "$KV.{}.recipient.evil",
            names.bucket(REGISTRY_BUCKET)
        ))
        .await;
    assert!(topology.snapshots.put("acme", "x".into()).await.is_err());
    deliverer
        .assert_refused(&format!("$KV.{}.acme", names.bucket(SNAPSHOTS_BUCKET)))
        .await;

    // Refused: change the events stream, or create a stream of its own.
    let changed = deliverer
        .jetstream
        .update_stream(stream::Config {
            max_age: Duration::from_secs(60),
            ..events_before.clone()
        })
        .await;
    assert!(changed.is_err(), "the deliverer changed the events stream");
    deliverer
        .assert_refused(&format!("$JS.API.STREAM.UPDATE.{}", names.events_stream()))
        .await;
    let created = deliverer
        .jetstream
        .create_stream(stream::Config {
            name: "SIDE".to_owned(),
            subjects: vec!["side.>".to_owned()],
            ..Default::default()
        })
        .await;
    assert!(created.is_err(), "the deliverer created a stream");
    deliverer.assert_refused("$JS.API.STREAM.CREATE.SIDE").await;

    let (events_after, count) = stream_config_and_count(&operator, &names.events_stream()).await;
    assert_eq!(events_after.max_age, events_before.max_age);
    assert_eq!(count, 1, "only the operator's event");
    let (_, dead_letters) = stream_config_and_count(&operator, &names.dlq_stream()).await;
    assert_eq!(dead_letters, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_operator_can_set_up() {
    let server = start_server().await;
    for identity in [EXTRACTOR, DELIVERER] {
        let worker = Identity::connect(&server.url(), identity).await;
        let refused = Topology::setup(
            worker.jetstream.clone(),
            Names::production(),
            &small_limits(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(refused, koppel_nats::TopologyError::Stream { .. }),
            "{}: {refused}",
            identity.0
        );
        worker
            .assert_refused(&format!(
                "$JS.API.STREAM.UPDATE.{}",
                Names::production().events_stream()
            ))
            .await;
    }
    let operator = Identity::connect(&server.url(), OPERATOR).await;
    Topology::setup(operator.jetstream, Names::production(), &small_limits())
        .await
        .unwrap();
    server.stop().await;
}
