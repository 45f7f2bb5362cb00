//! Chaos on a 3-node JetStream cluster: R3 streams, buckets and consumers, real `koppel
//! extractor` and `koppel deliverer` processes on all three URLs. Mid-run, the events
//! stream's leader is stopped and later brought back, then a follower, then the leader is
//! killed (SIGKILL) and brought back; the world keeps advancing while a node is down. Asserts
//! nothing lost against the ground truth and the stream, no per-employee order violation at any
//! recipient, duplicates absorbed; prints the verdict, the duplicates and the recovery times.
//!
//! Gated: runs only with `KOPPEL_CHAOS=1` (`.ci/run` sets it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use koppel_chaos::pipeline::RECIPIENTS;
use koppel_chaos::{ChaosPipeline, PipelineOptions, seconds_text};
use koppel_sim::faults::FaultConfig;
use koppel_test_support::cluster::{CLUSTER_SIZE, NatsCluster};

/// How long a failover or a catch-up may take before the scenario fails.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(180);

/// Which node of the events stream's group a phase stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `docker stop`: SIGTERM, the server hands its leaderships over as it shuts down.
    Leader,
    Follower,
    /// SIGKILL: the group notices the leader is gone only when its heartbeats stop.
    KilledLeader,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::KilledLeader => "killed leader",
        }
    }
}

/// What one stop-and-start of a node measured.
#[derive(Debug)]
struct PhaseFigures {
    role: Role,
    node: usize,
    /// Messages waiting at the recipients' consumers when the node stopped: the stop landed
    /// mid-delivery when this is above zero.
    backlog_at_stop: u64,
    /// Publishes the observer saw from the stop until the day was caught up: above zero, the
    /// extractor was still publishing the day when the node went down.
    publishes_after_stop: u64,
    leader_after_stop: usize,
    elected_in: Duration,
    caught_up_after_stop: Duration,
    drained_after_stop: Duration,
    rejoined_after_start: Duration,
    drained_after_start: Duration,
}

impl PhaseFigures {
    fn print_into(&self, report: &mut koppel_chaos::ChaosReport) {
        let role = self.role.name();
        report
            .figure(
                &format!("{role}: node stopped"),
                format!(
                    "n{} (leader afterwards n{})",
                    self.node + 1,
                    self.leader_after_stop + 1
                ),
            )
            .figure(
                &format!("{role}: publishes after stop"),
                self.publishes_after_stop,
            )
            .figure(&format!("{role}: backlog at stop"), self.backlog_at_stop)
            .figure(
                &format!("{role}: stream leader within"),
                seconds_text(self.elected_in),
            )
            .figure(
                &format!("{role}: caught up after stop"),
                seconds_text(self.caught_up_after_stop),
            )
            .figure(
                &format!("{role}: drained after stop"),
                seconds_text(self.drained_after_stop),
            )
            .figure(
                &format!("{role}: replicas current after start"),
                seconds_text(self.rejoined_after_start),
            )
            .figure(
                &format!("{role}: drained after start"),
                seconds_text(self.drained_after_start),
            );
    }
}

/// Retries a harness call that can fail for a moment while the cluster elects a leader or a
/// client reconnects to another node: a fast error is retried, the deadline is kept.
async fn through_failover<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    let mut failures = 0u32;
    loop {
        match call().await {
            Ok(value) => {
                if failures > 0 {
                    println!("  {what}: succeeded after {failures} transient failures");
                }
                return value;
            }
            Err(error) if started.elapsed() < RECOVERY_DEADLINE => {
                failures += 1;
                if failures == 1 {
                    println!("  {what}: transient failure, retrying: {error:#}");
                }
                // A pause between attempts of a polled condition, not a synchronisation.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("{what}: {error:#}"),
        }
    }
}

