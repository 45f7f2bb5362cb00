//! A crash between publishing and saving the snapshot re-emits the same event ids on the
//! next run, and JetStream drops them as duplicates.

use std::collections::BTreeSet;

use koppel_events::Event;
use koppel_extract::{Extractor, FailPoint, SyncError, SyncOptions};
use koppel_sim::world::MutationRates;
use uuid::Uuid;

use crate::support::Harness;

async fn stored_ids(harness: &Harness) -> BTreeSet<Uuid> {
    event_ids(&harness.stored_events().await)
}

/// The event ids of stored events (the Unit4 crash test shares it).
pub(crate) fn event_ids(events: &[Event]) -> BTreeSet<Uuid> {
    events.iter().map(|event| event.header().event_id).collect()
}

/// Syncs `employer_key` with `options` and a crash injected after publishing; the sync fails
/// with exactly that injected failure. The Unit4 crash test shares it.
pub(crate) async fn sync_crashing_after_publish(
    extractor: &Extractor,
    employer_key: &str,
    options: SyncOptions,
) {
    let crashing = SyncOptions {
        fail_point: Some(FailPoint::AfterPublish),
        ..options
    };
    let error = extractor
        .sync_employer_once(employer_key, &crashing)
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        koppel_extract::ExtractError::Sync(SyncError::InjectedFailure(FailPoint::AfterPublish))
    ));
}

#[tokio::test]
async fn a_crash_after_publish_reemits_the_same_ids_and_they_are_deduplicated() {
    let harness = Harness::start_with(31, 1, 25, MutationRates::busy(), 100).await;
    let key = harness.employer_keys[0].clone();

    // First sync crashes after every event is acknowledged.
    sync_crashing_after_publish(&harness.extractor, &key, harness.options(None)).await;
    let after_crash = stored_ids(&harness).await;
    assert!(after_crash.len() > 25);

    // The rerun derives the same ids: everything is a duplicate, nothing new is stored.
    let rerun = harness.sync(0, None).await;
    let rerun_ids: BTreeSet<Uuid> = rerun.published.iter().map(|event| event.event_id).collect();
    assert_eq!(rerun_ids, after_crash);
    assert_eq!(rerun.publish_report.stored, 0);
    assert_eq!(rerun.publish_report.duplicates as usize, after_crash.len());
    assert_eq!(
        harness.stored_message_count().await as usize,
        after_crash.len()
    );

    // The same for a delta with changes.
    harness.simulator.advance_days(5);
    let crashing = SyncOptions {
        fail_point: Some(FailPoint::AfterPublish),
        ..harness.options(None)
    };
    let before = harness.stored_message_count().await;
    assert!(
        harness
            .extractor
            .sync_employer_once(&key, &crashing)
            .await
            .is_err()
    );
    let published_by_crash = harness.stored_message_count().await - before;
    assert!(published_by_crash > 1, "five busy days change something");
    let rerun = harness.sync(0, None).await;
    assert_eq!(rerun.publish_report.stored, 0);
    assert_eq!(rerun.publish_report.duplicates, published_by_crash);
    assert_eq!(
        harness.stored_message_count().await - before,
        published_by_crash
    );

    // And after a successful run the snapshot moved on: nothing more to say.
    let quiet = harness.sync(0, None).await;
    assert!(quiet.unchanged);
    harness.stop().await;
}
