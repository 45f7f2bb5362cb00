//! Unit4 tokens: one token request per connection however many syncs run at once, a token
//! that expires in the middle of a sync costs exactly one renewal, a 429/503 storm is
//! survived, and a wrong client secret is a clear permanent error.

use std::time::Duration;

use koppel_events::{EventType, SyncKind};
use koppel_extract::{ErrorClass, ExtractError, SourceError, SyncError};
use koppel_sim::faults::FaultConfig;

use crate::support::counts;
use crate::unit4_support::{UNIT4_CONNECTION_ID, Unit4Harness, Unit4Setup, fast_unit4_settings};

#[tokio::test]
async fn unit4_concurrent_syncs_share_one_token_request() {
    let harness = Unit4Harness::start(131, 4, 10).await;
    let options = harness.options(None);
    let results = futures::future::join_all(
        harness
            .employer_keys
            .iter()
            .map(|key| harness.extractor.sync_employer_once(key, &options)),
    )
    .await;
    for result in results {
        result.unwrap();
    }
    assert_eq!(harness.token_calls(), 1);
    harness.stop().await;
}

#[tokio::test]
async fn unit4_a_token_expiring_mid_sync_costs_exactly_one_renewal() {
    // Pages of 5 make a 200-employee sync about 90 requests long.
    let harness = Unit4Harness::start(132, 1, 200).await;
    let mut settings = fast_unit4_settings();
    settings.page_size = 5;
    let extractor = harness.another_extractor(settings);
    let options = harness.options(None);
    let key = harness.employer_keys[0].clone();

    let simulator = harness.simulator.clone();
    let expire = async move {
        // Wait until the sync is under way, then kill every token the simulator issued.
        while simulator.api_call_count() < 10 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        simulator.expire_access_tokens();
        simulator.api_call_count()
    };
    let (outcome, expired_at) = tokio::join!(extractor.sync_employer_once(&key, &options), expire);
    let outcome = outcome.unwrap();
    let calls = harness.simulator.api_call_count();
    assert!(
        expired_at < calls,
        "the tokens expired before the sync ended"
    );
    assert_eq!(
        harness.token_calls(),
        2,
        "{:?}",
        harness.simulator.call_counts()
    );
    let employees = harness
        .simulator
        .with_world(|world| world.employers()[0].employees.len());
    assert_eq!(
        counts(&outcome).get(&EventType::EmployeeCreated),
        Some(&employees)
    );
    assert!(outcome.record_errors.is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn unit4_a_429_storm_and_expired_tokens_are_survived() {
    // Pages of 4 make about 70 requests, so the storm hits many of them.
    let harness = Unit4Harness::start(133, 1, 120).await;
    let mut settings = fast_unit4_settings();
    settings.page_size = 4;
    let extractor = harness.another_extractor(settings);
    let calm = extractor
        .sync_employer_once(&harness.employer_keys[0], &harness.options(None))
        .await
        .unwrap();
    harness.simulator.expire_access_tokens();
    harness.simulator.configure_faults(FaultConfig {
        too_many_requests_per_mille: 250,
        retry_after_seconds: 1,
        server_error_per_mille: 100,
        ..FaultConfig::default()
    });
    let started = std::time::Instant::now();
    let stormy = extractor
        .sync_employer_once(
            &harness.employer_keys[0],
            &harness.options(Some(SyncKind::Full)),
        )
        .await
        .unwrap();
    harness.simulator.configure_faults(FaultConfig::default());
    let faults = harness.simulator.fault_counts();
    assert!(
        faults.too_many_requests > 0 && faults.server_errors > 0,
        "{faults:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        counts(&stormy).into_iter().collect::<Vec<_>>(),
        vec![(EventType::SyncCompleted, 1)]
    );
    assert_eq!(stormy.counts.employees_seen, calm.counts.employees_seen);
    harness.stop().await;
}

#[tokio::test]
async fn unit4_a_wrong_client_secret_is_a_clear_permanent_error() {
    let harness = Unit4Harness::start_with(Unit4Setup {
        client_secret_in_registry: "not-the-secret".to_owned(),
        ..Unit4Setup::new(134, 1, 3)
    })
    .await;
    let error = harness.try_sync(0, None).await.unwrap_err();
    match &error {
        ExtractError::Sync(SyncError::Source(SourceError::CredentialsRejected {
            connection_id,
            ..
        })) => assert_eq!(connection_id, UNIT4_CONNECTION_ID),
        other => panic!("expected rejected credentials, got {other:?}"),
    }
    assert_eq!(error.class(), ErrorClass::Permanent);
    let message = error.to_string();
    assert!(
        message.contains("client id or secret is wrong"),
        "{message}"
    );
    assert!(!message.contains("not-the-secret"), "{message}");
    // Exactly one token request: a refusal is not retried.
    assert_eq!(harness.token_calls(), 1);
    // Discovery says the same.
    let discovery = harness
        .extractor
        .discover_employers(UNIT4_CONNECTION_ID)
        .await
        .unwrap_err();
    assert!(
        discovery
            .to_string()
            .contains("client id or secret is wrong")
    );
    harness.stop().await;
}
