//! The chaos suite's harness: the whole pipeline with REAL worker processes, faults applied to
//! it from outside, and one verifier that every scenario ends with.
//!
//! A scenario test looks like this:
//!
//! ```no_run
//! # async fn scenario() -> anyhow::Result<()> {
//! use koppel_chaos::{ChaosPipeline, PipelineOptions};
//! if !koppel_chaos::enabled() {
//!     return Ok(());
//! }
//! let mut pipeline = ChaosPipeline::start(PipelineOptions::new("my-scenario", "nats://127.0.0.1:4222")).await?;
//! pipeline.advance_day().await?;           // the world changes; ground truth recorded
//! pipeline.deliverer.kill_9()?;             // a fault, applied from outside
//! let recovery = std::time::Instant::now();
//! pipeline.deliverer.restart()?;
//! pipeline.wait_caught_up().await?;         // every change of the day is in the stream
//! pipeline.wait_drained().await?;           // every recipient consumer is empty
//! let report = pipeline.verify(recovery.elapsed()).await?;
//! report.print();                           // CHAOS my-scenario: PASS lost=0 ...
//! pipeline.assert_pass(&report);            // panics with the report and worker logs
//! pipeline.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # Modules
//! - `process`: `koppel extractor` / `koppel deliverer` as child processes, `kill_9`, `restart`.
//! - `pipeline`: simulators in process, onboarding, the workers, the ground-truth ledger per
//!   simulated day, and waits on conditions (never sleeps standing in for synchronisation).
//! - `observer`: a core NATS subscription on the event subjects that sees every publish,
//!   including the repeats JetStream's duplicate window drops.
//! - `report`: `ChaosReport`, its verdict line and figures.
//! - `restartable_nats`: a NATS container on a fixed host port that survives stop/start.

pub mod observer;
pub mod pipeline;
pub mod process;
pub mod report;
pub mod restartable_nats;

pub use observer::PublishObserver;
pub use pipeline::{ChaosPipeline, PipelineOptions};
pub use process::WorkerProcess;
pub use report::ChaosReport;
pub use restartable_nats::RestartableNats;

/// The variable that switches the suite on (`KOPPEL_CHAOS=1`); `.ci/run` sets it.
pub const GATE_VARIABLE: &str = "KOPPEL_CHAOS";

/// Whether the chaos suite runs. When it does not, prints why, so a skipped test is visible
/// as skipped and not mistaken for a pass: start every scenario with
/// `if !koppel_chaos::enabled() { return; }`.
#[allow(
    clippy::print_stdout,
    reason = "the skip notice is the test's visible output"
)]
pub fn enabled() -> bool {
    let on = std::env::var(GATE_VARIABLE)
        .is_ok_and(|value| value == "1" || value.eq_ignore_ascii_case("true"));
    if !on {
        println!("chaos suite skipped (set {GATE_VARIABLE}=1)");
    }
    on
}

/// `1.2s` from a duration, without float arithmetic.
pub fn seconds_text(duration: std::time::Duration) -> String {
    let millis = duration.as_millis();
    format!("{}.{}s", millis / 1000, millis % 1000 / 100)
}
