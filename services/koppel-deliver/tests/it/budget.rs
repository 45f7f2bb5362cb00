//! The retry budget survives restarts: a deliverer killed again and again while it attempts the
//! same message (a crash loop, such as an endpoint whose answer exhausts its memory) does not
//! start that message with a fresh budget each time; the message ends as a dead letter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use koppel_deliver::RetrySettings;
use koppel_deliver::dlq::{self, DlqSelection};
use koppel_runtime::http::HttpClientSettings;
use koppel_test_support::topology;

use crate::support::*;

/// An endpoint that counts requests and never answers: every attempt is still on the wire
/// when the deliverer is killed.
async fn hanging_endpoint() -> (String, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_on_one_message_ends_in_a_dead_letter_within_the_attempts_budget() {
    let topology = topology().await;
    let (url, requests) = hanging_endpoint().await;
    let (key, encoded) = secret_key();
    register(
        &topology,
        &key,
        &[webhook_recipient(&key, "hooks", &url)],
        &[("acme", &["hooks"])],
    )
    .await;
    publish(&topology, &[employment_event("acme", 1, 0)]).await;
    let mut config = config(&topology, &encoded);
    // One attempt outlives each deliverer: only restarts can spend the budget.
    config.http = HttpClientSettings {
        timeout_seconds: 300,
        ..HttpClientSettings::default()
    };
    config.retry = RetrySettings {
        max_attempts: 3,
        ..config.retry
    };
    let selection = DlqSelection::recipient("hooks");
    let mut dead_lettered = false;
    for _run in 0..6 {
        let seen = requests.load(Ordering::SeqCst);
        let deliverer = RunningDeliverer::start(config.clone());
        eventually_async(
            "a new attempt, or the dead letter",
            Duration::from_secs(60),
            || async {
                requests.load(Ordering::SeqCst) > seen
                    || !dlq::list(&topology, &selection).await.unwrap().is_empty()
            },
        )
        .await;
        if !dlq::list(&topology, &selection).await.unwrap().is_empty() {
            deliverer.stop().await;
            dead_lettered = true;
            break;
        }
        deliverer.kill().await;
    }
    assert!(
        dead_lettered,
        "still attempted after {} requests: every restart started a fresh budget",
        requests.load(Ordering::SeqCst)
    );
    let letters = dlq::list(&topology, &selection).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].error_class.as_deref(), Some("budget_exhausted"));
    assert_eq!(requests.load(Ordering::SeqCst), 3, "three attempts in all");
}
