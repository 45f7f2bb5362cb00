//! Chaos scenarios on a single NATS server, with real `koppel extractor` and `koppel
//! deliverer` processes: kill -9 of either worker at the worst moment, a NATS restart, a
//! recipient outage with a backlog, and a source answering 429 storms with expiring tokens.
//! Each prints a verdict line and its figures and asserts nothing was lost, nothing arrived
//! out of order per employee, and every duplicate was absorbed.
//!
//! Gated: runs only with `KOPPEL_CHAOS=1` (`.ci/run` sets it). Scenarios run one at a time
//! (they share two cores and time the recovery).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use koppel_chaos::pipeline::RECIPIENTS;
use koppel_chaos::{ChaosPipeline, PipelineOptions};
use koppel_sim::faults::FaultConfig;

/// One scenario at a time: each times its own recovery on a small machine.
static ONE_AT_A_TIME: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

fn shared_nats_url() -> String {
    koppel_test_support::nats_server().url.clone()
}

/// Advances one simulated day and waits until the extractor published all of it.
async fn advance_and_catch_up(pipeline: &mut ChaosPipeline) -> u64 {
    let changes = pipeline.advance_day().await.unwrap();
    pipeline.wait_caught_up().await.unwrap();
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliverer_killed_mid_stream_recovers_without_loss() {
    if !koppel_chaos::enabled() {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut options = PipelineOptions::new("deliverer-kill-9-mid-stream", &shared_nats_url());
    // A slow insurer keeps the first sync's events in flight long enough to kill mid-stream.
    options.insurer_faults = FaultConfig {
        slow_per_mille: 500,
        slow_delay_millis: 100,
        ..FaultConfig::default()
    };
    let mut pipeline = ChaosPipeline::start(options).await.unwrap();

    // Mid-stream: the insurer has applied some events and has more waiting.
    pipeline
        .wait_for(
            "the insurer to have applied some but not all events",
            Duration::from_secs(60),
            || async {
                let applied = pipeline.suite.insurer.summary().applied;
                let backlog = pipeline.backlog(RECIPIENTS[0]).await?.unwrap_or(0);
                Ok(applied > 0 && backlog > 0)
            },
        )
        .await
        .unwrap();
    let applied_at_kill = pipeline.suite.insurer.summary().applied;
    let backlog_at_kill = pipeline.backlog(RECIPIENTS[0]).await.unwrap().unwrap_or(0);
    pipeline.deliverer.kill_9().unwrap();

    // The world moves on while no deliverer runs.
    for _ in 0..3 {
        advance_and_catch_up(&mut pipeline).await;
    }
    let recovery = Instant::now();
    pipeline.deliverer.restart().unwrap();
    pipeline
        .suite
        .insurer
        .configure_faults(FaultConfig::default());
    pipeline.wait_drained().await.unwrap();
    let mut report = pipeline.verify(recovery.elapsed()).await.unwrap();
    report
        .figure("insurer applied at kill", applied_at_kill)
        .figure("insurer backlog at kill", backlog_at_kill);
    report.print();
    pipeline.assert_pass(&report);
    pipeline.stop().await.unwrap();
}
