//! Compare-and-set over KV: a stale revision never overwrites a newer value.

use koppel_nats::KvError;
use koppel_nats::kv::{get_json, put_json_if, update_json};
use koppel_test_support::topology;

#[tokio::test]
async fn compare_and_set_with_a_stale_revision_fails() {
    let topology = topology().await;
    let store = &topology.tokens;
    let first = put_json_if(store, "conn-1", &"token-a", None)
        .await
        .unwrap();
    let second = put_json_if(store, "conn-1", &"token-b", Some(first))
        .await
        .unwrap();

    let stale = put_json_if(store, "conn-1", &"token-c", Some(first)).await;

    assert!(
        matches!(stale, Err(KvError::Conflict { expected_revision: Some(r), .. }) if r == first),
        "{stale:?}"
    );
    let current = get_json::<String>(store, "conn-1").await.unwrap().unwrap();
    assert_eq!(current.value, "token-b");
    assert_eq!(current.revision, second);
}

#[tokio::test]
async fn create_fails_when_the_key_exists() {
    let topology = topology().await;
    put_json_if(&topology.registry, "k", &1u32, None)
        .await
        .unwrap();
    assert!(matches!(
        put_json_if(&topology.registry, "k", &2u32, None).await,
        Err(KvError::Conflict { .. })
    ));
}

#[tokio::test]
async fn concurrent_read_modify_writes_lose_no_update() {
    let topology = topology().await;
    let store = topology.watermarks.clone();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                update_json::<u64, _>(&store, "counter", |current| {
                    Some(current.copied().unwrap_or(0) + 1)
                })
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        get_json::<u64>(&store, "counter")
            .await
            .unwrap()
            .unwrap()
            .value,
        80
    );
}
