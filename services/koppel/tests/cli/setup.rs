//! `koppel setup` apart from runtime: setup applies the `[topology]` limits; a command run later
//! with the default config (one replica, default limits) leaves them as they are; and commands
//! and workers started before setup fail with a message that names `koppel setup`; on a
//! 3-node cluster, R3 streams stay R3.

use std::process::{Command, Output};
use std::time::Duration;

use koppel_test_support::{connect, nats_server, stream_info, unique_names};

use super::{stderr, stdout};

/// `koppel` against the shared server in `namespace`, with `extra` environment variables and no
/// config file: every setting not given is the default.
fn koppel(namespace: &str, extra: &[(&str, &str)], arguments: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_koppel"));
    command
        .args(arguments)
        .env("KOPPEL_NATS_URL", &nats_server().url)
        .env("KOPPEL_NAMESPACE", namespace)
        .env(
            "KOPPEL_SECRET_KEY",
            koppel_registry::SecretKey::generate_base64().unwrap(),
        )
        .env_remove("KOPPEL_CONFIG");
    for (name, value) in extra {
        command.env(name, value);
    }
    command.output().unwrap()
}

const PRODUCTION_LIKE: [(&str, &str); 6] = [
    ("KOPPEL_TOPOLOGY__EVENTS_MAX_AGE_DAYS", "7"),
    ("KOPPEL_TOPOLOGY__EVENTS_MAX_MEGABYTES", "32"),
    ("KOPPEL_TOPOLOGY__DLQ_MAX_AGE_DAYS", "3"),
    ("KOPPEL_TOPOLOGY__DLQ_MAX_MEGABYTES", "8"),
    ("KOPPEL_TOPOLOGY__SNAPSHOTS_MAX_MEGABYTES", "8"),
    ("KOPPEL_TOPOLOGY__BUCKET_MAX_MEGABYTES", "2"),
];

#[tokio::test]
async fn commands_run_after_setup_with_the_default_config_leave_the_streams_as_setup_made_them() {
    let names = unique_names();
    let namespace = names.namespace().unwrap();

    let setup = koppel(namespace, &PRODUCTION_LIKE, &["--output", "json", "setup"]);
    assert!(setup.status.success(), "{}", stderr(&setup));
    let rows: serde_json::Value = serde_json::from_str(stdout(&setup).trim()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 8, "{rows}");
    assert_eq!(rows[0]["stream"], names.events_stream());
    assert_eq!(rows[0]["max_age_days"], 7);
    assert_eq!(rows[0]["max_megabytes"], 32);

    // The default config: replicas 1, events kept 400 days in 1 GiB. Before setup was apart,
    // each of these rewrote the streams to it.
    for arguments in [
        &["status"][..],
        &["employer", "list"],
        &["tail", "--from-start", "--no-follow"],
    ] {
        let output = koppel(namespace, &[], arguments);
        assert!(
            output.status.success(),
            "{arguments:?}: {}",
            stderr(&output)
        );
    }

    let jetstream = async_nats::jetstream::new(connect().await);
    let config = stream_info(&jetstream, &names.events_stream()).await.config;
    assert_eq!(config.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(config.max_bytes, 32 * 1024 * 1024);
    let config = stream_info(&jetstream, &names.dlq_stream()).await.config;
    assert_eq!(config.max_age, Duration::from_secs(3 * 86_400));
    let registry = jetstream
        .get_key_value(names.bucket(koppel_events::subject::REGISTRY_BUCKET))
        .await
        .unwrap();
    assert_eq!(
        registry.status().await.unwrap().info.config.max_bytes,
        2 * 1024 * 1024
    );
}

#[tokio::test]
async fn commands_and_workers_before_setup_fail_naming_koppel_setup() {
    let names = unique_names();
    let namespace = names.namespace().unwrap();

    for arguments in [
        &["employer", "list"][..],
        &["status"],
        &["extractor", "--ops-listen", "127.0.0.1:0"],
        &["deliverer", "--ops-listen", "127.0.0.1:0"],
    ] {
        let output = koppel(namespace, &[], arguments);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{arguments:?}: {}",
            stderr(&output)
        );
        let message = stderr(&output);
        assert!(
            message.contains(&format!(
                "stream {} does not exist: run `koppel setup`",
                names.events_stream()
            )),
            "{arguments:?}: {message}"
        );
    }

    // Nothing was created on the way.
    let jetstream = async_nats::jetstream::new(connect().await);
    assert!(jetstream.get_stream(names.events_stream()).await.is_err());
}

/// The audit's finding, on a real 3-node cluster: before setup was apart, a command run with
/// the default config (`replicas = 1`) rewrote R3 streams and buckets to R1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_with_the_default_one_replica_leaves_r3_streams_and_buckets_at_r3() {
    let cluster = koppel_test_support::cluster::NatsCluster::start()
        .await
        .unwrap();
    let names = unique_names();
    let namespace = names.namespace().unwrap();
    let run = |extra: &[(&str, &str)], arguments: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_koppel"));
        command
            .args(arguments)
            .env("KOPPEL_NATS_URL", cluster.url())
            .env("KOPPEL_NAMESPACE", namespace)
            .env_remove("KOPPEL_CONFIG");
        for (name, value) in extra {
            command.env(name, value);
        }
        command.output().unwrap()
    };

    let setup = run(&[("KOPPEL_TOPOLOGY__REPLICAS", "3")], &["setup"]);
    assert!(setup.status.success(), "{}", stderr(&setup));
    for arguments in [&["status"][..], &["employer", "list"]] {
        let output = run(&[], arguments);
        assert!(
            output.status.success(),
            "{arguments:?}: {}",
            stderr(&output)
        );
    }

    let jetstream = async_nats::jetstream::new(cluster.connect().await.unwrap());
    for stream in [
        names.events_stream(),
        names.dlq_stream(),
        format!(
            "KV_{}",
            names.bucket(koppel_events::subject::REGISTRY_BUCKET)
        ),
    ] {
        let replicas = stream_info(&jetstream, &stream).await.config.num_replicas;
        assert_eq!(replicas, 3, "{stream}");
    }
}
