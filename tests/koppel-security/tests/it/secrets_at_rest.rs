//! Secrets at rest: every secret koppel keeps in NATS (connection client secrets, the Loket
//! refresh token in the tokens bucket, recipients' API tokens and webhook signing secrets) is
//! unreadable in the raw KV bytes, in every revision, in plain text and in any base64 or hex
//! rendering; and the `koppel` command refuses clearly, without the key or with a wrong one.
//!
//! koppel-registry's own `stored_secrets_are_unreadable_without_the_key` checks one Loket client
//! secret in one record and a wrong key on the library call; this covers every secret-bearing
//! record and bucket, and the key handling of the real command.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures::StreamExt;
use koppel_harness::onboarding::{insurer_recipient, webhook_recipient};
use koppel_registry::{RecipientSettings, SealError, SecretKey};
use koppel_sim::suite::{SimulatorSuite, SuiteConfig, UNIT4_CLIENT_SECRET};
use secrecy::ExposeSecret;

use crate::support::*;

/// Every rendering of `secret` that would give it away: itself, base64 and URL-safe base64 at
/// each of the three byte alignments it could have inside a longer encoded value, and hex.
fn renderings(secret: &str) -> Vec<String> {
    let mut found = vec![secret.to_owned(), hex(secret.as_bytes())];
    for pad in 0..3usize {
        let mut bytes = vec![0u8; pad];
        bytes.extend_from_slice(secret.as_bytes());
        for encoded in [STANDARD.encode(&bytes), URL_SAFE_NO_PAD.encode(&bytes)] {
            // Skip the characters the padding bytes touch and the last, partial group.
            let skip = (pad * 4).div_ceil(3);
            let inner: String = encoded.chars().skip(skip).collect();
            let inner = inner.trim_end_matches('=');
            let keep = inner.len().saturating_sub(4);
            found.push(inner[..keep].to_owned());
        }
    }
    found
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Every value of every revision of every key in `bucket`, raw.
async fn all_raw_values(bucket: &async_nats::jetstream::kv::Store) -> Vec<(String, Vec<u8>)> {
    let mut values = Vec::new();
    let mut keys = bucket.keys().await.unwrap();
    let mut names = Vec::new();
    while let Some(key) = keys.next().await {
        names.push(key.unwrap());
    }
    for key in names {
        let mut history = bucket.history(&key).await.unwrap();
        while let Some(entry) = history.next().await {
            let entry = entry.unwrap();
            values.push((format!("{key}@{}", entry.revision), entry.value.to_vec()));
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_kv_are_sealed_and_need_the_right_key() {
    let space = TestNamespace::new().await;
    let TestNamespace {
        topology,
        registry,
        encoded_key,
        key,
        ..
    } = &space;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let loket_secret = format!("loket-client-secret-{unique}");
    let refresh_token = format!("loket-refresh-token-{unique}");
    let insurer_token = format!("insurer-api-token-{unique}");
    let webhook_secret = format!("whsec_{}", STANDARD.encode(format!("hook-{unique}")));

    // A Unit4 connection against a live simulator, so the command below can use it for real.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let suite = SimulatorSuite::start(&SuiteConfig::local(3, 1, 2), shutdown.clone())
        .await
        .unwrap();
    space
        .register_unit4_connection("unit4-sealed", &suite, UNIT4_CLIENT_SECRET, 900)
        .await;
    space
        .register_loket_connection(
            "loket-sealed",
            LoketEndpoint::Unreachable,
            &loket_secret,
            60,
        )
        .await;
    space
        .store_refresh_token("loket-sealed", &refresh_token)
        .await;
    registry
        .put_recipient(
            &insurer_recipient(
                &space.key,
                "insurer-sealed",
                "http://127.0.0.1:2",
                &insurer_token,
                4,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    registry
        .put_recipient(
            &webhook_recipient(
                &space.key,
                "hooks-sealed",
                "http://127.0.0.1:3/webhooks",
                &webhook_secret,
                4,
            )
            .unwrap(),
        )
        .await
        .unwrap();

    // Raw bytes, every revision, both buckets that hold secrets.
    let mut raw = all_raw_values(&topology.registry).await;
    raw.extend(all_raw_values(&topology.tokens).await);
    assert!(
        raw.len() >= 5,
        "four records and a refresh token were written: {}",
        raw.len()
    );
    let secrets = [
        ("Unit4 client secret", UNIT4_CLIENT_SECRET.to_owned()),
        ("Loket client secret", loket_secret.clone()),
        ("Loket refresh token", refresh_token.clone()),
        ("insurer API token", insurer_token.clone()),
        ("webhook secret", webhook_secret.clone()),
        (
            "webhook secret's key",
            webhook_secret.trim_start_matches("whsec_").to_owned(),
        ),
        ("sealing key", encoded_key.clone()),
    ];
    for (what, secret) in &secrets {
        for rendering in renderings(secret) {
            assert!(
                rendering.len() >= 8,
                "{what}: rendering too short to mean anything"
            );
            for (key_name, value) in &raw {
                let text = String::from_utf8_lossy(value);
                assert!(
                    !text.contains(&rendering),
                    "{key_name} holds the {what} readable"
                );
            }
        }
    }
    // The scan would have found them: a plaintext control record is readable in raw bytes.
    let control = format!("control-{unique}");
    topology
        .registry
        .put("control", control.clone().into_bytes().into())
        .await
        .unwrap();
    let raw = all_raw_values(&topology.registry).await;
    assert!(
        raw.iter()
            .any(|(_, value)| String::from_utf8_lossy(value).contains(&control))
    );
    topology.registry.purge("control").await.unwrap();

    // Opening: the right key gives the secret back; another key is a clear error, not garbage.
    let snapshot = registry.snapshot().await.unwrap();
    let Some(RecipientSettings::Webhook { secret, .. }) = snapshot
        .recipients
        .get("hooks-sealed")
        .map(|recipient| &recipient.settings)
    else {
        panic!("the webhook recipient is registered");
    };
    let context = koppel_deliver::recipient::secret_context("hooks-sealed", "secret");
    assert_eq!(
        key.open(secret, &context).unwrap().expose_secret(),
        webhook_secret
    );
    let other_key = SecretKey::generate_base64().unwrap();
    let error = SecretKey::from_base64(&other_key)
        .unwrap()
        .open(secret, &context)
        .unwrap_err();
    assert_eq!(error, SealError::Open);
    assert!(error.to_string().contains("wrong key"), "{error}");

    // The command: with the key it works, without one or with another it says why.
    let run = |key: Option<String>| {
        let mut command = space.koppel_command(&["connection", "test", "unit4-sealed"], "warn");
        if let Some(key) = key {
            command.env("KOPPEL_SECRET_KEY", key);
        }
        run_koppel("koppel connection test", command)
    };
    let works = run(Some(encoded_key.clone())).await;
    assert!(works.success, "with the key: {}", works.stderr);
    assert!(works.stdout.contains("works"), "{}", works.stdout);

    let without = run(None).await;
    assert!(!without.success);
    assert!(
        without.stderr.contains("KOPPEL_SECRET_KEY"),
        "without a key the error names the setting: {}",
        without.stderr
    );
    let wrong = run(Some(other_key.clone())).await;
    assert!(!wrong.success);
    assert!(
        wrong.stderr.contains("wrong key"),
        "with another key the error says so: {}",
        wrong.stderr
    );
    for captured in [&works, &without, &wrong] {
        for (what, secret) in &secrets {
            assert!(!captured.all().contains(secret.as_str()), "{what} printed");
        }
        assert!(
            !captured.all().contains(&other_key),
            "the other key printed"
        );
    }
    suite.stop().await.unwrap();
}
