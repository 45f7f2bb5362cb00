//! Unit4: an employer registered in koppel but not linked to the web-API user's group answers
//! 403; its sync fails with a clear per-employer error while the others sync, both in one-off
//! syncs and in the running worker.

use std::sync::Arc;
use std::time::Duration;

use koppel_events::EventType;
use koppel_extract::engine::Watermark;
use koppel_extract::{ErrorClass, ExtractError, SourceError, SyncError};
use tokio_util::sync::CancellationToken;

use crate::support::counts;
use crate::unit4_support::{UNIT4_CONNECTION_ID, Unit4Harness, Unit4Setup, fast_unit4_settings};

#[tokio::test]
async fn unit4_an_unlinked_employer_fails_alone_with_a_clear_error() {
    let harness = Unit4Harness::start_with(Unit4Setup {
        unlinked: vec![1],
        ..Unit4Setup::new(141, 3, 8)
    })
    .await;

    let error = harness.try_sync(1, None).await.unwrap_err();
    match &error {
        ExtractError::Sync(SyncError::Source(SourceError::EmployerNotVisible {
            connection_id,
            source_employer_id,
        })) => {
            assert_eq!(connection_id, UNIT4_CONNECTION_ID);
            assert_eq!(source_employer_id, &harness.employer_ids[1].to_string());
        }
        other => panic!("expected EmployerNotVisible, got {other:?}"),
    }
    assert_eq!(error.class(), ErrorClass::Permanent);
    let message = error.to_string();
    assert!(
        message.contains(&harness.employer_ids[1].to_string()) && message.contains("not visible"),
        "{message}"
    );
    // Nothing was published for it.
    assert_eq!(harness.stored_message_count().await, 0);

    // The others sync through the same connection and the same token.
    for index in [0, 2] {
        let outcome = harness.sync(index, None).await;
        assert_eq!(counts(&outcome).get(&EventType::EmployerUpserted), Some(&1));
    }
    // Discovery lists only what the group holds.
    let discovered = harness
        .extractor
        .discover_employers(UNIT4_CONNECTION_ID)
        .await
        .unwrap();
    assert_eq!(discovered.len(), 2);
    assert!(
        discovered
            .iter()
            .all(|employer| employer.source_employer_id != harness.employer_ids[1].to_string())
    );
    harness.stop().await;
}

#[tokio::test]
async fn unit4_the_worker_keeps_extracting_the_others_when_one_is_forbidden() {
    let harness = Unit4Harness::start_with(Unit4Setup {
        unlinked: vec![0],
        ..Unit4Setup::new(142, 3, 5)
    })
    .await;
    let worker = Arc::new(harness.another_extractor(fast_unit4_settings()));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(Arc::clone(&worker).run(shutdown.clone()));

    let synced = |key: String| {
        let watermarks = harness.topology.watermarks.clone();
        async move {
            Watermark::load(&watermarks, &key)
                .await
                .unwrap()
                .and_then(|watermark| watermark.last_sync_at)
                .is_some()
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if synced(harness.employer_keys[1].clone()).await
            && synced(harness.employer_keys[2].clone()).await
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the linked employers were not extracted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give the forbidden employer a few more polls: it stays unsynced, the worker stays up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!synced(harness.employer_keys[0].clone()).await);
    assert!(!running.is_finished());
    shutdown.cancel();
    running.await.unwrap().unwrap();

    let employer_events = harness
        .stored_events()
        .await
        .into_iter()
        .filter(|event| event.event_type() == EventType::EmployerUpserted)
        .count();
    assert_eq!(employer_events, 2);
    harness.stop().await;
}
