//! Refresh-token rotation under contention, expired access tokens, a 429/503 storm, and the
//! one unrecoverable case (a rotated token lost before it was stored).

use std::time::{Duration, Instant};

use koppel_events::{EventType, SyncKind};
use koppel_extract::loket::{StoredRefreshToken, refresh_token_context};
use koppel_extract::{ExtractError, SourceError};
use koppel_nats::kv;
use koppel_sim::faults::FaultConfig;
use koppel_sim::world::MutationRates;
use secrecy::ExposeSecret;

use crate::support::{CONNECTION_ID, Harness, counts, fast_loket_settings, new_extractor};

#[tokio::test]
async fn two_extractors_racing_on_one_connection_never_lose_the_refresh_token() {
    let harness = Harness::start(51, 2, 5, MutationRates::none()).await;
    let options = harness.options(None);
    let first = harness
        .extractor
        .sync_employer_once(&harness.employer_keys[0], &options);
    let second_extractor = harness.another_extractor();
    let second = second_extractor.sync_employer_once(&harness.employer_keys[1], &options);
    let (first, second) = tokio::join!(first, second);
    first.unwrap();
    second.unwrap();

    // Force both to refresh at once, again and again.
    for round in 0..5 {
        harness.simulator.expire_access_tokens();
        let options = harness.options(Some(SyncKind::Full));
        let (first, second) = tokio::join!(
            harness
                .extractor
                .sync_employer_once(&harness.employer_keys[0], &options),
            second_extractor.sync_employer_once(&harness.employer_keys[1], &options),
        );
        assert!(first.is_ok(), "round {round}: {first:?}");
        assert!(second.is_ok(), "round {round}: {second:?}");
    }
    let token_calls = harness
        .simulator
        .call_counts()
        .get("/token")
        .copied()
        .unwrap_or(0);
    assert!(
        token_calls >= 12,
        "both replicas refreshed every round: {token_calls}"
    );

    // The stored token still works for a newcomer.
    let newcomer = harness.another_extractor();
    harness.simulator.expire_access_tokens();
    newcomer
        .sync_employer_once(
            &harness.employer_keys[0],
            &harness.options(Some(SyncKind::Full)),
        )
        .await
        .unwrap();
    harness.stop().await;
}

#[tokio::test]
async fn a_429_storm_and_expired_access_tokens_are_survived() {
    let harness = Harness::start(52, 1, 12, MutationRates::none()).await;
    let calm = harness.sync(0, None).await;

    harness.simulator.expire_access_tokens();
    harness.simulator.configure_faults(FaultConfig {
        too_many_requests_per_mille: 250,
        retry_after_seconds: 1,
        server_error_per_mille: 100,
        ..FaultConfig::default()
    });
    let token_calls_before = harness
        .simulator
        .call_counts()
        .get("/token")
        .copied()
        .unwrap_or(0);
    let started = Instant::now();
    let stormy = harness.sync(0, Some(SyncKind::Full)).await;
    let elapsed = started.elapsed();
    harness.simulator.configure_faults(FaultConfig::default());

    let faults = harness.simulator.fault_counts();
    assert!(
        faults.too_many_requests > 0 && faults.server_errors > 0,
        "{faults:?}"
    );
    // Retry-After: 1 was honoured at least once.
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(
        counts(&stormy).into_iter().collect::<Vec<_>>(),
        vec![(EventType::SyncCompleted, 1)]
    );
    assert_eq!(stormy.counts.employees_seen, calm.counts.employees_seen);
    // The 401 on the expired token cost exactly one successful refresh (429/503 on /token
    // itself may add retried attempts).
    let token_calls = harness
        .simulator
        .call_counts()
        .get("/token")
        .copied()
        .unwrap_or(0)
        - token_calls_before;
    assert!(token_calls >= 1, "{token_calls}");
    assert!(
        token_calls <= 1 + faults.too_many_requests + faults.server_errors,
        "{token_calls}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_401_triggers_exactly_one_refresh() {
    let harness = Harness::start(53, 1, 5, MutationRates::none()).await;
    harness.sync(0, None).await;
    let before = harness
        .simulator
        .call_counts()
        .get("/token")
        .copied()
        .unwrap_or(0);
    harness.simulator.expire_access_tokens();
    harness.sync(0, Some(SyncKind::Full)).await;
    let after = harness
        .simulator
        .call_counts()
        .get("/token")
        .copied()
        .unwrap_or(0);
    assert_eq!(after - before, 1);
    harness.stop().await;
}

#[tokio::test]
async fn a_rotated_token_lost_before_it_was_stored_asks_for_reauthorisation() {
    let harness = Harness::start(54, 1, 3, MutationRates::none()).await;
    // Play the crashed worker: use the stored token at Loket, never store the new one.
    let stored = kv::get_json::<StoredRefreshToken>(&harness.topology.tokens, CONNECTION_ID)
        .await
        .unwrap()
        .unwrap();
    let refresh = harness
        .key
        .open(&stored.value.sealed, &refresh_token_context(CONNECTION_ID))
        .unwrap();
    let config = harness.simulator.config().clone();
    let response = koppel_runtime::http::client_builder()
        .build()
        .unwrap()
        .post(format!("{}/token", harness.running.oauth_base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose_secret()),
            ("client_id", config.client_id.as_str()),
            (
                "client_secret",
                config.client_secret.as_deref().unwrap_or_default(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    let mut settings = fast_loket_settings();
    settings.token_race_grace_seconds = 1;
    let extractor = new_extractor(&harness.topology, &harness.key, settings);
    let error = extractor
        .sync_employer_once(&harness.employer_keys[0], &harness.options(None))
        .await
        .unwrap_err();
    match &error {
        ExtractError::Sync(koppel_extract::SyncError::Source(
            SourceError::ReauthorisationRequired { connection_id, .. },
        )) => assert_eq!(connection_id, CONNECTION_ID),
        other => panic!("expected a re-authorisation error, got {other:?}"),
    }
    assert_eq!(error.class(), koppel_extract::ErrorClass::Permanent);
    assert!(error.to_string().contains("re-authorised"), "{error}");
    harness.stop().await;
}