/// Advances one simulated day; returns how many entities it changed (a quiet day changes none).
async fn advance_day(pipeline: &mut ChaosPipeline) -> u64 {
    // `advance_day` reads the stream's last sequence before it changes the world, so a
    // failed call changed nothing and may be repeated.
    let started = Instant::now();
    loop {
        match pipeline.advance_day().await {
            Ok(changes) => return changes,
            Err(error) if started.elapsed() < RECOVERY_DEADLINE => {
                println!("  advance a day: transient failure, retrying: {error:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("advance a day: {error:#}"),
        }
    }
}

async fn caught_up(pipeline: &mut ChaosPipeline) {
    // `wait_caught_up` needs `&mut`; retried by hand for the same reason as `through_failover`.
    let started = Instant::now();
    loop {
        match pipeline.wait_caught_up().await {
            Ok(_) => return,
            Err(error) if started.elapsed() < RECOVERY_DEADLINE => {
                println!("  catch up: transient failure, retrying: {error:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("catch up: {error:#}"),
        }
    }
}

async fn drained(pipeline: &ChaosPipeline) {
    through_failover("drain", || pipeline.wait_drained()).await;
}

/// A day on the cluster as it is: the world advances, the extractor publishes it, the
/// deliverer delivers it.
async fn advance_catch_up_and_drain(pipeline: &mut ChaosPipeline) {
    advance_day(pipeline).await;
    caught_up(pipeline).await;
    drained(pipeline).await;
}

async fn total_backlog(pipeline: &ChaosPipeline) -> u64 {
    let mut total = 0;
    for recipient in RECIPIENTS {
        total += pipeline
            .backlog(recipient)
            .await
            .ok()
            .flatten()
            .unwrap_or(0);
    }
    total
}

/// Every request to every simulator waits a little: a sync's publishes spread over time and
/// deliveries queue up, so a node stopped right after a day's first publish goes down with
/// publishing and delivery both in flight.
fn slow_everything(pipeline: &ChaosPipeline, slow: bool) {
    let faults = if slow {
        FaultConfig {
            slow_per_mille: 1000,
            slow_delay_millis: 100,
            ..FaultConfig::default()
        }
    } else {
        FaultConfig::default()
    };
    pipeline.suite.loket.configure_faults(faults.clone());
    pipeline.suite.unit4.configure_faults(faults.clone());
    pipeline.suite.insurer.configure_faults(faults.clone());
    pipeline.suite.webhook.configure_faults(faults);
}

/// Stops (or kills) the events stream's leader or one of its followers while a day is being published
/// and delivered, lets the pipeline carry that day and one more on two nodes, brings the node
/// back and carries a third day on three.
async fn stop_and_start(
    cluster: &NatsCluster,
    pipeline: &mut ChaosPipeline,
    stream: &str,
    role: Role,
) -> PhaseFigures {
    // Mid-run: the first publish of a day with changes is out, the rest of it still to come.
    slow_everything(pipeline, true);
    let mut seen = pipeline.observer.messages();
    while advance_day(pipeline).await == 0 {
        caught_up(pipeline).await;
        seen = pipeline.observer.messages();
    }
    pipeline
        .observer
        .wait_for_more_than(seen, RECOVERY_DEADLINE)
        .await
        .unwrap();
    let placement = cluster.stream_placement(stream).await.unwrap();
    let leader = placement.leader.expect("the events stream has a leader");
    let node = match role {
        Role::Leader | Role::KilledLeader => leader,
        Role::Follower => placement
            .followers
            .first()
            .map(|(follower, _)| *follower)
            .expect("the events stream has followers"),
    };
    let backlog_at_stop = total_backlog(pipeline).await;
    let messages_at_stop = pipeline.observer.messages();
    let stopped_at = Instant::now();
    if role == Role::KilledLeader {
        cluster.kill_node(node).await.unwrap();
    } else {
        cluster.stop_node(node).await.unwrap();
    }
    println!(
        "  stopped n{} ({}) {} after the day's first publish",
        node + 1,
        role.name(),
        seconds_text(stopped_at.elapsed())
    );

    let leader_after_stop = cluster
        .wait_for_stream_leader(
            stream,
            (role != Role::Follower).then_some(node),
            RECOVERY_DEADLINE,
        )
        .await
        .unwrap();
    let elected_in = stopped_at.elapsed();
    caught_up(pipeline).await;
    let caught_up_after_stop = stopped_at.elapsed();
    let publishes_after_stop = pipeline.observer.messages() - messages_at_stop;
    drained(pipeline).await;
    let drained_after_stop = stopped_at.elapsed();
    slow_everything(pipeline, false);

    // The world moves on while the node is down.
    advance_catch_up_and_drain(pipeline).await;

    let started_at = Instant::now();
    cluster.start_node(node).await.unwrap();
    cluster
        .wait_until_stream_current(stream, CLUSTER_SIZE, RECOVERY_DEADLINE)
        .await
        .unwrap();
    let rejoined_after_start = started_at.elapsed();
    advance_catch_up_and_drain(pipeline).await;
    let drained_after_start = started_at.elapsed();

    PhaseFigures {
        role,
        node,
        backlog_at_stop,
        publishes_after_stop,
        leader_after_stop,
        elected_in,
        caught_up_after_stop,
        drained_after_stop,
        rejoined_after_start,
        drained_after_start,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_leader_then_follower_stopped_then_leader_killed_loses_nothing() {
    if !koppel_chaos::enabled() {
        return;
    }
    let started = Instant::now();
    let cluster = NatsCluster::start().await.unwrap();
    println!(
        "cluster of {CLUSTER_SIZE} up in {} at {}",
        seconds_text(started.elapsed()),
        cluster.url()
    );
    let mut options = PipelineOptions::new("cluster-leader-follower-killed-leader", &cluster.url());
    options.replicas = CLUSTER_SIZE;
    // Enough employees that each simulated day changes several of them at every employer.
    options.employees_per_employer = 20;
    let mut pipeline = ChaosPipeline::start(options).await.unwrap();
    let stream = pipeline.topology.names.events_stream();

    // R3 everywhere: the events stream, and the delivery consumers inherit it.
    let placement = cluster
        .wait_until_stream_current(&stream, CLUSTER_SIZE, RECOVERY_DEADLINE)
        .await
        .unwrap();
    println!("  events stream {stream}: {placement:?}");
    drained(&pipeline).await;

    let leader_phase = stop_and_start(&cluster, &mut pipeline, &stream, Role::Leader).await;
    println!("  {leader_phase:?}");
    let follower_phase = stop_and_start(&cluster, &mut pipeline, &stream, Role::Follower).await;
    println!("  {follower_phase:?}");
    let killed_phase = stop_and_start(&cluster, &mut pipeline, &stream, Role::KilledLeader).await;
    println!("  {killed_phase:?}");
    let phases = [&leader_phase, &follower_phase, &killed_phase];

    // The scenario's recovery time: the slowest stop, from the stop until every change was
    // published and delivered on the remaining two nodes.
    let time_to_recover = phases
        .iter()
        .map(|phase| phase.drained_after_stop)
        .max()
        .unwrap_or_default();
    let mut report = pipeline.verify(time_to_recover).await.unwrap();
    for phase in phases {
        phase.print_into(&mut report);
    }
    report.figure("scenario took", seconds_text(started.elapsed()));
    report.print();
    pipeline.assert_pass(&report);
    for phase in [&leader_phase, &killed_phase] {
        assert_ne!(
            phase.leader_after_stop,
            phase.node,
            "a new leader took over the {} node's stream",
            phase.role.name()
        );
    }
    pipeline.stop().await.unwrap();
}
