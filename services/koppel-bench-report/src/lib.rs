//! Benchmark figures in one machine-readable shape. Every bench builds a [`Figure`] per result
//! and calls [`record`], which appends it as one JSON line to the file named by
//! `KOPPEL_BENCH_REPORT` (nothing happens when it is unset, so `cargo bench` alone still just
//! prints). `tests/benchmarks` collects the lines and renders `docs/benchmarks.md` with this
//! crate's binary.
//!
//! A figure is judged as a ratio against a baseline measured in the same run, never as an
//! absolute number: the machine is shared and its speed varies.

use std::io::Write;

use serde::{Deserialize, Serialize};

/// The variable naming the JSON-lines file figures are appended to.
pub const REPORT_VARIABLE: &str = "KOPPEL_BENCH_REPORT";

/// Which way a ratio must go to meet its target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The ratio must be at least this.
    AtLeast(f64),
    /// The ratio must be at most this.
    AtMost(f64),
}

impl Target {
    pub fn is_met_by(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(bound) => ratio >= bound,
            Target::AtMost(bound) => ratio <= bound,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Target::AtLeast(bound) => format!("≥ {bound}"),
            Target::AtMost(bound) => format!("≤ {bound}"),
        }
    }
}

/// One measured figure, with the baseline it is compared against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The benchmark (one table in the report): `publish`, `deliver`, `extract`, ...
    pub bench: String,
    /// What was measured, e.g. "koppel publisher".
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// What the baseline is, e.g. "raw async-nats pipelined publish".
    pub baseline_name: Option<String>,
    pub baseline: Option<f64>,
    /// value / baseline.
    pub ratio: Option<f64>,
    pub target: Option<Target>,
    /// Anything a reader needs to interpret the figure (sizes, settings).
    pub note: Option<String>,
}

impl Figure {
    /// A figure without a baseline (context for the others, e.g. a peak RSS).
    pub fn plain(bench: &str, name: &str, value: f64, unit: &str) -> Self {
        Figure {
            bench: bench.to_owned(),
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            baseline_name: None,
            baseline: None,
            ratio: None,
            target: None,
            note: None,
        }
    }

    /// A figure against a baseline in the same unit; the ratio is value / baseline.
    #[allow(clippy::float_arithmetic)]
    pub fn against(
        bench: &str,
        name: &str,
        value: f64,
        unit: &str,
        baseline_name: &str,
        baseline: f64,
    ) -> Self {
        Figure {
            baseline_name: Some(baseline_name.to_owned()),
            baseline: Some(baseline),
            ratio: (baseline != 0.0).then(|| value / baseline),
            ..Figure::plain(bench, name, value, unit)
        }
    }

    pub fn with_target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Met, missed, or not judged (no target or no ratio).
    pub fn verdict(&self) -> Option<bool> {
        Some(self.target?.is_met_by(self.ratio?))
    }
}

/// Appends `figure` to the report file, if `KOPPEL_BENCH_REPORT` names one.
pub fn record(figure: &Figure) -> std::io::Result<()> {
    let Some(path) = std::env::var_os(REPORT_VARIABLE) else {
        return Ok(());
    };
    let mut line = serde_json::to_vec(figure)?;
    line.push(b'\n');
    // One write of a whole line in append mode: benches running one after another never
    // interleave, and a crash loses at most its own line.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}

/// Reads every figure of a report file, in order; a line that does not parse is an error.
pub fn read_figures(text: &str) -> Result<Vec<Figure>, serde_json::Error> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_trip_and_are_judged_against_their_target() {
        let met = Figure::against("publish", "koppel", 90.0, "events/s", "raw", 100.0)
            .with_target(Target::AtLeast(0.8));
        let missed = Figure::against("deliver", "koppel", 10.0, "events/s", "raw", 100.0)
            .with_target(Target::AtLeast(0.5));
        let plain = Figure::plain("deliver", "peak RSS", 5.0, "MiB");
        let text = [&met, &missed, &plain]
            .iter()
            .map(|figure| serde_json::to_string(figure).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let read = read_figures(&text).unwrap();
        assert_eq!(read, vec![met, missed, plain]);
        assert_eq!(read[0].verdict(), Some(true));
        assert_eq!(read[1].verdict(), Some(false));
        assert_eq!(read[2].verdict(), None);
        assert_eq!(Figure::against("x", "y", 1.0, "u", "zero", 0.0).ratio, None);
    }

    #[test]
    fn at_most_targets_pass_below_the_bound() {
        assert!(Target::AtMost(1.1).is_met_by(1.0));
        assert!(!Target::AtMost(1.1).is_met_by(1.2));
    }
}
