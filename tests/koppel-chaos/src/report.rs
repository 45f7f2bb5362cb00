//! A scenario's outcome: what was lost against the ground truth and the stream, order
//! violations and duplicates per recipient, time to recover, and the verdict line.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::seconds_text;

/// Everything a scenario asserts on and prints. Built by `ChaosPipeline::verify`.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    pub scenario: String,
    /// Simulated days the world advanced after the first full sync.
    pub days: u32,
    /// Entities the mutation engine changed over those days (expected events).
    pub ground_truth_changes: u64,
    /// Messages in the events stream, the first full sync included.
    pub events_in_stream: u64,
    /// Ground-truth changes of a day that no event of that day carries.
    pub lost_in_extraction: u64,
    /// Stream events a recipient neither received finally nor dead-lettered (undecodable
    /// stream messages count at every recipient).
    pub lost_in_delivery: BTreeMap<String, u64>,
    pub order_violations: BTreeMap<String, u64>,
    /// Publishes of an event id the stream already held, dropped by JetStream's duplicate
    /// window (seen by the publish observer).
    pub duplicates_absorbed_at_publish: u64,
    /// Requests a recipient recognised by idempotency key as already applied.
    pub duplicates_absorbed_by_recipient: BTreeMap<String, u64>,
    /// Duplicates whose body differed from the first delivery: a receiver deduplicating on
    /// the id would silently lose the change, so these fail the verdict.
    pub duplicates_with_different_body: u64,
    /// Event ids stored more than once in the events stream: a repeat the duplicate window
    /// did not absorb (recipients' idempotency keys still would).
    pub duplicate_ids_in_stream: u64,
    /// (entity, revision) pairs carried by more than one event id: an entity re-announced
    /// with new content under a revision already published. Reported, not failed on.
    pub revisions_reused: u64,
    pub dead_lettered: BTreeMap<String, u64>,
    pub delivered: BTreeMap<String, u64>,
    /// Differences from the ground truth that lose nothing (an extra event, more changed
    /// fields than the log names). Printed, not failed on.
    pub ground_truth_mismatches: u64,
    /// The scenario's recovery time: from the end of the fault to caught up and drained.
    pub time_to_recover: Duration,
    /// Scenario-specific figures, printed after the verdict.
    pub figures: BTreeMap<String, String>,
    /// Readable lines for every loss or mismatch found.
    pub problems: Vec<String>,
}

impl ChaosReport {
    pub fn lost(&self) -> u64 {
        self.lost_in_extraction + self.lost_in_delivery.values().sum::<u64>()
    }

    pub fn total_order_violations(&self) -> u64 {
        self.order_violations.values().sum()
    }

    /// Duplicates absorbed anywhere: at publish and at every recipient.
    pub fn duplicates_absorbed(&self) -> u64 {
        self.duplicates_absorbed_at_publish
            + self.duplicates_absorbed_by_recipient.values().sum::<u64>()
    }

    /// Nothing lost, nothing out of order, every duplicate harmless.
    pub fn passed(&self) -> bool {
        self.lost() == 0
            && self.total_order_violations() == 0
            && self.duplicates_with_different_body == 0
            && self.events_in_stream > 0
    }

    /// Adds a scenario-specific figure.
    pub fn figure(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.figures.insert(name.to_owned(), value.to_string());
        self
    }

    /// `CHAOS <scenario>: PASS lost=0 order_violations=0 duplicates=N recovered_in=X.Ys events=N`
    pub fn verdict_line(&self) -> String {
        format!(
            "CHAOS {}: {} lost={} order_violations={} duplicates={} recovered_in={} events={}",
            self.scenario,
            if self.passed() { "PASS" } else { "FAIL" },
            self.lost(),
            self.total_order_violations(),
            self.duplicates_absorbed(),
            seconds_text(self.time_to_recover),
            self.events_in_stream
        )
    }

    /// The verdict line and the figures, as printed.
    pub fn text(&self) -> String {
        let mut lines = vec![self.verdict_line()];
        let per_recipient = |name: &str, map: &BTreeMap<String, u64>| {
            let values: Vec<String> = map
                .iter()
                .map(|(recipient, value)| format!("{recipient}={value}"))
                .collect();
            format!("  {name:<32} {}", values.join(" "))
        };
        lines.push(format!(
            "  {:<32} {} days, {} changes",
            "ground truth", self.days, self.ground_truth_changes
        ));
        lines.push(format!(
            "  {:<32} {}",
            "lost in extraction", self.lost_in_extraction
        ));
        lines.push(per_recipient("lost in delivery", &self.lost_in_delivery));
        lines.push(per_recipient("delivered", &self.delivered));
        lines.push(per_recipient("order violations", &self.order_violations));
        lines.push(format!(
            "  {:<32} {}",
            "duplicates absorbed at publish", self.duplicates_absorbed_at_publish
        ));
        lines.push(per_recipient(
            "duplicates absorbed by recipient",
            &self.duplicates_absorbed_by_recipient,
        ));
        lines.push(format!(
            "  {:<32} {}",
            "duplicates with different body", self.duplicates_with_different_body
        ));
        lines.push(format!(
            "  {:<32} {}",
            "duplicate event ids in stream", self.duplicate_ids_in_stream
        ));
        lines.push(format!(
            "  {:<32} {}",
            "revisions reused (new content)", self.revisions_reused
        ));
        lines.push(per_recipient("dead-lettered", &self.dead_lettered));
        lines.push(format!(
            "  {:<32} {}",
            "ground-truth mismatches", self.ground_truth_mismatches
        ));
        for (name, value) in &self.figures {
            lines.push(format!("  {name:<32} {value}"));
        }
        for problem in self.problems.iter().take(40) {
            lines.push(format!("  problem: {problem}"));
        }
        lines.join("\n")
    }

    /// Prints [`ChaosReport::text`] to stdout (the test's visible output).
    #[allow(clippy::print_stdout, reason = "the verdict is the test's output")]
    pub fn print(&self) {
        println!("{}", self.text());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn clean() -> ChaosReport {
        ChaosReport {
            scenario: "unit".to_owned(),
            events_in_stream: 42,
            lost_in_delivery: BTreeMap::from([("insurer".to_owned(), 0)]),
            duplicates_absorbed_at_publish: 2,
            duplicates_absorbed_by_recipient: BTreeMap::from([("insurer".to_owned(), 3)]),
            time_to_recover: Duration::from_millis(1_250),
            ..ChaosReport::default()
        }
    }

    #[test]
    fn the_verdict_line_has_the_agreed_shape() {
        assert_eq!(
            clean().verdict_line(),
            "CHAOS unit: PASS lost=0 order_violations=0 duplicates=5 recovered_in=1.2s events=42"
        );
    }

    #[test]
    fn a_loss_an_order_violation_or_a_changed_duplicate_fails_the_verdict() {
        let mut lost = clean();
        lost.lost_in_delivery.insert("webhooks".to_owned(), 1);
        let mut out_of_order = clean();
        out_of_order
            .order_violations
            .insert("insurer".to_owned(), 1);
        let mut changed_duplicate = clean();
        changed_duplicate.duplicates_with_different_body = 1;
        let mut nothing_published = clean();
        nothing_published.events_in_stream = 0;
        for report in [lost, out_of_order, changed_duplicate, nothing_published] {
            assert!(!report.passed(), "{}", report.text());
            assert!(report.verdict_line().contains(": FAIL "));
        }
        assert!(clean().passed());
    }
}
